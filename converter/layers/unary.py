"""LEAKY_RELU, RELU, RELU6, HARD_SWISH and TANH (int8 -> int8) as 256-entry lookup tables.

Each op's output depends only on the int8 input value, so its TFLM reference arithmetic
(integers, gemmlowp fixed point) is run here on exact Python ints for the 256 inputs and
stored as an int8 (256,) table: the kernel (mp_runtime/tinyrt/kernels/lookup.py, and the op's
own module stating the arithmetic) computes y = table[x + 128]. Params: none.

Multipliers are computed as each TFLM Prepare does, float32 where TFLM multiplies or divides
float scales (LEAKY_RELU, HARD_SWISH), double where it casts first (RELU, TANH).
"""

from __future__ import annotations

import math

import numpy as np

from tinyrt import opcodes

from ..graph import Graph
from ..quantization import tflm_requantize
from .activations import (_frexp_multiplier, _rdbp, _shl_saturating, _srdhm,
                          exp_on_negative_values)

I16_MIN, I16_MAX = -(1 << 15), (1 << 15) - 1
TANH_OUT_SCALE = 1.0 / 128


def _clamp8(v: int) -> int:
    return min(max(v, -128), 127)


def qm(real: float) -> tuple[int, int]:
    """TFLite's QuantizeMultiplier(double), negative values included (TfLiteRound: half away
    from zero): real = M * 2^(shift - 31)."""
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    m = int(math.copysign(math.floor(abs(q) * (1 << 31) + 0.5), q))
    if abs(m) == 1 << 31:
        m //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return m, shift


def _f32(x) -> np.float32:
    return np.float32(x)


# --- LEAKY_RELU -------------------------------------------------------------------------------

def leaky_relu_table(x_scale: float, x_zp: int, alpha: float, y_scale: float,
                     y_zp: int) -> np.ndarray:
    m_a, s_a = qm(float(_f32(x_scale) * _f32(alpha) / _f32(y_scale)))
    m_i, s_i = qm(float(_f32(x_scale) / _f32(y_scale)))
    out = np.zeros(256, np.int8)
    for x in range(-128, 128):
        v = x - x_zp
        m, s = (m_i, s_i) if v >= 0 else (m_a, s_a)
        out[x + 128] = _clamp8(y_zp + tflm_requantize(v, m, s))
    return out


# --- RELU, RELU6 ------------------------------------------------------------------------------

def _round_f32(v: np.float32) -> int:  # roundf / TfLiteRound on a float: half away from zero
    return int(math.copysign(math.floor(abs(float(v)) + 0.5), float(v)))


def relu_table(x_scale: float, x_zp: int, y_scale: float, y_zp: int) -> np.ndarray:
    m, s = qm(float(_f32(x_scale)) / float(_f32(y_scale)))
    lo = max(-128, y_zp + _round_f32(_f32(0.0) / _f32(y_scale)))
    out = np.zeros(256, np.int8)
    for x in range(-128, 128):
        out[x + 128] = min(max(y_zp + tflm_requantize(x - x_zp, m, s), lo), 127)
    return out


def relu6_table(x_scale: float, x_zp: int) -> np.ndarray:
    six = _clamp8(x_zp + _round_f32(_f32(6.0) / _f32(x_scale)))
    out = np.zeros(256, np.int8)
    for x in range(-128, 128):
        out[x + 128] = max(x_zp, min(six, x))
    return out


# --- HARD_SWISH -------------------------------------------------------------------------------

def _srdhm16(a: int, b: int) -> int:
    if a == b == I16_MIN:
        return I16_MAX
    ab = a * b
    n = ab + ((1 << 14) if ab >= 0 else 1 - (1 << 14))
    return _wrap16(n >> 15 if n >= 0 else -((-n) >> 15))


def _sdhm16(a: int, b: int) -> int:  # SaturatingDoublingHighMul: no rounding nudge
    if a == b == I16_MIN:
        return I16_MAX
    ab = a * b
    return _wrap16(ab >> 15 if ab >= 0 else -((-ab) >> 15))


def _wrap16(v: int) -> int:
    return ((v + (1 << 15)) & 0xFFFF) - (1 << 15)


def _shl_sat16(v: int, amount: int) -> int:
    return min(max(v * (1 << amount), I16_MIN), I16_MAX)


def _downscale16(m: int) -> int:
    """DownScaleInt32ToInt16Multiplier."""
    if m >= (1 << 31) - 1 - (1 << 15):
        return I16_MAX
    return (m + (1 << 15)) >> 16


def hard_swish_table(x_scale: float, x_zp: int, y_scale: float, y_zp: int) -> np.ndarray:
    hires = _f32(1.0 / 128.0) * _f32(x_scale)
    m_out, e_out = qm(float(hires / _f32(y_scale)))
    m_rel, e_rel = qm(float(hires / _f32(3.0 / 32768.0)))
    if e_out > 0:
        raise ValueError(f"HARD_SWISH: output multiplier exponent {e_out} > 0 (TFLM refuses "
                         "an output scale below input scale / 128)")
    m_out, m_rel = _downscale16(m_out), _downscale16(m_rel)
    out = np.zeros(256, np.int8)
    for x in range(-128, 128):
        v = _wrap16(x - x_zp)
        hi = _wrap16(v * 128)
        pre = _srdhm16(hi, m_out)
        r = hi
        if e_rel > 0:
            r = _shl_sat16(r, e_rel - 1)
        r = _srdhm16(r, m_rel)
        if e_rel > 0:
            r = _shl_sat16(r, 1)
        if e_rel < 0:
            r = _wrap16(_rdbp(r, -e_rel))
        r = _wrap16((r + (1 << 15)) >> 1)
        p = _sdhm16(r, pre)
        o = _wrap16(_rdbp(p, -e_out))
        out[x + 128] = _clamp8(o + y_zp)
    return out


