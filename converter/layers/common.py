"""Shared pieces of the layer builders: float32 scales and requantization tables."""

from __future__ import annotations

import numpy as np

from ..graph import Graph
from ..quantization import check_accumulator, requant_rows


def f32(x) -> np.ndarray:
    """Scales as TFLite holds them (float32), widened to double as TFLM's Prepare does."""
    return np.asarray(x, dtype=np.float32).astype(np.float64)


def requant_const(g: Graph, name: str, in_scale: float, w_scales, out_scale: float,
                  bias, k: int) -> int:
    """An int32 (C, 3) table of (M >> 15, M & 0x7FFF, shift) for effective scales
    in_scale * w_scale[c] / out_scale, after checking the accumulator bound for k products.
    The product is formed in double, per channel and per tensor alike: the tflite-micro build
    we match does so for FULLY_CONNECTED too (tests/test_int8_oracle.py pins it)."""
    eff = f32(in_scale) * f32(w_scales) / f32(out_scale)
    rows = requant_rows(eff)
    bias_max = int(np.max(np.abs(bias))) if bias is not None and np.size(bias) else 0
    check_accumulator(bias_max, k, int(rows[:, 2].max()), name)
    return g.add_const(name + "/requant", rows, "int32")
