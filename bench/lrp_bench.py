"""LRP and Deep Taylor: the native backend (Keras 3, `.venv`) against the iNNvestigate backend (`.venv-innvestigate`).

Both stacks explain the same Keras 2 .h5 checkpoints (keras.applications, random weights, made by
engine_bench's _save) through engine.attribute, one batch at 224x224, class target. Run it once per
stack (each appends JSON lines to its log), then `report` puts the ratio table into docs/benchmarks.md:

    .venv-innvestigate/bin/python bench/lrp_bench.py warm --log /tmp/lrp_innvestigate.jsonl
    .venv/bin/python bench/lrp_bench.py warm --log /tmp/lrp_native.jsonl
    .venv/bin/python bench/lrp_bench.py cold --log /tmp/lrp_native.jsonl     (fresh process per model)
    .venv/bin/python bench/lrp_bench.py report /tmp/lrp_innvestigate.jsonl /tmp/lrp_native.jsonl
Options: --models vgg16,resnet50 --methods <ids> (default: the 13 LRP presets and both Deep Taylors)
--batch 8 --repeat 2. Goals (issue 14): native warm <= 1.1x iNNvestigate; native first map < 10 s.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

START = time.perf_counter()
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

from bench.engine_bench import best_of  # noqa: E402

METHODS = (
    "lrp.z", "lrp.epsilon", "lrp.w_square", "lrp.flat", "lrp.alpha_beta", "lrp.alpha_2_beta_1", "lrp.alpha_1_beta_0",
    "lrp.z_plus", "lrp.z_plus_fast", "lrp.sequential_preset_a", "lrp.sequential_preset_b",
    "lrp.sequential_preset_a_flat", "lrp.sequential_preset_b_flat", "deep_taylor", "deep_taylor.bounded",
)


def checkpoints(models, directory):
    """{name: .h5 path} of keras.applications models saved by .venv-innvestigate's Keras 2 (engine_bench's _save)."""
    from bench import engine_bench
    from tb_xai_plugin import metadata

    missing = [m for m in models if not os.path.exists(os.path.join(directory, m, metadata.checkpoint_basename(1) + ".json"))]
    if missing and not _is_keras2():
        raise SystemExit("run this bench in .venv-innvestigate first: it saves the Keras 2 checkpoints both stacks read")
    return engine_bench.ensure_checkpoints(models, directory)


def _is_keras2():
    """Whether this stack's Keras is 2.x."""
    import tensorflow as tf

    return not hasattr(tf.keras, "__version__") or str(tf.keras.__version__).startswith("2")


def load(path):
    """The engine's model of the checkpoint at `path` (this stack's backend)."""
    from tb_xai_plugin import engine
    from tb_xai_plugin.engine import backends

    with open(path[:-3] + ".json") as f:
        manifest = json.load(f)
    if backends.backend_name(manifest) == "innvestigate":
        engine.enable_graph_mode()
    return engine.load_checkpoint(path, manifest)



def warm(models, methods, batch, repeat, directory, log):
    """Append {"kind": "warm", backend, model, method, seconds} per (model, method) to `log`; plus the forward pass."""
    from tb_xai_plugin import engine

    for name, path in checkpoints(models, directory).items():
        model = load(path)
        x = np.random.default_rng(0).uniform(0, 255, size=(batch,) + model.input_shape).astype(np.float32)
        forward = best_of(repeat, lambda: model.scores(x, "logit"))
        write(log, {"kind": "forward", "backend": model.backend, "model": name, "seconds": forward})
        for method_id in methods:
            seconds = best_of(repeat, lambda: engine.attribute(model, method_id, x, target={"kind": "class", "index": 7}, memory_budget=2**34))
            write(log, {"kind": "warm", "backend": model.backend, "model": name, "method": method_id, "seconds": seconds})


