"""AVERAGE_POOL_2D and MAX_POOL_2D: add an int8 2-D pooling layer to a Graph.

Kernel: mp_runtime/tinyrt/kernels/pool.py. Op layout:
  inputs  [x]  int8 (N, H, W, C)
  outputs [y]  int8 (N, OH, OW, C), x's scale and zero point (TFLM's Prepare requires equal
               input and output quantization for int8 pooling)
  params  [filter_h, filter_w, stride_h, stride_w, pad_h, pad_w, act_min, act_max]
The output size and the leading padding are TFLite's ComputeOutSize and
ComputePaddingHeightWidth (dilation 1); the clamp is CalculateActivationRangeQuantized.
"""

from __future__ import annotations

import numpy as np

from tinyrt import opcodes

from ..graph import Graph
from ..quantization import activation_range

MAX_TAPS = 1 << 22  # the kernel's accumulator bound: 128 * taps < 2^30


def _pair(v) -> tuple[int, int]:
    if isinstance(v, (int, np.integer)):
        return int(v), int(v)
    a, b = v
    return int(a), int(b)


def out_size(padding: str, size: int, filt: int, stride: int) -> int:
    """TFLite's ComputeOutSize (dilation 1)."""
    if padding == "SAME":
        return (size + stride - 1) // stride
    if padding == "VALID":
        return (size + stride - filt) // stride
    raise ValueError(f"padding {padding!r}, expected 'SAME' or 'VALID'")


def leading_padding(size: int, filt: int, stride: int, out: int) -> int:
    """TFLite's ComputePaddingWithOffset (dilation 1): the top/left padding."""
    return max((out - 1) * stride + filt - size, 0) // 2


def pool_geometry(shape: tuple, filter_size, strides, padding: str, max_taps: int,
                  name: str) -> tuple[tuple[int, int, int, int], list[int]]:
    """A pooling window over an (N, H, W, C) input, checked: the output shape and the op's
    first six params (filter h, w, strides h, w, leading padding h, w)."""
    if len(shape) != 4:
        raise ValueError(f"{name}: input shape {shape}, expected (N, H, W, C)")
    n, h, w, c = shape
    fh, fw = _pair(filter_size)
    sh, sw = _pair(strides)
    padding = padding.upper()
    if min(fh, fw, sh, sw) < 1:
        raise ValueError(f"{name}: filter {(fh, fw)} and strides {(sh, sw)} must be >= 1")
    if fh * fw > max_taps:
        raise ValueError(f"{name}: filter {fh}x{fw} has more than {max_taps} taps")
    oh, ow = out_size(padding, h, fh, sh), out_size(padding, w, fw, sw)
    if oh < 1 or ow < 1:
        raise ValueError(f"{name}: {padding} filter {(fh, fw)} does not fit input {(h, w)}")
    ph, pw = leading_padding(h, fh, sh, oh), leading_padding(w, fw, sw, ow)
    return (n, oh, ow, c), [fh, fw, sh, sw, ph, pw]


def _pool(g: Graph, opcode: int, x: int, filter_size, strides, padding: str, activation: str,
          name: str) -> int:
    xt = g.tensors[x]
    out, params = pool_geometry(xt.shape, filter_size, strides, padding, MAX_TAPS, name)
    y = g.add_activation(name + "/out", out, xt.scale, xt.zero_point)
    lo, hi = activation_range(activation, np.float32(xt.scale), xt.zero_point)
    g.add_op(opcode, [x], [y], params + [lo, hi])
    return y


def average_pool2d(g: Graph, x: int, filter_size, strides=1, padding: str = "VALID",
                   activation: str = "NONE", name: str = "avgpool") -> int:
    """Average of the in-bounds taps of each window, rounded half away from zero."""
    return _pool(g, opcodes.AVERAGE_POOL_2D, x, filter_size, strides, padding, activation,
                 name)


def max_pool2d(g: Graph, x: int, filter_size, strides=1, padding: str = "VALID",
               activation: str = "NONE", name: str = "maxpool") -> int:
    """Maximum of the in-bounds taps of each window."""
    return _pool(g, opcodes.MAX_POOL_2D, x, filter_size, strides, padding, activation, name)
