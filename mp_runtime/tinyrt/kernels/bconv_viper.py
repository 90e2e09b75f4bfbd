# Viper twin of kernels.bconv.bconv2d (same signature, same results to the bit), for both
# BCONV_2D and BFULLY_CONNECTED (a 1x1 filter on 1x1 images; bfully_connected_viper).
#
# Order of work as in the reference: output pixels, then output channels. A pixel's window is
# gathered once into `scratch` (KH*KW taps of wb bytes, the filters' OHWI layout; padded taps
# 0-bits), a 1x1 filter reads the pixel in place; each output channel then runs one
# contiguous xor-popcount over the window's row/4 words, 4 words (128 binary MACs) per loop
# iteration, x and w (the emitter's two register locals) walking as ptr32.
#
# Popcount of 32-bit words without a popcount instruction (SWAR; the masks 0x55555555,
# 0x33333333, 0x0F0F0F0F are built at run time: literals beyond 2^30 do not compile for 32-bit
# boards):
#   a = u - ((u >> 1) & m1)              2-bit counts (<= 2)          u = x XOR w, one word
#   a = (a & m2) + ((a >> 2) & m2)       4-bit counts (<= 4); two words' summed: <= 8
#   a = (a & m4) + ((a >> 4) & m4)       byte counts of the pair (<= 16); two pairs: <= 32
#   p += p >> 8; p += p >> 16            low byte: the 4 words' popcount (<= 128 < 256)
# Bounds: up to the byte stage the values are 32-bit bit patterns: a loaded word is
# zero-extended on the 64-bit unix port and sign-extended on 32-bit boards (it may read as
# negative there, as may step 1's result and the two words' nibble sum, whose top field can
# reach 2 or 8). No field ever carries into the next (each count fits its field), so no step
# needs a 33rd bit: the 64-bit unix port computes the same low 32 bits with nothing above, and
# the board's wrapping 32-bit words hold the exact pattern. Every right shift is followed by a
# mask whose top bits are 0 (m1: bit 31, m2: bits 31-30, m4: bits 31-28 clear), so the sign
# bits an arithmetic shift brings in on a board are dropped: the popcount does not depend on
# how the load was extended. From the byte stage on every value is in [0, 0x20202020] or
# smaller, non-negative on both; acc <= K = KH*KW*Cin bits, and with zero_pad
# a = 2 * acc + n_pad * Cin <= 2K < 2^30 (the reference's bound); indices and addresses as
# in the reference (checked at prepare). Unaligned buffers (an M0 faults on an unaligned ldr)
# take a byte path: POPCOUNT[x ^ w] on unsigned ptr8 bytes.
#
# The output transform reads the int32 tables through ptr16 halves where a value may be
# negative (thresholds in [-1, a_max], int8 bases, directions +-1): ptr32 loads are used only
# for non-negative values (step starts and counts, steps, tap indices, filter popcounts).
import micropython

from ..bitpack import POPCOUNT


