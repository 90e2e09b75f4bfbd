# CONV_2D 16x8: int16 activations, int8 weights, int64 bias (TFLM reference
# integer_ops/conv.h ConvPerChannel for int16 input with an int64 accumulator).
#   inputs:  x int16 (N, H, W, C) zero point 0, w int8 (OC, KH, KW, C) (per-channel scales on
#            axis 0), bias int32 (OC, 2) rows (b >> 15, b & 0x7FFF) of the int64 bias b, or
#            absent, requant int32 (OC | 1, 2) rows (rm, ts) (tinyrt.requant16)
#   outputs: y int16 (N, OH, OW, OC) zero point 0
#   params:  as CONV_2D int8 (kernels/conv.py): stride_h, stride_w, dilation_h, dilation_w,
#            pad_top, pad_left, out_h, out_w, act_min, act_max
# acc[n, oy, ox, oc] = bias[oc] + sum over the valid taps of x * w (as int8 CONV_2D, zero
# points 0), y = clamp(MultiplyByQuantizedMultiplier64(acc, rm, ts), act_min, act_max).
# int16 tensors are byte pairs in the int8 arena (tinyrt.tensor): element i is
# (x[2i] & 255) | x[2i + 1] << 8.
# Bounds: |x * w| <= 32768 * 128 = 2^22; the accumulator is hi * 2^15 + lo, lo carried into hi
# after every run of at most 255 products (|lo| < 2^15 + 255 * 2^22 < 2^30); |hi| < 2^29 as
# the converter bounds |bias| < 2^43 and KH*KW*C < 2^21 (requant16).

from ..errors import ModelError
from ..fileformat import INT16, INT32
from ..requant16 import multiply_by_quantized_multiplier_64
from .common import int32_values, tensor
from .conv import N_PARAMS, axis_windows, spatial_params
from ..buffers import int32_zeros

CHUNK = 255  # products summed into lo before its carry goes into hi


def bias_and_requant(model, what, b, q, channels):
    """(bias_hi, bias_lo, rm, ts) arrays of length `channels` from the int32 (C, 2) bias
    table (or None: zeros) and the (C | 1, 2) requantization table, checked."""
    v = int32_values(model, q)
    rows = len(v) // 2
    if len(v) != 2 * rows or rows not in (1, channels):
        raise ModelError("%s requantization table %d has %d values, expected 2 or %d"
                         % (what, q.index, len(v), 2 * channels))
    rm = int32_zeros(channels)
    ts = int32_zeros(channels)
    b_hi = int32_zeros(channels)
    b_lo = int32_zeros(channels)
    if b is not None:
        bv = int32_values(model, b)
        if len(bv) != 2 * channels:
            raise ModelError("%s bias table %d has %d values, expected %d"
                             % (what, b.index, len(bv), 2 * channels))
        for c in range(channels):
            hi = bv[2 * c]
            lo = bv[2 * c + 1]
            if hi < -(1 << 28) or hi >= 1 << 28 or lo < 0 or lo > 0x7FFF:
                raise ModelError("%s bias row %d out of range: %d %d" % (what, c, hi, lo))
            b_hi[c] = hi
            b_lo[c] = lo
    for c in range(channels):
        r = 2 * c if rows > 1 else 0
        if v[r] < 0 or v[r] > 0x7FFF or v[r + 1] < 8 or v[r + 1] > 46:
            raise ModelError("%s requantization row %d out of range: %d %d"
                             % (what, c, v[r], v[r + 1]))
        rm[c] = v[r]
        ts[c] = v[r + 1]
    return b_hi, b_lo, rm, ts


