"""A LoadedModel wrapper that records how many images each session run was fed: the memory bound, measured."""

import numpy as np


class CountingModel:
    """Delegates to a LoadedModel; `rows` lists the batch size of every run() that fed the model input,
    `inputs` and `outputs` what each of them was fed and returned."""

    def __init__(self, model):
        self._model = model
        self.rows, self.inputs, self.outputs = [], [], []

    def __getattr__(self, name):
        return getattr(self._model, name)

    def scores(self, x, score):
        """The model's scores() (the perturbation methods' forward call, every backend), noted like run()."""
        out = self._model.scores(x, score)
        self.rows.append(len(x))
        self.inputs.append(np.array(x))
        self.outputs.append(out)
        return out

    def run(self, fetches, feed_dict=None):
        """The model's run(), noting len(feed_dict[model.input]), the input and the result."""
        out = self._model.run(fetches, feed_dict)
        if feed_dict and self._model.input in feed_dict:
            self.rows.append(len(feed_dict[self._model.input]))
            self.inputs.append(np.array(feed_dict[self._model.input]))
            self.outputs.append(out)
        return out
