"""Checks of what `ptq.quantize` is given: the calibration array's shape and values."""

from __future__ import annotations

import numpy as np


def calibration_inputs(calib, input_shape: tuple[int, ...]) -> np.ndarray:
    """Real calibration inputs as float32 (n,) + input_shape; ValueError saying what shape was
    expected. Each calib[i] may also be given flat (input_shape's size values)."""
    calib = np.asarray(calib)
    if calib.dtype.kind not in "biuf":
        raise ValueError(f"the calibration array holds {calib.dtype} values; expected real "
                         "numbers")
    size = int(np.prod(input_shape))
    if calib.shape == tuple(input_shape):
        calib = calib[None]
    per = int(np.prod(calib.shape[1:])) if calib.ndim > 1 else 1
    if calib.ndim < 1 or per != size:
        raise ValueError(f"each calibration input x[i] has shape {calib.shape[1:]} ({per} "
                         f"values) but the model input has shape {tuple(input_shape)} ({size} "
                         "values); axis 0 of the array is the batch")
    if not len(calib):
        raise ValueError("the calibration set is empty")
    calib = calib.astype(np.float32).reshape((-1,) + tuple(input_shape))
    if not np.isfinite(calib).all():
        raise ValueError("the calibration inputs contain NaN or infinite values")
    return calib


def unscaled_input_warning(calib: np.ndarray) -> str | None:
    """A warning when real inputs look like raw integer data (pixels 0..255, digits' 0..16)
    rather than the scaled values a float model is usually trained on: every value a whole
    number and the largest beyond 1. The input's quantization is calibrated on them as given."""
    lo, hi = float(calib.min()), float(calib.max())
    if hi <= 1 or not np.array_equal(calib, np.round(calib)):
        return None
    return (f"the calibration inputs are whole numbers in [{lo:g}, {hi:g}]: if the float model "
            "was trained on scaled inputs (e.g. pixels / 16 or / 255 in [0, 1]), scale them "
            "the same way, or the quantized model sees a different input range (--input-range "
            "LO,HI sets it explicitly)")
