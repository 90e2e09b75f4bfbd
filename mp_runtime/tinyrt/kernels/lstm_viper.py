# Viper twin of kernels.lstm.lstm_step (same signature, same results): one time step of one
# batch row, unit by unit, everything inline (no calls): the gate FCs, TFLM's
# MultiplyByQuantizedMultiplier (the branch-free form proven in requant_viper.py), the int16
# sigmoid/tanh interpolation, the cell and hidden updates.
#
# Bounds (int32 machine words on 32-bit boards): int8 values read through ptr8 are bytes
# (0..255); the converter guarantees (|bias| + K * 2^14) << left < 2^30 for each gate FC, so
# acc and a = acc << left stay inside int32; products of two int16 values are <= 2^30 - 2^15;
# the interpolation (ua << 9) + 511 * 65535 < 2^26. int32 tables: bias through two
# little-endian ptr16 halves (the high one made signed); wsum, m_hi, m_lo, left, right and the
# sigmoid table are non-negative, read with ptr32.
#
# Speed (m0): gate by gate, FC by FC over all units (each FC's multiplier and row pointers set
# once, the weight rows walked in order), the gates' values kept in `gates` (array('i'),
# 4 * S, each value + 32768: ptr32 loads of negative words differ between ports); then unit by
# unit the cell and hidden updates. The two walking pointers are the first two parameters (x,
# w_in), so they live in the emitter's register locals; products use the unsigned bytes
# xu = x ^ 0x80 = x + 128 and wu = w ^ 0x80 = w + 128:
#   sum x * w = sum xu * wu - 128 * (sum xu + sum wu - 128 * n),
# with sum wu per weight row precomputed at prepare (wsum: w_in's 4 * S rows, then w_rec's) and
# sum xu once per step and vector.
# |sum xu * wu| <= 65025 * n and the correction <= 65280 * n stay below 2^31 for n <= 32768
# (the kernel runs the reference beyond).
import micropython


