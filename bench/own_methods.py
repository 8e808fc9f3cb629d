"""Speed of the engine's own methods (Grad-CAM, Guided Grad-CAM, activation, occlusion), as ratios.

Each figure is measured in this run against plain TensorFlow / Keras doing the same work:
  - a layer map (warm) against one forward pass of the same batch (the floor: every map needs one);
  - occlusion against the plain loop, one Keras predict per occluded copy.

    python bench/own_methods.py [--model cnn|resnet50] [--batch 8] [--repeat 3]
"""

import argparse
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from bench.engine_bench import best_of  # noqa: E402
from tb_xai_plugin import engine, metadata, model_info  # noqa: E402


def build(name):
    """A random-weight Keras model: the demo's VGG-like cnn (28x28x1) or ResNet50 (224x224x3)."""
    import tensorflow as tf

    if name == "resnet50":
        return tf.keras.applications.ResNet50(weights=None)
    from demo import models

    return models.plain_cnn((28, 28, 1), 10)


def save(keras_model, directory):
    """Save as the engine reads checkpoints: an .h5 file and its manifest; return (path, manifest)."""
    path = os.path.join(directory, metadata.checkpoint_basename(1) + ".h5")
    keras_model.save(path, save_format="h5")
    manifest = {
        "format": "h5",
        "input_shape": [int(d) for d in keras_model.input_shape[1:]],
        "num_classes": int(keras_model.output_shape[-1]),
        "preprocessing": {"type": "none"},
        "output_activation": model_info.output_activation(keras_model),
        "layers": model_info.describe_layers(keras_model),
        "weights_sha256": model_info.weights_checksum(keras_model.get_weights()),
    }
    return path, manifest


def plain_occlusion(model, image, target, window, stride):
    """The plain loop: one Keras predict per window position (what occlusion computes, unbatched)."""
    from tb_xai_plugin.engine.perturbation.common import window_starts

    fill = image.mean(axis=(0, 1))
    with model.in_graph():
        base = model.keras_model.predict(image[None], verbose=0)[0, target]
        for r in window_starts(image.shape[0], window, stride):
            for c in window_starts(image.shape[1], window, stride):
                copy = image.copy()
                copy[r : r + window, c : c + window] = fill
                model.keras_model.predict(copy[None], verbose=0)[0, target] - base


def main(argv=None):
    """Print each method's warm time and its ratio to the plain baseline, same model and batch."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("cnn", "resnet50"), default="cnn")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    engine.enable_graph_mode()
    from tb_xai_plugin.engine import backends, registry

    with tempfile.TemporaryDirectory() as directory:
        model = engine.load_checkpoint(*save(build(args.model), directory))
    x = np.random.default_rng(0).uniform(0, 1, (args.batch,) + model.input_shape).astype(np.float32)
    targets = np.zeros(args.batch, np.int64)
    forward = best_of(args.repeat, lambda: model.run(model.probs, {model.input: x}))
    print("model %s, batch %d, best of %d; forward pass %.4fs" % (args.model, args.batch, args.repeat, forward))
    for method_id in ("grad_cam", "guided_grad_cam", "activation"):
        method = registry.get(method_id)
        start = time.perf_counter()
        backends.implementation(model.backend, method_id).compute(model, x, targets, {}, None, None, None)
        cold = time.perf_counter() - start
        warm = best_of(args.repeat, lambda: backends.implementation(model.backend, method_id).compute(model, x, targets, {}, None, None, None))
        print("%-16s cold %.3fs  warm %.4fs  = %.2fx forward" % (method_id, cold, warm, warm / forward))
    occlusion = registry.get("occlusion")
    params = occlusion.validate_params({})
    from tb_xai_plugin.engine.perturbation.occlusion import window_and_stride

    window, stride = window_and_stride(params, *model.input_shape[:2])
    ours = best_of(1, lambda: backends.implementation(model.backend, "occlusion").compute(model, x[:1], targets[:1], params, None, None, None))
    plain = best_of(1, lambda: plain_occlusion(model, x[0], 0, window, stride))
    print(
        "occlusion (1 image, window %d, stride %d): %.3fs vs plain predict loop %.3fs = %.2fx"
        % (window, stride, ours, plain, ours / plain)
    )


if __name__ == "__main__":
    main()
