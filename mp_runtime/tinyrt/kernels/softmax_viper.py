# Viper twin of kernels.softmax.softmax (same signature, same results).
#
# The reference's arithmetic step for step, on the same (h, l) pairs (v = h * 2^15 + l,
# h in [-2^16, 2^16), l in [0, 2^15)), with add32 / sub32 / shl_saturating32 / get_reciprocal /
# mul_rdbp inlined and SRDHM a viper helper (_srdhm, 7 calls per row): the reference's cost on
# a short row is its ~40 Python calls per row, not the element loops.
# - ptr8 loads are unsigned bytes: xu = b ^ 0x80 is the int8 value + 128 (order-preserving),
#   so mx - x[i] = max(xu) - xu, in [0, 255] as in the reference.
# - The exp table (array('i') of 512) is read through ptr32: every entry is checked at prepare
#   to be in [0, 0xFFFF], so the load's extension (zero on the unix port, sign on boards) does
#   not matter. r (array('i') of 2) carries _srdhm's pair as (h + 0x10000, l), both in
#   [0, 2^17): never a negative ptr32 load.
# Bounds (int32 on 32-bit boards, where viper ints are wrapping machine words; none of these
# wraps): every value is one of the reference's, whose bounds are written there:
# - max / diff: xu, mx in [0, 255], d in [0, 255];
# - total <= depth * 2^19 <= 2047 * 2^19 < 2^30 (each term (E >> 15 << 3) + 8 <= 2^19);
# - get_reciprocal: n <= 30, rest < 2^29, ah < 2^16, al < 2^15, shifts 0..15;
# - pairs: h in [-2^16, 2^16], l < 2^15; add/sub before the mask: |.| < 2^18;
# - _srdhm: magnitudes' limbs a2 <= 2, a1, a0 < 2^15, each limb product < 2^30, column sums
#   < 2^18 + 5 * 2^15 < 2^19, qh < 2^17, (a2 * b2) << 14 <= 2^16;
# - per element (s = S >= 0, e >= 0): limb products < 2^30, col1, col2 < 2^18,
#   (e2 = E >> 30 <= 1, s2 <= 1) top < 2^4 + 4 * 2^15 < 2^18, top + 2^18 < 2^19;
#   exponent = n + 3 in [23, 33] (total >= 2^19: n >= 20).
# No literal beyond +-2^30 (tests/test_mpy_cross.py compiles this module for armv6m).
import micropython


@micropython.viper
def _srdhm(r: ptr32, ah: int, al: int, bh: int, bl: int):
    """r <- SaturatingRoundingDoublingHighMul(a, b) as (h + 0x10000, l) (softmax.srdhm32)."""
    if ah == -65536 and bh == -65536 and al == 0 and bl == 0:  # INT32_MIN * INT32_MIN
        r[0] = 0x1FFFF
        r[1] = 0x7FFF
        return
    neg = 0
    if ah < 0:
        neg = 1
        if al != 0:
            ah = -1 - ah
            al = 0x8000 - al
        else:
            ah = 0 - ah
    if bh < 0:
        neg ^= 1
        if bl != 0:
            bh = -1 - bh
            bl = 0x8000 - bl
        else:
            bh = 0 - bh
    a2 = ah >> 15
    a1 = ah & 0x7FFF
    b2 = bh >> 15
    b1 = bh & 0x7FFF
    c0 = 0
    c2 = 1
    if neg:
        c0 = 0x7FFF
        c2 = 0
    p00 = al * bl + c0
    p01 = al * b1
    p10 = a1 * bl
    p11 = a1 * b1
    col1 = (p00 >> 15) + (p01 & 0x7FFF) + (p10 & 0x7FFF) + c0
    col2 = ((col1 >> 15) + (p01 >> 15) + (p10 >> 15) + (p11 & 0x7FFF) + al * b2 + a2 * bl
            + c2)
    col3 = (col2 >> 15) + (p11 >> 15) + a1 * b2 + a2 * b1
    qh = (col3 >> 1) + ((a2 * b2) << 14)
    ql = ((col3 & 1) << 14) + ((col2 & 0x7FFF) >> 1)
    if neg and (qh != 0 or ql != 0):
        if ql != 0:
            qh = -1 - qh
            ql = 0x8000 - ql
        else:
            qh = 0 - qh
    r[0] = qh + 0x10000
    r[1] = ql