def conv2d_16x8(x, w, b_hi, b_lo, y, batches, x_batch, rows, cols, out_c, w_oc, x_fy, w_fy,
                x_fx, w_fx, rm, ts, act_min, act_max):
    """y = conv(x, w) + bias, requantized; x and y int16 as byte pairs, offsets in elements.
    rows, cols, x_batch, w_oc, x_fy, w_fy, x_fx, w_fx: as kernels.conv.conv2d."""
    mbqm = multiply_by_quantized_multiplier_64
    n_rows = len(rows) // 3
    n_cols = len(cols) // 4
    yo = 0
    for bt in range(batches):
        xb = bt * x_batch
        for r in range(0, 3 * n_rows, 3):
            xr0 = xb + rows[r]
            wr0 = rows[r + 1]
            n_fy = rows[r + 2]
            for c in range(0, 4 * n_cols, 4):
                xc = xr0 + cols[c]
                wo = wr0 + cols[c + 1]
                n_runs = cols[c + 2]
                run = cols[c + 3]
                for o in range(out_c):
                    hi = b_hi[o]
                    acc = b_lo[o]
                    xr = xc
                    wr = wo
                    for fy in range(n_fy):
                        xt = xr
                        wt = wr
                        for t in range(n_runs):
                            d = wt - xt
                            i = xt
                            end = xt + run
                            while i < end:
                                stop = i + CHUNK
                                if stop > end:
                                    stop = end
                                for j in range(i, stop):
                                    acc += ((x[j + j] & 255) | (x[j + j + 1] << 8)) * w[j + d]
                                hi += acc >> 15
                                acc &= 0x7FFF
                                i = stop
                            xt += x_fx
                            wt += w_fx
                        xr += x_fy
                        wr += w_fy
                    v = mbqm(hi, acc, rm[o], ts[o])
                    if v < act_min:
                        v = act_min
                    elif v > act_max:
                        v = act_max
                    y[yo + yo] = ((v & 255) ^ 128) - 128  # low byte, as an int8
                    y[yo + yo + 1] = v >> 8
                    yo += 1
                    wo += w_oc


class Conv2D16x8:
    def __init__(self, model, op):
        x = tensor(model, op, 0, "input", INT16)
        w = tensor(model, op, 1, "filter", const=True)
        b = tensor(model, op, 2, "bias", INT32, optional=True, const=True)
        q = tensor(model, op, 3, "requantization", INT32, const=True)
        y = tensor(model, op, ~0, "output", INT16)
        if len(w.shape) != 4:
            raise ModelError("CONV_2D filter shape %r, expected (OC, KH, KW, C)" % (w.shape,))
        out_c, kh, kw, c = w.shape
        if len(x.shape) != 4 or x.shape[3] != c:
            raise ModelError("CONV_2D filter shape %r does not match input shape %r "
                             "(expected %d input channels)" % (w.shape, x.shape, c))
        if x.zero_point != 0 or y.zero_point != 0:
            raise ModelError("CONV_2D 16x8 zero points %d, %d: int16 activations are "
                             "symmetric (0)" % (x.zero_point, y.zero_point))
        if kh * kw * c >= 1 << 21:
            raise ModelError("CONV_2D 16x8 with %d products per output, at most 2^21 - 1"
                             % (kh * kw * c))
        sh, sw, dh, dw, pt, pl, oh, ow, a_min, a_max = spatial_params(
            "CONV_2D", op, N_PARAMS, x, kh, kw, out_c, y, -32768, 32767)
        n, h, wd = x.shape[0], x.shape[1], x.shape[2]
        ry = axis_windows(oh, h, kh, sh, dh, pt)
        rx = axis_windows(ow, wd, kw, sw, dw, pl)
        rows = int32_zeros(3 * oh)
        for r in range(oh):
            rows[3 * r] = ry[3 * r] * wd * c
            rows[3 * r + 1] = ry[3 * r + 1] * kw * c
            rows[3 * r + 2] = ry[3 * r + 2]
        cols = int32_zeros(4 * ow)
        for k in range(ow):
            cols[4 * k] = rx[3 * k] * c
            cols[4 * k + 1] = rx[3 * k + 1] * c
            n_fx = rx[3 * k + 2]
            if dw == 1:  # one contiguous run
                cols[4 * k + 2] = 1 if n_fx else 0
                cols[4 * k + 3] = n_fx * c
            else:
                cols[4 * k + 2] = n_fx
                cols[4 * k + 3] = c
        b_hi, b_lo, rm, ts = bias_and_requant(model, "CONV_2D", b, q, out_c)
        self.args = (x.data, w.data, b_hi, b_lo, y.data, n, h * wd * c, rows, cols, out_c,
                     kh * kw * c, dh * wd * c, kw * c, dw * c, c, rm, ts, a_min, a_max)
        self.impl = "reference"

    def eval(self):
        (x, w, b_hi, b_lo, y, n, x_batch, rows, cols, out_c, w_oc, x_fy, w_fy, x_fx, w_fx, rm,
         ts, a_min, a_max) = self.args
        conv2d_16x8(x, w, b_hi, b_lo, y, n, x_batch, rows, cols, out_c, w_oc, x_fy, w_fy, x_fx,
                    w_fx, rm, ts, a_min, a_max)


def prepare(model, op):
    return Conv2D16x8(model, op)
