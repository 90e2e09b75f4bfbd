"""CONV_2D and DEPTHWISE_CONV_2D: add int8 convolutions to a Graph.

Inputs of both ops: x int8 (N, H, W, C), filter int8, bias int32 (OC) or absent (-1), and an
int32 (OC | 1, 3) requantization table (layers.common.exact_channels: a channel
whose bias is too large for 31-bit ints is proven constant and stored as one). Params (int32):
  CONV_2D            stride_h, stride_w, dilation_h, dilation_w, pad_top, pad_left, out_h, out_w,
                     act_min, act_max
  DEPTHWISE_CONV_2D  stride_h, stride_w, dilation_h, dilation_w, pad_top, pad_left, out_h, out_w,
                     depth_multiplier, act_min, act_max
Output size and leading padding follow TFLite's ComputePaddingHeightWidth (kernels/padding.h);
multipliers follow TFLM's PopulateConvolutionQuantizationParams (double in_scale * w_scale[c] /
out_scale, per channel or broadcast from one scale); clamps CalculateActivationRangeQuantized.
"""

from __future__ import annotations

import numpy as np
from tinyrt import opcodes

from ..graph import Graph
from ..quantization import activation_range
from .common import exact_channels, wide_inputs


def _pair(v, what: str) -> tuple[int, int]:
    a, b = (v, v) if isinstance(v, (int, np.integer)) else v
    if int(a) < 1 or int(b) < 1:
        raise ValueError(f"{what} {v} must be >= 1")
    return int(a), int(b)


def out_size_and_pad(padding: str, in_size: int, k: int, stride: int,
                     dilation: int) -> tuple[int, int]:
    """TFLite's ComputeOutSize and ComputePaddingWithOffset: (output size, leading padding)."""
    eff = (k - 1) * dilation + 1
    padding = str(padding).upper()
    if padding == "SAME":
        out = (in_size + stride - 1) // stride
    elif padding == "VALID":
        out = (in_size + stride - eff) // stride
    else:
        raise ValueError(f"padding {padding!r}, expected 'SAME' or 'VALID'")
    total = max((out - 1) * stride + eff - in_size, 0)
    return out, total // 2


def _geometry(name: str, xshape, kh: int, kw: int, stride, dilation, padding: str) -> list[int]:
    """[stride_h, stride_w, dilation_h, dilation_w, pad_top, pad_left, out_h, out_w]."""
    if len(xshape) != 4:
        raise ValueError(f"{name}: input shape {xshape}, expected NHWC")
    sh, sw = _pair(stride, f"{name}: stride")
    dh, dw = _pair(dilation, f"{name}: dilation")
    oh, pt = out_size_and_pad(padding, xshape[1], kh, sh, dh)
    ow, pl = out_size_and_pad(padding, xshape[2], kw, sw, dw)
    if oh < 1 or ow < 1:
        raise ValueError(f"{name}: {padding} output {oh}x{ow} for input {xshape} and "
                         f"filter {kh}x{kw} (dilation {dh}x{dw})")
    return [sh, sw, dh, dw, pt, pl, oh, ow]


def _scales(name: str, weight_scales, channels: int) -> np.ndarray:
    scales = np.atleast_1d(np.asarray(weight_scales, dtype=np.float32))
    if scales.size not in (1, channels):
        raise ValueError(f"{name}: {scales.size} weight scales for {channels} output channels")
    return scales


def _bias_values(name: str, bias, channels: int) -> np.ndarray | None:
    if bias is None:
        return None
    bias = np.asarray(bias, dtype=np.int32)
    if bias.shape != (channels,):
        raise ValueError(f"{name}: bias shape {bias.shape}, expected ({channels},)")
    return bias


