"""The worker process: runs engine tasks sent over a pipe, each on its checkpoint's backend.

Each checkpoint is loaded by the backend its manifest picks (engine.backend_name): `native` (Keras 3,
eager) or `innvestigate` (Keras 2 + iNNvestigate, graph mode). Graph mode is process-wide and cannot
be undone, so a worker turns it on only in a stack where iNNvestigate is installed (the Keras 2
stack, where the native backend cannot run anyway); in the Keras 3 stack eager execution stays on.

Protocol (tuples pickled by multiprocessing.Connection):
    server -> worker   ("task", id, message)   ("cancel", id, None)
    worker -> server   ("progress", id, (done, total))   ("result", id, payload)   ("error", id, (status, text))
A message is a dict with "op" in OPS, "checkpoint": {"path", "manifest"}, "samples": {"path",
"sha256", "stamp"} ("stamp": the (size, mtime) at which the server checked the sha256, or None) and
"indices" (None: all), or for predict and activation "rows": [start, stop) (one chunk of a whole-set
job; only those rows are read), plus the op's own fields (see the functions below). An
attribute message may carry "fit": {"cap"}: patterns are first fitted on the sample set (see
`pattern_fit_indices`), so a pattern map never depends on which samples a request asked for.
This module imports TensorFlow only inside `main`, which runs in the spawned child.
"""

import collections
import os

import numpy as np

from tb_xai_plugin import files

PREDICT_BATCH = 256
FIT_SET_KEY = ("pattern", "fit-set")  # model.cache: ((samples sha256, cap), the FittedPatterns fitted on them)


Engine = collections.namedtuple(
    "Engine", "load_checkpoint attribute applicable_methods predict activation_means probs_and_activation_means"
)


class Cancelled(Exception):
    """The server asked to stop the current task."""


class Worker:
    """The state of one worker process: its pipe and loaded models (LRU by count); sample sets are read by rows."""

    def __init__(self, conn, options):
        # From the submodules by full name: `engine.predict` names a module as well as a function.
        import importlib

        attribution, backends, predict = (
            importlib.import_module("tb_xai_plugin.engine." + name) for name in ("attribution", "backends", "predict")
        )

        self.engine = Engine(
            load_checkpoint=backends.load_checkpoint,
            attribute=attribution.attribute,
            applicable_methods=attribution.applicable_methods,
            predict=predict.predict,
            activation_means=predict.activation_means,
            probs_and_activation_means=predict.probabilities_and_activation_means,
        )
        self.conn = conn
        self.allow_unsafe = bool(options.get("allow_unsafe", False))
        if options.get("checkpoint_cache_dir"):
            importlib.import_module("tb_xai_plugin.engine.local_copy").set_cache_dir(options["checkpoint_cache_dir"])
        self.max_models = max(1, int(options.get("max_models", 4)))
        self.models = collections.OrderedDict()
        self.task_id = None

    def serve(self):
        """Answer tasks until the pipe closes."""
        while True:
            try:
                kind, task_id, message = self.conn.recv()
            except (EOFError, OSError):
                return
            if kind != "task":
                continue  # a cancel for a task already finished
            self.task_id = task_id
            self.conn.send(self.answer(task_id, message))

    def answer(self, task_id, message):
        """The reply tuple for one task: its result, or its error as (status, text)."""
        from tb_xai_plugin.errors import XaiError

        try:
            return ("result", task_id, OPS[message["op"]](self, message))
        except Cancelled:
            return ("error", task_id, (409, "cancelled"))
        except XaiError as e:
            return ("error", task_id, (getattr(e, "http_status", 400), str(e)))
        except Exception as e:  # noqa: BLE001  (an engine failure on one cell is reported, not fatal)
            return ("error", task_id, (422, "%s: %s" % (type(e).__name__, e)))

    def progress(self, done, total):
        """Forward the engine's progress to the server; raise Cancelled if the server asked to stop."""
        self.conn.send(("progress", self.task_id, (int(done), int(total))))
        while self.conn.poll():
            kind, task_id, _ = self.conn.recv()
            if kind == "cancel" and task_id == self.task_id:
                raise Cancelled()

    def model(self, checkpoint):
        """The LoadedModel for {"path", "manifest"}, from the LRU or loaded (evicting the oldest)."""
        key = (checkpoint["path"], checkpoint["manifest"]["weights_sha256"])
        if key in self.models:
            self.models.move_to_end(key)
            return self.models[key]
        from tb_xai_plugin.errors import XaiError

        try:
            model = self.engine.load_checkpoint(checkpoint["path"], checkpoint["manifest"], allow_unsafe=self.allow_unsafe)
        except XaiError:
            raise
        except Exception as e:  # noqa: BLE001  (h5py / TF errors on a corrupt file)
            raise XaiError("checkpoint step %s cannot be loaded: %s" % (checkpoint["manifest"].get("step"), e)) from e
        self.models[key] = model
        while len(self.models) > self.max_models:
            _, old = self.models.popitem(last=False)
            old.close()
        return model

    def images(self, samples, indices, rows=None):
        """Stored images and labels of a sample set at `indices` (None: all) or rows [start, stop): only those
        rows are read (files.open_sample_set; its checksum checked once, or trusted from the server's "stamp")."""
        reader = files.open_sample_set(samples["path"], samples["sha256"], stamp=samples.get("stamp"))
        if rows is not None:
            start, stop = int(rows[0]), int(rows[1])
            return reader.range(start, stop), reader.labels[start:stop]
        if indices is None:
            return reader.range(0, reader.count), reader.labels
        return reader.rows(indices), reader.labels[np.asarray(indices, dtype=np.int64)]

    def sample_count(self, samples):
        """The number of samples in a sample set."""
        return files.open_sample_set(samples["path"], samples["sha256"], stamp=samples.get("stamp")).count


