"""A LoadedModel wrapper that records how many images each session run was fed: the memory bound, measured."""


class CountingModel:
    """Delegates to a LoadedModel; `rows` lists the batch size of every run() that fed the model input."""

    def __init__(self, model):
        self._model = model
        self.rows = []

    def __getattr__(self, name):
        return getattr(self._model, name)

    def scores(self, x, score):
        """The model's scores() (the perturbation methods' forward call, every backend), noted like run()."""
        self.rows.append(len(x))
        return self._model.scores(x, score)

    def run(self, fetches, feed_dict=None):
        """The model's run(), noting len(feed_dict[model.input])."""
        if feed_dict and self._model.input in feed_dict:
            self.rows.append(len(feed_dict[self._model.input]))
        return self._model.run(fetches, feed_dict)
