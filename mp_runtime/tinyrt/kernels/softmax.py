# SOFTMAX, int8 over the last axis (TFLM reference softmax.h: gemmlowp fixed point).
#   inputs:  x int8 (..., depth), depth <= 2047; exp table int32 (2, 256)
#   outputs: y int8 (..., depth), scale 1/256, zero point -128 (as TFLM requires)
#   params:  none
# The converter tabulates, for d = max(row) - x in [0, 255], TFLM's Q0.31 exp of the rescaled
# diff: E[d] = exp_on_negative_values(MBQMGreaterThanOne(-d)), 0 for -d < diff_min (such an
# entry adds 0 to the sum and outputs -128, as TFLM's skip does), E[0] = 2^31 - 1. Table row 0
# holds E >> 15 (< 2^16), row 1 E & 0x7FFF. Per row, eval does TFLM's run-time arithmetic:
#   sum  = sum of RoundingDivideByPOT(E[d], 12)             Q12.19, <= depth * 2^19 < 2^30
#   S, n = GetReciprocal(sum, 12)                           Q0.31 in (2^30, 2^31), n in [0, 10]
#   y    = RoundingDivideByPOT(SRDHM(S, E[d]), n + 23) - 128, at most 127
#
# 31-bit rule: GetReciprocal works on int32 values up to 2^31, which are not small ints on the
# boards. They are carried as pairs (h, l): v = h * 2^15 + l, h = v >> 15 in [-2^16, 2^16),
# l = v & 0x7FFF (the layout of requant.py's multipliers). Products are formed from 15-bit
# limbs (each < 2^30, column sums < 2^18). A helper returning an int32 writes its pair into
# r[0], r[1] (an array('i') of 2 made at prepare), so nothing is allocated.
from array import array

from ..errors import ModelError
from ..fast import chosen, select
from ..fileformat import INT32
from .common import int32_values, tensor

# fast twins, imported by load() before it allocates the big buffers (tinyrt.fast.preload)
TWINS = ("softmax_viper",)

_M15 = 0x7FFF
MAX_DEPTH = 2047  # sum <= 2047 * 2^19 < 2^30


def srdhm32(r, ah, al, bh, bl):
    """r <- SaturatingRoundingDoublingHighMul(a, b) for int32 a, b (pairs)."""
    if ah == -65536 and bh == -65536 and al == 0 and bl == 0:  # INT32_MIN * INT32_MIN
        r[0] = 0xFFFF
        r[1] = _M15
        return
    neg = 0
    if ah < 0:  # |a| = (-1 - h) * 2^15 + (2^15 - l), or -h * 2^15 when l == 0
        neg = 1
        if al:
            ah = -1 - ah
            al = 0x8000 - al
        else:
            ah = -ah
    if bh < 0:
        neg ^= 1
        if bl:
            bh = -1 - bh
            bl = 0x8000 - bl
        else:
            bh = -bh
    # |a| = a2 * 2^30 + a1 * 2^15 + a0, a2 <= 2 (|a| <= 2^31), a1, a0 < 2^15; same for b
    a2 = ah >> 15
    a1 = ah & _M15
    b2 = bh >> 15
    b1 = bh & _M15
    # |ab| + nudge, truncated: nudge 2^30 (one unit of column 2) when ab >= 0; 2^30 - 1
    # (0x7FFF in columns 0 and 1) when ab < 0, and the magnitude is then floored
    if neg:
        c0 = _M15
        c2 = 0
    else:
        c0 = 0
        c2 = 1
    p00 = al * bl + c0  # weight 2^0, < 2^30
    p01 = al * b1  # weight 2^15, < 2^30
    p10 = a1 * bl
    p11 = a1 * b1  # weight 2^30, < 2^30
    col1 = (p00 >> 15) + (p01 & _M15) + (p10 & _M15) + c0
    col2 = ((col1 >> 15) + (p01 >> 15) + (p10 >> 15) + (p11 & _M15) + al * b2 + a2 * bl
            + c2)
    col3 = (col2 >> 15) + (p11 >> 15) + a1 * b2 + a2 * b1  # weight 2^45
    # q = (|ab| + nudge) >> 31 = (col3 + a2 * b2 * 2^15) * 2^14 + (col2 & 0x7FFF) >> 1 < 2^31
    qh = (col3 >> 1) + (a2 * b2 << 14)
    ql = ((col3 & 1) << 14) + ((col2 & _M15) >> 1)
    if neg and (qh or ql):
        if ql:
            qh = -1 - qh
            ql = 0x8000 - ql
        else:
            qh = -qh
    r[0] = qh
    r[1] = ql


