# Requantization of the 16x8 ops (int16 activations, int8 weights, int64 accumulator) exactly as
# TensorFlow Lite Micro does it (kernels/internal/common.cc, the int64_t overload):
#   MultiplyByQuantizedMultiplier(int64 x, M, shift) =
#       (x * rm + 2^(ts - 1)) >> ts,   rm = min((M + 2^15) >> 16, 0x7FFF), ts = 15 - shift
# (single rounding with a 15-bit multiplier; M the Q31 multiplier, shift in [-31, 7], so
# ts in [8, 46]). The converter stores (rm, ts) per channel.
#
# On the boards a small int is 31-bit, so the int64 accumulator is kept as two small ints:
# A = hi * 2^15 + lo with 0 <= lo < 2^15 (the kernels carry lo's overflow into hi every at
# most 255 products: |lo + 255 * 32768 * 128| < 2^30) and |hi| < 2^29 (the converter bounds
# |bias| < 2^43 and the number of products K < 2^21: |hi| <= 2^28 + K * 2^7 + 1).
# The product A * rm + 2^(ts-1) is formed in 15-bit limbs, each partial product < 2^30.
#
# TFLM returns static_cast<int32_t> of the shifted int64: a result beyond int32 wraps modulo
# 2^32 (TFLM's DCHECK assumes it does not happen; biases near 2^40 make it happen, and TFLM's
# outputs then show the wrapped value clamped). This function returns that wrapped int32 value
# w exactly when |w| < 2^16; beyond, the kernels clamp to int16 (act_min, act_max within
# [-32768, 32767]) so only the sign matters, and it may return +-2^16 instead (|v| < 2^30
# always).

_MASK15 = 0x7FFF
SATURATED = 65536  # 2^16: returned (with the sign) for results outside [-2^16, 2^16]


def multiply_by_quantized_multiplier_64(hi, lo, rm, ts):
    """TFLM's int64 MultiplyByQuantizedMultiplier of A = hi * 2^15 + lo (0 <= lo < 2^15,
    |hi| < 2^29), rm in [0, 0x7FFF], ts in [8, 46], wrapped to int32 as TFLM's cast does:
    exact when that is in (-2^16, 2^16), else a value of its sign with magnitude >= 2^16."""
    h1 = hi >> 15  # |h1| < 2^14; A = h1 * 2^30 + h0 * 2^15 + lo
    h0 = hi & _MASK15
    t0 = lo * rm  # < 2^30 - 2^16 + 1: weight 2^0
    t1 = h0 * rm  # weight 2^15
    t2 = h1 * rm  # |t2| < 2^29: weight 2^30
    k = ts - 1  # the rounding term 2^k, k in [7, 45]
    if k < 15:
        t0 += 1 << k
    elif k < 30:
        t1 += 1 << (k - 15)
    else:
        t2 += 1 << (k - 30)
    t1 += t0 >> 15  # < 2^30 - 2^16 + 1 + 2^14 + 2^15
    t0 &= _MASK15
    t2 += t1 >> 15  # |t2| < 2^29 + 2^16
    t1 &= _MASK15
    # P = t2 * 2^30 + t1 * 2^15 + t0, 0 <= t1, t0 < 2^15; result = P >> ts (floor)
    if ts >= 30:
        return t2 >> (ts - 30)  # the low 30 bits cannot carry into the quotient
    e = 30 - ts  # 1..22: result in [t2 * 2^e, (t2 + 1) * 2^e)
    if e > 1:  # wrap to int32: t2 to signed 32 - e bits (e == 1: |t2| < 2^30 already is)
        half = 1 << (31 - e)  # <= 2^29
        t2 &= (half - 1) | half  # t2 mod 2^(32 - e), < 2^30
        if t2 >= half:
            t2 = t2 - half - half
    limit = 1 << (16 - e) if e < 16 else 1
    if t2 >= limit:  # result >= 2^16
        return SATURATED
    if t2 < -limit:  # result < (t2 + 1) * 2^e <= -2^16
        return -SATURATED
    return (t2 << e) + (((t1 << 15) | t0) >> ts)  # |t2 << e| <= 2^22
