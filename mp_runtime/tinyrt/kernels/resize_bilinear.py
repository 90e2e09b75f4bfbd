# RESIZE_BILINEAR, int8 (TFLM resize_bilinear.cc -> reference ResizeBilinearInteger, 10-bit
# fixed-point positions, double rounding: TFLITE_SINGLE_ROUNDING unset).
#   inputs:  x int8 (N, H, W, C)
#   outputs: y int8 (N, OH, OW, C), x's quantization (interpolates the raw values, as TFLM)
#   params:  H, W, OH, OW, then (lo, hi, d) per output row (3 OH), then (lo, hi, d) per output
#            column (3 OW): source rows lo <= hi < H, d = position * 1024 - 1024 lo
#            (converter/layers/resize.py computes them as TFLM's
#            ComputeInterpolationValuesInteger)
# Per output channel, with a = 1024 - dy, b = dy, e = 1024 - dx, f = dx:
#   s = x[lo_y, lo_x] a e + x[hi_y, lo_x] b e + x[lo_y, hi_x] a f + x[hi_y, hi_x] b f
#   y = (s + 2^19) / 2^20 if s > 0 else (s - 2^19) / 2^20, C division (toward zero)
# Bound (31-bit rule): |s| and its partial sums <= 128 (|a| + |b|) (|e| + |f|) < 2^30, checked
# by the converter (at most 128 * 2048 * 2048 = 2^29 for TFLM's positions).
from array import array

from ..errors import ModelError
from ..fast import select
from .resize_nearest import check_sources, geometry

# fast twin, imported by load() before it allocates the big buffers (tinyrt.fast.preload)
TWINS = ("resize_bilinear_viper",)


def resize_bilinear(x, y, n, h, w, c, oh, ow, rows, cols):
    """rows, cols: (lo, hi, d) triples per output row / column."""
    q = 0
    wc = w * c
    for b in range(n):
        base = b * h * wc
        for oy in range(oh):
            ly = base + rows[3 * oy] * wc
            hy = base + rows[3 * oy + 1] * wc
            dy = rows[3 * oy + 2]
            ay = 1024 - dy
            for ox in range(ow):
                lx = cols[3 * ox] * c
                hx = cols[3 * ox + 1] * c
                dx = cols[3 * ox + 2]
                ax = 1024 - dx
                for k in range(c):
                    s = ((x[ly + lx + k] * ay + x[hy + lx + k] * dy) * ax
                         + (x[ly + hx + k] * ay + x[hy + hx + k] * dy) * dx)
                    if s > 0:
                        y[q] = (s + 524288) >> 20
                    else:
                        y[q] = -((524288 - s) >> 20)
                    q += 1


class ResizeBilinear:
    def __init__(self, model, op):
        what = "RESIZE_BILINEAR"
        x, y, (n, h, w, c, oh, ow) = geometry(what, model, op, 3)
        rows = array("i", op.params[4: 4 + 3 * oh])
        cols = array("i", op.params[4 + 3 * oh:])
        spread = []
        for t, limit in ((rows, h), (cols, w)):
            most = 0
            for i in range(0, len(t), 3):
                check_sources(what, (t[i], t[i + 1]), limit)
                most = max(most, abs(1024 - t[i + 2]) + abs(t[i + 2]))
            spread.append(most)
        if 128 * spread[0] * spread[1] >= 1 << 30:
            raise ModelError("%s weights %r leave 31-bit ints" % (what, spread))
        self.args = (x.data, y.data, n, h, w, c, oh, ow, rows, cols)
        self.fn = select("resize_bilinear_viper", "resize_bilinear", resize_bilinear)
        self.impl = "viper" if self.fn is not resize_bilinear else "reference"

    def eval(self):
        x, y, n, h, w, c, oh, ow, rows, cols = self.args
        self.fn(x, y, n, h, w, c, oh, ow, rows, cols)


def prepare(model, op):
    return ResizeBilinear(model, op)
