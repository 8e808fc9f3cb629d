"""Speed of the engine against plain iNNvestigate doing the same work, as ratios from one run.

warm: VGG16 (random weights), one batch at 224x224: every iNNvestigate method through
      engine.attribute (class target: the scores come from the same run) against iNNvestigate's
      own analyze(x, neuron_selection) on the same batch, each in its own graph; and the engine's
      gradient against one plain Keras forward pass. Goals: <= 1.1x and <= 3x.
cold: a fresh process per (model, method), from interpreter start to the first map of one image:
      the engine (load_checkpoint + attribute) against plain iNNvestigate (load_model +
      create_analyzer + analyze), each with a timeout. Goal: engine < 15 s.

    python bench/engine_bench.py [warm|cold|all] [--batch 8] [--repeat 2] [--models resnet50,vgg16,xception]
        [--methods gradient,grad_cam,lrp.epsilon] [--plain-methods gradient] [--plain-timeout 300] [--no-report]
    python bench/engine_bench.py report LOG... [--batch 8 --repeat 2]   (a section from earlier runs' logs)
Replaces its sections of docs/benchmarks.md unless --no-report.
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

from tb_xai_plugin import metadata, model_info  # noqa: E402

APPLICATIONS = {"resnet50": "ResNet50", "vgg16": "VGG16", "xception": "Xception"}
# Plain iNNvestigate analyzer and its kwargs for each engine method in the warm table. The engine's
# deconvnet / guided_backprop are the same analyzers started from 1 instead of the logit's value:
# the same backward pass, so the ratio still compares like with like.
WARM_STEPS = 8  # SmoothGrad samples and IG steps: iNNvestigate runs batch x steps images in one run
PLAIN = {
    "gradient": ("gradient", {"postprocess": "abs"}),
    "smoothgrad": ("smoothgrad", {"augment_by_n": WARM_STEPS, "postprocess": "abs"}),
    "deconvnet": ("deconvnet", {}),
    "guided_backprop": ("guided_backprop", {}),
    "input_t_gradient": ("input_t_gradient", {}),
    "integrated_gradients": ("integrated_gradients", {"steps": WARM_STEPS}),
    "lrp.z": ("lrp.z", {}),
    "lrp.epsilon": ("lrp.epsilon", {}),
    "lrp.w_square": ("lrp.w_square", {}),
    "lrp.flat": ("lrp.flat", {}),
    "lrp.alpha_beta": ("lrp.alpha_beta", {"alpha": 1.0, "beta": 0.0}),
    "lrp.alpha_2_beta_1": ("lrp.alpha_2_beta_1", {}),
    "lrp.alpha_1_beta_0": ("lrp.alpha_1_beta_0", {}),
    "lrp.z_plus": ("lrp.z_plus", {}),
    "lrp.z_plus_fast": ("lrp.z_plus_fast", {}),
    "lrp.sequential_preset_a": ("lrp.sequential_preset_a", {}),
    "lrp.sequential_preset_b": ("lrp.sequential_preset_b", {}),
    "lrp.sequential_preset_a_flat": ("lrp.sequential_preset_a_flat", {}),
    "lrp.sequential_preset_b_flat": ("lrp.sequential_preset_b_flat", {}),
    "deep_taylor": ("deep_taylor", {}),
    "deep_taylor.bounded": ("deep_taylor.bounded", {"low": 0.0, "high": 255.0}),
}
ENGINE_PARAMS = {"smoothgrad": {"augment_by_n": WARM_STEPS}, "integrated_gradients": {"steps": WARM_STEPS, "reference": "zero"}}


def save_checkpoint(name, directory):
    """Save keras.applications.<name>(weights=None) as step-1 .h5 + manifest in `directory`; return the paths."""
    import tensorflow as tf

    keras_model = getattr(tf.keras.applications, APPLICATIONS[name])(weights=None)
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, metadata.checkpoint_basename(1) + ".h5")
    keras_model.save(path, save_format="h5")
    manifest = {
        "format_version": metadata.FORMAT_VERSION, "kind": metadata.KIND_CHECKPOINT, "step": 1,
        "file": os.path.basename(path), "format": "h5", "model_name": keras_model.name,
        "input_shape": [int(d) for d in keras_model.input_shape[1:]],
        "num_classes": int(keras_model.output_shape[-1]),
        "class_names": ["class %d" % i for i in range(int(keras_model.output_shape[-1]))],
        "preprocessing": {"type": "none"},
        "output_activation": model_info.output_activation(keras_model),
        "layers": model_info.describe_layers(keras_model),
        "weights_sha256": model_info.weights_checksum(keras_model.get_weights()),
        "file_sha256": "", "versions": {}, "wall_time": time.time(),
    }
    with open(path[:-3] + ".json", "w") as f:
        json.dump(manifest, f)
    return path


def ensure_checkpoints(names, directory):
    """{name: .h5 path}, saving each missing model in a subprocess (eager, like a training script)."""
    paths = {}
    for name in names:
        path = os.path.join(directory, name, metadata.checkpoint_basename(1) + ".h5")
        if not os.path.exists(path[:-3] + ".json"):
            subprocess.run([sys.executable, __file__, "_save", name, os.path.dirname(path)], check=True, env=quiet_env())
        paths[name] = path
    return paths


def quiet_env():
    """The environment for child processes, with TensorFlow's C++ log on warnings (the cold-path symptom)."""
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="1", PYTHONPATH=ROOT)


