"""SOFTMAX and LOGISTIC (int8): add them to a Graph with the lookup tables their kernels read.

TFLM's reference kernels evaluate gemmlowp's fixed-point exp / reciprocal / logistic on full
int32 values. Everything that depends only on one int8 value is computed here, once, with exact
Python ints (a port of reference/softmax.h, reference/integer_ops/logistic.h and gemmlowp's
fixedpoint.h; tests hold it to the independent numpy oracle and to TFLM):

- LOGISTIC: the whole op is a function of the int8 input, so it becomes a 256-entry int8 table
  (index x + 128). Params: none.
- SOFTMAX: an element's exp depends only on d = max(row) - x in [0, 255]. The table is int32
  (2, 256): row 0 holds E[d] >> 15, row 1 E[d] & 0x7FFF, where E[d] is TFLM's Q0.31
  exp_on_negative_values(MBQMGreaterThanOne(-d, multiplier, left_shift)) for -d >= diff_min
  and 0 below diff_min (an entry of 0 adds nothing to the sum and outputs -128, exactly what
  TFLM does for those entries). E[0] = 2^31 - 1. The row sum, GetReciprocal and the final
  multiply-and-round are row-dependent and run on the device (tinyrt/kernels/softmax.py).
  Params: none.

Output quantization is fixed as TFLM requires: scale 1/256, zero point -128.
"""

from __future__ import annotations

import math

import numpy as np

from tinyrt import opcodes

from ..graph import Graph

OUT_SCALE = 1.0 / 256
OUT_ZERO_POINT = -128
MAX_SOFTMAX_DEPTH = 2047  # row sum <= depth * 2^19 stays below 2^30 (device small ints)

_I32_MIN = -(1 << 31)
_I32_MAX = (1 << 31) - 1


# --- gemmlowp / TFLite int32 fixed-point arithmetic on exact Python ints ----------------------

