"""Log the zoo's models and put every method through them, in this interpreter's stack.

    python run_zoo.py log LOGDIR [MODEL ...]      eager: summary.checkpoint of each model (or the refusal)
    python run_zoo.py explain LOGDIR OUT.json [CHOSEN]   every method on each logged model -> one cell per method
                                                   (CHOSEN: JSON {model: [method ids] | null (all)})

Two processes because the iNNvestigate backend needs graph mode from the start of its process, while
logging needs eager execution. A cell is {"state": "works" | "refused" | "failed", "detail": ...}:
"works" is a finite, non-constant map for each image (RECTIFIED methods: all-zero for some, not all);
"refused" is the engine's reason before compute; "failed" is anything else (an exception during
compute, a NaN, a constant map).
"""

import json
import os
import sys
import time
import traceback

import numpy as np

SAMPLES = 2
CHEAP_PARAMS = {  # each method's cheapest setting that still exercises its whole path
    "smoothgrad": {"augment_by_n": 2},
    "integrated_gradients": {"steps": 4},
    "lime": {"samples": 24, "segmentation": "grid", "segments": 4},
    "occlusion": {"window": 8, "stride": 8},
    "prediction_difference": {"window": 8, "stride": 8, "samples": 1},
    "shapley_sampling": {"permutations": 1, "segmentation": "grid", "segments": 4},
}


# Methods that rectify (Grad-CAM's ReLU, Deep Taylor's ReLU on the logit): an all-zero map is a possible answer for
# an image, not a bug, as long as another image gets a map.
RECTIFIED = ("grad_cam", "guided_grad_cam", "deep_taylor", "deep_taylor.bounded")


def images():
    """SAMPLES random uint8 images 32x32x3, fixed seed."""
    return np.random.default_rng(0).integers(0, 256, size=(SAMPLES, 32, 32, 3), dtype=np.uint8)


def log(logdir, names):
    """Log each zoo model as step 1 of run LOGDIR/<name>; a refusal is written to LOGDIR/<name>/refused.txt."""
    import tensorflow as tf

    import zoo_models
    from tb_xai_plugin import summary
    from tb_xai_plugin.errors import XaiError

    for name in names or list(zoo_models.ZOO):
        run_dir = os.path.join(logdir, name)
        os.makedirs(run_dir, exist_ok=True)
        tf.keras.backend.clear_session()
        model, preprocessing, class_names = zoo_models.build(name, images())
        writer = summary.create_file_writer(run_dir)
        try:
            with writer.as_default():
                summary.checkpoint(model, step=1, class_names=class_names, preprocessing=preprocessing)
        except XaiError as e:
            with open(os.path.join(run_dir, "refused.txt"), "w") as f:
                f.write(str(e))
        writer.close()


def explain_all(logdir, out_path, chosen):
    """Every (chosen) method on every logged model: {"stack", "models": {name: {method: cell}}, "layers", "seconds"}."""
    from tb_xai_plugin import engine, files
    from tb_xai_plugin.engine import backends, registry

    if backends.innvestigate_available():
        engine.enable_graph_mode()
    registry.describe_methods()
    result = {"stack": stack_name(), "models": {}, "layers": {}, "seconds": {}}
    for name in sorted(n for n in os.listdir(logdir) if os.path.isdir(os.path.join(logdir, n))):
        started = time.time()
        methods = chosen.get(name) or list(registry.METHODS)
        cells, layers = explain_model(os.path.join(logdir, name), methods, engine, files)
        result["models"][name], result["layers"][name] = cells, layers
        result["seconds"][name] = round(time.time() - started, 1)
        with open(out_path, "w") as f:
            json.dump(result, f, indent=1)


def explain_model(run_dir, methods, engine, files):
    """({method id: cell}, the manifest's layers) for the checkpoint of run_dir; {"*": cell} if it was not logged or loaded."""
    refused = os.path.join(run_dir, "refused.txt")
    if os.path.exists(refused):
        return {"*": {"state": "failed", "detail": "refused at log time: " + open(refused).read()}}, []
    data_path, manifest = files.checkpoint_listing(run_dir)[0]
    try:
        model = engine.load_checkpoint(data_path, manifest)
    except Exception as e:  # noqa: BLE001 - the zoo records every failure as a cell
        return {"*": {"state": "failed", "detail": "load: %s: %s" % (type(e).__name__, e)}}, manifest["layers"]
    reasons = engine.applicable_methods(model)
    cells = {}
    for method_id in methods:
        if not reasons[method_id]["ok"]:
            cells[method_id] = {"state": "refused", "detail": reasons[method_id]["reason"]}
            continue
        cells[method_id] = explain_cell(engine, model, method_id)
    model.close()
    return cells, manifest["layers"]


def explain_cell(engine, model, method_id):
    """One method on the zoo images: works (finite, non-constant maps) or failed with why."""
    try:
        maps = engine.attribute(model, method_id, images(), params=CHEAP_PARAMS.get(method_id), seed=1).maps
    except Exception as e:  # noqa: BLE001 - the zoo records every failure as a cell
        last = traceback.extract_tb(e.__traceback__)[-1]
        where = "%s:%d" % (os.path.basename(last.filename), last.lineno)
        return {"state": "failed", "detail": "%s: %s (%s)" % (type(e).__name__, str(e)[:300], where)}
    if not np.isfinite(maps).all():
        return {"state": "failed", "detail": "a map is not finite"}
    flat = [i for i, m in enumerate(maps) if m.max() == m.min()]
    zero = [i for i in flat if not maps[i].any()]
    if method_id in RECTIFIED and zero == flat and len(flat) < len(maps):
        return {"state": "works", "detail": "all-zero map for image %s: no positive evidence after the ReLU" % flat}
    if flat:
        return {"state": "failed", "detail": "constant map for image %s" % flat}
    return {"state": "works", "detail": ""}


def stack_name():
    """"keras2" or "keras3": the Keras major version of this interpreter."""
    import tensorflow as tf

    version = getattr(tf.keras, "__version__", None) or __import__("keras").__version__
    return "keras%s" % version.split(".")[0]


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    if sys.argv[1] == "log":
        log(sys.argv[2], sys.argv[3:])
    else:
        explain_all(sys.argv[2], sys.argv[3], json.loads(sys.argv[4]) if len(sys.argv) > 4 else {})
