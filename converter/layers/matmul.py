"""BATCH_MATMUL (int8): kernel mp_runtime/tinyrt/kernels/batch_matmul.py, TFLM batch_matmul.cc.

  inputs  [lhs, rhs, requant int32 (1, 3)]: QuantizeMultiplier(double(s_l) double(s_r) / s_y)
  outputs [y]: broadcast batch dims + (M, N), at most 4-D
  params  [B0, B1, M, N, K, lhs strides b0, b1, m, k, rhs strides b0, b1, k, n]
adj_x reads lhs as (..., K, M), adj_y reads rhs as (..., N, K) (TFLM transposes them into
scratch tensors; tinyrt reads them with swapped strides, no copy). No fused activation: the
clamp is int8's [-128, 127].
"""

from __future__ import annotations

import numpy as np

from tinyrt import opcodes

from ..graph import Graph
from ..quantization import SMALL_INT_LIMIT, requant_rows
from .common import f32
from .elementwise import check_zero_point


def _strides(shape: tuple[int, ...]) -> list[int]:
    out, step = [], 1
    for d in reversed(shape):
        out.append(step)
        step *= d
    return out[::-1]


def batch_matmul(g: Graph, lhs: int, rhs: int, out_scale: float, out_zero_point: int,
                 adj_x: bool = False, adj_y: bool = False, name: str = "batch_matmul") -> int:
    lt, rt = g.tensors[lhs], g.tensors[rhs]
    for t in (lt, rt):
        check_zero_point(t.zero_point, name)
        if t.dtype != "int8" or len(t.shape) < 2:
            raise ValueError(f"{name}: operand {t.name!r} is {t.dtype} {t.shape}, expected "
                             "int8 with at least 2 dims")
    check_zero_point(out_zero_point, name)
    ls, rs = tuple(lt.shape), tuple(rt.shape)
    m, kl = (ls[-1], ls[-2]) if adj_x else (ls[-2], ls[-1])
    kr, n = (rs[-1], rs[-2]) if adj_y else (rs[-2], rs[-1])
    if kl != kr:
        raise ValueError(f"{name}: lhs {ls} (adj_x {adj_x}) and rhs {rs} (adj_y {adj_y}) "
                         "disagree on the inner dim")
    try:
        batch = tuple(int(d) for d in np.broadcast_shapes(ls[:-2], rs[:-2]))
    except ValueError:
        raise ValueError(f"{name}: batch dims {ls[:-2]} and {rs[:-2]} do not broadcast") \
            from None
    if len(batch) > 2:
        raise ValueError(f"{name}: {len(batch)} batch dims, at most 2 (4-D tensors)")

    def batch_strides(shape: tuple[int, ...]) -> list[int]:
        st = _strides(shape)[:-2]
        dims = list(shape[:-2])
        st = [0] * (len(batch) - len(dims)) + st
        dims = [1] * (len(batch) - len(dims)) + dims
        st = [s if d != 1 else 0 for s, d in zip(st, dims)]
        return [0] * (2 - len(st)) + st

    lst, rst = _strides(ls), _strides(rs)
    l_mk = [lst[-1], lst[-2]] if adj_x else [lst[-2], lst[-1]]
    r_kn = [rst[-1], rst[-2]] if adj_y else [rst[-2], rst[-1]]
    b = [1] * (2 - len(batch)) + list(batch)
    rows = requant_rows([float(f32(lt.scale) * f32(rt.scale) / f32(out_scale))])
    if (kl * 255 * 255) << max(int(rows[0, 2]), 0) >= SMALL_INT_LIMIT:
        raise ValueError(f"{name}: {kl} products shifted left by {int(rows[0, 2])} leave "
                         "31-bit ints")
    tq = g.add_const(name + "/requant", rows, "int32")
    y = g.add_activation(name + "/out", batch + (m, n), out_scale, out_zero_point)
    g.add_op(opcodes.BATCH_MATMUL, [lhs, rhs, tq], [y],
             b + [m, n, kl] + batch_strides(ls) + l_mk + batch_strides(rs) + r_kn)
    return y
