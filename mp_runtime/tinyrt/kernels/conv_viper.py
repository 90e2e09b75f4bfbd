# Viper twin of kernels.conv.conv2d (same signature, same results to the bit).
#
# Order of work as in the reference: output positions, then output channels. What makes it
# fast (each step measured: benchmarks/optimization_log.md):
# - x and w, the first two arguments, are the two locals the x86-64 emitter keeps in
#   registers: after the base addresses are saved they walk the data as pointers
#   (x = ptr8(int(x) + 8)), so every load is [register + constant]. 8x unrolled loops.
# - Zero points folded out of the inner loop. ptr8 loads are unsigned bytes and
#   u = b ^ 0x80 is the int8 value + 128; with cx = 128 + x_zp (0 after a ReLU whose zero
#   point is -128):  acc - bias = sum (xu - cx) * (wu - 128) = D - 128 * S,
#   D = sum (xu - cx) * wu (the inner loop), S = sum (xu - cx) over the position's window.
# - The window of a position is gathered once into SCRATCH in the weights' (KH, KW, C)
#   layout, as xu, with the taps in the padding set to xu = cx (they add nothing): every
#   output channel then runs one contiguous loop of K = KH*KW*C products with no bounds, no
#   x ^ 0x80, and S is shared by all output channels. With cx != 0 the loop takes
#   sum xu * wu and subtracts cx * sum wu, the filter's weight sum (the padding is inside the
#   window, so it is the whole filter's: summed once per call per channel).
# - ReLU sparsity: when cx == 0, a tap with xu == 0 (x at the zero point: about half of a
#   ReLU's outputs) adds nothing. If at most 7/8 of a window is nonzero, its nonzero taps
#   go to a list of (offset, xu) byte pairs and every output channel runs over the list
#   only. The result is the same; the time depends on the data.
# - Requantization inline and branch-free (requant_viper.py), with a shortcut for ReLU-like
#   clamps: when act_min >= y_zp, acc <= 0 gives act_min.
# SCRATCH (1 KiB) holds the window (K <= 1024) and from byte 512 the pairs (K <= 256) or the
# weight sums (K <= 512, <= 128 channels); larger windows are read in place, run by run.
#
# Bounds (int32 on 32-bit boards, where viper ints are wrapping machine words): the converter
# guarantees K * 255 * 128 + |bias| < 2^30, hence K <= 32896.
#   |xu - cx| <= 255 and 0 <= wu <= 255: |D| <= 65025 * K <= 2139062400 < 2^31 - 1, as is
#   every partial sum, and cx * sum wu, sum xu * wu and their difference stay within the same
#   bound; |S| <= 255 * K and 128 * |S| < 2^30; acc = bias + D - 128 * S is the true
#   accumulator, |acc| < 2^30 >> left. Addresses are compared as signed words: no board's RAM
#   straddles 2^31.
# ptr32 loads are zero-extended on the 64-bit unix port and sign-extended on 32-bit boards:
# they are used for non-negative values only (tables, multipliers, shifts). The int32 bias is
# read as two little-endian ptr16 halves: (((hi ^ 0x8000) - 0x8000) << 16) + lo.
import micropython

from .scratch_viper import SCRATCH


