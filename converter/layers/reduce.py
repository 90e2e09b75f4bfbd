"""REDUCE_MAX and REDUCE_MIN (int8): kernel mp_runtime/tinyrt/kernels/reduce_extreme.py, TFLM
reduce_common.cc (raw int8 max / min; TFLM requires equal input and output quantization).

  inputs  [x]  outputs [y]: x's shape without the reduced axes (keep_dims: as 1)
  params  [sign (1 max, -1 min), kept dims (4), their x strides (4), reduced dims (4), their
          x strides (4)]
"""

from __future__ import annotations

import numpy as np

from tinyrt import opcodes

from ..graph import Graph
from .shape import resolve_axes


def _pad4(dims: list[int], strides: list[int]) -> list[int]:
    return [1] * (4 - len(dims)) + dims + [0] * (4 - len(strides)) + strides


def reduce_extreme(g: Graph, x: int, axes, keep_dims: bool = False, maximum: bool = True,
                   name: str = "reduce") -> int:
    xt = g.tensors[x]
    shape = list(xt.shape)
    if xt.dtype != "int8" or len(shape) > 4:
        raise ValueError(f"{name}: input {xt.dtype} {tuple(shape)}, expected int8, at most 4-D")
    red = resolve_axes(len(shape), axes)
    strides = [int(np.prod(shape[i + 1:])) for i in range(len(shape))]
    kept = [i for i in range(len(shape)) if i not in red]
    params = [1 if maximum else -1]
    params += _pad4([shape[i] for i in kept], [strides[i] for i in kept])
    params += _pad4([shape[i] for i in red], [strides[i] for i in red])
    out = [1 if i in red else d for i, d in enumerate(shape)] if keep_dims else \
        [shape[i] for i in kept]
    y = g.add_activation(name + "/out", out or [1], xt.scale, xt.zero_point)
    g.add_op(opcodes.REDUCE_MAX if maximum else opcodes.REDUCE_MIN, [x], [y], params)
    return y
