"""16x8 layers without weights: int16 activations (zero point 0) as TFLM's int16 reference
kernels compute them (the weighted ones are in layers/int16.py).

AVERAGE_POOL_2D / MAX_POOL_2D int16  (kernel mp_runtime/tinyrt/kernels/pool16.py)
  inputs [x int16 (N, H, W, C)]  outputs [y int16, x's scale]  params as int8 pooling, the
  clamp CalculateActivationRangeQuantized for int16.
QUANTIZE int8 -> int16, int16 -> int8, int16 -> int16  (kernel quantize16.py)
  inputs [x, requant int32 (1, 3)]  outputs [y]; the row of QuantizeMultiplier(double
  scale_x / double scale_y), TFLM's Requantize per element.
LEAKY_RELU int16  (kernel leaky_relu16.py)
  inputs [x, requant int32 (2, 3)]  outputs [y int16]; rows of QuantizeMultiplier(double(
  float(s_x / s_y))) and QuantizeMultiplier(double(float(s_x * alpha / s_y))), alpha >= 0.
ADD int16  (kernel add16.py)
  inputs [x1, x2 int16 (broadcastable), requant int32 (3, 3)]  outputs [y int16]  params
  [act_min, act_max]; TFLM's general-scale ADD with left_shift 15: input multipliers
  s_i / (2 max(s_1, s_2)), output 2 max(s_1, s_2) / (2^15 s_y), each below one.
SOFTMAX int16  (kernel softmax16.py)
  inputs [x int16, table int32 (3 + 2 * 513)]  outputs [y int16, scale 1/32768, zero point 0];
  the multiplier row of float(s_x * beta) / (10 / 65535) and TFLM's gen_lut tables of exp
  over [-10, 0] and 1 / (1 + x) over [0, 1], in float32 as TFLM computes them.
DEQUANTIZE int16 -> float32  (kernel dequantize16.py)
  inputs [x int16, table int32 (2,): (ms, es), float32 scale = ms * 2^es]  outputs [y float32]
RESHAPE int16 uses layers/shape.reshape (the output keeps x's dtype; kernel reshape16.py).
"""

from __future__ import annotations

import math

import numpy as np
from tinyrt import opcodes

from ..graph import Graph
from ..quantization import quantize_multiplier, requant_rows
from .common import f32
from .elementwise import _smaller_than_one, broadcast_shape
from .int16 import _check_int16_input, activation_range_16
from .pool import pool_geometry

MAX_TAPS_16 = (1 << 15) - 1  # the kernel's accumulator bound: 32768 * taps < 2^30


def pool2d_16(g: Graph, opcode: int, x: int, filter_size, strides, padding: str,
              activation: str, name: str) -> int:
    """AVERAGE_POOL_2D or MAX_POOL_2D over int16 x (zero point 0)."""
    xt = _check_int16_input(g, x, name)
    out, params = pool_geometry(xt.shape, filter_size, strides, padding, MAX_TAPS_16, name)
    lo, hi = activation_range_16(activation, xt.scale)
    y = g.add_activation(name + "/out", out, xt.scale, 0, "int16")
    g.add_op(opcode, [x], [y], params + [lo, hi])
    return y


def quantize_16(g: Graph, x: int, out_scale: float, out_zero_point: int, out_dtype: str,
                name: str = "quantize") -> int:
    """Requantize x (int8 or int16) to out_dtype (int8 or int16; int16 zero points 0)."""
    xt = g.tensors[x]
    if "int16" not in (xt.dtype, out_dtype) or {xt.dtype, out_dtype} - {"int8", "int16"}:
        raise ValueError(f"{name}: {xt.dtype} -> {out_dtype}, expected int16 on one side "
                         "and int8 or int16 on the other")
    if (xt.dtype == "int16" and xt.zero_point) or (out_dtype == "int16" and out_zero_point):
        raise ValueError(f"{name}: int16 zero points must be 0")
    rows = requant_rows(f32(xt.scale) / f32(out_scale))
    most = 14 if xt.dtype == "int16" else 21
    if int(rows[0, 2]) > most:
        raise ValueError(f"{name}: scale ratio {xt.scale / out_scale} needs shift "
                         f"{int(rows[0, 2])}, at most {most}")
    qi = g.add_const(name + "/requant", rows, "int32")
    y = g.add_activation(name + "/out", xt.shape, out_scale, out_zero_point, out_dtype)
    g.add_op(opcodes.QUANTIZE, [x, qi], [y], [])
    return y


def average_pool2d_16(g: Graph, x: int, filter_size, strides=1, padding: str = "VALID",
                      activation: str = "NONE", name: str = "avgpool") -> int:
    return pool2d_16(g, opcodes.AVERAGE_POOL_2D, x, filter_size, strides, padding, activation,
                     name)


def max_pool2d_16(g: Graph, x: int, filter_size, strides=1, padding: str = "VALID",
                  activation: str = "NONE", name: str = "maxpool") -> int:
    return pool2d_16(g, opcodes.MAX_POOL_2D, x, filter_size, strides, padding, activation,
                     name)


