"""ADD, MUL and QUANTIZE (int8 -> int8): elementwise int8 layers.

Every integer is computed as TFLM's Prepare computes it, from the float32 scales widened to
double. Requantization rows are (M >> 15, M & 0x7FFF, shift) (quantization.requant_rows).

ADD   (kernel mp_runtime/tinyrt/kernels/add.py, TFLM add_common.cc CalculateOpDataAdd)
  inputs  [x1, x2, requant int32 (3, 3)]  rows: input1, input2, output multipliers, each
          QuantizeMultiplierSmallerThanOneExp of
            s1 / (2 max(s1, s2)),  s2 / (2 max(s1, s2)),  2 max(s1, s2) / (2^20 s_out)
  outputs [y]  the broadcast shape of x1 and x2 (at most 4-D)
  params  [act_min, act_max]          (left_shift 20 is the kernel's constant)
MUL   (kernel mul.py, TFLM mul_common.cc CalculateOpDataMul)
  inputs  [x1, x2, requant int32 (1, 3)]  QuantizeMultiplier(s1 * s2 / s_out)
  outputs [y]  the broadcast shape
  params  [act_min, act_max]
SUB   (kernel sub.py, TFLM sub_common.cc CalculateOpDataSub): as ADD (the same multipliers,
          in double), y from v1 - v2
MAXIMUM, MINIMUM  (kernel maximum_minimum.py, TFLM maximum_minimum.cc)
  inputs  [x1, x2]  raw int8 max / min, no rescaling (TFLM ignores the quantization)
  outputs [y]  the broadcast shape
  params  []
QUANTIZE  (kernel quantize.py, TFLM quantize_common.cc -> Requantize)
  inputs  [x, requant int32 (1, 3)]  QuantizeMultiplier(s_x / s_out)
  outputs [y]  x's shape
  params  []
"""

from __future__ import annotations

import numpy as np

from tinyrt import opcodes

from ..graph import Graph
from ..quantization import SMALL_INT_LIMIT, activation_range, quantize_multiplier, requant_rows
from .common import f32

ADD_LEFT_SHIFT = 20  # TFLM's left_shift for int8 ADD


def broadcast_shape(a: tuple[int, ...], b: tuple[int, ...], name: str) -> tuple[int, ...]:
    """TFLite's (numpy's) broadcast of two shapes, at most 4-D."""
    if len(a) > 4 or len(b) > 4:
        raise ValueError(f"{name}: shapes {a}, {b}: at most 4-D")
    try:
        return tuple(int(d) for d in np.broadcast_shapes(tuple(a), tuple(b)))
    except ValueError:
        raise ValueError(f"{name}: shapes {a} and {b} do not broadcast") from None


def check_zero_point(zp: int, name: str) -> None:
    if not -128 <= int(zp) <= 127:
        raise ValueError(f"{name}: zero point {zp} is not an int8")


def _smaller_than_one(real: float, what: str) -> tuple[int, int]:
    """TFLite's QuantizeMultiplierSmallerThanOneExp (TFLM aborts where this raises)."""
    if not 0.0 < real < 1.0:
        raise ValueError(f"{what}: multiplier {real} must lie in (0, 1)")
    m, shift = quantize_multiplier(real)
    if shift > 0:
        raise ValueError(f"{what}: multiplier {real} rounds to 1.0")
    return m, shift


def add_multipliers(s1: float, s2: float, so: float, name: str = "add") -> list[float]:
    """The three real multipliers of int8 ADD, in double from float32 scales."""
    s1, s2, so = float(f32(s1)), float(f32(s2)), float(f32(so))
    twice_max = 2.0 * max(s1, s2)
    reals = [s1 / twice_max, s2 / twice_max, twice_max / ((1 << ADD_LEFT_SHIFT) * so)]
    for what, r in zip(("input1", "input2", "output"), reals):
        _smaller_than_one(r, f"{name} {what}")
    return reals


def _binary(g: Graph, opcode: int, x1: int, x2: int, rows: np.ndarray, out_scale: float,
            out_zero_point: int, activation: str, name: str) -> int:
    shape = broadcast_shape(g.tensors[x1].shape, g.tensors[x2].shape, name)
    check_zero_point(out_zero_point, name)
    qi = g.add_const(name + "/requant", rows, "int32")
    y = g.add_activation(name + "/out", shape, out_scale, out_zero_point)
    lo, hi = activation_range(activation, np.float32(out_scale), out_zero_point)
    g.add_op(opcode, [x1, x2, qi], [y], [lo, hi])
    return y