def _wrap(v: int) -> int:
    """Two's-complement int32 wrap (C++ int32 arithmetic)."""
    return ((v + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def _srdhm(a: int, b: int) -> int:
    """SaturatingRoundingDoublingHighMul(int32 a, int32 b)."""
    if a == b == _I32_MIN:
        return _I32_MAX
    s = a * b + ((1 << 30) if a * b >= 0 else 1 - (1 << 30))
    return s >> 31 if s >= 0 else -((-s) >> 31)  # C division truncates toward zero


def _rdbp(x: int, exponent: int) -> int:
    """RoundingDivideByPOT: x / 2^exponent rounded half away from zero."""
    mask = (1 << exponent) - 1
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> exponent) + (1 if (x & mask) > threshold else 0)


def _shl_saturating(x: int, exponent: int) -> int:
    """SaturatingRoundingMultiplyByPOT<exponent> for exponent > 0."""
    threshold = (1 << (31 - exponent)) - 1
    if x > threshold:
        return _I32_MAX
    if x < -threshold:
        return _I32_MIN
    return x << exponent


def _exp_on_interval_between_negative_one_quarter_and_0_excl(a: int) -> int:
    x = _wrap(a + (1 << 28))  # Taylor expansion around -1/8
    x2 = _srdhm(x, x)
    x3 = _srdhm(x2, x)
    x4 = _srdhm(x2, x2)
    x4_over_4 = _rdbp(x4, 2)
    poly = _rdbp(_wrap(_srdhm(_wrap(x4_over_4 + x3), 715827883) + x2), 1)  # 715827883: 1/3
    return _wrap(1895147668 + _srdhm(1895147668, _wrap(x + poly)))  # 1895147668: exp(-1/8)


# (exponent, Q0.31 exp(-2^exponent)) of gemmlowp's barrel shifter
_EXP_BARREL = ((-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308),
               (2, 39332535), (3, 720401), (4, 242))


def exp_on_negative_values(a: int, integer_bits: int) -> int:
    """gemmlowp exp_on_negative_values: raw Q(integer_bits) input <= 0, raw Q0.31 output."""
    frac_bits = 31 - integer_bits
    one_quarter = 1 << (frac_bits - 2)
    a_mod_quarter_minus_one_quarter = _wrap((a & (one_quarter - 1)) - one_quarter)
    result = _exp_on_interval_between_negative_one_quarter_and_0_excl(
        _shl_saturating(a_mod_quarter_minus_one_quarter, integer_bits))  # Rescale<0>
    remainder = _wrap(a_mod_quarter_minus_one_quarter - a)
    for exponent, multiplier in _EXP_BARREL:
        if integer_bits > exponent and remainder & (1 << (frac_bits + exponent)):
            result = _srdhm(result, multiplier)
    if integer_bits > 5 and a < -(1 << (36 - integer_bits)):  # below -32.0
        result = 0
    return _I32_MAX if a == 0 else result


def one_over_one_plus_x_for_x_in_0_1(a: int) -> int:
    """gemmlowp one_over_one_plus_x_for_x_in_0_1: raw Q0.31 in and out (Newton-Raphson)."""
    s = a + _I32_MAX  # RoundingHalfSum(a, One): (s + sign) / 2, truncated
    half_denominator = (s + 1) // 2 if s >= 0 else -((1 - s) // 2)
    x = _wrap(1515870810 + _srdhm(half_denominator, -1010580540))  # F2 48/17 - 32/17 * d
    for _ in range(3):
        one_minus_half_denominator_times_x = _wrap((1 << 29) - _srdhm(half_denominator, x))
        x = _wrap(x + _shl_saturating(_srdhm(x, one_minus_half_denominator_times_x), 2))
    return _shl_saturating(x, 1)  # Rescale<0>(ExactMulByPot<-1>(x)): F2 -> F1 -> F0


def logistic_q0(a: int, integer_bits: int) -> int:
    """gemmlowp logistic: raw Q(integer_bits) in, raw Q0.31 out."""
    if a == 0:
        return 1 << 30  # one half
    if a > 0:
        return one_over_one_plus_x_for_x_in_0_1(exp_on_negative_values(_wrap(-a), integer_bits))
    r = one_over_one_plus_x_for_x_in_0_1(exp_on_negative_values(a, integer_bits))
    return _wrap(_I32_MAX - r)


def _frexp_multiplier(real: float) -> tuple[int, int]:
    """(round(q * 2^31), exponent) with real = q * 2^exponent, q in [0.5, 1) (TfLiteRound)."""
    q, shift = math.frexp(real)
    return math.floor(q * (1 << 31) + 0.5), shift


# --- SOFTMAX ----------------------------------------------------------------------------------

def softmax_params(x_scale: float, beta: float) -> tuple[int, int, int]:
    """(input_multiplier, input_left_shift, diff_min) as TFLM's CalculateSoftmaxParams.

    PreprocessSoftmaxScaling(beta, x_scale, 5): min(beta * x_scale * 2^26, 2^31 - 1) in double
    (both stored as float32) -> QuantizeMultiplierGreaterThanOne."""
    real = min(float(np.float32(beta)) * float(np.float32(x_scale)) * float(1 << 26),
               float(_I32_MAX))
    if not real > 1.0:
        raise ValueError(f"SOFTMAX: beta * input scale = {real / (1 << 26):g} must exceed 2^-26 "
                         "(TFLM's QuantizeMultiplierGreaterThanOne)")
    multiplier, left_shift = _frexp_multiplier(real)
    if multiplier == 1 << 31:
        multiplier //= 2
        left_shift += 1
    radius = (31 << 26) >> left_shift  # CalculateInputRadius(5, left_shift): floor, exact
    return multiplier, left_shift, -radius


def softmax_exp_table(x_scale: float, beta: float) -> np.ndarray:
    """int32 (2, 256): (E[d] >> 15, E[d] & 0x7FFF) with E[d] the Q0.31 exp of diff -d."""
    multiplier, left_shift, diff_min = softmax_params(x_scale, beta)
    table = np.zeros((2, 256), dtype=np.int32)
    for d in range(256):
        if -d < diff_min:
            continue  # TFLM skips the entry: adds nothing to the sum, outputs -128
        rescaled = _srdhm(_wrap(-d * (1 << left_shift)), multiplier)  # MBQMGreaterThanOne
        e = exp_on_negative_values(rescaled, 5)  # Q5.26 in, Q0.31 out
        if not 0 <= e <= _I32_MAX:
            raise AssertionError(f"exp table entry {d}: {e}")
        table[0, d] = e >> 15
        table[1, d] = e & 0x7FFF
    return table


def softmax(g: Graph, x: int, beta: float = 1.0, name: str = "softmax") -> int:
    """y = softmax(beta * x) over the last axis; y int8 with scale 1/256, zero point -128."""
    xt = g.tensors[x]
    if xt.dtype != "int8":
        raise ValueError(f"{name}: input is {xt.dtype}, expected int8")
    depth = int(xt.shape[-1])
    if not 1 <= depth <= MAX_SOFTMAX_DEPTH:
        raise ValueError(f"{name}: row length {depth}, expected 1..{MAX_SOFTMAX_DEPTH}")
    ti = g.add_const(name + "/exp", softmax_exp_table(xt.scale, beta), "int32")
    y = g.add_activation(name + "/out", xt.shape, OUT_SCALE, OUT_ZERO_POINT)
    g.add_op(opcodes.SOFTMAX, [x, ti], [y], [])
    return y


# --- LOGISTIC ---------------------------------------------------------------------------------

def logistic_table(x_scale: float, x_zero_point: int) -> np.ndarray:
    """int8 (256,): TFLM's int8 LOGISTIC output for input x at index x + 128.

    CalculateArithmeticOpDataLogistic: multiplier = round(q * 2^31), left_shift from
    frexp(double(x_scale) * 2^27) (no 2^31 fix-up); radius = CalculateInputRadius(4, shift)."""
    multiplier, left_shift = _frexp_multiplier(float(np.float32(x_scale)) * float(1 << 27))
    if left_shift < 0:
        raise ValueError(f"LOGISTIC: input scale {x_scale:g} below 2^-28 is not supported "
                         "(TFLM's CalculateInputRadius shifts by it)")
    multiplier = _wrap(multiplier)
    radius = (15 << 27) >> left_shift
    out = np.zeros(256, dtype=np.int8)
    for q in range(-128, 128):
        v = q - int(x_zero_point)
        if v <= -radius:
            r = -128
        elif v >= radius:
            r = 127
        else:
            # MultiplyByQuantizedMultiplier(v, multiplier, left_shift >= 0): |v| < radius
            # keeps v * 2^left_shift < 15 * 2^27, so nothing wraps
            q4 = _srdhm(v << left_shift, multiplier)
            r = min(max(_rdbp(logistic_q0(q4, 4), 23) - 128, -128), 127)
        out[q + 128] = r
    return out


def logistic(g: Graph, x: int, name: str = "logistic") -> int:
    """y = 1 / (1 + exp(-x)); y int8 with scale 1/256, zero point -128."""
    xt = g.tensors[x]
    if xt.dtype != "int8":
        raise ValueError(f"{name}: input is {xt.dtype}, expected int8")
    ti = g.add_const(name + "/table", logistic_table(xt.scale, xt.zero_point), "int8")
    y = g.add_activation(name + "/out", xt.shape, OUT_SCALE, OUT_ZERO_POINT)
    g.add_op(opcodes.LOGISTIC, [x, ti], [y], [])
    return y