@micropython.viper
def conv2d(x: ptr8, w: ptr8, bias: ptr16, y: ptr8, batches: int, x_batch: int, rows, cols,
           out_c: int, w_oc: int, x_fy: int, w_fy: int, x_fx: int, w_fx: int, x_zp: int,
           y_zp: int, m_hi: ptr32, m_lo: ptr32, left: ptr32, right: ptr32, act_min: int,
           act_max: int):
    xa = int(x)
    wa = int(w)
    g = ptr8(SCRATCH)  # gathered window: g[0 : w_oc]
    ga = int(g)
    pairs = ptr8(ga + 512)  # (offset, xu) pairs: up to 256 taps
    la = ga + 512
    rp = ptr32(rows)
    cp = ptr32(cols)
    n_rows3 = int(len(rows)) // 3 * 3
    n_cols4 = int(len(cols)) // 4 * 4
    cx = 128 + x_zp
    big = 0x3FFFFFFF
    cut = 0 - big - 2  # below every accumulator: no shortcut
    if y_zp <= act_min:
        cut = 0
    # SCRATCH: the gathered window at 0..w_oc; from 512 either the pairs (windows of <= 256
    # taps) or the per-channel weight sums (windows of <= 512 taps)
    gathers = w_oc <= 1024
    lists = cx == 0 and w_oc <= 256
    # cx != 0 with a gathered window: sum (xu - cx) * wu = sum xu * wu - cx * sum wu, with the
    # padding inside (xu = cx), so sum wu is over the whole filter: once per call per channel
    wsums = cx != 0 and w_oc <= 512 and out_c <= 128
    wsum = ptr32(la)
    if wsums:
        o = 0
        while o < out_c:
            w = ptr8(wa + o * w_oc)
            k = 0
            t = 0
            while k < w_oc:
                t += w[k] ^ 0x80
                k += 1
            wsum[o] = t
            o += 1
    g_end = ga + w_oc
    g_end8 = ga + (w_oc & -8)
    yo = 0
    xb = xa
    for bt in range(batches):
        r = 0
        while r < n_rows3:
            xr0 = xb + rp[r]
            wr0 = rp[r + 1]
            n_fy = rp[r + 2]
            c = 0
            while c < n_cols4:
                xc = xr0 + cp[c]
                w0 = wr0 + cp[c + 1]  # offset of the first valid tap in a filter
                n_runs = cp[c + 2]
                run = cp[c + 3]
                n_valid = n_fy * n_runs * run
                sx = 0
                n = 0
                listed = False
                if gathers:
                    if n_valid < w_oc:  # padding taps: xu = cx
                        k = 0
                        while k < w_oc:
                            g[k] = cx
                            k += 1
                    xr = xc
                    wr = w0
                    fy = 0
                    while fy < n_fy:
                        xt = xr
                        wt = wr
                        t = 0
                        while t < n_runs:
                            x = ptr8(xt)
                            w = ptr8(ga + wt)  # the gathered run
                            end = xt + run
                            if lists:  # count the nonzero taps too
                                while int(x) < end:
                                    v = x[0] ^ 0x80
                                    w[0] = v
                                    sx += v
                                    n += (v + 255) >> 8  # v is 0..255: 1 unless v == 0
                                    x = ptr8(int(x) + 1)
                                    w = ptr8(int(w) + 1)
                            else:
                                while int(x) < end:
                                    v = x[0] ^ 0x80
                                    w[0] = v
                                    sx += v
                                    x = ptr8(int(x) + 1)
                                    w = ptr8(int(w) + 1)
                            xt += x_fx
                            wt += w_fx
                            t += 1
                        xr += x_fy
                        wr += w_fy
                        fy += 1
                    sx -= cx * n_valid
                    if lists and n * 8 <= n_valid * 7:  # at most 7/8 nonzero: list them
                        listed = True
                        n = 0
                        k = 0
                        while k < w_oc:
                            v = g[k]
                            pairs[n] = k
                            pairs[n + 1] = v
                            n += ((v + 255) >> 8) << 1  # v is 0..255: +2 unless v == 0
                            k += 1
                    else:
                        n = 0
                else:
                    xr = xc
                    fy = 0
                    while fy < n_fy:
                        xt = xr
                        t = 0
                        while t < n_runs:
                            x = ptr8(xt)
                            k = 0
                            while k < run:
                                sx += (x[k] ^ 0x80) - cx
                                k += 1
                            xt += x_fx
                            t += 1
                        xr += x_fy
                        fy += 1
                corr = sx << 7
                l_end = la + n
                l_end4 = la + (n & -8)
                wc = wa  # filter of output channel o
                o = 0
                while o < out_c:
                    acc = 0
                    if listed:
                        x = ptr8(la)
                        w = ptr8(wc)
                        while int(x) < l_end4:
                            acc += ((w[x[0]] ^ 0x80) * x[1] + (w[x[2]] ^ 0x80) * x[3]
                                    + (w[x[4]] ^ 0x80) * x[5] + (w[x[6]] ^ 0x80) * x[7])
                            x = ptr8(int(x) + 8)
                        while int(x) < l_end:
                            acc += (w[x[0]] ^ 0x80) * x[1]
                            x = ptr8(int(x) + 2)
                    elif gathers:
                        x = ptr8(ga)
                        w = ptr8(wc)
                        if cx == 0 or wsums:
                            while int(x) < g_end8:
                                acc += ((w[0] ^ 0x80) * x[0] + (w[1] ^ 0x80) * x[1]
                                        + (w[2] ^ 0x80) * x[2] + (w[3] ^ 0x80) * x[3])
                                acc += ((w[4] ^ 0x80) * x[4] + (w[5] ^ 0x80) * x[5]
                                        + (w[6] ^ 0x80) * x[6] + (w[7] ^ 0x80) * x[7])
                                x = ptr8(int(x) + 8)
                                w = ptr8(int(w) + 8)
                            while int(x) < g_end:
                                acc += (w[0] ^ 0x80) * x[0]
                                x = ptr8(int(x) + 1)
                                w = ptr8(int(w) + 1)
                            if wsums:
                                acc -= cx * wsum[o]
                        else:
                            while int(x) < g_end8:
                                acc += ((w[0] ^ 0x80) * (x[0] - cx) + (w[1] ^ 0x80) * (x[1] - cx)
                                        + (w[2] ^ 0x80) * (x[2] - cx)
                                        + (w[3] ^ 0x80) * (x[3] - cx))
                                acc += ((w[4] ^ 0x80) * (x[4] - cx) + (w[5] ^ 0x80) * (x[5] - cx)
                                        + (w[6] ^ 0x80) * (x[6] - cx)
                                        + (w[7] ^ 0x80) * (x[7] - cx))
                                x = ptr8(int(x) + 8)
                                w = ptr8(int(w) + 8)
                            while int(x) < g_end:
                                acc += (w[0] ^ 0x80) * (x[0] - cx)
                                x = ptr8(int(x) + 1)
                                w = ptr8(int(w) + 1)
                    else:  # the window in place, run by run
                        xr = xc
                        wr = wc + w0
                        fy = 0
                        while fy < n_fy:
                            xt = xr
                            wt = wr
                            t = 0
                            while t < n_runs:
                                x = ptr8(xt)
                                w = ptr8(wt)
                                end = xt + run
                                e4 = xt + (run & -4)
                                while int(x) < e4:
                                    acc += ((w[0] ^ 0x80) * ((x[0] ^ 0x80) - cx)
                                            + (w[1] ^ 0x80) * ((x[1] ^ 0x80) - cx)
                                            + (w[2] ^ 0x80) * ((x[2] ^ 0x80) - cx)
                                            + (w[3] ^ 0x80) * ((x[3] ^ 0x80) - cx))
                                    x = ptr8(int(x) + 4)
                                    w = ptr8(int(w) + 4)
                                while int(x) < end:
                                    acc += (w[0] ^ 0x80) * ((x[0] ^ 0x80) - cx)
                                    x = ptr8(int(x) + 1)
                                    w = ptr8(int(w) + 1)
                                xt += x_fx
                                wt += w_fx
                                t += 1
                            xr += x_fy
                            wr += w_fy
                            fy += 1
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
                    wc += w_oc
                    o += 1
                c += 4
            r += 3
        xb += x_batch