def conv2d(g: Graph, x: int, weights: np.ndarray, weight_scales, bias: np.ndarray | None,
           out_scale: float, out_zero_point: int, stride=(1, 1), dilation=(1, 1),
           padding: str = "SAME", activation: str = "NONE", name: str = "conv") -> int:
    """y = requant(conv(x, w) + b). weights int8 (OC, KH, KW, C), scales per tensor or per OC."""
    xt = g.tensors[x]
    w = np.asarray(weights, dtype=np.int8)
    if w.ndim != 4:
        raise ValueError(f"{name}: weights shape {w.shape}, expected (OC, KH, KW, C)")
    out_c, kh, kw, c = w.shape
    if len(xt.shape) != 4 or xt.shape[3] != c:
        raise ValueError(f"{name}: input shape {xt.shape} does not fit weights {w.shape}")
    geo = _geometry(name, xt.shape, kh, kw, stride, dilation, padding)
    scales = _scales(name, weight_scales, out_c)
    lo, hi = activation_range(activation, np.float32(out_scale), out_zero_point)
    w_oc, bias, rows, wide = exact_channels(name, w.reshape(out_c, -1),
                                            _bias_values(name, bias, out_c), xt.scale,
                                            xt.zero_point, scales, out_scale, out_zero_point,
                                            lo, hi)
    wi = g.add_const(name + "/weights", w_oc.reshape(w.shape), "int8", float(scales[0]), 0,
                     scales.size > 1)
    bi = -1 if bias is None else g.add_const(name + "/bias", bias, "int32")
    qi = g.add_const(name + "/requant", rows, "int32")
    y = g.add_activation(name + "/out", (xt.shape[0], geo[6], geo[7], out_c), out_scale,
                         out_zero_point)
    g.add_op(opcodes.CONV_2D, [x, wi, bi, qi] + wide_inputs(g, name, wide), [y],
             geo + [lo, hi])
    return y


def depthwise_conv2d(g: Graph, x: int, weights: np.ndarray, weight_scales,
                     bias: np.ndarray | None, out_scale: float, out_zero_point: int,
                     depth_multiplier: int = 1, stride=(1, 1), dilation=(1, 1),
                     padding: str = "SAME", activation: str = "NONE",
                     name: str = "dwconv") -> int:
    """y = requant(depthwise_conv(x, w) + b). weights int8 (1, KH, KW, C * depth_multiplier),
    scales per tensor or per output channel (axis 3)."""
    xt = g.tensors[x]
    w = np.asarray(weights, dtype=np.int8)
    if w.ndim != 4 or w.shape[0] != 1:
        raise ValueError(f"{name}: weights shape {w.shape}, expected (1, KH, KW, C * dm)")
    _, kh, kw, out_c = w.shape
    dm = int(depth_multiplier)
    if len(xt.shape) != 4 or dm < 1 or xt.shape[3] * dm != out_c:
        raise ValueError(f"{name}: input shape {xt.shape} with depth multiplier {dm} does not "
                         f"fit weights {w.shape}")
    geo = _geometry(name, xt.shape, kh, kw, stride, dilation, padding)
    scales = _scales(name, weight_scales, out_c)
    lo, hi = activation_range(activation, np.float32(out_scale), out_zero_point)
    w_oc, bias, rows, wide = exact_channels(name, w.reshape(-1, out_c).T,
                                            _bias_values(name, bias, out_c), xt.scale,
                                            xt.zero_point, scales, out_scale, out_zero_point,
                                            lo, hi)
    wi = g.add_const(name + "/weights", np.ascontiguousarray(w_oc.T).reshape(w.shape), "int8",
                     float(scales[0]), 0, scales.size > 1)
    bi = -1 if bias is None else g.add_const(name + "/bias", bias, "int32")
    qi = g.add_const(name + "/requant", rows, "int32")
    y = g.add_activation(name + "/out", (xt.shape[0], geo[6], geo[7], out_c), out_scale,
                         out_zero_point)
    g.add_op(opcodes.DEPTHWISE_CONV_2D, [x, wi, bi, qi] + wide_inputs(g, name, wide), [y],
             geo + [dm, lo, hi])
    return y
