# BMAX_POOL_2D: max pooling of bit-packed data, Larq Compute Engine's LceBMaxPool2d.
#   inputs:  x packed (N, H, W, C)
#   outputs: y packed (N, OH, OW, C)
#   params:  filter_h, filter_w, stride_h, stride_w, pad_top, pad_left, out_h, out_w
# The max of +-1 values is +1 (bit 0) as soon as one of them is +1, so each output word is the
# AND of the window's words; taps in the padding are skipped (as TFLite's MAX_POOL_2D skips
# them), so a window always holds at least one input pixel. Unused bits stay 0. Bytes are
# ANDed as signed int8 values: the two's complement AND is the bitwise AND of the bytes.
from ..bitpack import row_bytes
from ..errors import ModelError
from ..fileformat import PACKED
from .common import tensor


def bmax_pool(x, y, batches, in_h, in_w, rb, out_h, out_w, fh, fw, sh, sw, pt, pl):
    yo = 0
    for b in range(batches):
        for oy in range(out_h):
            y0 = oy * sh - pt
            fy0 = -y0 if y0 < 0 else 0
            fy1 = in_h - y0 if in_h - y0 < fh else fh
            for ox in range(out_w):
                x0 = ox * sw - pl
                fx0 = -x0 if x0 < 0 else 0
                fx1 = in_w - x0 if in_w - x0 < fw else fw
                for k in range(rb):
                    v = -1  # all ones
                    for fy in range(fy0, fy1):
                        xo = ((b * in_h + y0 + fy) * in_w + x0) * rb + k
                        for fx in range(fx0, fx1):
                            v &= x[xo + fx * rb]
                    y[yo] = v
                    yo += 1


class BMaxPool2D:
    def __init__(self, model, op):
        x = tensor(model, op, 0, "input", PACKED)
        y = tensor(model, op, ~0, "output", PACKED)
        p = op.params
        if len(p) != 8:
            raise ModelError("BMAX_POOL_2D has %d params, expected 8" % len(p))
        if len(x.shape) != 4:
            raise ModelError("BMAX_POOL_2D input %r must be NHWC" % (x.shape,))
        fh, fw, sh, sw, pt, pl, oh, ow = p
        if fh < 1 or fw < 1 or sh < 1 or sw < 1 or pt < 0 or pl < 0 or pt >= fh or pl >= fw:
            raise ModelError("BMAX_POOL_2D filter %dx%d, stride %dx%d, padding (%d, %d) invalid"
                             % (fh, fw, sh, sw, pt, pl))
        n, h, w, c = x.shape
        if tuple(y.shape) != (n, oh, ow, c):
            raise ModelError("BMAX_POOL_2D output shape %r, expected %r"
                             % (y.shape, (n, oh, ow, c)))
        if (oh - 1) * sh - pt >= h or (ow - 1) * sw - pl >= w:
            raise ModelError("BMAX_POOL_2D windows leave the %dx%d input" % (h, w))
        self.args = (x.data, y.data, n, h, w, row_bytes(c), oh, ow, fh, fw, sh, sw, pt, pl)

    def eval(self):
        x, y, n, h, w, rb, oh, ow, fh, fw, sh, sw, pt, pl = self.args
        bmax_pool(x, y, n, h, w, rb, oh, ow, fh, fw, sh, sw, pt, pl)


def prepare(model, op):
    return BMaxPool2D(model, op)
