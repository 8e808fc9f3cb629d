"""A training run in its own process, as a user's would be: it continues the model logged at step 0
of run 'live', and STEPS times trains one epoch and logs a checkpoint, about one a second.

    python -m tests.reliability.live_trainer LOGDIR OUT STEPS

Before logging step k it saves the model's probabilities on the run's samples to OUT/step-k.npy
(what the plugin must answer for step k); it prints 'ready' once TensorFlow is up.
"""

import os
import sys
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(logdir, out, steps):
    """Train and log checkpoints 1..steps, each at least a second after the one before."""
    import tensorflow as tf

    from tb_xai_plugin import files, summary
    from tests.plugin.conftest import checkpoint_file

    run_dir = os.path.join(logdir, "live")
    model = tf.keras.models.load_model(checkpoint_file(run_dir, 0))
    model.compile("adam", "sparse_categorical_crossentropy")
    x = np.load(files.sample_paths(run_dir, "val")[0])["images"] / np.float32(255)
    y = np.arange(len(x)) % 3
    writer = summary.create_file_writer(run_dir)
    print("ready", flush=True)
    with writer.as_default():
        for step in range(1, steps + 1):
            started = time.monotonic()
            model.fit(x, y, epochs=1, verbose=0)
            np.save(os.path.join(out, "step-%d.npy" % step), model.predict(x, verbose=0))
            summary.checkpoint(model, step=step, class_names=["zero", "one", "two"],
                               preprocessing={"type": "scale", "scale": 1.0 / 255.0, "offset": 0.0})  # fmt: skip
            writer.flush()
            time.sleep(max(0.0, 1.0 - (time.monotonic() - started)))
    writer.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