def add32(r, ah, al, bh, bl):
    """r <- a + b, wrapped to int32 like C++."""
    lo = al + bl
    r[0] = ((ah + bh + (lo >> 15) + 0x10000) & 0x1FFFF) - 0x10000
    r[1] = lo & _M15


def sub32(r, ah, al, bh, bl):
    """r <- a - b, wrapped to int32 like C++."""
    lo = al - bl
    r[0] = ((ah - bh + (lo >> 15) + 0x10000) & 0x1FFFF) - 0x10000
    r[1] = lo & _M15


def shl_saturating32(r, h, lo, e):
    """r <- SaturatingRoundingMultiplyByPOT<e>(v) for 1 <= e <= 15: v << e, or INT32_MAX /
    INT32_MIN when |v| >= 2^(31 - e) (gemmlowp: v > 2^(31-e) - 1, v < -(2^(31-e) - 1))."""
    lim = 1 << (16 - e)  # 2^(31 - e) >> 15
    if h >= lim:
        r[0] = 0xFFFF
        r[1] = _M15
    elif h < -lim or (h == -lim and lo == 0):
        r[0] = -0x10000
        r[1] = 0
    else:
        lo = lo << e  # < 2^30
        r[0] = (h << e) + (lo >> 15)  # |h << e| < 2^16
        r[1] = lo & _M15


def one_over_one_plus_x_for_x_in_0_1(r, ah, al):
    """r <- gemmlowp one_over_one_plus_x_for_x_in_0_1(a), a in Q0.31 [0, 2^31), Q0.31 out.

    half_denominator = RoundingHalfSum(a, 1) = (a + 2^31) >> 1 for a >= 0; F2 Newton-Raphson
    from 48/17 - 32/17 * half_denominator, three steps; the result is x (F2) as F1 in F0."""
    dh = (ah + 0x10000) >> 1  # (a + 2^31) >> 1: in [2^30, 2^31)
    dl = ((ah & 1) << 14) + (al >> 1)
    srdhm32(r, dh, dl, -30841, 17348)  # -1010580540: F2 -32/17
    add32(r, 46260, 23130, r[0], r[1])  # 1515870810: F2 48/17
    xh = r[0]
    xl = r[1]
    for _ in range(3):
        srdhm32(r, dh, dl, xh, xl)  # half_denominator * x (F0 * F2 -> F2)
        sub32(r, 0x4000, 0, r[0], r[1])  # F2 one (2^29) - half_denominator * x
        srdhm32(r, xh, xl, r[0], r[1])  # F2 * F2 -> F4
        shl_saturating32(r, r[0], r[1], 2)  # Rescale<2>
        add32(r, xh, xl, r[0], r[1])
        xh = r[0]
        xl = r[1]
    shl_saturating32(r, xh, xl, 1)  # Rescale<0>(ExactMulByPot<-1>(x))


def get_reciprocal(r, x, x_integer_digits):
    """r <- TFLite GetReciprocal(x, x_integer_digits) (Q0.31), returns num_bits_over_unit.

    For 0 < x < 2^30 with n significant bits: headroom_plus_one = 32 - n and
    shifted_sum_minus_one = (x << (32 - n)) - 2^31 = (x - 2^(n-1)) * 2^(32-n) < 2^31."""
    n = 0
    v = x
    while v:
        v >>= 1
        n += 1
    rest = x - (1 << (n - 1))  # x without its top bit, < 2^(n-1)
    if n > 17:  # pair of rest * 2^(32-n): high part rest >> (n-17), low bits shifted up
        ah = rest >> (n - 17)
        al = (rest & ((1 << (n - 17)) - 1)) << (32 - n)  # < 2^15
    else:
        ah = rest << (17 - n)  # < 2^16
        al = 0
    one_over_one_plus_x_for_x_in_0_1(r, ah, al)
    return x_integer_digits - 32 + n


