# The two commands of the README: `make demo` and `make test`. Each sets up what it needs.
PY      := .venv/bin/python
STATIC  := tb_xai_plugin/static/index.js
FRONT_SRC := $(shell find frontend/src -type f 2>/dev/null) frontend/package.json frontend/build.mjs
PORT    ?= 6006
LOGDIR  ?= demo_logs

.PHONY: demo demo-imagenet test test-python test-frontend setup system frontend bench clean

setup: .venv/.stamp $(STATIC)

# System packages: Chromium for the browser tests, Fashion-MNIST for the offline demo.
system: .stamp-system
.stamp-system:
	@if command -v apt-get >/dev/null; then \
	  need=""; \
	  [ -x /usr/bin/chromium ] || need="$$need chromium"; \
	  [ -d /usr/share/datasets/fashion-mnist ] || need="$$need dataset-fashion-mnist"; \
	  if [ -n "$$need" ]; then apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$need; fi; \
	else echo "no apt-get: install chromium yourself for the browser tests"; fi
	touch $@

.venv/.stamp: requirements.txt requirements-dev.txt setup.py
	python3 -m venv .venv
	$(PY) -m pip install -q --upgrade "pip<27"
	$(PY) -m pip install -q -r requirements-dev.txt
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $@

frontend/node_modules/.stamp: frontend/package.json frontend/package-lock.json
	cd frontend && npm ci --no-audit --no-fund
	touch $@

$(STATIC): frontend/node_modules/.stamp $(FRONT_SRC)
	cd frontend && npm run build

frontend: $(STATIC)

test: setup system
	cd frontend && npm test
	$(PY) -m pytest tests --ignore=tests/engine
	$(PY) -m pytest tests/engine

demo: setup system
	$(PY) demo/train.py --logdir $(LOGDIR)
	@echo "TensorBoard with the XAI tab: http://localhost:$(PORT)/#xai"
	.venv/bin/tensorboard --logdir $(LOGDIR) --port $(PORT) --bind_all

# Against a running `make demo` (another shell): its XAI tab in headless Chromium, every run listed, maps drawn.
.PHONY: demo-check
demo-check:
	$(PY) demo/check_page.py --url http://localhost:$(PORT)

demo-imagenet: setup
	$(PY) demo/imagenet.py --logdir $(LOGDIR)-imagenet
	.venv/bin/tensorboard --logdir $(LOGDIR)-imagenet --port $(PORT) --bind_all

bench: setup
	$(PY) -m bench

clean:
	rm -rf .venv frontend/node_modules tb_xai_plugin/static .stamp-system
