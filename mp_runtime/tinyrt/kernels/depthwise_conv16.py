# DEPTHWISE_CONV_2D 16x8: int16 activations, int8 weights, int64 bias (TFLM reference
# integer_ops/depthwise_conv.h DepthwiseConvPerChannel, the int16 overload with an int64
# accumulator).
#   inputs:  x int16 (N, H, W, C) zero point 0, w int8 (1, KH, KW, OC), OC = C * depth_mult
#            (per-channel scales on axis 3), bias int32 (OC, 2) rows (b >> 15, b & 0x7FFF) of
#            the int64 bias or absent, requant int32 (OC | 1, 2) rows (rm, ts) (requant16)
#   outputs: y int16 (N, OH, OW, OC) zero point 0
#   params:  as DEPTHWISE_CONV_2D int8 (kernels/depthwise_conv.py)
# Output channel oc = c * depth_mult + m reads input channel c:
# acc = bias[oc] + sum over the valid taps of x * w, y = clamp(MBQM64(acc, rm, ts)).
# int16 elements are byte pairs (tinyrt.tensor). Bounds: |x * w| <= 2^22; the accumulator is
# hi * 2^15 + lo with lo carried into hi every at most 255 products, as in conv16.py
# (|hi| < 2^29: |bias| < 2^43, KH*KW < 2^21).
from ..errors import ModelError
from ..fileformat import INT16, INT32
from ..requant16 import multiply_by_quantized_multiplier_64
from .common import tensor
from .conv import axis_windows, spatial_params
from .conv16 import CHUNK, bias_and_requant
from .depthwise_conv import N_PARAMS


def depthwise_conv2d_16x8(x, w, b_hi, b_lo, y, batches, h, wd, c, dm, kw, ry, rx, dh, dw, rm,
                          ts, act_min, act_max):
    """ry, rx: axis_windows of the rows and columns (first input index, first tap, taps)."""
    mbqm = multiply_by_quantized_multiplier_64
    out_c = c * dm
    oh = len(ry) // 3
    ow = len(rx) // 3
    yo = 0
    for bt in range(batches):
        for r in range(0, 3 * oh, 3):
            iy0 = ry[r]
            fy0 = ry[r + 1]
            n_fy = ry[r + 2]
            for q in range(0, 3 * ow, 3):
                ix0 = rx[q]
                fx0 = rx[q + 1]
                n_fx = rx[q + 2]
                for oc in range(out_c):
                    ic = oc // dm
                    hi = b_hi[oc]
                    acc = b_lo[oc]
                    k = 0
                    for fy in range(n_fy):
                        xrow = ((bt * h + iy0 + fy * dh) * wd + ix0) * c + ic
                        wrow = ((fy0 + fy) * kw + fx0) * out_c + oc
                        for fx in range(n_fx):
                            i = 2 * (xrow + fx * dw * c)
                            acc += ((x[i] & 255) | (x[i + 1] << 8)) * w[wrow + fx * out_c]
                            k += 1
                            if k == CHUNK:
                                hi += acc >> 15
                                acc &= 0x7FFF
                                k = 0
                    hi += acc >> 15
                    acc &= 0x7FFF
                    v = mbqm(hi, acc, rm[oc], ts[oc])
                    if v < act_min:
                        v = act_min
                    elif v > act_max:
                        v = act_max
                    y[yo] = ((v & 255) ^ 128) - 128  # low byte, as an int8
                    y[yo + 1] = v >> 8
                    yo += 2


class DepthwiseConv2D16x8:
    def __init__(self, model, op):
        x = tensor(model, op, 0, "input", INT16)
        w = tensor(model, op, 1, "filter", const=True)
        b = tensor(model, op, 2, "bias", INT32, optional=True, const=True)
        q = tensor(model, op, 3, "requantization", INT32, const=True)
        y = tensor(model, op, ~0, "output", INT16)
        if len(w.shape) != 4 or w.shape[0] != 1:
            raise ModelError("DEPTHWISE_CONV_2D filter shape %r, expected (1, KH, KW, OC)"
                             % (w.shape,))
        kh, kw, out_c = w.shape[1], w.shape[2], w.shape[3]
        if len(op.params) != N_PARAMS:
            raise ModelError("DEPTHWISE_CONV_2D has %d params, expected %d"
                             % (len(op.params), N_PARAMS))
        dm = op.params[8]
        if len(x.shape) != 4 or dm < 1 or x.shape[3] * dm != out_c:
            raise ModelError("DEPTHWISE_CONV_2D filter shape %r does not match input shape %r "
                             "with depth multiplier %d" % (w.shape, x.shape, dm))
        if x.zero_point != 0 or y.zero_point != 0:
            raise ModelError("DEPTHWISE_CONV_2D 16x8 zero points %d, %d: int16 activations are "
                             "symmetric (0)" % (x.zero_point, y.zero_point))
        p = spatial_params("DEPTHWISE_CONV_2D", op, N_PARAMS, x, kh, kw, out_c, y, -32768,
                           32767)
        n, h, wd, c = x.shape
        ry = axis_windows(p[6], h, kh, p[0], p[2], p[4])
        rx = axis_windows(p[7], wd, kw, p[1], p[3], p[5])
        b_hi, b_lo, rm, ts = bias_and_requant(model, "DEPTHWISE_CONV_2D", b, q, out_c)
        self.args = (x.data, w.data, b_hi, b_lo, y.data, n, h, wd, c, dm, kw, ry, rx, p[2],
                     p[3], rm, ts, p[9], p[10])
        self.impl = "reference"

    def eval(self):
        (x, w, b_hi, b_lo, y, n, h, wd, c, dm, kw, ry, rx, dh, dw, rm, ts, a_min,
         a_max) = self.args
        depthwise_conv2d_16x8(x, w, b_hi, b_lo, y, n, h, wd, c, dm, kw, ry, rx, dh, dw, rm, ts,
                              a_min, a_max)


def prepare(model, op):
    return DepthwiseConv2D16x8(model, op)
