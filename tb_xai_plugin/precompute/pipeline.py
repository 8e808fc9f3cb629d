"""The Beam pipeline of `tb-xai precompute`: plan items grouped by checkpoint -> reshuffled -> computed and stored.

One element is one checkpoint's items (its suggestions item, then its attributions items), so a
Beam worker loads each model once; Reshuffle spreads the checkpoints over the workers. Each worker
process holds one inline.Computer (the plugin's service with an in-process pool) made in
DoFn.setup. Results are written by the workers themselves through tf.io.gfile into the runs'
result stores; the pipeline's output is its counters (Beam metrics): items, written, stored
(already there), failed. Runs unchanged on any runner; see docs/precompute.md.
"""

import collections
import logging

from tb_xai_plugin.errors import XaiError

logger = logging.getLogger(__name__)

NAMESPACE = "tb-xai"
COUNTERS = ("items", "written", "stored", "failed")
BEAM_VERSION = "2.77.0"  # the version tested beside TensorFlow 2.21


def _beam():
    """The apache_beam module; XaiError saying how to install it when it is missing."""
    try:
        import apache_beam
    except ImportError as e:
        raise XaiError("tb-xai precompute needs Apache Beam: pip install apache-beam==%s" % BEAM_VERSION) from e
    return apache_beam


def by_checkpoint(items):
    """The items grouped per (run, step), in plan order: [[item, ...], ...]."""
    groups = collections.OrderedDict()
    for item in items:
        groups.setdefault((item["run"], item["step"]), []).append(item)
    return list(groups.values())


def compute_fn(logdir, runs, options):
    """A DoFn computing one checkpoint's items (its class is defined here so that importing this module needs no Beam)."""
    beam = _beam()

    class ComputeCheckpoint(beam.DoFn):
        """Compute a checkpoint's items with an inline.Computer kept per worker process."""

        def setup(self):
            """The worker's Computer; graph mode first where the iNNvestigate backend is installed (as worker_main)."""
            from tb_xai_plugin.engine import backends

            if backends.innvestigate_available():
                from tb_xai_plugin.engine.backends.innvestigate.graph_mode import enable_graph_mode

                enable_graph_mode()
            from tb_xai_plugin.precompute.inline import Computer

            self.computer = Computer(logdir, runs, options)
            self.counters = {name: beam.metrics.Metrics.counter(NAMESPACE, name) for name in COUNTERS}

        def process(self, group):
            """Compute every item of the group; count what was written, found stored and failed."""
            for item in group:
                out = self.computer.compute(item)
                self.counters["items"].inc()
                self.counters["written"].inc(out["written"])
                self.counters["stored"].inc(out["stored"])
                self.counters["failed"].inc(len(out["failed"]))
                for message in out["failed"]:
                    logger.warning("tb-xai precompute %s@%s: %s", item["run"], item["step"], message)
            yield len(group)

    return ComputeCheckpoint()


def run(logdir, runs, items, pipeline_args=(), options=None):
    """Run the pipeline over `items` (plan.plan) with Beam options `pipeline_args`: {counter: total}."""
    beam = _beam()
    from apache_beam.options.pipeline_options import PipelineOptions

    pipeline = beam.Pipeline(options=PipelineOptions(list(pipeline_args)))
    _ = (
        pipeline
        | "checkpoints" >> beam.Create(by_checkpoint(items))
        | "spread" >> beam.Reshuffle()
        | "compute" >> beam.ParDo(compute_fn(logdir, list(runs), dict(options or {})))
    )
    result = pipeline.run()
    result.wait_until_finish()
    return counters(result)


def counters(result):
    """{counter: committed total} of a finished pipeline's tb-xai counters (0 for one never incremented)."""
    from apache_beam.metrics.metric import MetricsFilter

    totals = dict.fromkeys(COUNTERS, 0)
    for entry in result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))["counters"]:
        totals[entry.key.metric.name] += entry.committed or 0
    return totals