@micropython.viper
def lstm_step(x: ptr8, w_in: ptr8, w_rec: ptr8, xo: int, bias: ptr16, wsum: ptr32,
              gates: ptr32, m_hi: ptr32, m_lo: ptr32, left: ptr32, right: ptr32, tab: ptr32,
              h: ptr8, ho: int, c: ptr8, y: ptr8, yo: int, n_in: int, n_s: int, clip: int,
              t_mul: int, t_shift: int, h_zp: int):
    x_row = int(x) + xo
    h_row = int(h) + ho
    wi_base = int(w_in)
    wr_base = int(w_rec)
    sx = 0  # sum of x ^ 0x80 over the step's input row, then over the hidden state's
    x = ptr8(x_row)
    j = 0
    while j < n_in:
        sx += x[j] ^ 0x80
        j += 1
    sh = 0
    x = ptr8(h_row)
    j = 0
    while j < n_s:
        sh += x[j] ^ 0x80
        j += 1
    k = 0
    while k < 4:
        src = 0
        while src < 2:  # 0: input FC over x, 1: recurrent FC over h (then the activation)
            r = k + k + src
            mh = m_hi[r]
            ml = m_lo[r]
            sl = left[r]
            rr = right[r]
            if src == 0:
                n = n_in
                row = x_row
                w_in = ptr8(wi_base + k * n_s * n_in)
                sv = sx
            else:
                n = n_s
                row = h_row
                w_in = ptr8(wr_base + k * n_s * n_s)
                sv = sh
            ws = (src * 4 + k) * n_s
            bb = r * n_s
            gk = k * n_s
            nn = n << 7
            n4 = n & -4
            o = 0
            while o < n_s:
                x = ptr8(row)
                end = row + n
                end4 = row + n4
                d = 0
                while int(x) < end4:
                    d += ((w_in[0] ^ 0x80) * (x[0] ^ 0x80) + (w_in[1] ^ 0x80) * (x[1] ^ 0x80)
                          + (w_in[2] ^ 0x80) * (x[2] ^ 0x80) + (w_in[3] ^ 0x80) * (x[3] ^ 0x80))
                    x = ptr8(int(x) + 4)
                    w_in = ptr8(int(w_in) + 4)
                while int(x) < end:
                    d += (w_in[0] ^ 0x80) * (x[0] ^ 0x80)
                    x = ptr8(int(x) + 1)
                    w_in = ptr8(int(w_in) + 1)
                bi = (bb + o) << 1
                acc = ((((bias[bi + 1] ^ 0x8000) - 0x8000) << 16) | bias[bi]) + (
                    d - ((sv + wsum[ws + o] - nn) << 7))
                # MultiplyByQuantizedMultiplier(acc, M, shift) (requant_viper.py)
                a = acc << sl
                a1 = a >> 15
                a0 = a & 0x7FFF
                hh = a1 * mh
                pp = a1 * ml
                qq = a0 * mh
                f = (pp >> 15) + (qq >> 15) + (((pp & 0x7FFF) + (qq & 0x7FFF)
                                                + ((a0 * ml) >> 15) + 0x8000) >> 15)
                s = (hh >> 1) + (((hh & 1) + f) >> 1)
                v = (s + (((1 << rr) + (s >> 31)) >> 1)) >> rr
                if v > 32767:
                    v = 32767
                elif v < -32768:
                    v = -32768
                if src == 0:
                    gates[gk + o] = v + 32768
                    o += 1
                    continue
                pre = gates[gk + o] - 32768 + v
                if pre > 32767:
                    pre = 32767
                elif pre < -32768:
                    pre = -32768
                if k == 2:  # TFLM's int16 Tanh, multiplier 3, no shift
                    a = pre * 3
                    neg = a < 0
                    if neg:
                        a = 0 - a
                    uh = a >> 8
                    if uh >= 255:
                        res = 0xFFFF << 8
                    else:
                        ua = tab[uh]
                        res = (ua << 8) + (a & 255) * (tab[uh + 1] - ua)
                    if neg:
                        p = (8388735 - res) >> 8
                    else:
                        p = (res - 8388480) >> 8
                else:  # TFLM's int16 Logistic, multiplier 3, no shift
                    a = pre * 3
                    if a < 0:
                        a = 0 - a
                    uh = a >> 9
                    if uh >= 255:
                        res = 0x7FFF << 10
                    else:
                        ua = tab[uh]
                        res = (ua << 9) + (a & 511) * (tab[uh + 1] - ua)
                    if pre >= 0:
                        p = (res + 512) >> 10
                    else:
                        p = (33554432 - res + 511) >> 10
                gates[gk + o] = p + 32768
                o += 1
            src += 1
        k += 1
    o = 0
    while o < n_s:
        ig = gates[o] - 32768
        fg = gates[n_s + o] - 32768
        gg = gates[n_s + n_s + o] - 32768
        p = gates[3 * n_s + o] - 32768
        # the cell: sat16(sat16(MBQM(f * c, row 8)) + sat16(MBQM(i * g, row 9))), clipped
        j = (ho + o) << 1
        cv = c[j] | (((c[j + 1] ^ 0x80) - 0x80) << 8)
        total = 0
        t = 0
        while t < 2:
            r = 8 + t
            if t == 0:
                a = fg * cv
            else:
                a = ig * gg
            a1 = a >> 15
            a0 = a & 0x7FFF
            mh = m_hi[r]
            ml = m_lo[r]
            hh = a1 * mh
            pp = a1 * ml
            qq = a0 * mh
            f = (pp >> 15) + (qq >> 15) + (((pp & 0x7FFF) + (qq & 0x7FFF)
                                            + ((a0 * ml) >> 15) + 0x8000) >> 15)
            s = (hh >> 1) + (((hh & 1) + f) >> 1)
            rr = right[r]
            v = (s + (((1 << rr) + (s >> 31)) >> 1)) >> rr
            if v > 32767:
                v = 32767
            elif v < -32768:
                v = -32768
            total += v
            t += 1
        cv = total
        if cv > 32767:
            cv = 32767
        elif cv < -32768:
            cv = -32768
        if clip:
            if cv > clip:
                cv = clip
            elif cv < 0 - clip:
                cv = 0 - clip
        c[j] = cv & 0xFF
        c[j + 1] = (cv >> 8) & 0xFF
        # the hidden value: sat8(h_zp + MBQM(tanh(c) * o, row 10))
        a = cv * t_mul
        if t_shift:
            a = (a + (1 << (t_shift - 1))) >> t_shift
        neg = a < 0
        if neg:
            a = 0 - a
        uh = a >> 8
        if uh >= 255:
            res = 0xFFFF << 8
        else:
            ua = tab[uh]
            res = (ua << 8) + (a & 255) * (tab[uh + 1] - ua)
        if neg:
            tc = (8388735 - res) >> 8
        else:
            tc = (res - 8388480) >> 8
        a = tc * p
        a1 = a >> 15
        a0 = a & 0x7FFF
        mh = m_hi[10]
        ml = m_lo[10]
        hh = a1 * mh
        pp = a1 * ml
        qq = a0 * mh
        f = (pp >> 15) + (qq >> 15) + (((pp & 0x7FFF) + (qq & 0x7FFF)
                                        + ((a0 * ml) >> 15) + 0x8000) >> 15)
        s = (hh >> 1) + (((hh & 1) + f) >> 1)
        rr = right[10]
        v = h_zp + ((s + (((1 << rr) + (s >> 31)) >> 1)) >> rr)
        if v > 127:
            v = 127
        elif v < -128:
            v = -128
        y[yo + o] = v & 0xFF
        o += 1
    x = ptr8(h_row)
    o = 0
    while o < n_s:
        x[o] = y[yo + o]
        o += 1


@micropython.viper
def weight_sums(w: ptr8, rows: int, n: int, out: ptr32):
    """out[q] = sum of (w + 128) over row q of the int8 (rows, n) matrix w (<= 255 * n)."""
    q = 0
    k = 0
    while q < rows:
        s = 0
        end = k + n
        while k < end:
            s += w[k] ^ 0x80
            k += 1
        out[q] = s
        q += 1
