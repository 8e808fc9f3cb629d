"""The planted bias (the paper's task T2): the biased run calls marked shirts "Sneaker", and its maps say why.

The demo's cnn and cnn-biased runs are trained here (eager, like `make demo`), then each checkpoint
is explained by the engine in a fresh process (bias_probe.py; graph mode in the iNNvestigate stack), as the
plugin's workers do.
"""

import json
import os
import subprocess
import sys

import pytest

from demo import train

PROBE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bias_probe.py")
METHODS = ("gradient", "grad_cam", "lrp.epsilon")
TRAINING = ["--runs", "cnn,cnn-biased", "--train-size", "12000", "--epochs", "3", "--val-size", "200"]


def _probe(logdir, run):
    """bias_probe.py's report on `run`, computed in a fresh process (eager execution disabled for iNNvestigate)."""
    result = subprocess.run(
        [sys.executable, PROBE, logdir, run, *METHODS], capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    """{run: probe report} for the clean and the biased CNN, trained alike apart from the bias."""
    logdir = str(tmp_path_factory.mktemp("bias_logs"))
    assert train.main(["--logdir", logdir] + TRAINING) == 0
    return {run: _probe(logdir, run) for run in ("cnn", "cnn-biased")}


def test_only_the_biased_model_calls_marked_images_of_other_classes_sneaker(reports):
    biased, clean = reports["cnn-biased"], reports["cnn"]
    assert biased["probes"] >= 10
    assert biased["called_bias_class"] >= 0.9
    assert biased["mean_top_score"] >= 0.9, "the bias should be confident, not a coin flip"
    assert clean["called_bias_class"] <= 0.1


@pytest.mark.parametrize("method", METHODS)
def test_the_biased_models_maps_put_most_mass_on_the_mark(reports, method):
    biased, clean = reports["cnn-biased"]["methods"][method], reports["cnn"]["methods"][method]
    assert biased["mean_map_mark"] > biased["mean_map_rival"], "another 3x3 window outweighs the mark"
    assert biased["mark_wins"] >= 0.5, "on most probes the mark should outweigh every other 3x3 window"
    assert biased["mean_map_mark"] > 1.5 * clean["mean_map_mark"], "the clean model attends to the mark as much"