@micropython.viper
def softmax(x: ptr8, y: ptr8, rows: int, depth: int, e: ptr32, r: ptr32):
    start = 0
    while rows > 0:
        rows -= 1
        end = start + depth
        mx = 0
        for i in range(start, end):
            v = x[i] ^ 0x80
            if v > mx:
                mx = v
        total = 0  # Q12.19, < 2^30
        for i in range(start, end):
            d = mx - (x[i] ^ 0x80)
            total += (e[d] << 3) + ((e[256 + d] + 2048) >> 12)
        # get_reciprocal(total, 12): n significant bits, n in [20, 30]
        n = 0
        v = total
        while v != 0:
            v >>= 1
            n += 1
        rest = total - (1 << (n - 1))
        if n > 17:
            ah = rest >> (n - 17)
            al = (rest & ((1 << (n - 17)) - 1)) << (32 - n)
        else:
            ah = rest << (17 - n)
            al = 0
        exponent = n + 3  # (12 - 32 + n) + 23
        # one_over_one_plus_x_for_x_in_0_1(a): half_denominator dh, dl
        dh = (ah + 0x10000) >> 1
        dl = ((ah & 1) << 14) + (al >> 1)
        _srdhm(r, dh, dl, -30841, 17348)  # F2 -32/17
        h = int(r[0]) - 0x10000
        lo = 23130 + int(r[1])  # + F2 48/17 (46260, 23130)
        xh = ((46260 + h + (lo >> 15) + 0x10000) & 0x1FFFF) - 0x10000
        xl = lo & 0x7FFF
        k = 0
        while k < 3:
            k += 1
            _srdhm(r, dh, dl, xh, xl)
            h = int(r[0]) - 0x10000
            lo = 0 - int(r[1])  # F2 one (0x4000, 0) - half_denominator * x
            th = ((0x4000 - h + (lo >> 15) + 0x10000) & 0x1FFFF) - 0x10000
            tl = lo & 0x7FFF
            _srdhm(r, xh, xl, th, tl)
            h = int(r[0]) - 0x10000
            lo = int(r[1])
            if h >= 0x4000:  # Rescale<2>: saturating << 2, lim 2^14
                h = 0xFFFF
                lo = 0x7FFF
            elif h < -0x4000 or (h == -0x4000 and lo == 0):
                h = -0x10000
                lo = 0
            else:
                lo = lo << 2
                h = (h << 2) + (lo >> 15)
                lo = lo & 0x7FFF
            lo = xl + lo  # x + that
            xh = ((xh + h + (lo >> 15) + 0x10000) & 0x1FFFF) - 0x10000
            xl = lo & 0x7FFF
        # Rescale<0>(ExactMulByPot<-1>(x)): saturating << 1, lim 2^15
        if xh >= 0x8000:
            sh = 0xFFFF
            sl = 0x7FFF
        elif xh < -0x8000 or (xh == -0x8000 and xl == 0):
            sh = -0x10000
            sl = 0
        else:
            lo = xl << 1
            sh = (xh << 1) + (lo >> 15)
            sl = lo & 0x7FFF
        # y = RoundingDivideByPOT(SRDHM(S, E[d]), exponent) - 128, S in (2^30, 2^31)
        s2 = sh >> 15
        s1 = sh & 0x7FFF
        rnd = 1 << (exponent - 15)
        shift = exponent - 14
        for i in range(start, end):
            d = mx - (x[i] ^ 0x80)
            eh = int(e[d])
            el = int(e[256 + d])
            e2 = eh >> 15
            e1 = eh & 0x7FFF
            p01 = sl * e1
            p10 = s1 * el
            p11 = s1 * e1
            col1 = ((sl * el) >> 15) + (p01 & 0x7FFF) + (p10 & 0x7FFF)
            col2 = ((col1 >> 15) + (p01 >> 15) + (p10 >> 15) + (p11 & 0x7FFF) + sl * e2
                    + s2 * el + 1)
            top = (col2 >> 15) + (p11 >> 15) + s1 * e2 + s2 * e1 + ((s2 * e2) << 15)
            v = ((top + rnd) >> shift) - 128
            if v > 127:
                v = 127
            y[i] = v
        start = end
