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


# --- TFLM's int32 requantization on exact Python ints (int32 wrap as the C++ build does) -----

_I32 = 1 << 32


def wrap_int32(v: int) -> int:
    """Two's-complement int32 wrap: TFLM adds the bias to its int32 accumulator unchecked."""
    return ((v + (1 << 31)) % _I32) - (1 << 31)


def tflm_requantize(acc: int, m: int, shift: int) -> int:
    """TFLM's MultiplyByQuantizedMultiplier(int32 acc, M, shift), acc wrapped to int32 first:
    RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(acc * 2^left, M), right)."""
    x = wrap_int32(wrap_int32(acc) << max(shift, 0))
    if x == m == -(1 << 31):
        return (1 << 31) - 1
    ab = x * m
    n = ab + ((1 << 30) if ab >= 0 else 1 - (1 << 30))
    h = n >> 31 if n >= 0 else -((-n) >> 31)  # C division truncates toward zero
    right = max(-shift, 0)
    mask = (1 << right) - 1
    threshold = (mask >> 1) + (1 if h < 0 else 0)
    return (h >> right) + (1 if (h & mask) > threshold else 0)


def constant_channel_output(bias: int, d_lo: int, d_hi: int, m: int, shift: int,
                            y_zp: int, act_min: int, act_max: int) -> int | None:
    """The int8 output of a channel if it is the same for every sum of products d in
    [d_lo, d_hi] (accumulator wrap32(bias + d)), else None (not constant, or not provably).

    TFLM computes wrap32(wrap32(bias + d) * 2^left) = wrap32((bias + d) * 2^left) and then a
    non-decreasing function of it (M >= 0) clamped, so the output is monotone in d between
    the points where (bias + d) * 2^left crosses an odd multiple of 2^31; over each such piece
    it is constant exactly when its two ends agree."""
    lo, hi = bias + d_lo, bias + d_hi
    step = 1 << max(31 - max(shift, 0), 0)  # wraps where acc crosses an odd multiple of step
    ends = [lo, hi]
    k = (lo + step) // (2 * step) + 1  # the first odd multiple (2k - 1) * step > lo
    first = (2 * k - 1) * step
    if first <= hi and (hi - first) // (2 * step) >= 64:
        return None  # the accumulator wraps too often to be worth proving
    for edge in range(first, hi + 1, 2 * step):
        ends += [edge - 1, edge]
    outs = {min(max(tflm_requantize(a, m, shift) + y_zp, act_min), act_max) for a in ends}
    return outs.pop() if len(outs) == 1 else None
