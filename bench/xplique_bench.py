"""Speed of the native backend against Xplique 2.0.2 (the Keras 3 peer) on the same Keras 3 model, as ratios from one run.

Both explain the same loaded model, a batch in one pass (the engine's memory budget raised to the batch: its
default, 256 MiB, runs ResNet50 one image at a time): the native backend's NativeModel of keras.applications.<model>(weights=None)
(a Keras 2 .h5 written by the Keras 2 stack, read by Keras 3's legacy loader), Xplique its logits model (the
same Keras 3 layers, softmax stripped), batch `--batch` at 224x224, class 0 explained, best of `--repeat` after
one untimed warm-up. Work compared (each does the same number of gradient / forward passes):
  gradient              native engine.attribute "gradient" (d logit_t / d x) vs Xplique's raw batch gradient
                        (Saliency.batch_gradient; Saliency itself then takes |.|)
  integrated_gradients  `--steps` gradients of batch `--batch` each, zero baseline; native: midpoint rule,
                        Xplique: trapezoidal rule (the maps differ by O(1/steps))
  grad_cam              the same layer (`--layer`); native upsamples bilinearly, Xplique bicubically
  occlusion             zero-filled windows of `--window` pixels at stride `--window` on the logit (each pixel in
                        one window: the native mean over windows equals Xplique's sum); the same copies, run in
                        the engine's memory-bounded chunks (256 MiB: ResNet50 one copy at a time), Xplique's 8
Agreement: max|native - Xplique| / max(max|native|, max|Xplique|) per method (gradient and occlusion: same definition).
Goal: native <= 1.0x.

Xplique caps tensorflow at 2.20 and pulls CUDA wheels, so it lives in a bench-only folder, without its deps:
    .venv/bin/pip install --no-deps --target build/xplique xplique==2.0.2 deprecated wrapt einops matplotlib \\
        opencv-python-headless scikit-learn threadpoolctl joblib contourpy cycler fonttools kiwisolver pyparsing \\
        python-dateutil tensorflow-probability==0.25.0 tf-keras==2.21.0 dm-tree cloudpickle gast decorator narwhals
    .venv/bin/python bench/xplique_bench.py [--model resnet50] [--batch 8] [--steps 4] [--window 56] [--repeat 1] [--checkpoint H5] [--no-report]
Replaces its section of docs/benchmarks.md unless --no-report.
"""

import argparse
import importlib.util
import json
import os
import platform
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "build", "xplique"))  # after ROOT in the search: Xplique's folder first

import numpy as np  # noqa: E402

from bench import native_bench  # noqa: E402

METHODS = ("gradient", "integrated_gradients", "grad_cam", "occlusion")


def native_work(model, x, args):
    """{method: () -> maps} through engine.attribute on the native backend (maps: raw per channel for gradients)."""
    from tb_xai_plugin import engine
    from tb_xai_plugin.engine import batching

    target = {"kind": "class", "index": 0}
    budget = batching.bytes_per_image(model) * len(x)  # one pass over the batch, as Xplique runs it (default: 1 image)

    def run(method_id, params=None, layer=None, raw=False):
        out = engine.attribute(model, method_id, x, params=params, target=target, layer=layer, memory_budget=budget)
        return out.raw if raw else out.maps

    window = {"window": args.window, "stride": args.window, "fill": "zero", "score": "logit"}
    return {
        "gradient": lambda: run("gradient", {"postprocess": "none"}, raw=True),
        "integrated_gradients": lambda: run("integrated_gradients", {"steps": args.steps, "reference": "zero"}, raw=True),
        "grad_cam": lambda: run("grad_cam", layer=args.layer),
        "occlusion": lambda: run("occlusion", window),
    }


