# PRELU, int8 (TFLM prelu.cc -> reference BroadcastPrelu4DSlow).
#   inputs:  x int8, alpha int8 (same shape, or broadcastable to x's as ADD: at most 4-D),
#            requant int32 (2, 3): rows (M >> 15, M & 0x7FFF, shift) of QuantizeMultiplier
#            (s_x / s_y) and QuantizeMultiplier(s_x s_alpha / s_y), in double
#   outputs: y int8 (x's shape)
#   params:  none
# Per element, v = x - zp_x: y = clamp(MBQM(v, M1) + zp_y) if v >= 0, else
# clamp(MBQM(v (alpha - zp_alpha), M2) + zp_y), clamp to [-128, 127].
# Bounds (31-bit rule): |v| <= 255, |v (alpha - zp_a)| <= 65025; the converter and prepare check
# 255 << left1 < 2^30 and 65025 << left2 < 2^30 (the MBQM limb multiply's input bound).
from ..errors import ModelError
from ..fileformat import INT32
from ..requant import multiply_by_quantized_multiplier
from .common import broadcast_geometry, check_zero_points, requant_table, tensor


def prelu(x, a, y, dims, s1, s2, zx, za, zy, q):
    """dims: output 4-D dims; s1, s2: x's and alpha's strides on them; q: (m_hi, m_lo, left,
    right) arrays of 2 (positive, negative)."""
    d0, d1, d2, d3 = dims
    a0, a1, a2, a3 = s1
    b0, b1, b2, b3 = s2
    m_hi, m_lo, left, right = q
    h1 = m_hi[0]
    l1 = m_lo[0]
    f1 = left[0]
    r1 = right[0]
    h2 = m_hi[1]
    l2 = m_lo[1]
    f2 = left[1]
    r2 = right[1]
    o = 0
    for i0 in range(d0):
        for i1 in range(d1):
            for i2 in range(d2):
                pa = i0 * a0 + i1 * a1 + i2 * a2
                pb = i0 * b0 + i1 * b1 + i2 * b2
                for i3 in range(d3):
                    v = x[pa] - zx
                    if v >= 0:
                        v = multiply_by_quantized_multiplier(v, h1, l1, f1, r1)
                    else:
                        v = multiply_by_quantized_multiplier(v * (a[pb] - za), h2, l2, f2, r2)
                    v += zy
                    if v < -128:
                        v = -128
                    elif v > 127:
                        v = 127
                    y[o] = v
                    o += 1
                    pa += a3
                    pb += b3


class Prelu:
    def __init__(self, model, op):
        what = "PRELU"
        x = tensor(model, op, 0, "input")
        a = tensor(model, op, 1, "alpha")
        t = tensor(model, op, 2, "requantization", INT32, const=True)
        y = tensor(model, op, ~0, "output")
        if op.params:
            raise ModelError("%s has %d params, expected none" % (what, len(op.params)))
        check_zero_points(what, (x, a, y))
        dims, s1, s2 = broadcast_geometry(what, x, a, y)
        q = requant_table(model, t, 2)
        if (255 << q[2][0]) >= 1 << 30 or (65025 << q[2][1]) >= 1 << 30:
            raise ModelError("%s left shifts %d, %d leave 31-bit ints" % (what, q[2][0],
                                                                         q[2][1]))
        self.args = (x.data, a.data, y.data, dims, s1, s2, x.zero_point, a.zero_point,
                     y.zero_point, q)

    def eval(self):
        x, a, y, dims, s1, s2, zx, za, zy, q = self.args
        prelu(x, a, y, dims, s1, s2, zx, za, zy, q)


def prepare(model, op):
    return Prelu(model, op)
