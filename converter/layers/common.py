"""Shared pieces of the layer builders: float32 scales and requantization tables."""

from __future__ import annotations

import numpy as np

from ..graph import Graph
from ..quantization import (SMALL_INT_LIMIT, check_accumulator, constant_channel_output,
                            requant_rows)

# M = 2^30, shift 0: MultiplyByQuantizedMultiplier(2v) = v exactly for every int v
IDENTITY_ROW = (1 << 15, 0, 0)
PRODUCT_BOUND = 255 * 128  # |x - x_zp| * |w| per product, the kernels' documented bound


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


WIDE_ROW = 6  # int32 row of a wide channel: oc, B >> 15, B & 0x7FFF, M >> 15, M & 0x7FFF, shift


def exact_channels(name: str, w_oc: np.ndarray, bias: np.ndarray | None, in_scale: float,
                   in_zp: int, w_scales, out_scale: float, out_zp: int, act_min: int,
                   act_max: int) -> tuple[np.ndarray, np.ndarray | None, np.ndarray,
                                          tuple[np.ndarray, np.ndarray] | None]:
    """Requantization rows of a conv / depthwise / FC layer whose every run-time value stays
    a 31-bit small int, exact for every int32 bias and weight TFLM accepts.

    w_oc: the layer's int8 weights as (OC, K) rows, K products per output. A channel whose
    accumulator bound (|bias| + K * 255 * 128) << left reaches 2^30 (batch-norm folding leaves
    dead or saturated channels with biases near +-2^30) is "wide":
    - if its output is constant it is stored so: over every possible input its sum of
      products d lies in [d_lo, d_hi] (each product between w * (-128 - x_zp) and
      w * (127 - x_zp)), and TFLM's clamp(MBQM(wrap32(bias + d)) + y_zp) gives one value v at
      both ends of each monotone piece (quantization.constant_channel_output). It becomes
      weights 0, bias 2 * (v - y_zp) and the identity row (M = 2^30, shift 0):
      MBQM(2 * (v - y_zp)) + y_zp = v, inside [act_min, act_max]; the kernel writes v without
      a product's cost beyond its zero weights.
    - else it becomes weights 0, bias 0 and the identity row in the layer's kernel, and is
      listed in `wide`: (rows int32 (n, WIDE_ROW), its original weights int8 (n, K)); the
      kernel's fix-up (tinyrt/kernels/wide_channels.py) recomputes d (|d| < 2^30) and applies
      TFLM's requantization to bias + d with the bias split in 15-bit halves
      (tinyrt/requant_wide.py).
    Returns (weights, bias or None, rows (1 | OC, 3), wide or None)."""
    eff = f32(in_scale) * f32(w_scales) / f32(out_scale)
    rows = requant_rows(eff)
    oc, k = w_oc.shape
    if k * PRODUCT_BOUND >= SMALL_INT_LIMIT:
        raise ValueError(f"{name}: {k} products per output: their sum (up to {k} * 255 * 128) "
                         "does not fit 31-bit small ints on 32-bit boards")
    full = np.repeat(rows, oc, axis=0) if rows.shape[0] == 1 else rows.copy()
    b = np.zeros(oc, np.int64) if bias is None else np.asarray(bias, np.int64)
    w64 = w_oc.astype(np.int64)
    lo_x, hi_x = -128 - int(in_zp), 127 - int(in_zp)
    d_lo = np.minimum(w64 * lo_x, w64 * hi_x).sum(axis=1)
    d_hi = np.maximum(w64 * lo_x, w64 * hi_x).sum(axis=1)
    w_new, b_new, changed = w_oc, b, False
    wide_rows, wide_w = [], []
    for c in range(oc):
        left = max(int(full[c, 2]), 0)
        if (abs(int(b[c])) + k * PRODUCT_BOUND) << left < SMALL_INT_LIMIT:
            continue
        m = (int(full[c, 0]) << 15) | int(full[c, 1])
        v = constant_channel_output(int(b[c]), int(d_lo[c]), int(d_hi[c]), m,
                                    int(full[c, 2]), out_zp, act_min, act_max)
        if not changed:
            w_new, b_new, changed = w_oc.copy(), b.copy(), True
        if v is None:
            bc = int(b[c])
            wide_rows.append((c, bc >> 15, bc & 0x7FFF, int(full[c, 0]), int(full[c, 1]),
                              int(full[c, 2])))
            wide_w.append(w_oc[c].copy())
            v = int(out_zp)
        w_new[c] = 0
        b_new[c] = 2 * (v - int(out_zp))
        full[c] = IDENTITY_ROW
    wide = None
    if wide_rows:
        wide = (np.array(wide_rows, np.int32).reshape(-1, WIDE_ROW),
                np.array(wide_w, np.int8).reshape(len(wide_w), k))
    if not changed:
        return w_oc, bias, rows, None
    keep_bias = bias is not None or bool(np.any(b_new))
    return w_new, (b_new.astype(np.int32) if keep_bias else None), full, wide


def wide_inputs(g: Graph, name: str, wide: tuple[np.ndarray, np.ndarray] | None) -> list[int]:
    """The extra inputs of a layer with wide channels (exact_channels): [rows, weights], or
    [] for none."""
    if wide is None:
        return []
    return [g.add_const(name + "/wide", wide[0], "int32"),
            g.add_const(name + "/wide_weights", wide[1], "int8")]