def leaky_relu_16(g: Graph, x: int, alpha: float, out_scale: float, name: str = "leaky_relu"
                  ) -> int:
    """TFLM's int16 LEAKY_RELU: identity and alpha multipliers chosen by the input's sign."""
    xt = _check_int16_input(g, x, name)
    if alpha < 0:
        raise ValueError(f"{name}: int16 LEAKY_RELU with alpha {alpha} < 0 is not supported "
                         "(its multiplier is negative)")
    sx, sy = np.float32(xt.scale), np.float32(out_scale)
    rows = np.concatenate([requant_rows(float(np.float32(sx / sy))),
                           requant_rows(float(np.float32(sx * np.float32(alpha) / sy)))])
    if int(rows[:, 2].max()) > 14:
        raise ValueError(f"{name}: scale ratio {xt.scale / out_scale} needs left shift "
                         f"{int(rows[:, 2].max())}, at most 14")
    qi = g.add_const(name + "/requant", rows, "int32")
    y = g.add_activation(name + "/out", xt.shape, out_scale, 0, "int16")
    g.add_op(opcodes.LEAKY_RELU, [x, qi], [y], [])
    return y


def add_16(g: Graph, x1: int, x2: int, out_scale: float, activation: str = "NONE",
           name: str = "add") -> int:
    """y = x1 + x2 in real terms (broadcasting), int16 in and out (zero points 0)."""
    t1 = _check_int16_input(g, x1, name)
    t2 = _check_int16_input(g, x2, name)
    s1, s2, so = float(f32(t1.scale)), float(f32(t2.scale)), float(f32(out_scale))
    twice_max = 2.0 * max(s1, s2)
    reals = [s1 / twice_max, s2 / twice_max, twice_max / ((1 << 15) * so)]
    for what, r in zip(("input1", "input2", "output"), reals):
        _smaller_than_one(r, f"{name} {what}")
    rows = requant_rows(reals)
    shape = broadcast_shape(t1.shape, t2.shape, name)
    qi = g.add_const(name + "/requant", rows, "int32")
    y = g.add_activation(name + "/out", shape, out_scale, 0, "int16")
    lo, hi = activation_range_16(activation, out_scale)
    g.add_op(opcodes.ADD, [x1, x2, qi], [y], [lo, hi])
    return y


def _round(v: float) -> float:  # TfLiteRound: half away from zero
    return float(np.copysign(np.floor(abs(v) + 0.5), v))


def gen_lut_int16(func, input_min: float, input_max: float) -> np.ndarray:
    """TFLM's gen_lut<float, int16_t, int16_t> with output range [-1, 1]: 513 entries, each
    sample corrected by half the interpolation error at its step's midpoint (float32)."""
    f = np.float32
    lo, hi = f(input_min), f(input_max)
    step = f((hi - lo) / f(512))
    half = f(step / f(2))
    inv = f(f(65536) / f(2))  # (max - min + 1) / (output_max - output_min)
    out = np.zeros(513, np.int64)
    for i in range(512):
        x0 = f(lo + f(f(i) * step))
        val = func(x0)
        mid = func(f(x0 + half))
        nxt = func(f(lo + f(f(i + 1) * step)))
        sample = _round(float(f(val * inv)))
        interp = _round(float(f(f(f(nxt * inv) + f(sample)) / f(2))))
        err = f(f(interp) - f(_round(float(f(mid * inv)))))
        bias = _round(float(f(err / f(2))))
        out[i] = min(max(sample - bias, -32768.0), 32767.0)
    out[512] = min(max(_round(float(f(func(hi) * inv))), -32768.0), 32767.0)
    return out


def _expf(v: np.float32) -> np.float32:
    return np.float32(math.exp(float(v)))


def _one_over_one_plus(v: np.float32) -> np.float32:
    return np.float32(np.float32(1.0) / np.float32(np.float32(1.0) + v))


def softmax_16(g: Graph, x: int, beta: float = 1.0, name: str = "softmax") -> int:
    """TFLM's int16 SOFTMAX over the last axis; y int16 with scale 1/32768, zero point 0."""
    xt = _check_int16_input(g, x, name)
    if not xt.shape or xt.shape[-1] >= 1 << 15:
        raise ValueError(f"{name}: input shape {xt.shape}, last axis below 32768 expected")
    real = float(np.float32(np.float32(xt.scale) * np.float32(beta))) / (10.0 / 65535.0)
    m, shift = quantize_multiplier(real)
    if shift > 14:
        raise ValueError(f"{name}: input scale * beta {real * 10 / 65535} needs left shift "
                         f"{shift}, at most 14")
    table = np.concatenate([[m >> 15, m & 0x7FFF, shift], gen_lut_int16(_expf, -10.0, 0.0),
                            gen_lut_int16(_one_over_one_plus, 0.0, 1.0)])
    ti = g.add_const(name + "/tables", table.astype(np.int32), "int32")
    y = g.add_activation(name + "/out", xt.shape, 1.0 / 32768, 0, "int16")
    g.add_op(opcodes.SOFTMAX, [x, ti], [y], [])
    return y


def dequantize_16(g: Graph, x: int, name: str = "dequantize") -> int:
    """TFLM's int16 DEQUANTIZE: float32(double(scale) * x), computed on the board from the
    scale's 24-bit significand and exponent (every |x| * scale must be a normal float32)."""
    xt = _check_int16_input(g, x, name)
    frac, exp = math.frexp(float(np.float32(xt.scale)))  # scale = frac * 2^exp, frac in [.5, 1)
    ms, es = int(frac * (1 << 24)), exp - 24
    if es + 23 + 127 < 1 or es + 39 + 127 > 254:
        raise ValueError(f"{name}: scale {xt.scale}: x * scale leaves float32's normal range")
    ti = g.add_const(name + "/scale", np.array([ms, es], np.int32), "int32")
    y = g.add_activation(name + "/out", xt.shape, 1.0, 0, "float32")
    g.add_op(opcodes.DEQUANTIZE, [x, ti], [y], [])
    return y