def op_predict(worker, message):
    """Class probabilities [n, K] float32 of one model on the samples, in batches with progress; with a
    "layer" (and "neuron") also that layer's mean activation [n] float32, from the same forward pass."""
    model = worker.model(message["checkpoint"])
    images, _ = worker.images(message["samples"], message["indices"], message.get("rows"))
    batch = int(message.get("batch") or PREDICT_BATCH)
    layer = message.get("layer")
    probs, means = [], []
    worker.progress(0, len(images))
    for start in range(0, len(images), batch):
        chunk = images[start : start + batch]
        if layer is None:
            out = worker.engine.predict(model, chunk, top_k=1, return_probs=True)["probs"]
        else:
            out, mean = worker.engine.probs_and_activation_means(model, chunk, layer, neuron=message.get("neuron"))
            means.append(np.asarray(mean, dtype=np.float32).reshape(-1))
        probs.append(np.asarray(out, dtype=np.float32))
        worker.progress(min(start + batch, len(images)), len(images))
    result = {"probs": np.concatenate(probs) if probs else np.zeros((0, model.num_classes), np.float32)}
    if layer is not None:
        result["mean"] = np.concatenate(means) if means else np.zeros((0,), np.float32)
    return result


def pattern_fit_indices(count, cap):
    """Indices of the fitting set: all `count` samples, or `cap` of them evenly spaced (floor(i * count / cap))."""
    if count <= cap:
        return np.arange(count)
    return np.arange(cap) * count // cap


def ensure_patterns(worker, model, samples, cap, progress):
    """Fit `model`'s patterns on the sample set's fitting set unless the ones it holds came from it."""
    import importlib

    pattern = importlib.import_module("tb_xai_plugin.engine.backends.%s.pattern" % model.backend)

    fit_set = (samples["sha256"], int(cap))
    held = model.cache[FIT_SET_KEY] if FIT_SET_KEY in model.cache else None
    if held is not None and held[0] == fit_set and model.cache.get(pattern.FIT_KEY) is held[1]:
        return
    images, _ = worker.images(samples, pattern_fit_indices(worker.sample_count(samples), cap))
    fitted = pattern.fit_patterns(model, images, progress=progress)
    model.cache[FIT_SET_KEY] = (fit_set, fitted)


