"""How arrays travel to the browser: samples as PNG, heatmaps as base64 little-endian float32."""

import base64
import io

import numpy as np
from PIL import Image

from tb_xai_plugin.errors import XaiError

PIL_MODES = {1: "L", 3: "RGB", 4: "RGBA"}


def to_uint8(image, value_range):
    """A stored image [H, W, C] as uint8: uint8 as is, floats mapped from value_range [lo, hi] to [0, 255]."""
    image = np.asarray(image)
    if image.dtype == np.uint8:
        return image
    lo, hi = float(value_range[0]), float(value_range[1])
    scaled = (image.astype(np.float64) - lo) / (hi - lo if hi > lo else 1.0)
    return np.clip(np.rint(np.nan_to_num(scaled) * 255.0), 0, 255).astype(np.uint8)


def png_bytes(image, value_range):
    """PNG bytes of one stored image [H, W, C] with C in 1, 3, 4."""
    pixels = to_uint8(image, value_range)
    if pixels.ndim != 3 or pixels.shape[2] not in PIL_MODES:
        raise XaiError("cannot show an image of shape %s" % (list(pixels.shape),))
    channels = pixels.shape[2]
    frame = pixels[:, :, 0] if channels == 1 else pixels
    out = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(frame), mode=PIL_MODES[channels]).save(out, format="PNG")
    return out.getvalue()


def finite_range(array):
    """[min, max] of the finite values of an array ([0, 0] when it has none)."""
    finite = array[np.isfinite(array)]
    return [float(finite.min()), float(finite.max())] if finite.size else [0.0, 0.0]


def float32_payload(array):
    """{"shape", "data": base64 of little-endian float32, "ranges": [min, max] of each array[i] alone,
    "range": [min, max] over the whole array} of a stack of maps [N, ...]."""
    array = np.ascontiguousarray(array, dtype="<f4")
    return {
        "shape": list(array.shape),
        "data": base64.b64encode(array.tobytes()).decode("ascii"),
        "ranges": [finite_range(one) for one in array],
        "range": finite_range(array),
    }


def decode_float32(payload):
    """The array of a float32_payload (for tests and the CLI)."""
    raw = base64.b64decode(payload["data"])
    return np.frombuffer(raw, dtype="<f4").reshape(payload["shape"])
