"""Shared pieces of the layer builders: float32 scales and requantization tables."""

from __future__ import annotations

import numpy as np

from ..graph import Graph
from ..quantization import check_accumulator, requant_rows


def f32(x) -> np.ndarray:
    """Scales as TFLite holds them (float32), widened to double as TFLM's Prepare does."""
    return np.asarray(x, dtype=np.float32).astype(np.float64)


def requant_const(g: Graph, name: str, in_scale: float, w_scales, out_scale: float,
                  bias, k: int, float32_product: bool = False) -> int:
    """An int32 (C, 3) table of (M >> 15, M & 0x7FFF, shift) for effective scales
    in_scale * w_scale[c] / out_scale, after checking the accumulator bound for k products.

    float32_product: the product in_scale * w_scale is rounded to float32 before the double
    division (TFLM's GetQuantizedConvolutionMultipler, used by per-tensor FULLY_CONNECTED)."""
    if float32_product:
        prod = (np.asarray(in_scale, np.float32) * np.asarray(w_scales, np.float32))
        eff = prod.astype(np.float64) / f32(out_scale)
    else:
        eff = f32(in_scale) * f32(w_scales) / f32(out_scale)
    rows = requant_rows(eff)
    bias_max = int(np.max(np.abs(bias))) if bias is not None and np.size(bias) else 0
    check_accumulator(bias_max, k, int(rows[:, 2].max()), name)
    return g.add_const(name + "/requant", rows, "int32")