def op_attribute(worker, message):
    """One method's maps [n, H, W] float32 with their targets and scores (engine.attribute); for a
    message with "fit", patterns fitted on the sample set first (progress: fit, then maps, one total)."""
    model = worker.model(message["checkpoint"])
    images, labels = worker.images(message["samples"], message["indices"])
    progress = worker.progress
    if message.get("fit"):
        cap = int(message["fit"]["cap"])
        fit_count = len(pattern_fit_indices(worker.sample_count(message["samples"]), cap))
        ensure_patterns(worker, model, message["samples"], cap, lambda done, _: worker.progress(done, fit_count + len(images)))
        progress = lambda done, total: worker.progress(fit_count + done, fit_count + total)  # noqa: E731
    result = worker.engine.attribute(
        model,
        message["method"],
        images,
        params=message["params"],
        target=message["target"],
        labels=labels,
        layer=message["layer"],
        neuron=message["neuron"],
        seed=message["seed"],
        progress=progress,
    )
    return {
        "maps": np.asarray(result.maps, dtype=np.float32),
        "targets": np.asarray(result.targets, dtype=np.int64),
        "scores": np.asarray(result.scores, dtype=np.float32),
    }


def op_activation(worker, message):
    """Mean activation [n] float32 of one layer (or one channel of it), in batches with progress."""
    model = worker.model(message["checkpoint"])
    images, _ = worker.images(message["samples"], message["indices"], message.get("rows"))
    batch = int(message.get("batch") or PREDICT_BATCH)
    chunks = []
    worker.progress(0, len(images))
    for start in range(0, len(images), batch):
        means = worker.engine.activation_means(model, images[start : start + batch], message["layer"], neuron=message["neuron"])
        chunks.append(np.asarray(means, dtype=np.float32).reshape(-1))
        worker.progress(min(start + batch, len(images)), len(images))
    return {"mean": np.concatenate(chunks) if chunks else np.zeros((0,), np.float32)}


def op_applicable(worker, message):
    """{"methods": {method id: {"ok", "reason"}}, "folded_layers": [name]} for one loaded model, from its real graph
    (the layers route's picker; folded_layers: the manifest layers folded into the recorded preprocessing)."""
    model = worker.model(message["checkpoint"])
    return {"methods": worker.engine.applicable_methods(model), "folded_layers": model.folded_layer_names()}


def op_scores(worker, message):
    """Faithfulness curves of the maps sent ({name: [n, H, W]}, one target per sample) on the samples,
    in one batched pass with progress: engine.faithfulness.score_maps."""
    import importlib

    faithfulness = importlib.import_module("tb_xai_plugin.engine.faithfulness")
    model = worker.model(message["checkpoint"])
    images, _ = worker.images(message["samples"], message["indices"])
    return faithfulness.score_maps(
        model, images, message["targets"], message["maps"], metrics=message["metrics"], fill=message["fill"],
        steps=message["steps"], region=message["region"], seed=message["seed"], random=message.get("random", True),
        progress=worker.progress,
    )  # fmt: skip


def op_sanity(worker, message):
    """Cascading randomization (engine.sanity) of a private copy of the checkpoint: the cached model stays as
    trained. {"stages", "randomized", "methods": [{"correlations": [stages, n]} | {"error"}]}."""
    import importlib

    from tb_xai_plugin.errors import XaiError

    sanity = importlib.import_module("tb_xai_plugin.engine.sanity")
    checkpoint = message["checkpoint"]
    try:
        model = worker.engine.load_checkpoint(checkpoint["path"], checkpoint["manifest"], allow_unsafe=worker.allow_unsafe)
    except XaiError:
        raise
    except Exception as e:  # noqa: BLE001  (h5py / TF errors on a corrupt file)
        raise XaiError("checkpoint step %s cannot be loaded: %s" % (checkpoint["manifest"].get("step"), e)) from e
    try:
        images, labels = worker.images(message["samples"], message["indices"])
        return sanity.cascading_randomization(
            model, [tuple(m) for m in message["methods"]], images, target=message["target"], labels=labels,
            layer=message["layer"], neuron=message["neuron"], seed=message["seed"], max_stages=message["max_stages"],
            mode=message["randomization"], progress=worker.progress,
        )  # fmt: skip
    finally:
        model.close()


OPS = {"predict": op_predict, "attribute": op_attribute, "activation": op_activation, "applicable": op_applicable, "scores": op_scores, "sanity": op_sanity}


def main(conn, options):
    """Entry point of the spawned process: graph mode only in the iNNvestigate stack, then serve tasks."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from tb_xai_plugin.engine import backends

    if backends.innvestigate_available():
        from tb_xai_plugin.engine.backends.innvestigate.graph_mode import enable_graph_mode

        enable_graph_mode()
    Worker(conn, options).serve()
