# CONV_2D_LUT: CONV_2D with clustered weights (weight sharing, tinyrt's op 206). The filter
# w[oc, fy, fx, c] is codebook[index(j)], j its flat (OC, KH, KW, C) position, the indices
# packed as fully_connected_lut.py documents; the result is CONV_2D's with the decoded filter,
# to the bit.
#   inputs:  x int8 (N, H, W, C), indices int8 (nbytes,), codebook int8 (2^bits,),
#            bias int32 (OC) or absent, requant int32 (OC | 1, 3)
#   outputs: y int8 (N, OH, OW, OC)
#   params:  stride_h, stride_w, dilation_h, dilation_w, pad_top, pad_left, out_h, out_w,
#            bits, OC, KH, KW, C, act_min, act_max (the first 8 as CONV_2D's)
# Bounds: as CONV_2D (|acc| <= |bias| + 32640 * KH*KW*C, checked by the converter); bit
# positions <= bits * OC*KH*KW*C < 2^30 (checked at prepare).
from array import array

from ..errors import ModelError
from ..fileformat import INT32
from ..requant import multiply_by_quantized_multiplier
from .common import int32_values, requant_table, tensor
from .conv import axis_windows, spatial_params
from .fully_connected_lut import check_indices

N_PARAMS = 15


def conv2d_lut(x, p, cb, bias, y, batches, x_batch, rows, cols, out_c, w_oc, x_fy, w_fy,
               x_fx, w_fx, x_zp, y_zp, m_hi, m_lo, left, right, act_min, act_max, bits):
    """conv.conv2d with w[j] = cb[index j of p]; the same tables (rows, cols, offsets)."""
    mbqm = multiply_by_quantized_multiplier
    mask = (1 << bits) - 1
    n_rows = len(rows) // 3
    n_cols = len(cols) // 4
    yo = 0
    for b in range(batches):
        xb = b * x_batch
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
                    acc = bias[o]
                    xr = xc
                    wr = wo
                    for fy in range(n_fy):
                        xt = xr
                        wt = wr
                        for t in range(n_runs):
                            pos = wt * bits  # bit position of w[wt]'s index
                            for i in range(xt, xt + run):
                                k = pos >> 3
                                j = (((p[k] & 255) | ((p[k + 1] & 255) << 8)) >> (pos & 7)) & mask
                                acc += (x[i] - x_zp) * cb[j]
                                pos += bits
                            xt += x_fx
                            wt += w_fx
                        xr += x_fy
                        wr += w_fy
                    v = mbqm(acc, m_hi[o], m_lo[o], left[o], right[o]) + y_zp
                    if v < act_min:
                        v = act_min
                    elif v > act_max:
                        v = act_max
                    y[yo] = v
                    yo += 1
                    wo += w_oc


class Conv2DLut:
    def __init__(self, model, op):
        x = tensor(model, op, 0, "input")
        idx = tensor(model, op, 1, "filter indices", const=True)
        cb = tensor(model, op, 2, "codebook", const=True)
        b = tensor(model, op, 3, "bias", INT32, optional=True, const=True)
        q = tensor(model, op, 4, "requantization", INT32, const=True)
        y = tensor(model, op, ~0, "output")
        p = op.params
        if len(p) != N_PARAMS:
            raise ModelError("CONV_2D_LUT has %d params, expected %d" % (len(p), N_PARAMS))
        bits, out_c, kh, kw, c = p[8], p[9], p[10], p[11], p[12]
        if out_c < 1 or kh < 1 or kw < 1 or c < 1:
            raise ModelError("CONV_2D_LUT filter shape %r, expected positive"
                             % ((out_c, kh, kw, c),))
        if len(x.shape) != 4 or x.shape[3] != c:
            raise ModelError("CONV_2D_LUT filter (%d, %d, %d, %d) does not match input shape "
                             "%r" % (out_c, kh, kw, c, x.shape))
        sh, sw, dh, dw, pt, pl, oh, ow = spatial_params("CONV_2D_LUT", op, N_PARAMS, x, kh, kw,
                                                        out_c, y)[:8]
        check_indices("CONV_2D_LUT", idx, cb, bits, out_c * kh * kw * c)
        if b and b.size != out_c:
            raise ModelError("CONV_2D_LUT bias has %d values, expected %d" % (b.size, out_c))
        n, h, wd = x.shape[0], x.shape[1], x.shape[2]
        ry = axis_windows(oh, h, kh, sh, dh, pt)
        rx = axis_windows(ow, wd, kw, sw, dw, pl)
        rows = array("i", bytes(12 * oh))
        for r in range(oh):
            rows[3 * r] = ry[3 * r] * wd * c
            rows[3 * r + 1] = ry[3 * r + 1] * kw * c
            rows[3 * r + 2] = ry[3 * r + 2]
        cols = array("i", bytes(16 * ow))
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
        bias = int32_values(model, b) if b else array("i", bytes(4 * out_c))
        self.args = (x.data, idx.data, cb.data, bias, y.data, n, h * wd * c, rows, cols, out_c,
                     kh * kw * c, dh * wd * c, kw * c, dw * c, c, x.zero_point, y.zero_point)
        self.q = requant_table(model, q, out_c)
        self.act = p[13], p[14], bits
        self.impl = "reference"

    def eval(self):
        (x, p, cb, b, y, n, x_batch, rows, cols, out_c, w_oc, x_fy, w_fy, x_fx, w_fx, x_zp,
         y_zp) = self.args
        m_hi, m_lo, left, right = self.q
        act_min, act_max, bits = self.act
        conv2d_lut(x, p, cb, b, y, n, x_batch, rows, cols, out_c, w_oc, x_fy, w_fy, x_fx, w_fx,
                   x_zp, y_zp, m_hi, m_lo, left, right, act_min, act_max, bits)


def prepare(model, op):
    return Conv2DLut(model, op)
