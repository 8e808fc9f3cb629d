"""tb-xai: a TensorBoard plugin that explains image classifiers.

Kept free of heavy imports: TensorBoard imports the plugin's loader at start.
"""

__version__ = "0.1.0"
