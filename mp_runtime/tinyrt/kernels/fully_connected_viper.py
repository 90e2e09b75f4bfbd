# Viper twin of kernels.fully_connected.fully_connected (same signature, same results).
#
# Per batch row, as conv_viper does per window (see there for the measurements):
# - the row is gathered once into SCRATCH as xu = x ^ 0x80 (x + 128), so the n_out dot
#   products read no x ^ 0x80; S = sum (xu - cx) is shared by all outputs, cx = 128 + x_zp:
#     acc - bias = sum (xu - cx) * (wu - 128) = D - 128 * S,  D = sum (xu - cx) * wu;
# - with cx == 0 (x after a ReLU, zero point -128) and at most 7/8 of the row nonzero, the
#   nonzero (offset, xu) pairs go to a list and each output runs over the list only;
# - x and w walk as pointers in the emitter's two register locals, 8x unrolled;
# - requantization inline (requant_viper.py), ReLU-like clamps short-cut at acc <= 0.
# Rows longer than the scratch (1024) are read in place (x ^ 0x80 per product).
#
# Bounds (int32 on 32-bit boards, where viper ints are wrapping machine words): the converter
# guarantees n_in * 255 * 128 + |bias| < 2^30, hence n_in <= 32896: |xu - cx| <= 255,
# 0 <= wu <= 255, |D| <= 65025 * n_in <= 2139062400 < 2^31 - 1 (every partial sum too);
# 128 * |S| < 2^30; acc = bias + D - 128 * S is the true accumulator, |acc| < 2^30 >> left.
# ptr32 loads only for non-negative values (zero-extended on the unix port, sign-extended on
# boards); the int32 bias from two little-endian ptr16 halves.
import micropython

from .scratch_viper import SCRATCH  # 1 KiB


