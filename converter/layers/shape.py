"""RESHAPE, PAD, MEAN and CONCATENATION: int8 layers that move, pad or reduce data.

RESHAPE  (kernel mp_runtime/tinyrt/kernels/reshape.py)
  inputs [x]  outputs [y] (new shape, x's quantization)  params []
PAD  (kernel pad.py, TFLM pad.cc constant mode: pads with the output zero point; int8, or
  int16 with zero point 0, the output taking x's dtype)
  inputs [x]  outputs [y] (x's quantization by default)  params [before_0, after_0, ...,
  after_{r-1}]
MEAN  (kernel mean.py, TFLM reduce_common.cc EvalIntegerMean -> QuantizedMeanOrSum)
  inputs [x, requant int32 (1, 3)]  outputs [y]  params [reduced axes, resolved and unique]
  requant row (M' >> 15, M' & 0x7FFF, shift') with 1/n folded in as TFLM does:
    (M, s) = QuantizeMultiplier(double(s_x) / double(s_y)), k = min(floor(log2 n), 32, 31 + s),
    M' = (int64(M) << k) / n, shift' = s - k
CONCATENATION  (kernel concatenation.py, TFLM concatenation.cc: a raw int8 copy)
  inputs [x_0, ..., x_{k-1}]  outputs [y]  params [axis (resolved, >= 0)]
  TFLM requires every input's scale and zero point to equal the output's; inputs that differ
  are first requantized by a QUANTIZE op (elementwise.quantize), as the TFLite converter does.
"""

from __future__ import annotations

import numpy as np

from tinyrt import opcodes

from ..graph import Graph
from ..quantization import SMALL_INT_LIMIT, quantize_multiplier
from .common import f32
from .elementwise import check_zero_point, quantize


def reshape(g: Graph, x: int, shape, name: str = "reshape") -> int:
    """x's data under a new shape (one dim may be -1, as in TFLite)."""
    xt = g.tensors[x]
    size = int(np.prod(xt.shape))
    shape = [int(d) for d in shape]
    if shape.count(-1) > 1 or any(d == 0 or d < -1 for d in shape):
        raise ValueError(f"{name}: bad shape {shape}")
    if -1 in shape:
        rest = -int(np.prod(shape))
        if size % rest:
            raise ValueError(f"{name}: cannot reshape {xt.shape} to {shape}")
        shape[shape.index(-1)] = size // rest
    if int(np.prod(shape)) != size:
        raise ValueError(f"{name}: cannot reshape {xt.shape} ({size} elements) to {shape}")
    y = g.add_activation(name + "/out", shape, xt.scale, xt.zero_point, xt.dtype)
    g.add_op(opcodes.RESHAPE, [x], [y], [])
    return y


def pad(g: Graph, x: int, paddings, out_scale: float | None = None,
        out_zero_point: int | None = None, name: str = "pad") -> int:
    """Pad every dim by (before, after) with the output zero point. paddings: r pairs.

    The output quantization defaults to x's; if given otherwise, x's raw values are still
    copied unchanged (TFLM does not requantize in PAD) and only the padding is real 0."""
    xt = g.tensors[x]
    out_scale = xt.scale if out_scale is None else out_scale
    out_zero_point = xt.zero_point if out_zero_point is None else int(out_zero_point)
    if xt.dtype == "int16":  # 16x8 models: symmetric int16, the byte pairs copied
        if out_zero_point != 0:
            raise ValueError(f"{name}: int16 output zero point {out_zero_point}, expected 0")
    else:
        check_zero_point(out_zero_point, name)
    pairs = [(int(a), int(b)) for a, b in np.asarray(paddings, dtype=np.int64).reshape(-1, 2)]
    if len(pairs) != len(xt.shape) or any(a < 0 or b < 0 for a, b in pairs):
        raise ValueError(f"{name}: paddings {pairs} for shape {xt.shape}: expected one "
                         "non-negative (before, after) pair per dim")
    shape = tuple(d + a + b for d, (a, b) in zip(xt.shape, pairs))
    y = g.add_activation(name + "/out", shape, out_scale, out_zero_point, xt.dtype)
    g.add_op(opcodes.PAD, [x], [y], [v for p in pairs for v in p])
    return y