def add(g: Graph, x1: int, x2: int, out_scale: float, out_zero_point: int,
        activation: str = "NONE", name: str = "add") -> int:
    """y = x1 + x2 in real terms (broadcasting), requantized to (out_scale, out_zero_point)."""
    t1, t2 = g.tensors[x1], g.tensors[x2]
    rows = requant_rows(add_multipliers(t1.scale, t2.scale, out_scale, name))
    # |(x - zp) << 20| < 2^28 and the multipliers are < 1: no bound to check (kernel comment)
    return _binary(g, opcodes.ADD, x1, x2, rows, out_scale, out_zero_point, activation, name)


def sub(g: Graph, x1: int, x2: int, out_scale: float, out_zero_point: int,
        activation: str = "NONE", name: str = "sub") -> int:
    """y = x1 - x2 in real terms (broadcasting), requantized to (out_scale, out_zero_point)."""
    t1, t2 = g.tensors[x1], g.tensors[x2]
    rows = requant_rows(add_multipliers(t1.scale, t2.scale, out_scale, name))
    # as ADD: |(x - zp) << 20| < 2^28, multipliers < 1 (kernel comment)
    return _binary(g, opcodes.SUB, x1, x2, rows, out_scale, out_zero_point, activation, name)


def _max_min(g: Graph, opcode: int, x1: int, x2: int, out_scale: float, out_zero_point: int,
             name: str) -> int:
    shape = broadcast_shape(g.tensors[x1].shape, g.tensors[x2].shape, name)
    check_zero_point(out_zero_point, name)
    y = g.add_activation(name + "/out", shape, out_scale, out_zero_point)
    g.add_op(opcode, [x1, x2], [y], [])
    return y


def maximum(g: Graph, x1: int, x2: int, out_scale: float, out_zero_point: int,
            name: str = "maximum") -> int:
    """y = max(x1, x2) on the raw int8 values (broadcasting), as TFLM does."""
    return _max_min(g, opcodes.MAXIMUM, x1, x2, out_scale, out_zero_point, name)


def minimum(g: Graph, x1: int, x2: int, out_scale: float, out_zero_point: int,
            name: str = "minimum") -> int:
    """y = min(x1, x2) on the raw int8 values (broadcasting), as TFLM does."""
    return _max_min(g, opcodes.MINIMUM, x1, x2, out_scale, out_zero_point, name)


def mul(g: Graph, x1: int, x2: int, out_scale: float, out_zero_point: int,
        activation: str = "NONE", name: str = "mul") -> int:
    """y = x1 * x2 in real terms (broadcasting), requantized to (out_scale, out_zero_point)."""
    t1, t2 = g.tensors[x1], g.tensors[x2]
    rows = requant_rows(f32(t1.scale) * f32(t2.scale) / f32(out_scale))
    if (255 * 255) << max(int(rows[0, 2]), 0) >= SMALL_INT_LIMIT:
        raise ValueError(f"{name}: multiplier shift {int(rows[0, 2])}: products up to 65025 "
                         "would leave 31-bit ints (at most 14)")
    return _binary(g, opcodes.MUL, x1, x2, rows, out_scale, out_zero_point, activation, name)


def quantize(g: Graph, x: int, out_scale: float, out_zero_point: int,
             name: str = "quantize") -> int:
    """Requantize int8 x to (out_scale, out_zero_point)."""
    xt = g.tensors[x]
    check_zero_point(out_zero_point, name)
    rows = requant_rows(f32(xt.scale) / f32(out_scale))
    if 255 << max(int(rows[0, 2]), 0) >= SMALL_INT_LIMIT:
        raise ValueError(f"{name}: scale ratio {xt.scale / out_scale} needs shift "
                         f"{int(rows[0, 2])}, at most 21")
    qi = g.add_const(name + "/requant", rows, "int32")
    y = g.add_activation(name + "/out", xt.shape, out_scale, out_zero_point)
    g.add_op(opcodes.QUANTIZE, [x, qi], [y], [])
    return y
