# Viper twin of kernels.batch_matmul.batch_matmul (same signature, same results).
# int8 values are read as unsigned bytes: (v ^ 0x80) - (128 + zp) = v - zp, |.| <= 255.
# Bounds (int32 machine words on 32-bit boards): the converter and prepare guarantee
# K * 255 * 255 << left < 2^30, so acc and every partial sum stay inside int32; requantization
# as requant_viper.py (called once per output).
import micropython

from ..requant_viper import multiply_by_quantized_multiplier as _mbqm


@micropython.viper
def batch_matmul(a_: ptr8, b_: ptr8, y: ptr8, dims, ls, rs, zl: int, zr: int, q, zy: int):
    nb0 = int(dims[0])
    nb1 = int(dims[1])
    nm = int(dims[2])
    nn = int(dims[3])
    nk = int(dims[4])
    lb0 = int(ls[0])
    lb1 = int(ls[1])
    lm = int(ls[2])
    lk = int(ls[3])
    rb0 = int(rs[0])
    rb1 = int(rs[1])
    rk = int(rs[2])
    rn = int(rs[3])
    hi = int(q[0])
    lo = int(q[1])
    left = int(q[2])
    right = int(q[3])
    cl = 128 + zl
    cr = 128 + zr
    o = 0
    for b0 in range(nb0):
        for b1 in range(nb1):
            pl = b0 * lb0 + b1 * lb1
            pr = b0 * rb0 + b1 * rb1
            for m in range(nm):
                for n in range(nn):
                    a = pl + m * lm
                    c = pr + n * rn
                    acc = 0
                    for _ in range(nk):
                        acc += ((a_[a] ^ 0x80) - cl) * ((b_[c] ^ 0x80) - cr)
                        a += lk
                        c += rk
                    v = int(_mbqm(acc, hi, lo, left, right)) + zy
                    if v < -128:
                        v = -128
                    elif v > 127:
                        v = 127
                    y[o] = v
                    o += 1