def load_manifest(path):
    with open(path[:-3] + ".json") as f:
        return json.load(f)


def cold_engine(path, method_id):
    """In a fresh process: seconds from start to the engine's first map of one image, and its parts."""
    from tb_xai_plugin import engine

    engine.enable_graph_mode()
    imported = time.perf_counter()
    model = engine.load_checkpoint(path, load_manifest(path))
    loaded = time.perf_counter()
    x = np.random.default_rng(0).uniform(0, 255, size=(1,) + model.input_shape).astype(np.float32)
    engine.attribute(model, method_id, x, target={"kind": "class", "index": 0})
    done = time.perf_counter()
    return {"total": done - START, "import": imported - START, "load": loaded - imported, "first_map": done - loaded}


def cold_plain(path, method_id):
    """In a fresh process: seconds from start to plain iNNvestigate's first analysis of one image."""
    import innvestigate
    import tensorflow as tf

    tf.compat.v1.disable_eager_execution()
    imported = time.perf_counter()
    keras_model = tf.keras.models.load_model(path, compile=False)
    loaded = time.perf_counter()
    analyzer = innvestigate.create_analyzer(method_id, innvestigate.model_wo_softmax(keras_model), neuron_selection_mode="index")
    x = np.random.default_rng(0).uniform(0, 255, size=(1,) + keras_model.input_shape[1:]).astype(np.float32)
    analyzer.analyze(x, neuron_selection=[0])
    done = time.perf_counter()
    return {"total": done - START, "import": imported - START, "load": loaded - imported, "first_map": done - loaded}


def run_child(args, timeout):
    """Run this script as a child with `args`; its JSON result, or {"timeout": s} / {"error": text}; plus warning count."""
    try:
        proc = subprocess.run([sys.executable, __file__] + args, capture_output=True, text=True, timeout=timeout, env=quiet_env())
    except subprocess.TimeoutExpired as e:
        stderr = e.stderr.decode() if isinstance(e.stderr, bytes) else (e.stderr or "")
        return {"timeout": timeout, "mutations": stderr.count("was changed by setting attribute")}
    mutations = proc.stderr.count("was changed by setting attribute")
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "exit %d" % proc.returncode}
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]), mutations=mutations)


def cold(models, methods, plain_methods, plain_timeout, directory):
    """Rows (model, method, engine result, plain result or None) of first-map times in fresh processes."""
    paths = ensure_checkpoints(models, directory)
    rows = []
    for name in models:
        for method_id in methods:
            mine = run_child(["_cold_engine", paths[name], method_id], timeout=600)
            plain = None
            if method_id in plain_methods:
                plain = run_child(["_cold_plain", paths[name], method_id], timeout=plain_timeout) if method_id in PLAIN else {"error": "not in iNNvestigate"}
            rows.append((name, method_id, mine, plain))
            print("COLD " + json.dumps([name, method_id, mine, plain]), flush=True)
    return rows


