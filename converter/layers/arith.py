"""SQUARED_DIFFERENCE and RSQRT (int8), their integers computed as TFLM's Prepare and Eval do.

SQUARED_DIFFERENCE  (kernel mp_runtime/tinyrt/kernels/squared_difference.py; TFLM
  squared_difference.cc, left_shift 7 for int8): each input's scaled value depends only on its
  int8 value, v_i = MBQM((x_i - zp_i) << 7, M_i, shift_i), with (M_i, shift_i) =
  QuantizeMultiplierSmallerThanOneExp(s_i / (2 max(s1, s2))), so it is tabulated here;
  y = clamp(MBQM((v_1 - v_2)^2, M_o, shift_o) + zp_y, -128, 127), (M_o, shift_o) =
  QuantizeMultiplier((2 max(s1, s2))^2 / (2^14 s_y)), in double from float32 scales.
  inputs  [x1, x2, scaled int32 (2, 256): v_i for x_i = -128..127, requant int32 (1, 3)]
  outputs [y] (the broadcast shape)   params []
RSQRT  (kernel rsqrt.py, a 256-entry table as kernels/lookup.py; TFLM elementwise.cc
  RsqrtEvalQuantized): v = x - zp_x; v == 0 gives 127; else (M, s) =
  GetInvSqrtQuantizedMultiplierExp(v, -1) (gemmlowp Newton-Raphson, 5 steps),
  d = MBQM(1, M, s + 20), y = clamp(MBQM(d, M_o, shift_o - 20) + zp_y), (M_o, shift_o) =
  QuantizeMultiplier(1 / double(sqrtf(s_x) * s_y)). TFLM stops the invoke with an error for
  x < zp_x (a negative real); tinyrt's table gives there what v = 1 gives.
  inputs  [x, table int8 (256,)]  outputs [y]  params []
ABS  (kernel abs.py, a 256-entry table as kernels/lookup.py; TFLM elementwise.cc
  AbsEvalQuantized): v = |x - zp_x|; y = clamp(v + zp_y) when s_x == s_y, else
  clamp(MBQM(v, QuantizeMultiplier(double(float32(s_x / s_y)))) + zp_y).
  inputs  [x, table int8 (256,)]  outputs [y]  params []
PRELU  (kernel prelu.py; TFLM prelu_common.cc): y = MBQM(x - zp_x, M1) + zp_y for x >= zp_x,
  else MBQM((x - zp_x)(alpha - zp_a), M2) + zp_y, clamped; M1 = QuantizeMultiplier(s_x / s_y),
  M2 = QuantizeMultiplier(s_x s_a / s_y), in double from float32 scales.
  inputs  [x, alpha (broadcast to x), requant int32 (2, 3)]  outputs [y]  params []
DEQUANTIZE  (kernel dequantize.py; TFLM dequantize.cc -> reference Dequantize, int8 -> float32):
  y = float(double(s_x) * (x - zp_x)), which depends only on x: the 256 float32 results are
  stored as their IEEE-754 bit patterns and the kernel copies 4 bytes per element (no float
  arithmetic on the board; the output tensor holds float32 values in the arena).
  inputs  [x, table int32 (256,): float32 bits of the result for x = -128..127]
  outputs [y float32]  params []
"""

from __future__ import annotations

import numpy as np

from tinyrt import opcodes

from ..graph import Graph
from ..quantization import SMALL_INT_LIMIT, quantize_multiplier, requant_rows, tflm_requantize
from .activations import _rdbp, _shl_saturating, _srdhm, _wrap
from .elementwise import _smaller_than_one, broadcast_shape, check_zero_point
from .unary import _table_op

SQDIFF_LEFT_SHIFT = 7  # TFLM's left_shift for int8 SQUARED_DIFFERENCE


def squared_difference(g: Graph, x1: int, x2: int, out_scale: float, out_zero_point: int,
                       name: str = "squared_difference") -> int:
    t1, t2 = g.tensors[x1], g.tensors[x2]
    for z in (t1.zero_point, t2.zero_point, out_zero_point):
        check_zero_point(z, name)
    s1, s2 = float(np.float32(t1.scale)), float(np.float32(t2.scale))
    twice_max = 2.0 * max(s1, s2)
    real_out = twice_max * twice_max / float(np.float32((1 << 2 * SQDIFF_LEFT_SHIFT)
                                                        * np.float32(out_scale)))
    scaled = np.zeros((2, 256), np.int64)
    for row, (s, zp) in enumerate(((s1, t1.zero_point), (s2, t2.zero_point))):
        m, shift = _smaller_than_one(s / twice_max, f"{name} input{row + 1}")
        for x in range(-128, 128):
            scaled[row, x + 128] = tflm_requantize((x - zp) << SQDIFF_LEFT_SHIFT, m, shift)
    out_row = requant_rows([real_out])
    # the kernel's 31-bit bound: (v1 - v2)^2 << left < 2^30
    diff = max(abs(int(scaled[0].max() - scaled[1].min())),
               abs(int(scaled[1].max() - scaled[0].min())))
    if (diff * diff) << max(int(out_row[0, 2]), 0) >= SMALL_INT_LIMIT:
        raise ValueError(f"{name}: squared differences up to {diff}^2 shifted left by "
                         f"{int(out_row[0, 2])} leave 31-bit ints")
    shape = broadcast_shape(t1.shape, t2.shape, name)
    ts = g.add_const(name + "/scaled", scaled.astype(np.int32), "int32")
    tq = g.add_const(name + "/requant", out_row, "int32")
    y = g.add_activation(name + "/out", shape, out_scale, out_zero_point)
    g.add_op(opcodes.SQUARED_DIFFERENCE, [x1, x2, ts, tq], [y], [])
    return y