@micropython.viper
def fully_connected(x: ptr8, w: ptr8, bias: ptr16, y: ptr8, batches: int, n_in: int,
                    n_out: int, x_zp: int, y_zp: int, m_hi: ptr32, m_lo: ptr32, left: ptr32,
                    right: ptr32, act_min: int, act_max: int):
    xa = int(x)
    wa = int(w)
    g = ptr8(SCRATCH)
    ga = int(g)
    pairs = ptr8(ga + 512)
    la = ga + 512
    cx = 128 + x_zp
    big = 0x3FFFFFFF
    cut = 0 - big - 2  # below every accumulator: no shortcut
    if y_zp <= act_min:
        cut = 0
    # SCRATCH: the gathered row at 0..n_in, the pairs from 512 (rows of <= 256 values)
    gathers = n_in <= 1024 and n_out > 1
    lists = cx == 0 and n_in <= 256 and n_out > 2
    if gathers:
        d_end = ga + n_in
        d_end8 = ga + (n_in & -8)
    yo = 0
    xb = xa
    for bt in range(batches):
        sx = 0
        n = 0
        listed = False
        x = ptr8(xb)
        if gathers:
            k = 0
            while k < n_in:
                v = x[k] ^ 0x80
                g[k] = v
                sx += v
                n += (v + 255) >> 8  # v is 0..255: 1 unless v == 0
                k += 1
            if lists and n * 8 <= n_in * 7:  # at most 7/8 nonzero: list them
                listed = True
                n = 0
                k = 0
                while k < n_in:
                    v = g[k]
                    pairs[n] = k
                    pairs[n + 1] = v
                    n += ((v + 255) >> 8) << 1  # v is 0..255: +2 unless v == 0
                    k += 1
            else:
                n = 0
        else:
            d_end = xb + n_in
            d_end8 = xb + (n_in & -8)
            k = 0
            while k < n_in:
                sx += x[k] ^ 0x80
                k += 1
        corr = (sx - cx * n_in) << 7
        l_end = la + n
        l_end4 = la + (n & -8)
        wc = wa
        o = 0
        while o < n_out:
            acc = 0
            w = ptr8(wc)
            if listed:
                x = ptr8(la)
                while int(x) < l_end4:
                    acc += ((w[x[0]] ^ 0x80) * x[1] + (w[x[2]] ^ 0x80) * x[3]
                            + (w[x[4]] ^ 0x80) * x[5] + (w[x[6]] ^ 0x80) * x[7])
                    x = ptr8(int(x) + 8)
                while int(x) < l_end:
                    acc += (w[x[0]] ^ 0x80) * x[1]
                    x = ptr8(int(x) + 2)
            elif gathers and cx == 0:
                x = ptr8(ga)
                while int(x) < d_end8:
                    acc += ((w[0] ^ 0x80) * x[0] + (w[1] ^ 0x80) * x[1]
                            + (w[2] ^ 0x80) * x[2] + (w[3] ^ 0x80) * x[3])
                    acc += ((w[4] ^ 0x80) * x[4] + (w[5] ^ 0x80) * x[5]
                            + (w[6] ^ 0x80) * x[6] + (w[7] ^ 0x80) * x[7])
                    x = ptr8(int(x) + 8)
                    w = ptr8(int(w) + 8)
                while int(x) < d_end:
                    acc += (w[0] ^ 0x80) * x[0]
                    x = ptr8(int(x) + 1)
                    w = ptr8(int(w) + 1)
            elif gathers:
                x = ptr8(ga)
                while int(x) < d_end8:
                    acc += ((w[0] ^ 0x80) * (x[0] - cx) + (w[1] ^ 0x80) * (x[1] - cx)
                            + (w[2] ^ 0x80) * (x[2] - cx) + (w[3] ^ 0x80) * (x[3] - cx))
                    acc += ((w[4] ^ 0x80) * (x[4] - cx) + (w[5] ^ 0x80) * (x[5] - cx)
                            + (w[6] ^ 0x80) * (x[6] - cx) + (w[7] ^ 0x80) * (x[7] - cx))
                    x = ptr8(int(x) + 8)
                    w = ptr8(int(w) + 8)
                while int(x) < d_end:
                    acc += (w[0] ^ 0x80) * (x[0] - cx)
                    x = ptr8(int(x) + 1)
                    w = ptr8(int(w) + 1)
            else:
                x = ptr8(xb)
                while int(x) < d_end8:
                    acc += ((w[0] ^ 0x80) * ((x[0] ^ 0x80) - cx)
                            + (w[1] ^ 0x80) * ((x[1] ^ 0x80) - cx)
                            + (w[2] ^ 0x80) * ((x[2] ^ 0x80) - cx)
                            + (w[3] ^ 0x80) * ((x[3] ^ 0x80) - cx))
                    acc += ((w[4] ^ 0x80) * ((x[4] ^ 0x80) - cx)
                            + (w[5] ^ 0x80) * ((x[5] ^ 0x80) - cx)
                            + (w[6] ^ 0x80) * ((x[6] ^ 0x80) - cx)
                            + (w[7] ^ 0x80) * ((x[7] ^ 0x80) - cx))
                    x = ptr8(int(x) + 8)
                    w = ptr8(int(w) + 8)
                while int(x) < d_end:
                    acc += (w[0] ^ 0x80) * ((x[0] ^ 0x80) - cx)
                    x = ptr8(int(x) + 1)
                    w = ptr8(int(w) + 1)
            # acc = bias + D - 128 * S; requantize (requant_viper.py)
            a = ((acc - corr + (((bias[2 * o + 1] ^ 0x8000) - 0x8000) << 16)
                  + bias[2 * o]) << left[o])
            if a <= cut:
                v = act_min
            else:
                mh = m_hi[o]
                ml = m_lo[o]
                a1 = a >> 15
                a0 = a & 0x7FFF
                h = a1 * mh
                p = a1 * ml
                q = a0 * mh
                f = (p >> 15) + (q >> 15) + (((p & 0x7FFF) + (q & 0x7FFF)
                                              + ((a0 * ml) >> 15) + 0x8000) >> 15)
                s = (h >> 1) + (((h & 1) + f) >> 1)
                rs = right[o]
                v = ((s + (((1 << rs) + (s >> 31)) >> 1)) >> rs) + y_zp
                if v < act_min:
                    v = act_min
                elif v > act_max:
                    v = act_max
            y[yo] = v
            yo += 1
            wc += n_in
            o += 1
        xb += n_in
