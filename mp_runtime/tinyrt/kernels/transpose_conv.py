# TRANSPOSE_CONV, int8 (TFLM transpose_conv.cc -> reference integer_ops/transpose_conv.h).
#   inputs:  x int8 (N, H, W, IC), w int8 (OC, KH, KW, IC) (per-channel scales on axis 0),
#            bias int32 (OC) or absent (zeros), requant int32 (OC | 1, 3)
#   outputs: y int8 (N, OH, OW, OC)
#   params:  stride_h, stride_w, pad_top, pad_left, act_min, act_max
#            (pads: TFLite's ComputePaddingHeightWidth on the OUTPUT's height and width, as
#            TFLM's Prepare calls it; computed by the converter)
# TFLM scatters: every input pixel (iy, ix) adds (x - x_zp) * w[oc, ky, kx, ic] into the
# int32 scratch at (iy sh - pad_top + ky, ix sw - pad_left + kx) when inside the output. tinyrt
# gathers the same integer sum per output (no scratch buffer): output row oy takes the taps ky
# with oy + pad_top - ky = iy sh, 0 <= iy < H (found at prepare, per row and per column); then
# acc + bias[oc] -> MultiplyByQuantizedMultiplier per channel, + y_zp, clamp.
# Bounds: |x - x_zp| <= 255, |w| <= 128: |acc| <= |bias| + 32640 KH KW IC, checked by the
# converter to stay below 2^30 >> left_shift.
from ..errors import ModelError
from ..fast import select
from ..fileformat import INT32
from ..requant import multiply_by_quantized_multiplier
from .common import check_activation, int32_values, requant_table, tensor, zeros

# fast twin, imported by load() before it allocates the big buffers (tinyrt.fast.preload)
TWINS = ("transpose_conv_viper",)


def taps(n_out, n_in, k, stride, pad, in_step, k_step):
    """Per output position o: up to m = ceil(k / stride) valid taps as (input offset, filter
    offset) pairs; returns (counts array('i') n_out, table array('i') n_out * 2m, m)."""
    m = (k + stride - 1) // stride
    counts = zeros(n_out)
    table = zeros(2 * m * n_out)
    for o in range(n_out):
        c = 0
        for t in range(k):
            v = o + pad - t
            if v >= 0 and v % stride == 0 and v // stride < n_in:
                table[2 * (o * m + c)] = (v // stride) * in_step
                table[2 * (o * m + c) + 1] = t * k_step
                c += 1
        counts[o] = c
    return counts, table, m


def transpose_conv(x, w, bias, y, dims, rows, cols, q, zx, zy, act_min, act_max):
    """bias: array('i') (OC); dims: (N, IC, OC, OH, OW, x batch step, w channel step); rows,
    cols: taps() results;
    q: (m_hi, m_lo, left, right) arrays per channel."""
    n, ic, oc, oh, ow, xb, wc = dims
    rc, rt, rm = rows
    cc, ct, cm = cols
    m_hi, m_lo, left, right = q
    o = 0
    for b in range(n):
        xbase = b * xb
        for oy in range(oh):
            for ox in range(ow):
                for c in range(oc):
                    acc = bias[c]
                    wbase = c * wc
                    for i in range(rc[oy]):
                        ry = 2 * (oy * rm + i)
                        xr = xbase + rt[ry]
                        wr = wbase + rt[ry + 1]
                        for j in range(cc[ox]):
                            rx = 2 * (ox * cm + j)
                            p = xr + ct[rx]
                            s = wr + ct[rx + 1]
                            for _ in range(ic):
                                acc += (x[p] - zx) * w[s]
                                p += 1
                                s += 1
                    v = multiply_by_quantized_multiplier(acc, m_hi[c], m_lo[c], left[c],
                                                         right[c]) + zy
                    if v < act_min:
                        v = act_min
                    elif v > act_max:
                        v = act_max
                    y[o] = v
                    o += 1


class TransposeConv:
    def __init__(self, model, op):
        what = "TRANSPOSE_CONV"
        x = tensor(model, op, 0, "input")
        w = tensor(model, op, 1, "filter", const=True)
        b = tensor(model, op, 2, "bias", INT32, optional=True, const=True)
        tq = tensor(model, op, 3, "requantization", INT32, const=True)
        y = tensor(model, op, ~0, "output")
        xs = x.shape
        ws = w.shape
        ys = y.shape
        if len(op.params) != 6:
            raise ModelError("%s has %d params, expected 6" % (what, len(op.params)))
        sh, sw, pt, pl, act_min, act_max = op.params
        if (len(xs) != 4 or len(ws) != 4 or len(ys) != 4 or xs[3] != ws[3] or ys[3] != ws[0]
                or ys[0] != xs[0] or sh < 1 or sw < 1 or pt < 0 or pl < 0):
            raise ModelError("%s x %r, w %r, y %r, strides (%d, %d), pads (%d, %d): expected "
                             "NHWC x, (OC, KH, KW, IC) w, NHWC y" % (what, xs, ws, ys, sh, sw,
                                                                     pt, pl))
        check_activation(what, act_min, act_max)
        n, h, wd, ic = xs
        oc, kh, kw, _ = ws
        bias = zeros(oc)  # no bias: zeros (one table shape for both kernels)
        if b is not None:
            bias = int32_values(model, b)
            if len(bias) != oc:
                raise ModelError("%s bias has %d values for %d channels" % (what, len(bias),
                                                                           oc))
        rows = taps(ys[1], h, kh, sh, pt, wd * ic, kw * ic)
        cols = taps(ys[2], wd, kw, sw, pl, ic, ic)
        q = requant_table(model, tq, oc)
        dims = (n, ic, oc, ys[1], ys[2], h * wd * ic, kh * kw * ic)
        self.args = (x.data, w.data, bias, y.data, dims, rows, cols, q, x.zero_point,
                     y.zero_point, act_min, act_max)
        self.fn = select("transpose_conv_viper", "transpose_conv", transpose_conv)
        self.impl = "viper" if self.fn is not transpose_conv else "reference"

    def eval(self):
        x, w, bias, y, dims, rows, cols, q, zx, zy, act_min, act_max = self.args
        self.fn(x, w, bias, y, dims, rows, cols, q, zx, zy, act_min, act_max)


def prepare(model, op):
    return TransposeConv(model, op)
