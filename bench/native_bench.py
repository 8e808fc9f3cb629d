"""Speed of the native backend (Keras 3, eager, tf.function) against the iNNvestigate backend, as ratios from one run.

Both backends explain the same Keras 2 .h5 of keras.applications.<model>(weights=None) (written by the
Keras 2 stack; the Keras 3 stack reads it through its legacy loader), batch `--batch` at 224x224:
warm:  best of `--repeat` for gradient and integrated gradients (`--steps` steps) through engine.attribute
       with a class target: native in this process (.venv), the iNNvestigate backend in a child process
       of .venv-innvestigate; goal native <= 1.1x. And the native gradient against one forward pass of
       the same batch (the model's compiled probabilities): goal <= 3x.
cold:  a fresh .venv process, from interpreter start to the first gradient map of one image: goal < 10 s.

    .venv/bin/python bench/native_bench.py [--models vgg16,resnet50] [--batch 8] [--steps 8] [--repeat 2] [--no-report]
Replaces its section of docs/benchmarks.md unless --no-report.
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

INNVESTIGATE_PYTHON = os.path.join(ROOT, ".venv-innvestigate", "bin", "python")
METHODS = ("gradient", "integrated_gradients")


def environment():
    """Child processes' environment: the repository importable, TensorFlow's C++ log on warnings."""
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT)


def keras2_checkpoint(name, directory):
    """The .h5 path of keras.applications model `name` (weights=None) saved by the Keras 2 stack (bench/engine_bench.py)."""
    folder = os.path.join(directory, name)
    subprocess.run([INNVESTIGATE_PYTHON, os.path.join(ROOT, "bench", "engine_bench.py"), "_save", name, folder],
                   check=True, env=environment())  # fmt: skip
    return os.path.join(folder, "step-000000001.h5")


def load(path):
    """The engine's model of the checkpoint at `path` (its manifest beside it), on this stack's backend."""
    from tb_xai_plugin import engine

    with open(path[:-3] + ".json") as f:
        return engine.load_checkpoint(path, json.load(f))



def warm_seconds(path, batch, steps, repeat):
    """{method: best seconds, "forward": best seconds of one forward pass} on this stack's backend."""
    from tb_xai_plugin import engine

    model = load(path)
    x = np.random.default_rng(0).uniform(0, 255, size=(batch,) + model.input_shape).astype(np.float32)
    params = {"gradient": {}, "integrated_gradients": {"steps": steps, "reference": "zero"}}
    out = {"backend": model.backend}
    for method_id in METHODS:
        out[method_id] = best_of(repeat, lambda: engine.attribute(model, method_id, x, params=params[method_id],
                                                                  target={"kind": "class", "index": 0}))  # fmt: skip
    out["forward"] = best_of(repeat, lambda: model.probabilities(model.preprocess(x)))
    return out


def cold_seconds(path):
    """Seconds from this process's start to its first gradient map of one image (native backend)."""
    from tb_xai_plugin import engine

    model = load(path)
    x = np.random.default_rng(0).uniform(0, 255, size=(1,) + model.input_shape).astype(np.float32)
    engine.attribute(model, "gradient", x, target={"kind": "class", "index": 0})
    return {"total": time.perf_counter() - START, "backend": model.backend}


def child(python, *args):
    """The JSON a child process of this script prints as its last line."""
    done = subprocess.run([python, os.path.abspath(__file__)] + [str(a) for a in args], capture_output=True, text=True,
                          env=environment(), timeout=3600)  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(models, batch, steps, repeat):
    """{model: {"native": warm, "innvestigate": warm, "cold": seconds}} for every model."""
    results = {}
    with tempfile.TemporaryDirectory() as directory:
        for name in models:
            path = keras2_checkpoint(name, directory)
            results[name] = {
                "innvestigate": child(INNVESTIGATE_PYTHON, "_warm", path, batch, steps, repeat),
                "native": warm_seconds(path, batch, steps, repeat),
                "cold": child(sys.executable, "_cold", path),
            }
            print(name, json.dumps(results[name]), flush=True)
    return results


def report(results, batch, steps, repeat):
    """The markdown section of this bench."""
    when = time.strftime("%Y-%m-%d %H:%M")
    lines = [
        "### Native backend vs iNNvestigate backend: batch %d at 224x224, weights=None, IG %d steps, best of %d "
        "(%s, %d CPUs, load %.1f, %s)" % (batch, steps, repeat, platform.machine(), os.cpu_count(), os.getloadavg()[0], when),
        "",
        "| model | method | native (Keras 3) | iNNvestigate (Keras 2) | ratio (goal <= 1.1x) |",
        "|---|---|---|---|---|",
    ]
    for name, result in results.items():
        for method_id in METHODS:
            native, inn = result["native"][method_id], result["innvestigate"][method_id]
            lines.append("| %s | %s | %.3f s | %.3f s | %.2fx |" % (name, method_id, native, inn, native / inn))
    lines += ["", "| model | native gradient / one forward pass (goal <= 3x) | first gradient map, fresh process (goal < 10 s) |", "|---|---|---|"]
    for name, result in results.items():
        ratio = result["native"]["gradient"] / result["native"]["forward"]
        lines.append("| %s | %.2fx (%.3f s / %.3f s) | %.1f s |" % (name, ratio, result["native"]["gradient"], result["native"]["forward"], result["cold"]["total"]))
    return "\n".join(lines)


def main(argv=None):
    """Run the bench and replace its section of docs/benchmarks.md."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="vgg16,resnet50")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--no-report", action="store_true")
    args = parser.parse_args(argv)
    results = run(args.models.split(","), args.batch, args.steps, args.repeat)
    text = report(results, args.batch, args.steps, args.repeat)
    print(text)
    if not args.no_report:
        from bench import report as bench_report

        bench_report.replace_section("native-backend", text)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_warm":
        from tb_xai_plugin.engine import backends

        if backends.innvestigate_available():
            from tb_xai_plugin import engine

            engine.enable_graph_mode()
        print(json.dumps(warm_seconds(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))))
    elif len(sys.argv) > 1 and sys.argv[1] == "_cold":
        print(json.dumps(cold_seconds(sys.argv[2])))
    else:
        main()
