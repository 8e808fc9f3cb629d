"""The perturbation methods, one implementation for every backend: they need only forward scores.

Occlusion, LIME, Shapley value sampling and prediction difference score altered copies of an image
through model.scores(x, score), which every backend's loaded model provides. Importing this package
registers them with every backend (backends.implements_everywhere).
"""

from tb_xai_plugin.engine.perturbation import lime, occlusion, prediction_difference, shapley  # noqa: F401
