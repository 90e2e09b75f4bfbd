# Viper twin of kernels.lstm.lstm_step (same signature, same results): one time step of one
# batch row, unit by unit, everything inline (no calls): the gate FCs, TFLM's
# MultiplyByQuantizedMultiplier (the branch-free form proven in requant_viper.py), the int16
# sigmoid/tanh interpolation, the cell and hidden updates.
#
# Bounds (int32 machine words on 32-bit boards): int8 values read through ptr8 are bytes
# (0..255) made signed by (b ^ 0x80) - 0x80; the converter guarantees (|bias| + K * 2^14)
# << left < 2^30 for each gate FC, so acc and a = acc << left stay inside int32; products of
# two int16 values are <= 2^30 - 2^15; the interpolation (ua << 9) + 511 * 65535 < 2^26.
# int32 tables: bias through two little-endian ptr16 halves (the high one made signed);
# m_hi, m_lo, left, right and the sigmoid table are non-negative, read with ptr32.
import micropython


@micropython.viper
def lstm_step(x: ptr8, xo: int, w_in: ptr8, w_rec: ptr8, bias: ptr16, m_hi: ptr32,
              m_lo: ptr32, left: ptr32, right: ptr32, tab: ptr32, h: ptr8, ho: int, c: ptr8,
              y: ptr8, yo: int, n_in: int, n_s: int, clip: int, t_mul: int, t_shift: int,
              h_zp: int):
    o = 0
    while o < n_s:
        ig = 0
        fg = 0
        gg = 0
        p = 0
        k = 0
        while k < 4:
            pre = 0
            src = 0
            while src < 2:  # 0: input FC over x, 1: recurrent FC over h
                r = k + k + src
                if src == 0:
                    n = n_in
                    xv = ptr8(int(x) + xo)
                    wv = ptr8(int(w_in) + (k * n_s + o) * n_in)
                else:
                    n = n_s
                    xv = ptr8(int(h) + ho)
                    wv = ptr8(int(w_rec) + (k * n_s + o) * n_s)
                bi = (r * n_s + o) << 1
                acc = ((((bias[bi + 1] ^ 0x8000) - 0x8000) << 16) | bias[bi])
                j = 0
                n4 = n & -4
                while j < n4:
                    acc += (((wv[j] ^ 0x80) - 0x80) * ((xv[j] ^ 0x80) - 0x80)
                            + ((wv[j + 1] ^ 0x80) - 0x80) * ((xv[j + 1] ^ 0x80) - 0x80)
                            + ((wv[j + 2] ^ 0x80) - 0x80) * ((xv[j + 2] ^ 0x80) - 0x80)
                            + ((wv[j + 3] ^ 0x80) - 0x80) * ((xv[j + 3] ^ 0x80) - 0x80))
                    j += 4
                while j < n:
                    acc += ((wv[j] ^ 0x80) - 0x80) * ((xv[j] ^ 0x80) - 0x80)
                    j += 1
                # MultiplyByQuantizedMultiplier(acc, M, shift) (requant_viper.py)
                a = acc << left[r]
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
                pre += v
                src += 1
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
            if k == 0:
                ig = p
            elif k == 1:
                fg = p
            elif k == 2:
                gg = p
            k += 1
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
    o = 0
    while o < n_s:
        h[ho + o] = y[yo + o]
        o += 1