def plain_model(path):
    """(keras model, session, analyzers dict) loaded the plain way, in a graph of its own."""
    import tensorflow as tf

    graph = tf.Graph()
    session = tf.compat.v1.Session(graph=graph)
    with graph.as_default(), session.as_default():
        tf.compat.v1.keras.backend.set_session(session)
        return tf.keras.models.load_model(path, compile=False), graph, session


def best_of(repeat, work):
    """The fastest of `repeat` timed calls of work() (after one untimed warm-up call)."""
    work()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return min(times)


def alternate(repeat, first, second):
    """(best time of first, best time of second), calling them in turn after one warm-up each."""
    first(), second()
    times = ([], [])
    for _ in range(repeat):  # in turn, so load from other processes hits both alike
        for work, spent in zip((first, second), times):
            start = time.perf_counter()
            work()
            spent.append(time.perf_counter() - start)
    return min(times[0]), min(times[1])


def warm(batch, repeat, methods, directory):
    """Rows (method, engine s, plain s) on VGG16 at batch `batch`, plus the forward pass time."""
    import innvestigate
    import tensorflow as tf

    from tb_xai_plugin import engine

    path = ensure_checkpoints(["vgg16"], directory)["vgg16"]
    model = engine.load_checkpoint(path, load_manifest(path))
    keras_model, graph, session = plain_model(path)
    x = np.random.default_rng(0).uniform(0, 255, size=(batch, 224, 224, 3)).astype(np.float32)
    target, targets = {"kind": "class", "index": 7}, np.full(batch, 7)
    budget = 2**34  # one run per batch, as plain iNNvestigate does

    def in_plain(work):
        def run():
            with graph.as_default(), session.as_default():
                tf.compat.v1.keras.backend.set_session(session)
                return work()

        return run

    forward = best_of(repeat, in_plain(lambda: keras_model.predict_on_batch(x)))
    print("FORWARD %s" % json.dumps(forward), flush=True)
    logits_model = in_plain(lambda: innvestigate.model_wo_softmax(keras_model))()
    rows = []
    for method_id in methods:
        name, kwargs = PLAIN[method_id]
        params = ENGINE_PARAMS.get(method_id, {})
        mine = lambda: engine.attribute(model, method_id, x, params=params, target=target, memory_budget=budget)  # noqa: E731
        try:
            analyzer = in_plain(lambda: innvestigate.create_analyzer(name, logits_model, neuron_selection_mode="index", **kwargs))()
            plain = in_plain(lambda: analyzer.analyze(x, neuron_selection=targets))
            plain()
        except Exception as e:  # the plain library's own failure is a result too
            rows.append((method_id, best_of(repeat, mine), "error: %s" % str(e).splitlines()[0][:90]))
        else:
            rows.append((method_id,) + alternate(repeat, mine, plain))
        print("WARM " + json.dumps(rows[-1]), flush=True)
    return forward, rows


def fmt_cold(result):
    """One cold result as table text."""
    if result is None:
        return "not run"
    if "timeout" in result:
        return "> %d s (timed out; %d mutation warnings)" % (result["timeout"], result["mutations"])
    if "error" in result:
        return "error: %s" % result["error"][:80]
    return "%.1f s (import %.1f, load %.1f, map %.1f; %d warnings)" % (
        result["total"], result["import"], result["load"], result["first_map"], result["mutations"])


