"""RESIZE_NEAREST_NEIGHBOR and RESIZE_BILINEAR (int8, NHWC): the source rows, columns and
weights of every output position, computed here as TFLM computes them (float32 for nearest
neighbour, 10-bit fixed point for bilinear), stored in the op's params.

RESIZE_NEAREST_NEIGHBOR  (kernel mp_runtime/tinyrt/kernels/resize_nearest.py; TFLM
  resize_nearest_neighbor.cc, reference GetNearestNeighbor: in float32,
  scale = (in - 1) / (out - 1) with align_corners (out > 1) else in / out,
  src = min(round_half_away((o + off) * scale) if align_corners else floor((o + off) * scale),
  in - 1), off = 0.5 with half_pixel_centers (then src >= 0 too))
  inputs [x (N, H, W, C)]  outputs [y (N, OH, OW, C)], x's quantization (raw copy)
  params [H, W, OH, OW, src row of each output row (OH), src column of each column (OW)]
RESIZE_BILINEAR  (kernel resize_bilinear.py; TFLM resize_bilinear.cc -> reference
  ResizeBilinearInteger, 10-bit fractions: scale_10 = (1024 in + out / 2) / out (align_corners:
  (1024 (in - 1) + (out - 1) / 2) / (out - 1)), v = o scale_10 (half_pixel: + scale_10 / 2 -
  512), lo = max(v / 1024, 0), hi = min((v + 1023) / 1024, in - 1), d = v - 1024 lo)
  inputs [x]  outputs [y], x's quantization
  params [H, W, OH, OW, (lo, hi, d) per output row (3 OH), (lo, hi, d) per column (3 OW)]
"""

from __future__ import annotations

import math

import numpy as np

from tinyrt import opcodes

from ..graph import Graph


def _f32(v) -> np.float32:
    return np.float32(v)


def nearest_sources(in_size: int, out_size: int, align_corners: bool,
                    half_pixel_centers: bool) -> list[int]:
    """TFLM's GetNearestNeighbor for every output position (float32 arithmetic)."""
    if align_corners and out_size > 1:
        scale = _f32(in_size - 1) / _f32(out_size - 1)
    else:
        scale = _f32(in_size) / _f32(out_size)
    offset = _f32(0.5 if half_pixel_centers else 0.0)
    out = []
    for o in range(out_size):
        v = float((_f32(o) + offset) * scale)
        s = (int(math.copysign(math.floor(abs(v) + 0.5), v)) if align_corners
             else math.floor(v))
        s = min(s, in_size - 1)
        if half_pixel_centers:
            s = max(0, s)
        out.append(s)
    return out


def _trunc_div(a: int, b: int) -> int:
    """C's integer division (toward zero)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def bilinear_sources(in_size: int, out_size: int, align_corners: bool,
                     half_pixel_centers: bool) -> list[tuple[int, int, int]]:
    """(lo, hi, d) per output position: TFLM's ComputeInterpolationValuesInteger."""
    scale = _trunc_div(1024 * in_size + out_size // 2, out_size)
    if align_corners and out_size > 1:
        scale = _trunc_div(1024 * (in_size - 1) + (out_size - 1) // 2, out_size - 1)
    out = []
    for o in range(out_size):
        v = o * scale + (_trunc_div(scale, 2) - 512 if half_pixel_centers else 0)
        lo = max(_trunc_div(v, 1024), 0)
        hi = min(_trunc_div(v + 1023, 1024), in_size - 1)
        out.append((lo, hi, v - 1024 * lo))
    return out


def _resize(g: Graph, x: int, size, name: str) -> tuple[int, int, int, int, int, int]:
    shape = g.tensors[x].shape
    if len(shape) != 4 or g.tensors[x].dtype != "int8":
        raise ValueError(f"{name}: input {g.tensors[x].dtype} {shape}, expected int8 NHWC")
    oh, ow = (int(v) for v in np.asarray(size).ravel())
    if oh < 1 or ow < 1:
        raise ValueError(f"{name}: output size {oh}x{ow}")
    return (*shape, oh, ow)  # type: ignore[return-value]


def resize_nearest_neighbor(g: Graph, x: int, size, align_corners: bool = False,
                            half_pixel_centers: bool = False,
                            name: str = "resize_nearest") -> int:
    n, h, w, c, oh, ow = _resize(g, x, size, name)
    rows = nearest_sources(h, oh, align_corners, half_pixel_centers)
    cols = nearest_sources(w, ow, align_corners, half_pixel_centers)
    xt = g.tensors[x]
    y = g.add_activation(name + "/out", (n, oh, ow, c), xt.scale, xt.zero_point)
    g.add_op(opcodes.RESIZE_NEAREST_NEIGHBOR, [x], [y], [h, w, oh, ow] + rows + cols)
    return y


def resize_bilinear(g: Graph, x: int, size, align_corners: bool = False,
                    half_pixel_centers: bool = False, name: str = "resize_bilinear") -> int:
    n, h, w, c, oh, ow = _resize(g, x, size, name)
    if align_corners and half_pixel_centers:
        raise ValueError(f"{name}: half_pixel_centers needs align_corners False (as TFLM)")
    rows = bilinear_sources(h, oh, align_corners, half_pixel_centers)
    cols = bilinear_sources(w, ow, align_corners, half_pixel_centers)
    for (lo, hi, _), size in [(r, h) for r in rows] + [(r, w) for r in cols]:
        if not 0 <= lo <= hi < size:
            raise ValueError(f"{name}: source positions ({lo}, {hi}) outside 0..{size - 1}")
    # the kernel's 31-bit bound: |sum| <= 128 * (|1024 - dy| + |dy|) * (|1024 - dx| + |dx|)
    spread = [max(abs(1024 - d) + abs(d) for _, _, d in rs) for rs in (rows, cols)]
    if 128 * spread[0] * spread[1] >= 1 << 30:
        raise ValueError(f"{name}: interpolation weights {spread} leave 31-bit ints")
    xt = g.tensors[x]
    y = g.add_activation(name + "/out", (n, oh, ow, c), xt.scale, xt.zero_point)
    g.add_op(opcodes.RESIZE_BILINEAR, [x], [y],
             [h, w, oh, ow] + [v for r in rows for v in r] + [v for r in cols for v in r])
    return y
