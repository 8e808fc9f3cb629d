"""Fixtures of the logging tests (helpers live in summary_helpers.py).

Every test writes real event files into tmp_path and reads them back the way TensorBoard does:
through the Python loader (EventMultiplexer + MultiplexerDataProvider) and through the default
Rust data server (`tensorboard_data_server`, started like tensorboard/program.py starts it).
"""

import numpy as np
import pytest
from tensorboard.data import server_ingester
from tensorboard.util import grpc_util


@pytest.fixture
def data_server():
    """start(logdir) -> TensorBoard's default data server (Rust) over logdir, as a data provider."""
    started = []

    def start(logdir):
        ingester = server_ingester.SubprocessServerDataIngester(
            server_ingester.get_server_binary(),
            logdir,
            reload_interval=0,
            channel_creds_type=grpc_util.ChannelCredsType.LOCAL,
        )
        ingester.start()
        started.append(ingester)
        return ingester.data_provider

    yield start
    for ingester in started:
        ingester._stdin_handle.close()  # the server runs with --die-after-stdin


@pytest.fixture
def rng():
    """A seeded numpy generator."""
    return np.random.default_rng(0)
