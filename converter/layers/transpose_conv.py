"""TRANSPOSE_CONV (int8, per-channel weights): kernel mp_runtime/tinyrt/kernels/transpose_conv.py,
TFLM transpose_conv.cc (reference integer_ops/transpose_conv.h).

  inputs  [x (N, H, W, IC), w int8 (OC, KH, KW, IC), bias int32 (OC) or absent,
           requant int32 (OC | 1, 3) of s_x s_w[oc] / s_y (PopulateConvolutionQuantizationParams,
           as CONV_2D)]
  outputs [y (N, OH, OW, OC)]: the output shape is the op's output_shape input
  params  [stride_h, stride_w, pad_top, pad_left, act_min, act_max]; the pads are
          ComputePaddingHeightWidth(stride, dilation 1, OH, OW, KH, KW, padding), computed on
          the output's size as TFLM's Prepare does.
"""

from __future__ import annotations

import numpy as np

from tinyrt import opcodes

from ..graph import Graph
from ..quantization import activation_range
from .common import requant_const
from .conv import _bias_values, _pair, _scales, out_size_and_pad
from .elementwise import check_zero_point


def transpose_conv(g: Graph, x: int, weights: np.ndarray, weight_scales, bias, out_shape,
                   out_scale: float, out_zero_point: int, stride=(1, 1),
                   padding: str = "SAME", activation: str = "NONE",
                   name: str = "transpose_conv") -> int:
    xt = g.tensors[x]
    w = np.asarray(weights, np.int8)
    if w.ndim != 4 or len(xt.shape) != 4 or xt.shape[3] != w.shape[3]:
        raise ValueError(f"{name}: input {xt.shape} and filter {w.shape}: expected NHWC input "
                         "and (OC, KH, KW, IC) filter")
    oc, kh, kw, ic = w.shape
    out_shape = tuple(int(d) for d in np.asarray(out_shape).ravel())
    if len(out_shape) != 4 or out_shape[0] != xt.shape[0] or out_shape[3] != oc:
        raise ValueError(f"{name}: output shape {out_shape} for input {xt.shape} and {oc} "
                         "filters")
    check_zero_point(out_zero_point, name)
    sh, sw = _pair(stride, f"{name}: stride")
    _, pt = out_size_and_pad(padding, out_shape[1], kh, sh, 1)
    _, pl = out_size_and_pad(padding, out_shape[2], kw, sw, 1)
    scales = _scales(name, weight_scales, oc)
    b = _bias_values(name, bias, oc)
    lo, hi = activation_range(activation, np.float32(out_scale), out_zero_point)
    wi = g.add_const(name + "/weights", w, "int8", float(scales[0]), 0, scales.size > 1)
    bi = -1 if b is None else g.add_const(name + "/bias", b, "int32")
    qi = requant_const(g, name, xt.scale, scales, out_scale, b, kh * kw * ic)
    y = g.add_activation(name + "/out", out_shape, out_scale, out_zero_point)
    g.add_op(opcodes.TRANSPOSE_CONV, [x, wi, bi, qi], [y], [sh, sw, pt, pl, lo, hi])
    return y
