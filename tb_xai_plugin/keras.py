"""A Keras callback that logs sample images once and model checkpoints during `fit`.

    model.fit(x, y, epochs=5, callbacks=[
        tf.keras.callbacks.TensorBoard("logs/cnn"),
        tb_xai_plugin.keras.XaiCallback("logs/cnn", samples=(x_val, y_val), class_names=names),
    ])

A model whose layers hold Python code (a Lambda, at any depth; see `safety`) stops `fit` with
XaiError in `on_train_begin`, before any batch, unless `allow_unsafe=True`: then its checkpoints
list those layers in "unsafe_layers", and TensorBoard loads them only with --xai_allow_unsafe_models.

The callback writes its own event file into `log_dir` itself. Keras' TensorBoard callback writes
into `log_dir/train` and `log_dir/validation`, so with `tensorboard --logdir logs` the curves are
the runs `cnn/train` and `cnn/validation` and the XAI data is the run `cnn`: the training run's
own name.

Steps: with only `every_n_epochs`, a checkpoint's step is the number of epochs trained
(`epoch + 1`, so the first checkpoint is step 1). With `every_n_batches`, every checkpoint's step
(the epoch-end ones included) is the number of batches trained so far, so all steps share one
axis. The sample set is logged once, at step 0, when training first begins.

Retention: `keep_last` / `keep_every` (see `retention.Policy`) delete older checkpoints after each new
one, always keeping the first and the best by `monitor` (e.g. "val_loss"; `mode` "min", "max" or
"auto": max for accuracy-like names), which each epoch-end checkpoint records in its manifest. The
default keeps everything; the callback warns once when the run's checkpoints pass `size_warning_mb`
(retention.SIZE_WARNING_MB; None: never).

A model that cannot be explained (summary.checkpoint raises XaiError: e.g. an output that is no class
scores, or class_names that do not fit its head) is refused at its first checkpoint: the callback warns
once with the reason and training goes on without checkpoints.
"""

import warnings

import tensorflow as tf

from tb_xai_plugin import metadata, retention, safety, summary
from tb_xai_plugin.errors import XaiError