def cold(models, methods, directory, log):
    """Append {"kind": "cold", ...}: seconds from interpreter start to the first map of one image, in a fresh process."""
    paths = checkpoints(models, directory)
    for name in models:
        for method_id in methods:
            out = subprocess.run([sys.executable, __file__, "_cold", paths[name], method_id], capture_output=True, text=True,
                                 env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT), timeout=600)
            result = json.loads(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 else {"error": out.stderr.strip().splitlines()[-1:]}
            write(log, dict(result, kind="cold", model=name, method=method_id))


def first_map(path, method_id):
    """In a fresh process: {backend, seconds} from start to the first map of one image."""
    from tb_xai_plugin import engine

    model = load(path)
    x = np.random.default_rng(0).uniform(0, 255, size=(1,) + model.input_shape).astype(np.float32)
    engine.attribute(model, method_id, x, target={"kind": "class", "index": 0})
    print(json.dumps({"backend": model.backend, "seconds": time.perf_counter() - START}))


def write(log, record):
    """Append one JSON record to the log (and echo it)."""
    line = json.dumps(dict(record, when=time.strftime("%Y-%m-%d %H:%M"), load=os.getloadavg()[0]))
    print(line, flush=True)
    with open(log, "a") as f:
        f.write(line + "\n")


def report(paths):
    """The docs/benchmarks.md section from the logs of both stacks' runs."""
    records = [json.loads(line) for path in paths for line in open(path) if line.strip()]
    warm_times = {(r["backend"], r["model"], r["method"]): r["seconds"] for r in records if r["kind"] == "warm"}
    forward = {(r["backend"], r["model"]): r["seconds"] for r in records if r["kind"] == "forward"}
    loads = [r["load"] for r in records]
    lines = [
        "### LRP and Deep Taylor, warm: native (Keras 3) vs iNNvestigate backend, batch 8 at 224x224 (%s, %d CPUs, load average %.1f-%.1f, %s)"
        % (platform.machine(), os.cpu_count(), min(loads), max(loads), max(r["when"] for r in records)),
        "",
        "engine.attribute on the same Keras 2 .h5 (random weights) in each stack; best of the runs. Goal: ratio <= 1.1.",
        "",
        "| model | method | native | iNNvestigate | ratio |",
        "|---|---|---|---|---|",
    ]
    for (backend, model, method), native in sorted(warm_times.items()):
        if backend != "native":
            continue
        other = warm_times.get(("innvestigate", model, method))
        lines.append("| %s | %s | %.2f s | %s | %s |" % (model, method, native, "%.2f s" % other if other else "not run", "%.2f" % (native / other) if other else ""))
    for (backend, model), seconds in sorted(forward.items()):
        lines.append("")
        lines.append("Forward pass, %s backend, %s: %.2f s." % (backend, model, seconds))
    colds = [r for r in records if r["kind"] == "cold"]
    if colds:
        lines += ["", "Cold, native: first map of one image in a fresh process (goal < 10 s):", ""]
        lines += ["- %s %s: %s" % (r["model"], r["method"], "%.1f s" % r["seconds"] if "seconds" in r else r.get("error")) for r in colds]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["warm", "cold", "report"])
    parser.add_argument("logs", nargs="*")
    parser.add_argument("--models", default="vgg16,resnet50")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--dir", default=os.path.join(tempfile.gettempdir(), "tb_xai_engine_bench"))
    parser.add_argument("--log", default=os.path.join(tempfile.gettempdir(), "tb_xai_lrp_bench.jsonl"))
    args = parser.parse_args(argv)
    if args.mode == "report":
        from bench import report as sections

        text = report(args.logs)
        print(text)
        sections.replace_section("lrp native vs innvestigate", text)
    elif args.mode == "warm":
        warm(args.models.split(","), args.methods.split(","), args.batch, args.repeat, args.dir, args.log)
    else:
        cold(args.models.split(","), args.methods.split(","), args.dir, args.log)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_cold":
        first_map(sys.argv[2], sys.argv[3])
    else:
        main()
