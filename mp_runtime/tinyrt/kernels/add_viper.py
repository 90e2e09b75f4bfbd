# Viper twin of kernels.add.add (same signature, same results to the bit).
#
# The reference's broadcast loops with the three MultiplyByQuantizedMultiplier steps inline
# and branch-free (requant_viper.py has the derivation), x1 and x2 walked by pointers.
# ptr8 loads are unsigned bytes: xu = b ^ 0x80 is the int8 value + 128, so x - zp = xu - cz
# with cz = 128 + zp.
# Bounds (int32 on 32-bit boards, where viper ints are wrapping machine words): prepare checks
# int8 zero points and multipliers below one with shift <= 0 (left = 0). |x - zp| <= 255, so
# a = (x - zp) << 20 has |a| < 2^28 < 2^30 as the limb arithmetic needs; |v1|, |v2| < 2^28;
# |v1 + v2| < 2^29 < 2^30; in each step the partial products are < 2^31 (requant_viper.py).
import micropython


@micropython.viper
def add(x1: ptr8, x2: ptr8, y: ptr8, dims, s1, s2, q, act_min: int, act_max: int):
    d0 = int(dims[0])
    d1 = int(dims[1])
    d2 = int(dims[2])
    d3 = int(dims[3])
    a0 = int(s1[0])
    a1 = int(s1[1])
    a2 = int(s1[2])
    a3 = int(s1[3])
    b0 = int(s2[0])
    b1 = int(s2[1])
    b2 = int(s2[2])
    b3 = int(s2[3])
    c1 = 128 + int(q[0])
    c2 = 128 + int(q[1])
    zy = int(q[2])
    h1 = int(q[3])
    l1 = int(q[4])
    p1 = 1 << int(q[5])
    r1 = int(q[5])
    h2 = int(q[6])
    l2 = int(q[7])
    p2 = 1 << int(q[8])
    r2 = int(q[8])
    ho = int(q[9])
    lo = int(q[10])
    po = 1 << int(q[11])
    ro = int(q[11])
    xa = int(x1)
    xb = int(x2)
    yp = 0
    for i0 in range(d0):
        for i1 in range(d1):
            for i2 in range(d2):
                x1 = ptr8(xa + i0 * a0 + i1 * a1 + i2 * a2)
                x2 = ptr8(xb + i0 * b0 + i1 * b1 + i2 * b2)
                i3 = 0
                while i3 < d3:
                    # v1 = MBQM((x1 - zp1) << 20, M1, -r1)
                    a = ((x1[0] ^ 0x80) - c1) << 20
                    e = a >> 15
                    g = a & 0x7FFF
                    h = e * h1
                    p = e * l1
                    k = g * h1
                    s = (h >> 1) + (((h & 1) + (p >> 15) + (k >> 15) + (
                        ((p & 0x7FFF) + (k & 0x7FFF) + ((g * l1) >> 15) + 0x8000) >> 15)) >> 1)
                    v = (s + ((p1 + (s >> 31)) >> 1)) >> r1
                    # v2 = MBQM((x2 - zp2) << 20, M2, -r2)
                    a = ((x2[0] ^ 0x80) - c2) << 20
                    e = a >> 15
                    g = a & 0x7FFF
                    h = e * h2
                    p = e * l2
                    k = g * h2
                    s = (h >> 1) + (((h & 1) + (p >> 15) + (k >> 15) + (
                        ((p & 0x7FFF) + (k & 0x7FFF) + ((g * l2) >> 15) + 0x8000) >> 15)) >> 1)
                    a = v + ((s + ((p2 + (s >> 31)) >> 1)) >> r2)
                    # y = MBQM(v1 + v2, Mo, -ro) + zp_y, clamped
                    e = a >> 15
                    g = a & 0x7FFF
                    h = e * ho
                    p = e * lo
                    k = g * ho
                    s = (h >> 1) + (((h & 1) + (p >> 15) + (k >> 15) + (
                        ((p & 0x7FFF) + (k & 0x7FFF) + ((g * lo) >> 15) + 0x8000) >> 15)) >> 1)
                    v = ((s + ((po + (s >> 31)) >> 1)) >> ro) + zy
                    if v < act_min:
                        v = act_min
                    elif v > act_max:
                        v = act_max
                    y[yp] = v
                    yp += 1
                    x1 = ptr8(int(x1) + a3)
                    x2 = ptr8(int(x2) + b3)
                    i3 += 1