# --- RSQRT ------------------------------------------------------------------------------------

def inv_sqrt_multiplier(v: int) -> tuple[int, int]:
    """TFLite's GetInvSqrtQuantizedMultiplierExp(v, reverse_shift=-1) on exact ints."""
    if v <= 1:
        return (1 << 31) - 1, 0
    shift = 11
    while v >= 1 << 29:
        v //= 4
        shift += 1
    clz = 32 - v.bit_length()
    pairs = (clz - 1) // 2 - 1
    shift -= pairs
    v <<= 2 * pairs
    half_input = _rdbp(v >> 1, 1)  # F3 input >> 1, times 1/2
    half_three = (1 << 28) + (1 << 27)  # 1.5 in F3
    x = 1 << 28  # F3 one
    for _ in range(5):
        x3 = _shl_saturating(_srdhm(_srdhm(x, x), x), 6)  # F9 -> F3
        x = _shl_saturating(_wrap(_srdhm(half_three, x) - _srdhm(half_input, x3)), 3)
    x = _srdhm(x, 1518500250)  # times sqrt(2) / 2 (F0)
    if shift < 0:
        x = _wrap(x << -shift)
        shift = 0
    return x, -shift


def rsqrt_table(x_scale: float, x_zp: int, y_scale: float, y_zp: int) -> np.ndarray:
    real = 1.0 / float(np.sqrt(np.float32(x_scale)) * np.float32(y_scale))
    m_o, s_o = quantize_multiplier(real)
    out = np.zeros(256, np.int8)
    for x in range(-128, 128):
        v = x - x_zp
        if v == 0:
            out[x + 128] = 127
            continue
        m, s = inv_sqrt_multiplier(max(v, 1))
        d = tflm_requantize(1, m, s + 20)
        out[x + 128] = min(max(tflm_requantize(d, m_o, s_o - 20) + y_zp, -128), 127)
    return out


def rsqrt(g: Graph, x: int, out_scale: float, out_zero_point: int, name: str = "rsqrt") -> int:
    xt = g.tensors[x]
    check_zero_point(out_zero_point, name)
    t = rsqrt_table(xt.scale, xt.zero_point, out_scale, out_zero_point)
    return _table_op(g, opcodes.RSQRT, x, t, out_scale, out_zero_point, name)


def dequantize_table(x_scale: float, x_zp: int) -> np.ndarray:
    """float32 bits of TFLM's static_cast<float>(double(scale) * (x - zero_point))."""
    s = float(np.float32(x_scale))
    reals = np.array([s * (x - x_zp) for x in range(-128, 128)], np.float64).astype(np.float32)
    return reals.view(np.int32)


def dequantize(g: Graph, x: int, name: str = "dequantize") -> int:
    xt = g.tensors[x]
    if xt.dtype != "int8":
        raise ValueError(f"{name}: input is {xt.dtype}; tinyrt dequantizes int8")
    ti = g.add_const(name + "/table", dequantize_table(xt.scale, xt.zero_point), "int32")
    y = g.add_activation(name + "/out", xt.shape, 1.0, 0, "float32")
    g.add_op(opcodes.DEQUANTIZE, [x, ti], [y], [])
    return y


def abs_table(x_scale: float, x_zp: int, y_scale: float, y_zp: int) -> np.ndarray:
    xs, ys = np.float32(x_scale), np.float32(y_scale)
    m, shift = quantize_multiplier(float(np.float32(xs / ys)))
    out = np.zeros(256, np.int8)
    for x in range(-128, 128):
        v = abs(x - x_zp)
        r = v if xs == ys else tflm_requantize(v, m, shift)
        out[x + 128] = min(max(r + y_zp, -128), 127)
    return out


def abs_(g: Graph, x: int, out_scale: float, out_zero_point: int, name: str = "abs") -> int:
    xt = g.tensors[x]
    check_zero_point(out_zero_point, name)
    t = abs_table(xt.scale, xt.zero_point, out_scale, out_zero_point)
    return _table_op(g, opcodes.ABS, x, t, out_scale, out_zero_point, name)


def prelu(g: Graph, x: int, alpha: int, out_scale: float, out_zero_point: int,
          name: str = "prelu") -> int:
    xt, at = g.tensors[x], g.tensors[alpha]
    for z in (xt.zero_point, at.zero_point, out_zero_point):
        check_zero_point(z, name)
    if broadcast_shape(xt.shape, at.shape, name) != tuple(xt.shape):
        raise ValueError(f"{name}: alpha {at.shape} does not broadcast to x {xt.shape}")
    sx, sa, so = (float(np.float32(v)) for v in (xt.scale, at.scale, out_scale))
    rows = requant_rows([sx / so, sx * sa / so])
    if 255 << max(int(rows[0, 2]), 0) >= SMALL_INT_LIMIT or \
            65025 << max(int(rows[1, 2]), 0) >= SMALL_INT_LIMIT:
        raise ValueError(f"{name}: multiplier shifts {rows[:, 2].tolist()} leave 31-bit ints")
    tq = g.add_const(name + "/requant", rows, "int32")
    y = g.add_activation(name + "/out", xt.shape, out_scale, out_zero_point)
    g.add_op(opcodes.PRELU, [x, alpha, tq], [y], [])
    return y
