"""Layer maps resized to the input, as graph ops (Grad-CAM, activation maps)."""


def to_input_size(maps, model):
    """Graph op: [N, h, w] maps resized bilinearly (half-pixel centres) to [N, H, W] of the input."""
    import tensorflow as tf

    height, width = model.input_shape[:2]
    return tf.image.resize(maps[..., None], (height, width), method="bilinear")[..., 0]
