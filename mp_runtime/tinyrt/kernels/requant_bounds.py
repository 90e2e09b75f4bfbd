# Clamp bounds of the requantization, for the asm kernels (prepare time only): per output
# channel the accumulator range that gives act_min or act_max, so a kernel stores those
# without the 32x32 -> 64-bit multiply (~45 instructions on an M0), and skips the clamp
# otherwise.
from ..requant import multiply_by_quantized_multiplier


def _estimate(d2, sh, m_hi, a0, a1):
    """About d2 2^sh / M (M ~ m_hi 2^15, |d2| < 2^10) in small ints (a long made here would
    be garbage between the layer's tables and fragment a board's heap), clamped to
    [a0, a1]; 14 significant bits, the gallop does the rest."""
    k = 28
    a = d2 if d2 > 0 else -d2
    while a > 1:  # |d2| 2^k < 2^29: the quotient keeps ~14 significant bits
        a >>= 1
        k -= 1
    q = (d2 << k) // m_hi
    e = sh - 15 - k
    if e > 14:
        return a1 if q > 0 else a0
    est = q << e if e >= 0 else q >> -e
    return a0 if est < a0 else (a1 if est > a1 else est)


def _f(acc, m_hi, m_lo, left, right, y_zp):
    """tinyrt.requant's 15-bit limbs: small ints only, nothing allocated."""
    return multiply_by_quantized_multiplier(acc, m_hi, m_lo, left, right) + y_zp


def _last_at_most(v, a0, a1, m_hi, m_lo, left, right, y_zp):
    """The largest acc in [a0, a1] with f(acc) <= v (a0 - 1 if none; f = _f, non-decreasing).
    Starts at the real boundary (v - y_zp + 1/2) 2^(31 + right - left) / M, which the double
    rounding moves by a unit or two: typically two evaluations of f, then a gallop and a
    bisection where the estimate is off (or M = 0: f is constant)."""
    if not (m_hi or m_lo):  # M = 0: f is constant
        return a1 if _f(0, m_hi, m_lo, left, right, y_zp) <= v else a0 - 1
    est = _estimate(2 * (v - y_zp) + 1, 30 + right - left, m_hi, a0, a1) if m_hi else a0
    step = 1
    if _f(est, m_hi, m_lo, left, right, y_zp) <= v:  # lo: f(lo) <= v; hi: f(hi) > v
        lo = est
        hi = a1 + 1  # (stands for "none")
        while lo + step < hi:
            if _f(lo + step, m_hi, m_lo, left, right, y_zp) > v:
                hi = lo + step
                break
            lo += step
            step *= 2
    else:
        lo = a0 - 1
        hi = est
        while hi - step > lo:
            if _f(hi - step, m_hi, m_lo, left, right, y_zp) <= v:
                lo = hi - step
                break
            hi -= step
            step *= 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _f(mid, m_hi, m_lo, left, right, y_zp) <= v:
            lo = mid
        else:
            hi = mid
    return lo


def clamp_bounds(m_hi, m_lo, left, right, y_zp, act_min, act_max):
    """(LO, HI) for one channel: every accumulator acc <= LO gives act_min and every
    acc >= HI gives act_max, so the kernels store those without the multiply, and for
    LO < acc < HI the result lies strictly inside (act_min, act_max): no clamp. Exact
    because MultiplyByQuantizedMultiplier(acc) + y_zp is non-decreasing in acc over the
    converter's range |acc << left| < 2^30 (searched there). ReLU layers get most of their
    negative outputs for the cost of a compare.
    Prepare-time only; small ints only (no garbage between the layer's tables but the
    returned pair: clamp_bounds_into writes them into a table without it)."""
    a0 = -(0x20000000 >> (left - 1)) if left else -0x3FFFFFFF - 1  # -2^30 >> left, no long
    a1 = 0x3FFFFFFF >> left
    return (_last_at_most(act_min, a0, a1, m_hi, m_lo, left, right, y_zp),
            _last_at_most(act_max - 1, a0, a1, m_hi, m_lo, left, right, y_zp) + 1)


def clamp_bounds_into(rec, i, m_hi, m_lo, left, right, y_zp, act_min, act_max):
    """rec[i], rec[i + 1] = clamp_bounds(...), with no object made on the way (a tuple per
    channel would be garbage between the layer's tables and split a board's heap)."""
    a0 = -(0x20000000 >> (left - 1)) if left else -0x3FFFFFFF - 1
    a1 = 0x3FFFFFFF >> left
    rec[i] = _last_at_most(act_min, a0, a1, m_hi, m_lo, left, right, y_zp)
    rec[i + 1] = _last_at_most(act_max - 1, a0, a1, m_hi, m_lo, left, right, y_zp) + 1