def _check_every(value, what):
    """`value` if None or a positive int, else XaiError."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise XaiError("%s must be a positive integer or None, not %r" % (what, value))
    return value


def _metric_mode(monitor, mode):
    """"min" or "max" for `monitor`; "auto" is max for accuracy-like names (acc, auc, precision, recall, f1)."""
    if mode == "auto":
        return "max" if any(word in monitor.lower() for word in ("acc", "auc", "precision", "recall", "f1")) else "min"
    if mode not in retention.METRIC_MODES:
        raise XaiError("mode must be 'auto', 'min' or 'max', not %r" % (mode,))
    return mode


def _split_samples(samples):
    """(images, labels) from `samples`: an (images, labels) pair, or images alone, or None."""
    if samples is None:
        return None, None
    if isinstance(samples, tuple):
        if len(samples) != 2:
            raise XaiError("samples must be images or an (images, labels) pair")
        return samples
    return samples, None


class XaiCallback(tf.keras.callbacks.Callback):
    """Logs `samples` once at train begin and a checkpoint every N epochs and/or N batches."""

    def __init__(
        self,
        log_dir,
        samples=None,
        class_names=None,
        preprocessing=None,
        every_n_epochs=1,
        every_n_batches=None,
        samples_name="validation",
        allow_unsafe=False,
        keep_last=None,
        keep_every=None,
        monitor="val_loss",
        mode="auto",
        size_warning_mb=retention.SIZE_WARNING_MB,
    ):
        super().__init__()
        self.every_n_epochs = _check_every(every_n_epochs, "every_n_epochs")
        self.every_n_batches = _check_every(every_n_batches, "every_n_batches")
        if every_n_epochs is None and every_n_batches is None:
            raise XaiError("set every_n_epochs or every_n_batches, or there is nothing to log")
        self.log_dir = str(log_dir)
        self.class_names = class_names
        self.preprocessing = metadata.check_preprocessing(preprocessing)
        self.samples_name = metadata.check_name(samples_name)
        self.allow_unsafe = bool(allow_unsafe)
        self.policy = retention.Policy(keep_last, keep_every)
        self.monitor = str(monitor)
        self.mode = _metric_mode(self.monitor, mode)
        self.size_warning_mb = size_warning_mb
        self._size_warned = False
        images, labels = _split_samples(samples)
        self._samples = None if images is None else summary.prepare_samples(images, labels, class_names)
        self._has_labels = labels is not None
        self._writer = None
        self._batches = 0
        self._last_step = None
        self._refusal = None  # why summary.checkpoint refused this model (warned once), or None

    def _writer_for_run(self):
        """The callback's own writer into log_dir, made on first use."""
        if self._writer is None:
            self._writer = summary.create_file_writer(self.log_dir)
        return self._writer

    def on_train_begin(self, logs=None):
        """Refuse a model holding code before training starts; log the sample set once per callback."""
        safety.check_model(self.model, self.allow_unsafe)
        if self._samples is None:
            return
        images, labels, ids, class_names = self._samples
        with self._writer_for_run().as_default():
            summary.samples(
                self.samples_name, images, 0, labels if self._has_labels else None, class_names, ids
            )
        self._writer.flush()
        self._samples = None

    def on_train_batch_end(self, batch, logs=None):
        """Count batches across epochs and `fit` calls; checkpoint every `every_n_batches`."""
        self._batches += 1
        if self.every_n_batches and self._batches % self.every_n_batches == 0:
            self._checkpoint(self._batches, logs)

    def on_epoch_end(self, epoch, logs=None):
        """Checkpoint every `every_n_epochs` epochs (see the module docstring for the step)."""
        if self.every_n_epochs and (epoch + 1) % self.every_n_epochs == 0:
            self._checkpoint(self._batches if self.every_n_batches else epoch + 1, logs)

    def on_train_end(self, logs=None):
        """Flush the event file so TensorBoard sees every index summary."""
        if self._writer is not None:
            self._writer.flush()

    def _checkpoint(self, step, logs=None):
        """Log the model at `step` with its `monitor` metric from `logs`, unless that step was just logged (an
        epoch end on a batch checkpoint); then apply the retention policy, or warn once about the run's size."""
        if step == self._last_step or self._refusal is not None:
            return
        try:
            with self._writer_for_run().as_default():
                summary.checkpoint(
                    self.model, step, class_names=self.class_names, preprocessing=self.preprocessing, allow_unsafe=self.allow_unsafe,
                    metric=(logs or {}).get(self.monitor), metric_name=self.monitor, metric_mode=self.mode,
                    keep_last=self.policy.keep_last, keep_every=self.policy.keep_every,
                )  # fmt: skip
        except XaiError as e:  # the model cannot be explained: say why once, and let training go on
            self._refusal = str(e)
            warnings.warn("tb-xai logs no checkpoints of this model: %s" % e, UserWarning, stacklevel=2)
            return
        self._writer.flush()
        self._last_step = step
        self._warn_size()

    def _warn_size(self):
        """Warn once when the run's checkpoints pass size_warning_mb."""
        if self._size_warned or self.size_warning_mb is None:
            return
        size = retention.checkpoint_bytes(self.log_dir)
        if size > self.size_warning_mb * (1 << 20):
            self._size_warned = True
            warnings.warn(
                "tb-xai: the checkpoints of %s hold %.0f MB (over size_warning_mb=%s): pass (a smaller) keep_last= / keep_every= to "
                "XaiCallback, or run `tb-xai prune --logdir ... --keep-last N`" % (self.log_dir, size / (1 << 20), self.size_warning_mb),
                UserWarning, stacklevel=2,
            )  # fmt: skip
