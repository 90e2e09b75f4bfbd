# Wide channels of CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED (int8): output channels
# whose int32 bias (near +-2^30 after batch-norm folding) puts the accumulator beyond the
# boards' 31-bit small ints and whose output is not constant (constant ones are folded by the
# converter, converter/layers/common.exact_channels). The layer's own kernel (reference,
# viper or asm) computes such a channel with weights 0 and bias 0; this fix-up then
# recomputes it exactly, in plain Python, and overwrites it.
#   optional inputs 4 and 5 of the op:
#     rows int32 (n, 6): oc, B >> 15, B & 0x7FFF, M >> 15, M & 0x7FFF, shift per wide channel
#     weights int8 (n, K): the channel's original weights, K = KH*KW*C (conv), KH*KW
#       (depthwise: the channel reads input channel oc // depth_multiplier), n_in (FC)
# d = sum over the valid taps of (x - x_zp) * w, |d| <= K * 255 * 128 < 2^30 (converter's
# bound), then tinyrt.requant_wide applies TFLM's int32 requantization to wrap32(B + d).
# Cost: K multiply-adds in Python per wide channel and output pixel, nothing for the others;
# no allocation (small ints, preallocated tables).
from ..errors import ModelError
from ..fileformat import INT32
from ..requant_wide import multiply_by_quantized_multiplier_wide
from .common import int32_values, tensor, zeros

_ROW = 6


class WideChannels:
    """geo (NHWC): (n, h, w, c, kh, kw, sh, sw, dh, dw, pad_top, pad_left, oh, ow, oc);
    `cnt` input channels per output channel (c for conv and FC, 1 for depthwise, which reads
    input channel oc // dm)."""

    def __init__(self, model, op, what, x, y, geo, cnt, dm, act_min, act_max):
        t = tensor(model, op, 4, "wide channels", INT32, const=True)
        wt = tensor(model, op, 5, "wide channel weights", const=True)
        v = int32_values(model, t)
        n_wide = len(v) // _ROW
        out_c = geo[14]
        k = geo[4] * geo[5] * cnt
        if n_wide < 1 or len(v) != _ROW * n_wide or wt.size != n_wide * k:
            raise ModelError("%s wide channels: %d values and %d weights, expected rows of %d "
                             "values and %d weights per row" % (what, len(v), wt.size, _ROW, k))
        # per wide channel: oc, input channel, b_hi, b_lo, m_hi, m_lo, left, right
        self.t = zeros(8 * n_wide)
        for j in range(n_wide):
            r = _ROW * j
            oc, b_hi, b_lo, m_hi, m_lo, shift = v[r], v[r + 1], v[r + 2], v[r + 3], v[r + 4], \
                v[r + 5]
            if (oc < 0 or oc >= out_c or b_hi < -65536 or b_hi > 65535 or b_lo < 0
                    or b_lo > 0x7FFF or m_hi < 0 or m_hi > 0xFFFF or m_lo < 0 or m_lo > 0x7FFF
                    or shift < -31 or shift > 30):
                raise ModelError("%s wide channel row %d out of range: %d %d %d %d %d %d"
                                 % (what, j, oc, b_hi, b_lo, m_hi, m_lo, shift))
            e = 8 * j
            self.t[e] = oc
            self.t[e + 1] = oc // dm if cnt == 1 else 0
            self.t[e + 2] = b_hi
            self.t[e + 3] = b_lo
            self.t[e + 4] = m_hi
            self.t[e + 5] = m_lo
            self.t[e + 6] = shift if shift > 0 else 0
            self.t[e + 7] = -shift if shift < 0 else 0
        self.data = x.data, wt.data, y.data
        self.geo = geo
        self.k = k, cnt, n_wide
        self.q = x.zero_point, y.zero_point, act_min, act_max

    def eval(self):
        x, w, y = self.data
        n, h, wd, c, kh, kw, sh, sw, dh, dw, pt, pl, oh, ow, out_c = self.geo
        k, cnt, n_wide = self.k
        x_zp, y_zp, act_min, act_max = self.q
        t = self.t
        mbqm = multiply_by_quantized_multiplier_wide
        yo = 0
        for b in range(n):
            for oy in range(oh):
                iy0 = oy * sh - pt
                for ox in range(ow):
                    ix0 = ox * sw - pl
                    for j in range(n_wide):
                        e = 8 * j
                        acc = 0
                        wj = j * k
                        for fy in range(kh):
                            iy = iy0 + fy * dh
                            if iy < 0 or iy >= h:
                                continue
                            for fx in range(kw):
                                ix = ix0 + fx * dw
                                if ix < 0 or ix >= wd:
                                    continue
                                xo = ((b * h + iy) * wd + ix) * c + t[e + 1]
                                wo = wj + (fy * kw + fx) * cnt
                                for i in range(cnt):
                                    acc += (x[xo + i] - x_zp) * w[wo + i]
                        v = mbqm(t[e + 2], t[e + 3], acc, t[e + 4], t[e + 5], t[e + 6],
                                 t[e + 7]) + y_zp
                        if v < act_min:
                            v = act_min
                        elif v > act_max:
                            v = act_max
                        y[yo + t[e]] = v
                    yo += out_c