def mul_rdbp(sh, sl, eh, el, exponent):
    """RoundingDivideByPOT(SRDHM(s, e), exponent) for 0 <= s, e < 2^31 (pairs),
    15 <= exponent <= 44.

    Both roundings add a power of two before flooring, so the two floors fold into one:
    (s * e + 2^30 + 2^(exponent + 30)) >> (exponent + 31). Result < 2^17."""
    s2 = sh >> 15  # 0 or 1
    s1 = sh & _M15
    e2 = eh >> 15
    e1 = eh & _M15
    p01 = sl * e1  # weight 2^15, < 2^30
    p10 = s1 * el
    p11 = s1 * e1  # weight 2^30
    col1 = (sl * el >> 15) + (p01 & _M15) + (p10 & _M15)
    col2 = (col1 >> 15) + (p01 >> 15) + (p10 >> 15) + (p11 & _M15) + sl * e2 + s2 * el + 1
    # (s * e + 2^30) >> 45, < 2^17
    top = (col2 >> 15) + (p11 >> 15) + s1 * e2 + s2 * e1 + (s2 * e2 << 15)
    return (top + (1 << (exponent - 15))) >> (exponent - 14)


def softmax(x, y, rows, depth, e, r):
    """x, y int8 (rows, depth); e the exp table (E >> 15 at e[d], E & 0x7FFF at e[256 + d]);
    r an array('i') of 2 (scratch)."""
    for b in range(rows):
        start = b * depth
        end = start + depth
        mx = -128
        for i in range(start, end):
            if x[i] > mx:
                mx = x[i]
        total = 0  # Q12.19: each term <= 2^19, depth <= 2047 -> < 2^30
        for i in range(start, end):
            d = mx - x[i]
            total += (e[d] << 3) + ((e[256 + d] + 2048) >> 12)  # Rescale<12>: RDBP(E, 12)
        exponent = get_reciprocal(r, total, 12) + 23  # sum >= 2^19: 23 .. 33
        sh = r[0]
        sl = r[1]
        for i in range(start, end):
            d = mx - x[i]
            v = mul_rdbp(sh, sl, e[d], e[256 + d], exponent) - 128  # >= -128
            if v > 127:
                v = 127
            y[i] = v


class Softmax:
    def __init__(self, model, op):
        x = tensor(model, op, 0, "input")
        y = tensor(model, op, ~0, "output")
        if tuple(y.shape) != tuple(x.shape) or not x.shape:
            raise ModelError("softmax input shape %r, output %r: expected equal"
                             % (x.shape, y.shape))
        depth = x.shape[-1]
        if depth < 1 or depth > MAX_DEPTH:
            raise ModelError("softmax row length %d, expected 1..%d" % (depth, MAX_DEPTH))
        if y.zero_point != -128 or y.scale != 0.00390625:
            raise ModelError("softmax output quantization (%g, %d), expected (1/256, -128)"
                             % (y.scale, y.zero_point))
        e = self.table(model, op)
        if len(e) != 512:
            raise ModelError("softmax exp table has %d values, expected 512" % len(e))
        for d in range(256):
            if e[d] < 0 or e[d] > 0xFFFF or e[256 + d] < 0 or e[256 + d] > _M15:
                raise ModelError("softmax exp table entry %d out of range: %d %d"
                                 % (d, e[d], e[256 + d]))
        if e[0] != 0xFFFF or e[256] != _M15:
            raise ModelError("softmax exp table: exp(0) is %d %d, expected 65535 32767"
                             % (e[0], e[256]))
        self.args = (x.data, y.data, x.size // depth, depth, e, array("i", [0, 0]))
        self.fn = select("softmax_viper", "softmax", softmax)
        self.impl = chosen["softmax"]

    def table(self, model, op):
        """The exp table, array('i') of 512 (SOFTMAX_EXP computes it instead)."""
        return int32_values(model, tensor(model, op, 1, "exp table", INT32, const=True))

    def eval(self):
        x, y, rows, depth, e, r = self.args
        self.fn(x, y, rows, depth, e, r)


def prepare(model, op):
    if model.tensors[op.inputs[0]].dtype == "int16":  # 16x8 mode: its own module
        from .softmax16 import prepare as prepare_16

        return prepare_16(model, op)
    return Softmax(model, op)
