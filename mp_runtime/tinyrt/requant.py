# Requantization exactly as TensorFlow Lite Micro does it (gemmlowp double rounding):
#   MultiplyByQuantizedMultiplier(x, M, shift) =
#       RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(x << left, M), right)
# with M the Q31 multiplier in [2^30, 2^31) (or 0), left = max(shift, 0), right = max(-shift, 0).
#
# On the boards a small int is 31-bit: an intermediate beyond +-2^30 becomes a heap-allocated
# long (and a MemoryError under heap_lock). The 62-bit product x*M is therefore formed from
# 15-bit limbs, each partial product < 2^30 and each column sum < 2^18.
#
# The converter stores M as (m_hi, m_lo) = (M >> 15, M & 0x7FFF) and guarantees
# |x| << left < 2^30 (accumulator bound checked at conversion); right >= 31 is stored as
# M = 0 (the exact result is then 0 for every |x| < 2^30).

_MASK15 = 0x7FFF


def srdhm(x, m_hi, m_lo):
    """SaturatingRoundingDoublingHighMul(x, M) for |x| < 2^30, M = m_hi*2^15 + m_lo < 2^31."""
    if x < 0:
        a = -x
        c0 = _MASK15  # nudge 2^30 - 1, truncation toward zero: split over columns 0 and 1
        c2 = 0
    else:
        a = x
        c0 = 0  # nudge 2^30: one unit of column 2
        c2 = 1
    a1 = a >> 15
    a0 = a & _MASK15
    m2 = m_hi >> 15
    m1 = m_hi & _MASK15
    p00 = a0 * m_lo  # weight 2^0
    p10 = a1 * m_lo  # weight 2^15
    p01 = a0 * m1  # weight 2^15
    p11 = a1 * m1  # weight 2^30
    col1 = ((p00 & _MASK15) + c0 >> 15) + (p00 >> 15) + (p10 & _MASK15) + (p01 & _MASK15) + c0
    col2 = (col1 >> 15) + (p10 >> 15) + (p01 >> 15) + (p11 & _MASK15) + a0 * m2 + c2
    col3 = (col2 >> 15) + (p11 >> 15) + a1 * m2
    q = (col3 << 14) + ((col2 & _MASK15) >> 1)
    if x < 0:
        return -q
    return q


def rounding_divide_by_pot(x, exponent):
    """Round x / 2^exponent to nearest, ties away from zero (gemmlowp), 0 <= exponent <= 30."""
    if exponent == 0:
        return x
    mask = (((1 << (exponent - 1)) - 1) << 1) | 1  # 2^e - 1 without forming 2^30 (a long)
    threshold = mask >> 1
    if x < 0:
        threshold += 1
    if (x & mask) > threshold:
        return (x >> exponent) + 1
    return x >> exponent


def multiply_by_quantized_multiplier(x, m_hi, m_lo, left, right):
    """TFLM's MultiplyByQuantizedMultiplier, the multiplier split as the converter stores it."""
    return rounding_divide_by_pot(srdhm(x << left, m_hi, m_lo), right)
