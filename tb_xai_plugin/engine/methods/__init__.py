"""Every attribution method, one module each; importing this package registers them all."""

from tb_xai_plugin.engine.methods import activation, cam, occlusion  # noqa: F401  (register on import)
