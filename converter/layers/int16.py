"""16x8 layers: int16 activations (symmetric, zero point 0) with int8 weights, TFLite's
"16x8" quantization mode, computed as TFLM's int16 reference kernels do.

CONV_2D 16x8  (kernel mp_runtime/tinyrt/kernels/conv16.py, chosen by the int16 input)
  inputs [x int16 (N, H, W, C), filter int8 (OC, KH, KW, C), bias int32 (OC, 2) or -1,
          requant int32 (OC | 1, 2)]  outputs [y int16]  params as int8 CONV_2D
  bias rows (b >> 15, b & 0x7FFF) of the int64 bias b (|b| < 2^43); requant rows (rm, ts) of
  TFLM's int64 MultiplyByQuantizedMultiplier: rm = min((M + 2^15) >> 16, 0x7FFF),
  ts = 15 - shift, with (M, shift) = QuantizeMultiplier(double in_scale * w_scale[c] /
  out_scale) as PopulateConvolutionQuantizationParams computes them.
DEPTHWISE_CONV_2D 16x8  (kernel depthwise_conv16.py)
  inputs [x int16 (N, H, W, C), filter int8 (1, KH, KW, OC), bias int32 (OC, 2) or -1,
          requant int32 (OC | 1, 2)]  outputs [y int16]  params as int8 DEPTHWISE_CONV_2D;
  bias and requant rows as CONV_2D 16x8.
FULLY_CONNECTED 16x8  (kernel fully_connected16.py)
  inputs [x int16, weights int8 (n_out, n_in), bias int32 (n_out, 2) or -1,
          requant int32 (n_out | 1, 2)]  outputs [y int16 (batches, n_out)]  params [act_min,
          act_max]; bias and requant rows as CONV_2D 16x8.
"""

from __future__ import annotations

import numpy as np
from tinyrt import opcodes

from ..graph import Graph
from ..quantization import quantize_multiplier
from .common import f32
from .conv import _geometry, _scales

INT16_MIN, INT16_MAX = -32768, 32767
BIAS_LIMIT = 1 << 43  # |bias| below this keeps the kernel's accumulator high part < 2^29
PRODUCTS_LIMIT = 1 << 21  # products per output (KH * KW * C), same reason


def activation_range_16(act: str, scale: float) -> tuple[int, int]:
    """CalculateActivationRangeQuantized for an int16 output (zero point 0)."""
    def q(r: float) -> int:  # TfLiteRound(r / scale) in float32, as TFLM
        v = float(np.float32(r) / np.float32(scale))
        return int(np.floor(abs(v) + 0.5)) * (1 if v >= 0 else -1)

    if act in ("NONE", None):
        return INT16_MIN, INT16_MAX
    if act == "RELU":
        return max(INT16_MIN, q(0.0)), INT16_MAX
    if act == "RELU6":
        return max(INT16_MIN, q(0.0)), min(INT16_MAX, q(6.0))
    if act == "RELU_N1_TO_1":
        return max(INT16_MIN, q(-1.0)), min(INT16_MAX, q(1.0))
    raise ValueError(f"unsupported fused activation {act!r}")


def requant_rows_64(effective_scales) -> np.ndarray:
    """Rows (rm, ts) per channel of TFLM's int64 MultiplyByQuantizedMultiplier."""
    rows = []
    for s in np.atleast_1d(np.asarray(effective_scales, dtype=np.float64)):
        m, shift = quantize_multiplier(float(s))
        if m == 0:  # the scale underflowed: every output is round(x * 0) = 0
            rows.append((0, 46))
            continue
        if not -31 <= shift <= 7:
            raise ValueError(f"multiplier {float(s)} has shift {shift}; TFLM's int64 "
                             "requantization takes shifts in [-31, 7]")
        rm = (m + (1 << 15)) >> 16 if m < 0x7FFF0000 else 0x7FFF
        rows.append((rm, 15 - shift))
    return np.array(rows, dtype=np.int32).reshape(-1, 2)


def bias_rows_64(name: str, bias, channels: int) -> np.ndarray | None:
    """The int64 bias as int32 (C, 2) rows (b >> 15, b & 0x7FFF), |b| < 2^43 checked."""
    if bias is None:
        return None
    b = np.asarray(bias, dtype=np.int64)
    if b.shape != (channels,):
        raise ValueError(f"{name}: bias shape {b.shape}, expected ({channels},)")
    if b.size and int(np.abs(b).max()) >= BIAS_LIMIT:
        raise ValueError(f"{name}: bias {int(np.abs(b).max())} beyond 2^43: tinyrt's int64 "
                         "accumulator on 31-bit ints holds |bias| < 2^43")
    return np.stack([b >> 15, b & 0x7FFF], axis=1).astype(np.int32)


def _check_int16_input(g: Graph, x: int, name: str):
    xt = g.tensors[x]
    if xt.dtype != "int16" or xt.zero_point != 0:
        raise ValueError(f"{name}: input {xt.dtype} zero point {xt.zero_point}, expected int16 "
                         "with zero point 0")
    return xt


