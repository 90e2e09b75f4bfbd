# Viper twin of kernels.bconv.bconv2d for BFULLY_CONNECTED (same signature and results as the
# reference, which bfully_connected calls with a 1x1 filter on 1x1 images: `batches` rows of
# wb bytes, read in place; scratch, pads, wpop None; the geometry arguments are the 1x1 ones
# and unused here). The popcount, its bounds and the output transform are bconv_viper's (see
# there): rows of n_in <= 2^29 bits, acc <= n_in, every value a 32-bit pattern up to the byte
# stage and non-negative from there on; ptr32 loads only where a value is non-negative.
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
    row = wb  # bytes of a row: whole words
    nq = row >> 4  # groups of 4 words
    n1 = (row >> 2) & 3  # words left over
    words = ((xa | wa) & 3) == 0  # 4-byte aligned: word loads (always on the unix port)
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
    ybytes = ((cout + 31) >> 5) << 2
    yo = 0
    sa = xa
    for r in range(batches):
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
        sa += row