@micropython.viper
def bconv2d(x: ptr32, w: ptr32, y: ptr8, scratch, pads, wpop, batches: int, in_h: int,
            in_w: int, wb: int, out_h: int, out_w: int, cout: int, kh: int, kw: int, sh: int,
            sw: int, dh: int, dw: int, pt: int, pl: int, zero_pad: int, cin: int, ot):
    xa = int(x)
    wa = int(w)
    pc = ptr8(POPCOUNT)
    h = 0x5555
    m1 = h | (h << 16)
    h = 0x3333
    m2 = h | (h << 16)
    h = 0x0F0F
    m4 = h | (h << 16)
    taps = kh * kw
    row = taps * wb  # bytes of a window: whole words
    nq = row >> 4  # groups of 4 words
    n1 = (row >> 2) & 3  # words left over
    direct = taps == 1
    ga = 0
    if not direct:
        ga = int(ptr8(scratch))
    words = ((xa | wa | ga) & 3) == 0  # 4-byte aligned: word loads (always on the unix port)
    mode = int(ot.mode)
    if mode == 0:
        thr = ptr16(ot.thr)  # int32 thresholds in [-1, a_max], as halves
    elif mode == 1:
        start = ptr32(ot.start)
        count = ptr32(ot.count)
        bases = ptr16(ot.base)  # int32 in [-128, 127]: the low half, sign-extended
        dirs = ptr16(ot.dir)  # int32 -1 | 1: the low half
        wide = int(ot.steps_wide)
        st16 = ptr16(ot.steps)
        st32 = ptr32(ot.steps)
    else:
        table = ptr8(ot.table)
        t_row = int(ot.table_row)
    if zero_pad:
        pp = ptr32(pads)
        wp = ptr32(wpop)
    ybytes = ((cout + 31) >> 5) << 2
    pix = in_h * in_w
    yo = 0
    for b in range(batches):
        oy = 0
        while oy < out_h:
            iy0 = oy * sh - pt
            ox = 0
            while ox < out_w:
                ix0 = ox * sw - pl
                n_pad = 0
                if direct:
                    sa = xa + ((b * in_h + iy0) * in_w + ix0) * wb
                else:
                    sa = ga
                    o = ga
                    t = 0
                    fy = 0
                    while fy < kh:
                        iy = iy0 + fy * dh
                        fx = 0
                        while fx < kw:
                            ix = ix0 + fx * dw
                            if iy >= 0 and iy < in_h and ix >= 0 and ix < in_w:
                                s = xa + (b * pix + iy * in_w + ix) * wb
                                if words:
                                    x = ptr32(s)
                                    w = ptr32(o)
                                    i = 0
                                    while i < (wb >> 2):
                                        w[i] = x[i]
                                        i += 1
                                else:
                                    sb = ptr8(s)
                                    db = ptr8(o)
                                    i = 0
                                    while i < wb:
                                        db[i] = sb[i]
                                        i += 1
                            else:
                                db = ptr8(o)
                                i = 0
                                while i < wb:
                                    db[i] = 0
                                    i += 1
                                if zero_pad:
                                    pp[n_pad] = t
                                n_pad += 1
                            o += wb
                            t += 1
                            fx += 1
                        fy += 1
                v = 0
                yend = yo + ybytes
                wc = wa
                c = 0
                while c < cout:
                    acc = 0
                    if words:
                        x = ptr32(sa)
                        w = ptr32(wc)
                        q = 0
                        while q < nq:
                            a = x[0] ^ w[0]
                            e = x[1] ^ w[1]
                            a = a - ((a >> 1) & m1)
                            e = e - ((e >> 1) & m1)
                            a = (a & m2) + ((a >> 2) & m2) + (e & m2) + ((e >> 2) & m2)
                            p = (a & m4) + ((a >> 4) & m4)
                            a = x[2] ^ w[2]
                            e = x[3] ^ w[3]
                            a = a - ((a >> 1) & m1)
                            e = e - ((e >> 1) & m1)
                            a = (a & m2) + ((a >> 2) & m2) + (e & m2) + ((e >> 2) & m2)
                            p += (a & m4) + ((a >> 4) & m4)
                            p += p >> 8
                            p += p >> 16
                            acc += p & 0xFF
                            x = ptr32(int(x) + 16)
                            w = ptr32(int(w) + 16)
                            q += 1
                        q = 0
                        while q < n1:
                            a = x[q] ^ w[q]
                            a = a - ((a >> 1) & m1)
                            a = (a & m2) + ((a >> 2) & m2)
                            a = (a + (a >> 4)) & m4  # byte counts (<= 8)
                            a += a >> 8
                            a += a >> 16
                            acc += a & 0x3F
                            q += 1
                    else:
                        sb = ptr8(sa)
                        db = ptr8(wc)
                        i = 0
                        while i < row:
                            acc += pc[sb[i] ^ db[i]]
                            i += 1
                    wc += row
                    if zero_pad:
                        j = 0
                        while j < n_pad:
                            acc -= wp[c * taps + pp[j]]
                            j += 1
                        acc = 2 * acc + n_pad * cin
                    if mode == 0:
                        if acc > (((thr[2 * c + 1] ^ 0x8000) - 0x8000) << 16) + thr[2 * c]:
                            v |= 1 << (c & 7)
                        if (c & 7) == 7:
                            y[yo] = v
                            yo += 1
                            v = 0
                    elif mode == 1:
                        s0 = start[c]
                        lo = s0
                        hi = lo + count[c]
                        if wide:
                            while lo < hi:
                                mid = (lo + hi) >> 1
                                if st32[mid] <= acc:
                                    lo = mid + 1
                                else:
                                    hi = mid
                        else:
                            while lo < hi:
                                mid = (lo + hi) >> 1
                                if st16[mid] <= acc:
                                    lo = mid + 1
                                else:
                                    hi = mid
                        y[yo] = (((bases[2 * c] ^ 0x8000) - 0x8000)
                                 + ((dirs[2 * c] ^ 0x8000) - 0x8000) * (lo - s0))
                        yo += 1
                    else:  # acc <= a_max unless a hostile file sets padding bits: clamp
                        if acc >= t_row:
                            acc = t_row - 1
                        y[yo] = table[c * t_row + acc]
                        yo += 1
                    c += 1
                if mode == 0:
                    if cout & 7:
                        y[yo] = v
                        yo += 1
                    while yo < yend:  # unused bits of the last word are 0
                        y[yo] = 0
                        yo += 1
                ox += 1
            oy += 1