def resolve_axes(rank: int, axes) -> list[int]:
    """TFLite's ResolveAxis: negatives counted from the end, repeats dropped, order kept."""
    out: list[int] = []
    for a in np.atleast_1d(np.asarray(axes, dtype=np.int64)).tolist():
        r = a + rank if a < 0 else a
        if not 0 <= r < rank:
            raise ValueError(f"axis {a} out of range for rank {rank}")
        if r not in out:
            out.append(r)
    return out


def mean_requant_row(x_scale: float, out_scale: float, n: int) -> tuple[int, int, int]:
    """TFLM's folded MEAN multiplier: (M' >> 15, M' & 0x7FFF, shift') for n elements."""
    m, s = quantize_multiplier(float(f32(x_scale) / f32(out_scale)))
    k = min(n.bit_length() - 1, 32, 31 + s)
    m2 = (m << k) // n  # < 2^31: 2^k <= n
    return m2 >> 15, m2 & 0x7FFF, s - k


def mean(g: Graph, x: int, axes, keep_dims: bool = True, out_scale: float | None = None,
         out_zero_point: int | None = None, name: str = "mean") -> int:
    """Mean over `axes`; the output quantization defaults to x's."""
    xt = g.tensors[x]
    out_scale = xt.scale if out_scale is None else out_scale
    out_zero_point = xt.zero_point if out_zero_point is None else int(out_zero_point)
    check_zero_point(out_zero_point, name)
    red = resolve_axes(len(xt.shape), axes)
    n = int(np.prod([xt.shape[a] for a in red])) if red else 1
    hi, lo, shift = mean_requant_row(xt.scale, out_scale, n)
    if (255 * n) << max(shift, 0) >= SMALL_INT_LIMIT:
        raise ValueError(f"{name}: sums of {n} elements shifted by {shift} leave 31-bit ints")
    qi = g.add_const(name + "/requant", np.array([[hi, lo, shift]], dtype=np.int32), "int32")
    if keep_dims:
        shape = tuple(1 if i in red else d for i, d in enumerate(xt.shape))
    else:
        shape = tuple(d for i, d in enumerate(xt.shape) if i not in red)
    y = g.add_activation(name + "/out", shape, out_scale, out_zero_point)
    g.add_op(opcodes.MEAN, [x, qi], [y], sorted(red))
    return y


def concatenation(g: Graph, xs: list[int], axis: int, out_scale: float | None = None,
                  out_zero_point: int | None = None, name: str = "concat") -> int:
    """Concatenate along `axis`; the output quantization defaults to the first input's.
    Inputs quantized otherwise are requantized first (one QUANTIZE op each)."""
    if not xs:
        raise ValueError(f"{name}: no inputs")
    ts = [g.tensors[x] for x in xs]
    rank = len(ts[0].shape)
    ax = resolve_axes(rank, axis)[0]
    for t in ts:
        if len(t.shape) != rank or any(t.shape[i] != ts[0].shape[i]
                                       for i in range(rank) if i != ax):
            raise ValueError(f"{name}: shapes {[u.shape for u in ts]} do not concatenate on "
                             f"axis {ax}")
    out_scale = float(np.float32(ts[0].scale if out_scale is None else out_scale))
    out_zero_point = ts[0].zero_point if out_zero_point is None else int(out_zero_point)
    check_zero_point(out_zero_point, name)
    ins = []
    for i, (x, t) in enumerate(zip(xs, ts)):
        if float(np.float32(t.scale)) != out_scale or t.zero_point != out_zero_point:
            x = quantize(g, x, out_scale, out_zero_point, name=f"{name}/requant{i}")
        ins.append(x)
    shape = list(ts[0].shape)
    shape[ax] = sum(t.shape[ax] for t in ts)
    y = g.add_activation(name + "/out", shape, out_scale, out_zero_point)
    g.add_op(opcodes.CONCATENATION, ins, [y], [ax])
    return y