def conv2d_16x8(g: Graph, x: int, weights: np.ndarray, weight_scales, bias, out_scale: float,
                stride=(1, 1), dilation=(1, 1), padding: str = "SAME",
                activation: str = "NONE", name: str = "conv") -> int:
    """y = requant64(conv(x, w) + b), x and y int16 (zero point 0), weights int8
    (OC, KH, KW, C) per tensor or per OC, bias int64 (OC) or None."""
    xt = _check_int16_input(g, x, name)
    w = np.asarray(weights, dtype=np.int8)
    if w.ndim != 4:
        raise ValueError(f"{name}: weights shape {w.shape}, expected (OC, KH, KW, C)")
    out_c, kh, kw, c = w.shape
    if len(xt.shape) != 4 or xt.shape[3] != c:
        raise ValueError(f"{name}: input shape {xt.shape} does not fit weights {w.shape}")
    if kh * kw * c >= PRODUCTS_LIMIT:
        raise ValueError(f"{name}: {kh * kw * c} products per output, at most 2^21 - 1")
    geo = _geometry(name, xt.shape, kh, kw, stride, dilation, padding)
    scales = _scales(name, weight_scales, out_c)
    lo, hi = activation_range_16(activation, out_scale)
    rows = requant_rows_64(f32(xt.scale) * f32(scales) / f32(out_scale))
    brows = bias_rows_64(name, bias, out_c)
    wi = g.add_const(name + "/weights", w, "int8", float(scales[0]), 0, scales.size > 1)
    bi = -1 if brows is None else g.add_const(name + "/bias", brows, "int32")
    qi = g.add_const(name + "/requant", rows, "int32")
    y = g.add_activation(name + "/out", (xt.shape[0], geo[6], geo[7], out_c), out_scale, 0,
                         "int16")
    g.add_op(opcodes.CONV_2D, [x, wi, bi, qi], [y], geo + [lo, hi])
    return y


def fully_connected_16x8(g: Graph, x: int, weights: np.ndarray, weight_scales, bias,
                         out_scale: float, activation: str = "NONE", name: str = "fc") -> int:
    """y = requant64(x @ w.T + b), x and y int16 (zero point 0), weights int8 (n_out, n_in)
    per tensor or per row, bias int64 (n_out) or None."""
    xt = _check_int16_input(g, x, name)
    w = np.asarray(weights, dtype=np.int8)
    if w.ndim != 2:
        raise ValueError(f"{name}: weights shape {w.shape}, expected (n_out, n_in)")
    n_out, n_in = w.shape
    size = int(np.prod(xt.shape))
    if size % n_in or n_in >= PRODUCTS_LIMIT:
        raise ValueError(f"{name}: input shape {xt.shape} does not fit weights {w.shape}")
    scales = _scales(name, weight_scales, n_out)
    lo, hi = activation_range_16(activation, out_scale)
    rows = requant_rows_64(f32(xt.scale) * f32(scales) / f32(out_scale))
    brows = bias_rows_64(name, bias, n_out)
    wi = g.add_const(name + "/weights", w, "int8", float(scales[0]), 0, scales.size > 1)
    bi = -1 if brows is None else g.add_const(name + "/bias", brows, "int32")
    qi = g.add_const(name + "/requant", rows, "int32")
    y = g.add_activation(name + "/out", (size // n_in, n_out), out_scale, 0, "int16")
    g.add_op(opcodes.FULLY_CONNECTED, [x, wi, bi, qi], [y], [lo, hi])
    return y


def depthwise_conv2d_16x8(g: Graph, x: int, weights: np.ndarray, weight_scales, bias,
                          out_scale: float, depth_multiplier: int = 1, stride=(1, 1),
                          dilation=(1, 1), padding: str = "SAME", activation: str = "NONE",
                          name: str = "dwconv") -> int:
    """y = requant64(depthwise_conv(x, w) + b), x and y int16 (zero point 0), weights int8
    (1, KH, KW, C * dm) per tensor or per output channel, bias int64 (OC) or None."""
    xt = _check_int16_input(g, x, name)
    w = np.asarray(weights, dtype=np.int8)
    if w.ndim != 4 or w.shape[0] != 1:
        raise ValueError(f"{name}: weights shape {w.shape}, expected (1, KH, KW, C * dm)")
    _, kh, kw, out_c = w.shape
    dm = int(depth_multiplier)
    if len(xt.shape) != 4 or dm < 1 or xt.shape[3] * dm != out_c:
        raise ValueError(f"{name}: input shape {xt.shape} with depth multiplier {dm} does not "
                         f"fit weights {w.shape}")
    if kh * kw >= PRODUCTS_LIMIT:
        raise ValueError(f"{name}: {kh * kw} products per output, at most 2^21 - 1")
    geo = _geometry(name, xt.shape, kh, kw, stride, dilation, padding)
    scales = _scales(name, weight_scales, out_c)
    lo, hi = activation_range_16(activation, out_scale)
    rows = requant_rows_64(f32(xt.scale) * f32(scales) / f32(out_scale))
    brows = bias_rows_64(name, bias, out_c)
    wi = g.add_const(name + "/weights", w, "int8", float(scales[0]), 0, scales.size > 1)
    bi = -1 if brows is None else g.add_const(name + "/bias", brows, "int32")
    qi = g.add_const(name + "/requant", rows, "int32")
    y = g.add_activation(name + "/out", (xt.shape[0], geo[6], geo[7], out_c), out_scale, 0,
                         "int16")
    g.add_op(opcodes.DEPTHWISE_CONV_2D, [x, wi, bi, qi], [y], geo + [dm, lo, hi])
    return y
