"""FULLY_CONNECTED: add an int8 fully connected layer to a Graph.

Like every layer builder it validates its arguments, precomputes every integer the kernel
needs (requant rows, clamps) exactly as TFLM's Prepare would, and returns the index of the
output tensor.
Scales are float32 values (TFLite stores them so; the effective scale is formed in double).
"""

from __future__ import annotations

import numpy as np

from tinyrt import opcodes

from ..graph import Graph
from ..quantization import activation_range
from .common import exact_channels, wide_inputs


def fully_connected(g: Graph, x: int, weights: np.ndarray, weight_scales, bias: np.ndarray | None,
                    out_scale: float, out_zero_point: int, activation: str = "NONE",
                    name: str = "fc") -> int:
    """y = requant(x @ w.T + b). weights int8 (n_out, n_in), scales per tensor or per row."""
    xt = g.tensors[x]
    w = np.asarray(weights, dtype=np.int8)
    n_out, n_in = w.shape
    if xt.shape[-1] != n_in and int(np.prod(xt.shape)) % n_in:
        raise ValueError(f"{name}: input shape {xt.shape} does not fit weights {w.shape}")
    batches = int(np.prod(xt.shape)) // n_in
    scales = np.atleast_1d(np.asarray(weight_scales, dtype=np.float32))
    if scales.size not in (1, n_out):
        raise ValueError(f"{name}: {scales.size} weight scales for {n_out} outputs")
    if bias is not None:
        bias = np.asarray(bias, dtype=np.int32)
        if bias.shape != (n_out,):
            raise ValueError(f"{name}: bias shape {bias.shape}, expected ({n_out},)")
    lo, hi = activation_range(activation, np.float32(out_scale), out_zero_point)
    w, bias, rows, wide = exact_channels(name, w, bias, xt.scale, xt.zero_point, scales,
                                         out_scale, out_zero_point, lo, hi)
    wi = g.add_const(name + "/weights", w, "int8", float(scales[0]), 0, scales.size > 1)
    bi = -1 if bias is None else g.add_const(name + "/bias", bias, "int32")
    qi = g.add_const(name + "/requant", rows, "int32")
    y = g.add_activation(name + "/out", (batches, n_out), out_scale, out_zero_point)
    g.add_op(opcodes.FULLY_CONNECTED, [x, wi, bi, qi] + wide_inputs(g, name, wide), [y],
             [lo, hi])
    return y