def xplique_work(model, x, args):
    """{method: () -> maps} of Xplique 2.0.2 on the model's logits model, class 0 one-hot."""
    import tensorflow as tf
    from xplique.attributions import GradCAM, IntegratedGradients, Occlusion, Saliency

    logits_model = model.logits_model
    inputs = tf.constant(model.preprocess(x))
    onehot = tf.one_hot(np.zeros(len(x), np.int64), model.num_classes)
    saliency = Saliency(logits_model, batch_size=args.batch)
    integrated = IntegratedGradients(logits_model, batch_size=args.batch, reducer=None, steps=args.steps, baseline_value=0.0)
    cam = GradCAM(logits_model, batch_size=args.batch, conv_layer=args.layer)
    occlusion = Occlusion(logits_model, batch_size=args.batch, patch_size=args.window, patch_stride=args.window, occlusion_value=0.0)
    return {
        "gradient": lambda: saliency.batch_gradient(logits_model, inputs, onehot, args.batch).numpy(),
        "integrated_gradients": lambda: np.asarray(integrated.explain(inputs, onehot)),
        "grad_cam": lambda: np.asarray(cam.explain(inputs, onehot))[..., 0],
        "occlusion": lambda: np.asarray(occlusion.explain(inputs, onehot)),
    }


def timed(work, repeat):
    """(best seconds of `repeat` runs after an untimed warm-up, the warm-up's output)."""
    out = work()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return min(times), out


def relative_difference(native, other):
    """max|native - other| / max|native| (other squeezed to native's shape); nan when both maps are all zero."""
    other = np.asarray(other, np.float32).reshape(native.shape)
    scale = max(np.abs(native).max(), np.abs(other).max())
    return float(np.abs(native - other).max() / scale) if scale > 0 else float("nan")


def run(args):
    """{method: {"native": s, "xplique": s, "difference": relative}} on one model."""
    if args.checkpoint:
        model = native_bench.load(args.checkpoint)
    else:
        with tempfile.TemporaryDirectory() as directory:
            model = native_bench.load(native_bench.keras2_checkpoint(args.model, directory))
    x = np.random.default_rng(0).uniform(0, 255, size=(args.batch,) + model.input_shape).astype(np.float32)
    ours, theirs = native_work(model, x, args), xplique_work(model, x, args)
    results = {}
    for method_id in METHODS:
        native_s, native_map = timed(ours[method_id], args.repeat)
        xplique_s, xplique_map = timed(theirs[method_id], args.repeat)
        results[method_id] = {"native": native_s, "xplique": xplique_s, "difference": relative_difference(native_map, xplique_map)}
        print(method_id, json.dumps(results[method_id]), flush=True)
    return results


def report(results, args):
    """The markdown section of this bench."""
    import xplique

    when = time.strftime("%Y-%m-%d %H:%M")
    lines = [
        "### Native backend vs Xplique %s: %s (weights=None), batch %d at 224x224, IG %d steps, occlusion window %d, "
        "best of %d (%s, %d CPUs, load %.1f, %s)"
        % (xplique.__version__, args.model, args.batch, args.steps, args.window, args.repeat, platform.machine(),
           os.cpu_count(), os.getloadavg()[0], when),  # fmt: skip
        "",
        "| method | native | Xplique | ratio (goal <= 1.0x) | max abs diff / max abs map |",
        "|---|---|---|---|---|",
    ]
    for method_id, r in results.items():
        lines.append("| %s | %.3f s | %.3f s | %.2fx | %.1e |" % (method_id, r["native"], r["xplique"], r["native"] / r["xplique"], r["difference"]))
    return "\n".join(lines)


def main(argv=None):
    """Run the bench and replace its section of docs/benchmarks.md."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--layer", default="conv5_block3_3_conv", help="Grad-CAM's layer (default: Xplique's own pick, the last convolution)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--window", type=int, default=56)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--checkpoint", help="an existing .h5 of --model with its manifest (else written by the Keras 2 stack)")
    parser.add_argument("--no-report", action="store_true")
    args = parser.parse_args(argv)
    if importlib.util.find_spec("xplique") is None:
        sys.exit("Xplique is not in build/xplique: install it with the command in this script's docstring")
    text = report(run(args), args)
    print(text)
    if not args.no_report:
        from bench import report as bench_report

        bench_report.replace_section("xplique", text)


if __name__ == "__main__":
    main()
