# Clamp bounds of the requantization, for the asm kernels (prepare time only): per output
# channel the accumulator range that gives act_min or act_max, so a kernel stores those
# without the 32x32 -> 64-bit multiply (~45 instructions on an M0), and skips the clamp
# otherwise.
from ..requant import rounding_divide_by_pot


def _last_at_most(f, v, a0, a1, m, left, right, y_zp):
    """The largest acc in [a0, a1] with f(acc) <= v (a0 - 1 if none; f non-decreasing).
    Starts at the real boundary (v - y_zp + 1/2) 2^(31 + right - left) / M, which the double
    rounding moves by a unit or two: typically two evaluations of f, then a gallop and a
    bisection where the estimate is off (or M = 0: f is constant)."""
    if not m:  # f is constant
        return a1 if f(0) <= v else a0 - 1
    sh = 30 + right - left
    est = ((2 * (v - y_zp) + 1) << sh) // m if 0 <= sh <= 52 else a0
    est = a0 if est < a0 else (a1 if est > a1 else est)
    step = 1
    if f(est) <= v:  # lo: f(lo) <= v; hi: f(hi) > v (a1 + 1 stands for "none")
        lo, hi = est, a1 + 1
        while lo + step < hi:
            if f(lo + step) > v:
                hi = lo + step
                break
            lo += step
            step *= 2
    else:
        lo, hi = a0 - 1, est
        while hi - step > lo:
            if f(hi - step) <= v:
                lo = hi - step
                break
            hi -= step
            step *= 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if f(mid) <= v:
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
    Prepare-time only (M may be a long on a board)."""
    a0 = -((1 << 30) >> left)
    a1 = ((1 << 30) - 1) >> left
    m = (m_hi << 15) | m_lo

    def f(acc):  # tinyrt.requant.multiply_by_quantized_multiplier + y_zp, in one product:
        # SRDHM(a, M) = floor((a M + 2^30) / 2^31) for M >= 0 and |a| < 2^30 (see
        # kernels.fully_connected_asm); the longs (< 2^62) are fine at prepare
        return rounding_divide_by_pot(((acc << left) * m + (1 << 30)) >> 31, right) + y_zp

    lo = _last_at_most(f, act_min, a0, a1, m, left, right, y_zp)
    hi = _last_at_most(f, act_max - 1, a0, a1, m, left, right, y_zp) + 1
    return lo, hi
