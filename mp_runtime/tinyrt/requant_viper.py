# Viper twin of tinyrt.requant.multiply_by_quantized_multiplier (TFLM's
# MultiplyByQuantizedMultiplier with the multiplier stored as m_hi = M >> 15, m_lo = M & 0x7FFF)
# and the proof of the arithmetic that the viper kernels inline per output.
#
# On 32-bit boards viper ints are wrapping 32-bit machine words, so every intermediate must
# stay inside int32 (on the 64-bit unix port they are 64-bit and nothing wraps: the tests
# cannot see an overflow, hence the bounds). The converter guarantees |a| < 2^30 for
# a = acc << left, and M = m_hi * 2^15 + m_lo < 2^31 with m_hi < 2^16, m_lo < 2^15.
#
# SaturatingRoundingDoublingHighMul(a, M) = (a*M + nudge) / 2^31 truncated toward zero, with
# nudge 2^30 for a*M >= 0 and 1 - 2^30 otherwise. For a*M < 0 that is
# ceil((a*M + 1 - 2^30) / 2^31) = floor((a*M + 2^30) / 2^31), the formula for a*M >= 0: so for
# every a,  s = floor((a*M + 2^30) / 2^31)  (the saturating case a = M = -2^31 cannot occur).
# Split a = a1 * 2^15 + a0 with a1 = a >> 15 (|a1| < 2^15), a0 = a & 0x7FFF (0 <= a0 < 2^15):
#   a*M + 2^30 = h * 2^30 + (p + q) * 2^15 + a0 * m_lo + 2^30
#   h = a1 * m_hi  |h| <= (2^15 - 1)(2^16 - 1) < 2^31
#   p = a1 * m_lo  |p| < 2^30
#   q = a0 * m_hi  0 <= q < 2^31
#   a0 * m_lo      0 <= . < 2^30
# and floor division nests (floor((u * 2^k + v) / 2^(k+j)) = floor((u + floor(v / 2^k)) / 2^j)):
#   f = floor((p + q + floor(a0 * m_lo / 2^15) + 2^15) / 2^15)
#     = (p >> 15) + (q >> 15) + (((p & 0x7FFF) + (q & 0x7FFF) + (a0 * m_lo >> 15) + 2^15) >> 15)
#     (the inner sum is < 2^17; |f| < 2^17)
#   s = floor((h + f) / 2) = (h >> 1) + (((h & 1) + f) >> 1)   (h + f could pass 2^31)
# RoundingDivideByPOT(s, r), 0 <= r <= 30, rounds half away from zero:
#   s >= 0: floor((s + 2^(r-1)) / 2^r);  s < 0: floor((s + 2^(r-1) - 1) / 2^r)  (r >= 1)
#   = (s + ((2^r + (s >> 31)) >> 1)) >> r   for every r, as s >> 31 is -1 or 0 (|s| < 2^30)
#   |s| + 2^29 < 2^31.
# No branch; >> is arithmetic (floor) on every port.
import micropython


@micropython.viper
def multiply_by_quantized_multiplier(x: int, m_hi: int, m_lo: int, left: int, right: int) -> int:
    a = x << left
    a1 = a >> 15
    a0 = a & 0x7FFF
    h = a1 * m_hi
    p = a1 * m_lo
    q = a0 * m_hi
    f = (p >> 15) + (q >> 15) + (((p & 0x7FFF) + (q & 0x7FFF) + ((a0 * m_lo) >> 15) + 0x8000)
                                 >> 15)
    s = (h >> 1) + (((h & 1) + f) >> 1)
    return (s + (((1 << right) + (s >> 31)) >> 1)) >> right
