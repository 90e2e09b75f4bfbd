# RESIZE_NEAREST_NEIGHBOR, int8 (TFLM resize_nearest_neighbor.cc, reference
# ResizeNearestNeighbor): each output pixel is a raw copy of one input pixel's C channels.
#   inputs:  x int8 (N, H, W, C)
#   outputs: y int8 (N, OH, OW, C), x's quantization (no requantization, as TFLM)
#   params:  H, W, OH, OW, then the source row of each output row (OH values in [0, H)), then
#            the source column of each output column (OW values in [0, W)): TFLM's
#            GetNearestNeighbor (float32, align_corners / half_pixel_centers), evaluated by the
#            converter (converter/layers/resize.py)
# Offsets are < N H W C (a tensor in RAM): small ints.
from array import array

from ..errors import ModelError
from ..fast import select
from .common import tensor

# fast twin, imported by load() before it allocates the big buffers (tinyrt.fast.preload)
TWINS = ("resize_nearest_viper",)


def resize_nearest(x, y, n, h, w, c, oh, ow, rows, cols):
    """rows, cols: source row (OH) and column (OW) indices."""
    q = 0
    for b in range(n):
        base = b * h * w * c
        for oy in range(oh):
            row = base + rows[oy] * w * c
            for ox in range(ow):
                p = row + cols[ox] * c
                for _ in range(c):
                    y[q] = x[p]
                    p += 1
                    q += 1


def geometry(what, model, op, per_row):
    """(x, y, (n, h, w, c, oh, ow)) of a resize op whose params are H, W, OH, OW then
    `per_row` values per output row and per output column; checks the shapes."""
    x = tensor(model, op, 0, "input")
    y = tensor(model, op, ~0, "output")
    p = op.params
    xs = x.shape
    ys = y.shape
    if len(xs) != 4 or len(ys) != 4 or len(p) < 4:
        raise ModelError("%s x %r, y %r with %d params: expected NHWC and H, W, OH, OW"
                         % (what, xs, ys, len(p)))
    h, w, oh, ow = p[0], p[1], p[2], p[3]
    if (xs[1], xs[2]) != (h, w) or tuple(ys) != (xs[0], oh, ow, xs[3]):
        raise ModelError("%s x %r, y %r: expected params H, W, OH, OW = %r" % (what, xs, ys,
                                                                              tuple(p[:4])))
    if len(p) != 4 + per_row * (oh + ow):
        raise ModelError("%s has %d params, expected %d" % (what, len(p), 4 + per_row
                                                           * (oh + ow)))
    return x, y, (xs[0], h, w, xs[3], oh, ow)


def check_sources(what, values, limit):
    for v in values:
        if v < 0 or v >= limit:
            raise ModelError("%s source index %d outside 0..%d" % (what, v, limit - 1))


class ResizeNearest:
    def __init__(self, model, op):
        what = "RESIZE_NEAREST_NEIGHBOR"
        x, y, (n, h, w, c, oh, ow) = geometry(what, model, op, 1)
        rows = array("i", op.params[4: 4 + oh])
        cols = array("i", op.params[4 + oh:])
        check_sources(what, rows, h)
        check_sources(what, cols, w)
        self.args = (x.data, y.data, n, h, w, c, oh, ow, rows, cols)
        self.fn = select("resize_nearest_viper", "resize_nearest", resize_nearest)
        self.impl = "viper" if self.fn is not resize_nearest else "reference"

    def eval(self):
        x, y, n, h, w, c, oh, ow, rows, cols = self.args
        self.fn(x, y, n, h, w, c, oh, ow, rows, cols)


def prepare(model, op):
    return ResizeNearest(model, op)
