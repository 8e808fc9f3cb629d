# The two commands of the README: `make demo` and `make test`. Each sets up what it needs.
# The current stack (default): TensorFlow 2.21, Keras 3. The paper's engine: TensorFlow 2.14, Keras 2, iNNvestigate.
PY      := .venv/bin/python
PY_INNV := .venv-innvestigate/bin/python
STATIC  := tb_xai_plugin/static/index.js
FRONT_SRC := $(shell find frontend/src -type f 2>/dev/null) frontend/package.json frontend/build.mjs
PORT    ?= 6006
LOGDIR  ?= demo_logs

.PHONY: demo demo-imagenet bench-xplique bench-parity test test-python test-frontend setup system frontend bench clean

setup: .venv/.stamp .venv-innvestigate/.stamp $(STATIC)

# System packages: Chromium for the browser tests, Fashion-MNIST for the offline demo, openssl for the
# deployment tests' certificates.
system: .stamp-system
.stamp-system:
	@if command -v apt-get >/dev/null; then \
	  need=""; \
	  [ -x /usr/bin/chromium ] || need="$$need chromium"; \
	  [ -d /usr/share/datasets/fashion-mnist ] || need="$$need dataset-fashion-mnist"; \
	  command -v openssl >/dev/null || need="$$need openssl"; \
	  if [ -n "$$need" ]; then apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$need; fi; \
	else echo "no apt-get: install chromium yourself for the browser tests"; fi
	touch $@

# A virtualenv at $(1) with the stack pinned in $(2), the test tools and tb-xai itself (editable).
define make_venv
	python3 -m venv $(1)
	$(1)/bin/python -m pip install -q --upgrade "pip<27"
	$(1)/bin/python -m pip install -q -r $(2) -r requirements-dev.txt
	$(1)/bin/python -m pip install -q --no-deps --no-build-isolation -e .
	touch $(1)/.stamp
endef

.venv/.stamp: requirements.txt requirements-common.txt requirements-dev.txt setup.py
	$(call make_venv,.venv,requirements.txt)

.venv-innvestigate/.stamp: requirements-innvestigate.txt requirements-common.txt requirements-dev.txt setup.py
	$(call make_venv,.venv-innvestigate,requirements-innvestigate.txt)

frontend/node_modules/.stamp: frontend/package.json frontend/package-lock.json
	cd frontend && npm ci --no-audit --no-fund
	touch $@

$(STATIC): frontend/node_modules/.stamp $(FRONT_SRC)
	cd frontend && npm run build

frontend: $(STATIC)

# Every test in the current stack; the Keras 2 stack runs the engine, logging and what its backend changes
# (compute routes, heads, scores, the sanity check, gs:// checkpoints) again. The engine runs under both
# oneDNN settings: they change float32 kernels the way another CPU does. Two pytest workers per run
# (pytest-xdist; a module's tests stay together and share their fixtures), one per core here.
XDIST := -n 2 --dist loadfile
KERAS2_AGAIN := tests/summary tests/retention tests/heads tests/plugin/test_compute_routes.py \
  tests/plugin/test_table2_routes.py tests/trust/test_scores_engine.py tests/trust/test_scores_route.py \
  tests/deploy/test_remote_logdir.py tests/zoo tests/plugin/test_folded_layers.py \
  tests/trust/test_sanity_route.py::test_sanity_at_full_randomization_is_the_agreement_with_the_randomized_model_logged_as_a_checkpoint
test: setup system
	cd frontend && npm test
	$(PY) -m pytest $(XDIST) tests --ignore=tests/engine
	TF_ENABLE_ONEDNN_OPTS=0 $(PY) -m pytest $(XDIST) tests/engine
	TF_ENABLE_ONEDNN_OPTS=1 $(PY) -m pytest $(XDIST) tests/engine
	$(PY_INNV) -m pytest $(XDIST) $(KERAS2_AGAIN)
	TF_ENABLE_ONEDNN_OPTS=0 $(PY_INNV) -m pytest $(XDIST) tests/engine
	TF_ENABLE_ONEDNN_OPTS=1 $(PY_INNV) -m pytest $(XDIST) tests/engine

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

# The browser tests write their screenshots to build/screenshots; this refreshes docs/images from them on purpose.
.PHONY: screenshots
screenshots: setup system
	$(PY) -m pytest tests/browser -q
	cp build/screenshots/grid.png build/screenshots/over_training.png build/screenshots/suggestions.png \
	  build/screenshots/histogram.png build/screenshots/tab.png build/screenshots/trust.png \
	  build/screenshots/trust_scores.png build/screenshots/trust_dark.png docs/images/

bench: setup
	$(PY) -m bench

# Xplique 2 (the Keras 3 peer) caps TensorFlow at 2.20 and pulls CUDA wheels: bench-only, without its dependencies.
bench-xplique: setup
	$(PY) -m pip install -q --no-deps --target build/xplique xplique==2.0.2 deprecated wrapt einops matplotlib \
	  opencv-python-headless scikit-learn threadpoolctl joblib contourpy cycler fonttools kiwisolver pyparsing \
	  python-dateutil tensorflow-probability==0.25.0 tf-keras==2.21.0 dm-tree cloudpickle gast decorator narwhals
	$(PY) bench/xplique_bench.py

# Quantus 0.6 (region perturbation) beside Xplique: the faithfulness scores' parity, bench-only as well.
bench-parity: bench-xplique
	$(PY) -m pip install -q --no-deps --target build/quantus quantus==0.6.0 pandas==3.1.1 pytz tzdata tqdm cachetools
	$(PY) bench/score_parity.py

clean:
	rm -rf .venv .venv-innvestigate frontend/node_modules tb_xai_plugin/static .stamp-system
