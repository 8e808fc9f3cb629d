"""The attribution engine: pure functions from (checkpoint, method, images, target) to maps.

Runs in graph mode (eager execution disabled), one tf.Graph and session per loaded model.
"""
