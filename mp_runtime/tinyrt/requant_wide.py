# TFLM's int32 MultiplyByQuantizedMultiplier for accumulators beyond the boards' small ints
# (issue 13: batch-norm folding leaves int32 biases near +-2^30 on channels that are not
# constant, see converter/layers/common.exact_channels):
#   acc = wrap32(B + d), x = wrap32(acc * 2^left),
#   MBQM = RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(x, M), right)
# with B any int32 bias, stored as b_hi = B >> 15, b_lo = B & 0x7FFF, and d a sum of products
# with |d| < 2^30 (the converter bounds K * 255 * 128 < 2^30); M in [0, 2^31) as
# (m_hi, m_lo) = (M >> 15, M & 0x7FFF), left in [0, 30], right in [0, 31].
#
# Both roundings collapse into one: with a = |x| <= 2^31, s = sign(x) and half = 2^(right-1)
# (0 when right = 0),
#   SRDHM(x, M) = s * floor((a * M + c) / 2^31),  c = 2^30 (x >= 0) or 2^30 - 1 (x < 0)
#   RDBPOT(h, r) = sign(h) * floor((|h| + half) / 2^r)          (ties away from zero)
# and floor((floor(P / 2^31) + half) / 2^r) = floor((P + half * 2^31) / 2^(31 + r)), so
#   MBQM = s * floor((a * M + c + half * 2^31) / 2^(31 + right)).
# The product is formed in 15-bit limbs: a = a2 * 2^30 + a1 * 2^15 + a0 (a2 <= 2),
# M = m2 * 2^30 + m1 * 2^15 + m0 (m2 <= 1); every partial product < 2^30, every column sum
# < 2^19. Results of magnitude >= 2^16 are returned as +-SATURATED (the caller clamps to int8
# or int16, so only the sign matters there); every intermediate is below 2^30.

_MASK15 = 0x7FFF
_MASK17 = 0x1FFFF
SATURATED = 65536  # 2^16


def multiply_by_quantized_multiplier_wide(b_hi, b_lo, d, m_hi, m_lo, left, right):
    """TFLM's MultiplyByQuantizedMultiplier(wrap32(B + d), M, shift), B = b_hi * 2^15 + b_lo;
    exact when the result is in (-2^16, 2^16), else +-SATURATED."""
    # v = wrap32(B + d) = vh * 2^15 + vl, 0 <= vl < 2^15, vh in [-2^16, 2^16)
    vl = b_lo + (d & _MASK15)
    vh = b_hi + (d >> 15) + (vl >> 15)
    vl &= _MASK15
    vh = ((vh + 65536) & _MASK17) - 65536
    for _ in range(left):  # x = wrap32(v * 2^left), as TFLM's x * (1 << left_shift)
        vl <<= 1
        vh = (((vh << 1) + (vl >> 15) + 65536) & _MASK17) - 65536
        vl &= _MASK15
    neg = vh < 0
    if neg:  # a = -x as limbs, a <= 2^31
        if vl:
            vh = -vh - 1
            vl = 32768 - vl
        else:
            vh = -vh
    a0 = vl
    a1 = vh & _MASK15
    a2 = vh >> 15
    m0 = m_lo
    m1 = m_hi & _MASK15
    m2 = m_hi >> 15
    p = a0 * m0
    c0 = p & _MASK15
    c1 = p >> 15
    p = a0 * m1
    c1 += p & _MASK15
    c2 = p >> 15
    p = a1 * m0
    c1 += p & _MASK15
    c2 += p >> 15
    p = a1 * m1
    c2 += (p & _MASK15) + a0 * m2 + a2 * m0  # a0 * m2 < 2^15, a2 * m0 < 2^16
    c3 = p >> 15
    c3 += a1 * m2 + a2 * m1  # each < 2^16
    c4 = a2 * m2
    if neg:  # c = 2^30 - 1
        c0 += _MASK15
        c1 += _MASK15
    else:  # c = 2^30
        c2 += 1
    if right:  # + half * 2^31 = 2^(right + 30)
        e = right + 30
        if e < 45:
            c2 += 1 << (e - 30)
        elif e < 60:
            c3 += 1 << (e - 45)
        else:
            c4 += 1 << (e - 60)
    c1 += c0 >> 15
    c2 += c1 >> 15
    c3 += c2 >> 15
    c2 &= _MASK15
    c4 += c3 >> 15
    c3 &= _MASK15
    # P = c4 * 2^60 + c3 * 2^45 + c2 * 2^30 + (below 2^30); q = P >> (31 + right)
    e = 1 + right  # the shift past 2^30
    if e < 15:
        if c4:
            q = SATURATED  # P >= 2^60, q >= 2^(60 - 31 - 14)
        else:
            q = ((c3 << 15) | c2) >> e
            if q > SATURATED:
                q = SATURATED
    elif e < 30:
        q = ((c4 << 15) | c3) >> (e - 15)  # c4 < 2^4
    else:
        q = c4 >> (e - 30)
    if neg:
        return -q
    return q
