# Viper twin of kernels.transpose_conv.transpose_conv (same signature, same results).
# int8 values are read as unsigned bytes: x - x_zp = (xu ^ 0x80) - (128 + x_zp), w = (wu ^ 0x80)
# - 128; |x - x_zp| <= 255, |w| <= 128. Bounds (int32 machine words on 32-bit boards): the
# converter checks |bias| + 32640 KH KW IC < 2^30 >> left, so acc and its partial sums stay
# inside int32. The bias, the tap tables and the per-channel requantization values are
# array('i') items, read as two little-endian ptr16 halves (a ptr32 load's sign differs between
# the unix port and the boards): item i of t is (t[2i + 1] << 16) + t[2i] when non-negative
# (tables, requantization), the high half sign-corrected for the bias. Requantization as
# requant_viper.py, called once per output with small-int arguments (no allocation).
import micropython

from ..requant_viper import multiply_by_quantized_multiplier as _mbqm


@micropython.viper
def transpose_conv(x: ptr8, w: ptr8, bias: ptr16, y: ptr8, dims, rows, cols, q, zx: int,
                   zy: int, act_min: int, act_max: int):
    n = int(dims[0])
    ic = int(dims[1])
    oc = int(dims[2])
    oh = int(dims[3])
    ow = int(dims[4])
    xb = int(dims[5])
    wc = int(dims[6])
    rc = ptr16(rows[0])
    rt = ptr16(rows[1])
    rm = int(rows[2])
    cc = ptr16(cols[0])
    ct = ptr16(cols[1])
    cm = int(cols[2])
    m_hi = ptr16(q[0])
    m_lo = ptr16(q[1])
    left = ptr16(q[2])
    right = ptr16(q[3])
    cx = 128 + zx
    o = 0
    for b in range(n):
        xbase = b * xb
        for oy in range(oh):
            nr = rc[2 * oy]  # tap counts < 2^15
            for ox in range(ow):
                ncol = cc[2 * ox]
                for c in range(oc):
                    acc = (((bias[2 * c + 1] ^ 0x8000) - 0x8000) << 16) + bias[2 * c]
                    wbase = c * wc
                    for i in range(nr):
                        ry = 4 * (oy * rm + i)  # ptr16 index of the pair's first item
                        xr = xbase + (rt[ry + 1] << 16) + rt[ry]
                        wr = wbase + (rt[ry + 3] << 16) + rt[ry + 2]
                        for j in range(ncol):
                            rx = 4 * (ox * cm + j)
                            p = xr + (ct[rx + 1] << 16) + ct[rx]
                            s = wr + (ct[rx + 3] << 16) + ct[rx + 2]
                            e = p + ic
                            while p < e:
                                acc += ((x[p] ^ 0x80) - cx) * ((w[s] ^ 0x80) - 128)
                                p += 1
                                s += 1
                    k = 2 * c
                    v = int(_mbqm(acc, m_hi[k], m_lo[k], left[k], right[k])) + zy
                    if v < act_min:
                        v = act_min
                    elif v > act_max:
                        v = act_max
                    y[o] = v
                    o += 1
