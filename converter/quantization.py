"""Quantization arithmetic of the converter: multipliers, shifts and activation clamps, as
TensorFlow Lite computes them (the device applies them in mp_runtime/tinyrt/requant.py)."""

from __future__ import annotations

import math

import numpy as np

INT8_MIN, INT8_MAX = -128, 127
SMALL_INT_LIMIT = 1 << 30  # MicroPython small ints on 32-bit boards: |v| < 2^30


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite's QuantizeMultiplier: real = M * 2^(shift - 31), M in [2^30, 2^31) or 0."""
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    m = int(math.floor(q * (1 << 31) + 0.5))  # TfLiteRound: half away from zero (q > 0)
    if m == 1 << 31:
        m //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    if shift > 30:
        raise ValueError(f"multiplier {real} too large (shift {shift})")
    return m, shift


def requant_rows(effective_scales) -> np.ndarray:
    """Rows (M >> 15, M & 0x7FFF, shift) per channel, the layout kernels read (int32 (C, 3))."""
    rows = []
    for s in np.atleast_1d(np.asarray(effective_scales, dtype=np.float64)):
        m, shift = quantize_multiplier(float(s))
        rows.append((m >> 15, m & 0x7FFF, shift))
    return np.array(rows, dtype=np.int32).reshape(-1, 3)


def activation_range(act: str, scale: float, zero_point: int) -> tuple[int, int]:
    """TFLite's CalculateActivationRangeQuantized for int8 outputs."""
    def q_away(r: float) -> int:  # zero_point + TfLiteRound(r / scale), in float32 as TFLM
        v = float(np.float32(r) / np.float32(scale))
        return zero_point + int(math.floor(abs(v) + 0.5)) * (1 if v >= 0 else -1)

    if act in ("NONE", None):
        return INT8_MIN, INT8_MAX
    if act == "RELU":
        return max(INT8_MIN, q_away(0.0)), INT8_MAX
    if act == "RELU6":
        return max(INT8_MIN, q_away(0.0)), min(INT8_MAX, q_away(6.0))
    if act == "RELU_N1_TO_1":
        return max(INT8_MIN, q_away(-1.0)), min(INT8_MAX, q_away(1.0))
    raise ValueError(f"unsupported fused activation {act!r}")


def check_accumulator(bias_max_abs: int, k: int, left_shift: int, what: str) -> None:
    """Refuse layers whose int32 accumulator could leave MicroPython's 31-bit small ints.

    |acc| <= |bias| + k * 255 * 128 (|x - zx| <= 255, |w| <= 128); the requantization
    shifts it left by left_shift before the limb multiply (requant.py)."""
    bound = (bias_max_abs + k * 255 * 128) << max(left_shift, 0)
    if bound >= SMALL_INT_LIMIT:
        raise ValueError(
            f"{what}: accumulator bound {bound} (bias {bias_max_abs}, {k} products, "
            f"left shift {left_shift}) does not fit 31-bit small ints on 32-bit boards"
        )
