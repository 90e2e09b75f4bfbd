# Viper twin of tinyrt.requant.multiply_by_quantized_multiplier: the same 15-bit limb
# arithmetic on machine words. Every intermediate stays below 2^30 in magnitude (see
# requant.py), so the result is the same on 32-bit boards (wrapping words) and on the
# 64-bit unix port.
import micropython


@micropython.viper
def multiply_by_quantized_multiplier(x: int, m_hi: int, m_lo: int, left: int, right: int) -> int:
    neg = 0
    if x < 0:
        neg = 1
        x = 0 - x
    a = x << left  # < 2^30: the converter checks |acc| << left
    a1 = a >> 15
    a0 = a & 0x7FFF
    m2 = m_hi >> 15
    m1 = m_hi & 0x7FFF
    c0 = 0
    c2 = 1  # nudge 2^30 (x >= 0) ...
    if neg:
        c0 = 0x7FFF  # ... or 2^30 - 1 split over columns 0 and 1 (x < 0)
        c2 = 0
    p00 = a0 * m_lo  # each partial product < 2^30
    p10 = a1 * m_lo
    p01 = a0 * m1
    p11 = a1 * m1
    col1 = (((p00 & 0x7FFF) + c0) >> 15) + (p00 >> 15) + (p10 & 0x7FFF) + (p01 & 0x7FFF) + c0
    col2 = (col1 >> 15) + (p10 >> 15) + (p01 >> 15) + (p11 & 0x7FFF) + a0 * m2 + c2
    col3 = (col2 >> 15) + (p11 >> 15) + a1 * m2
    q = (col3 << 14) + ((col2 & 0x7FFF) >> 1)
    if neg:
        q = 0 - q
    # RoundingDivideByPOT(q, right), right <= 30
    mask = (1 << right) - 1
    threshold = mask >> 1
    if q < 0:
        threshold += 1
    r = q >> right
    if (q & mask) > threshold:
        r += 1
    return r