# --- TANH -------------------------------------------------------------------------------------

def _wrap32(v: int) -> int:
    return ((v + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def _one_minus_x_over_one_plus_x(a: int) -> int:
    """gemmlowp one_minus_x_over_one_plus_x_for_x_in_0_1: raw Q0.31 in and out."""
    s = a + (1 << 31) - 1  # RoundingHalfSum(a, One)
    half_den = (s + 1) // 2 if s >= 0 else -((1 - s) // 2)
    x = _wrap32(1515870810 + _srdhm(half_den, -1010580540))  # F2 48/17 - 32/17 * d
    for _ in range(3):
        one_minus = _wrap32((1 << 29) - _srdhm(half_den, x))
        x = _wrap32(x + _shl_saturating(_srdhm(x, one_minus), 2))  # Rescale<2>: F4 -> F2
    return _shl_saturating(_wrap32(x - (1 << 29)), 2)  # Rescale<0>(x - F2 One)


def tanh_q0(a: int, integer_bits: int) -> int:
    """gemmlowp tanh: raw Q(integer_bits) in, raw Q0.31 out. neg_tanh_on_negative_values(n)
    = one_minus_x_over_one_plus_x(exp_on_negative_values(ExactMulByPot<1>(n))): the same raw
    value read with one more integer bit."""
    if a == 0:
        return 0
    n = a if a < 0 else _wrap32(-a)
    t = _one_minus_x_over_one_plus_x(exp_on_negative_values(n, integer_bits + 1))
    return _wrap32(-t) if a < 0 else t


def tanh_table(x_scale: float, x_zp: int) -> np.ndarray:
    m, left = _frexp_multiplier(float(_f32(x_scale)) * float(1 << 27))
    m = _wrap32(m)
    if left < 0:
        raise ValueError(f"TANH: input scale {x_scale:g} below 2^-28 is not supported")
    radius = (15 << 27) >> left  # CalculateInputRadius(4, left_shift, 31), floor
    out = np.zeros(256, np.int8)
    for x in range(-128, 128):
        v = x - x_zp
        if v <= -radius:
            r = -128
        elif v >= radius:
            r = 127
        else:
            q4 = _srdhm(v << left, m)
            r = _clamp8(_rdbp(tanh_q0(q4, 4), 24))
        out[x + 128] = r
    return out


# --- builders ---------------------------------------------------------------------------------

def _table_op(g: Graph, opcode: int, x: int, table: np.ndarray, out_scale: float,
              out_zero_point: int, name: str) -> int:
    xt = g.tensors[x]
    if xt.dtype != "int8":
        raise ValueError(f"{name}: input is {xt.dtype}, expected int8")
    ti = g.add_const(name + "/table", table, "int8")
    y = g.add_activation(name + "/out", xt.shape, out_scale, out_zero_point)
    g.add_op(opcode, [x, ti], [y], [])
    return y


def leaky_relu(g: Graph, x: int, alpha: float, out_scale: float, out_zero_point: int,
               name: str = "leaky_relu") -> int:
    xt = g.tensors[x]
    t = leaky_relu_table(xt.scale, xt.zero_point, alpha, out_scale, out_zero_point)
    return _table_op(g, opcodes.LEAKY_RELU, x, t, out_scale, out_zero_point, name)


def relu(g: Graph, x: int, out_scale: float, out_zero_point: int, name: str = "relu") -> int:
    xt = g.tensors[x]
    t = relu_table(xt.scale, xt.zero_point, out_scale, out_zero_point)
    return _table_op(g, opcodes.RELU, x, t, out_scale, out_zero_point, name)


def relu6(g: Graph, x: int, out_scale: float, out_zero_point: int, name: str = "relu6") -> int:
    """TFLM's int8 RELU6 clamps in the input's quantization (the output's is not used)."""
    xt = g.tensors[x]
    t = relu6_table(xt.scale, xt.zero_point)
    return _table_op(g, opcodes.RELU6, x, t, out_scale, out_zero_point, name)


def hard_swish(g: Graph, x: int, out_scale: float, out_zero_point: int,
               name: str = "hard_swish") -> int:
    xt = g.tensors[x]
    t = hard_swish_table(xt.scale, xt.zero_point, out_scale, out_zero_point)
    return _table_op(g, opcodes.HARD_SWISH, x, t, out_scale, out_zero_point, name)


def tanh(g: Graph, x: int, name: str = "tanh") -> int:
    """y = tanh(x); y int8 with scale 1/128, zero point 0 (as TFLM requires)."""
    xt = g.tensors[x]
    t = tanh_table(xt.scale, xt.zero_point)
    return _table_op(g, opcodes.TANH, x, t, TANH_OUT_SCALE, 0, name)