def report(warm_result, cold_rows, batch, repeat, warm_methods):
    """{section key: markdown} for docs/benchmarks.md: the warm table (keyed by its methods) and the cold one."""
    when = time.strftime("%Y-%m-%d %H:%M")
    host = "%s, %d CPUs" % (platform.machine(), os.cpu_count())
    sections = {}
    if warm_result is not None:
        lines = []
        forward, rows = warm_result
        gradient = dict((m, e) for m, e, _ in rows).get("gradient")
        lines += [
            "### Engine, warm: VGG16 (random weights), batch %d at 224x224, best of %d (%s, %s)" % (batch, repeat, host, when),
            "",
            "engine.attribute (class target, memory budget large enough for one run) against iNNvestigate's own",
            "analyze on the same batch, each in its own graph. SmoothGrad and IG at %d samples/steps." % WARM_STEPS,
            "",
            "| method | engine | iNNvestigate | ratio (goal <= 1.1) |",
            "|---|---|---|---|",
        ]
        lines += [
            "| %s | %.3f s | %.3f s | %.2f |" % (m, e, p, e / p) if isinstance(p, float) else "| %s | %.3f s | %s | |" % (m, e, p)
            for m, e, p in rows
        ]
        if gradient:
            lines += ["", "Plain Keras forward pass on the batch: %.3f s; engine gradient / forward = **%.2f** (goal <= 3)." % (forward, gradient / forward)]
        sections["engine warm" if warm_methods == ",".join(PLAIN) else "engine warm " + warm_methods] = "\n".join(lines)
    if cold_rows:
        lines = [
            "### Engine, cold: first map of one image in a fresh process (%s, %s)" % (host, when),
            "",
            "From interpreter start (imports included) to the first map; 'warnings' counts TensorFlow's",
            "\"Operation ... was changed by setting attribute after it was run by a session\".",
            "",
            "| model | method | engine (goal < 15 s) | plain iNNvestigate |",
            "|---|---|---|---|",
        ]
        lines += ["| %s | %s | %s | %s |" % (n, m, fmt_cold(e), fmt_cold(p)) for n, m, e, p in cold_rows]
        sections["engine cold"] = "\n".join(lines)
    return sections


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", nargs="?", default="all", choices=["warm", "cold", "all", "report"])
    parser.add_argument("logs", nargs="*", help="report: the logs of earlier runs (their WARM/FORWARD/COLD lines)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--warm-methods", default=",".join(PLAIN))
    parser.add_argument("--models", default="resnet50,vgg16,xception")
    parser.add_argument("--methods", default="gradient,grad_cam,lrp.epsilon")
    parser.add_argument("--plain-methods", default="gradient", help="methods whose plain cold baseline runs (minutes each)")
    parser.add_argument("--plain-timeout", type=int, default=300)
    parser.add_argument("--dir", default=os.path.join(tempfile.gettempdir(), "tb_xai_engine_bench"))
    parser.add_argument("--no-report", action="store_true")
    args = parser.parse_args(argv)
    if args.mode == "report":
        return report_from_logs(args.logs, args.batch, args.repeat, args.warm_methods)
    warm_result = cold_rows = None
    if args.mode in ("cold", "all"):
        cold_rows = cold(args.models.split(","), args.methods.split(","), args.plain_methods.split(","), args.plain_timeout, args.dir)
    if args.mode in ("warm", "all"):
        from tb_xai_plugin import engine

        engine.enable_graph_mode()
        warm_result = warm(args.batch, args.repeat, args.warm_methods.split(","), args.dir)
    sections = report(warm_result, cold_rows, args.batch, args.repeat, args.warm_methods)
    print("\n".join(sections.values()))
    if not args.no_report:
        write_sections(sections)


def report_from_logs(paths, batch, repeat, warm_methods):
    """Write the sections built from the WARM / FORWARD / COLD lines of earlier runs' logs."""
    forward, rows, cold_rows = None, [], []
    for path in paths:
        with open(path, errors="replace") as f:
            for line in f:
                kind, _, payload = line.strip().partition(" ")
                if kind == "FORWARD":
                    forward = json.loads(payload)
                elif kind == "WARM":
                    rows.append(tuple(json.loads(payload)))
                elif kind == "COLD":
                    cold_rows.append(tuple(json.loads(payload)))
    sections = report((forward, rows) if rows else None, cold_rows, batch, repeat, warm_methods)
    print("\n".join(sections.values()))
    write_sections(sections)


def write_sections(sections):
    """Replace each of this bench's sections in docs/benchmarks.md by this run's."""
    from bench import report as report_sections

    for key, text in sections.items():
        report_sections.replace_section(key, text)


def child(argv):
    """Entry points run in fresh processes: _save NAME DIR, _cold_engine PATH METHOD, _cold_plain PATH METHOD."""
    if argv[0] == "_save":
        print(save_checkpoint(argv[1], argv[2]))
        return
    work = {"_cold_engine": cold_engine, "_cold_plain": cold_plain}[argv[0]]
    print(json.dumps(work(argv[1], argv[2])))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1].startswith("_"):
        child(sys.argv[1:])
    else:
        main()
