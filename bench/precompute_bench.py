"""Precompute throughput: `tb-xai precompute` on Beam's DirectRunner with 2 worker processes, against the
plugin's own 2 workers (--xai_workers 2) answering the same job as requests, 2 at a time.

    .venv/bin/python bench/precompute_bench.py [--count 256] [--methods gradient lrp.epsilon]

The job: 2 runs x 2 checkpoints of the demo's small CNN (28x28x1, 10 classes), predictions on the
whole sample set of `--count` images (what suggestions read) and every sample's map per method.
The plugin side sends precompute's own plan items (plan.plan) as POST suggestions / attributions
to an XaiPlugin served through TensorBoard's WSGI app, on a fresh logdir copy and cache, both sides
cold (worker start and model loads included, as a job starts). Prints items per second of each and
the ratio precompute / plugin (above 1: precompute is faster), and replaces its section of
docs/benchmarks.md.
"""

import argparse
import concurrent.futures
import contextlib
import datetime
import io
import os
import platform
import shutil
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

RUNS = ("cnn-a", "cnn-b")
STEPS = (1, 2)
SHAPE = (28, 28, 1)
CLASSES = 10
SCALE = {"type": "scale", "scale": 1 / 255.0, "offset": 0.0}
BEAM_ARGS = ["--runner", "DirectRunner", "--direct_num_workers=2", "--direct_running_mode=multi_processing"]


def build_logdir(root, count):
    """RUNS x STEPS checkpoints of the demo's CNN (random weights), and `count` images 'val' in the first run."""
    import numpy as np
    import tensorflow as tf

    from demo import models
    from tb_xai_plugin import summary

    rng = np.random.default_rng(0)
    for n, run in enumerate(RUNS):
        writer = summary.create_file_writer(os.path.join(root, run))
        with writer.as_default():
            if n == 0:
                images = rng.integers(0, 256, (count,) + SHAPE, dtype=np.uint8)
                summary.samples("val", images, labels=rng.integers(0, CLASSES, count), step=0)
            for step in STEPS:
                tf.keras.utils.set_random_seed(10 * n + step)
                summary.checkpoint(models.build("cnn", SHAPE, CLASSES, run), step=step, preprocessing=SCALE)
        writer.close()


def time_precompute(logdir, methods):
    """Seconds of `tb-xai precompute` over the job, and its output line."""
    from tb_xai_plugin import cli

    argv = ["precompute", "--logdir", logdir, "--samples", "val", "--samples-run", RUNS[0], "--methods"] + list(methods)
    out = io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stdout(out):
        assert cli.main(argv + BEAM_ARGS) == 0
    return time.perf_counter() - start, out.getvalue().strip()


def time_plugin(logdir, cache_dir, items):
    """Seconds for the plugin (--xai_workers 2) to answer every item's request, 2 requests at a time."""
    import json

    from tensorboard.backend import application
    from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
    from tensorboard.plugins import base_plugin
    from werkzeug import test as werkzeug_test

    from tb_xai_plugin.plugin.xai_plugin import XaiPlugin, default_flags

    multiplexer = plugin_event_multiplexer.EventMultiplexer()
    multiplexer.AddRunsFromDirectory(logdir)
    multiplexer.Reload()
    provider = data_provider.MultiplexerDataProvider(multiplexer, logdir)
    flags = default_flags(xai_cache_dir=cache_dir, xai_workers=2)
    plugin = XaiPlugin(base_plugin.TBContext(logdir=logdir, data_provider=provider, flags=flags))
    plugin.service.results = None  # the plugin as it is without precompute
    client = werkzeug_test.Client(application.TensorBoardWSGI([plugin]))

    def ask(item):
        response = client.post(
            "/data/plugin/xai/" + item["kind"], data=json.dumps(item["body"]),
            headers={"X-XAI-Request": "1"}, content_type="application/json",
        )  # fmt: skip
        assert response.status_code == 200, response.get_data(as_text=True)

    start = time.perf_counter()
    try:
        with concurrent.futures.ThreadPoolExecutor(2) as executor:
            list(executor.map(ask, items))
        return time.perf_counter() - start
    finally:
        plugin.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=256)
    parser.add_argument("--methods", nargs="+", default=["gradient", "lrp.epsilon"])
    args = parser.parse_args()
    from tb_xai_plugin.precompute import plan

    with tempfile.TemporaryDirectory(prefix="tb_xai_precompute_bench_") as tmp:
        source = os.path.join(tmp, "logdir")
        build_logdir(source, args.count)
        items = plan.plan(source, methods=args.methods, samples="val", samples_run=RUNS[0])
        served, beam = os.path.join(tmp, "served"), os.path.join(tmp, "beam")
        shutil.copytree(source, served)
        shutil.copytree(source, beam)
        plugin_s = time_plugin(served, os.path.join(tmp, "cache"), items)
        precompute_s, line = time_precompute(beam, args.methods)
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    lines = [
        "### Precompute on Beam (DirectRunner, 2 workers) vs the plugin's own 2 workers",
        "",
        "%d items (%d checkpoints: predictions on %d images + maps of %s), %s, %d CPUs, load %.1f, %s. Both cold: "
        "worker start and model loads included." % (
            len(items), len(RUNS) * len(STEPS), args.count, ", ".join(args.methods), platform.machine(), os.cpu_count(),
            os.getloadavg()[0], when),
        "",
        "| | seconds | items / s |",
        "|---|---|---|",
        "| plugin, --xai_workers 2, 2 requests at a time | %.1f | %.2f |" % (plugin_s, len(items) / plugin_s),
        "| tb-xai precompute, DirectRunner, direct_num_workers=2 | %.1f | %.2f |" % (precompute_s, len(items) / precompute_s),
        "| **ratio precompute / plugin throughput** | | **%.2fx** |" % (plugin_s / precompute_s),
        "",
        "precompute said: `%s`" % line,
    ]  # fmt: skip
    print("\n".join(lines))
    from bench import report

    report.replace_section("precompute", "\n".join(lines))


if __name__ == "__main__":
    main()
