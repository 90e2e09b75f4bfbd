# MUL, int8 (TFLM reference integer_ops/mul.h semantics, mul_common.cc's OpDataMul).
#   inputs:  x1 int8, x2 int8 (same shape, or broadcastable to y; at most 4-D, as ADD),
#            requant int32 (1, 3): one row (M >> 15, M & 0x7FFF, shift) from
#            QuantizeMultiplier(scale1 * scale2 / scale_y)
#   outputs: y int8 (the broadcast shape)
#   params:  act_min, act_max
# Per element: y = clamp(MBQM((x1 - zp1) * (x2 - zp2), M, shift) + zp_y, act_min, act_max)
# Bounds (31-bit rule): |x_i - zp_i| <= 255, so |product| <= 65025 < 2^16; prepare refuses a
# left shift above 14, so |product << left| < 2^30 as requant.srdhm needs.
from ..errors import ModelError
from ..requant import rounding_divide_by_pot, srdhm
from .common import elementwise_operands

_MAX_LEFT = 14  # 65025 << 14 < 2^30


def mul(x1, x2, y, dims, s1, s2, q, act_min, act_max):
    """dims: output 4-D dims; s1, s2: the inputs' strides on them;
    q: (zp1, zp2, zp_y, M >> 15, M & 0x7FFF, left, right)."""
    d0, d1, d2, d3 = dims
    a0, a1, a2, a3 = s1
    b0, b1, b2, b3 = s2
    z1, z2, zy, m_hi, m_lo, left, right = q
    o = 0
    for i0 in range(d0):
        for i1 in range(d1):
            for i2 in range(d2):
                pa = i0 * a0 + i1 * a1 + i2 * a2
                pb = i0 * b0 + i1 * b1 + i2 * b2
                for i3 in range(d3):
                    p = (x1[pa] - z1) * (x2[pb] - z2)  # |p| <= 65025; |p << left| < 2^30
                    v = rounding_divide_by_pot(srdhm(p << left, m_hi, m_lo), right) + zy
                    if v < act_min:
                        v = act_min
                    elif v > act_max:
                        v = act_max
                    y[o] = v
                    o += 1
                    pa += a3
                    pb += b3


class Mul:
    def __init__(self, model, op):
        x1, x2, y, act_min, act_max, (dims, s1, s2), (m_hi, m_lo, left, right) = (
            elementwise_operands(model, op, "MUL", 1))
        if left[0] > _MAX_LEFT:
            raise ModelError("MUL requantization shift %d, at most %d (products up to 65025 "
                             "must stay below 2^30)" % (left[0], _MAX_LEFT))
        q = (x1.zero_point, x2.zero_point, y.zero_point, m_hi[0], m_lo[0], left[0], right[0])
        self.args = (x1.data, x2.data, y.data, dims, s1, s2, q, act_min, act_max)

    def eval(self):
        x1, x2, y, dims, s1, s2, q, act_min, act_max = self.args
        mul(x1, x2, y, dims, s1, s2, q, act_min, act_max)


def prepare(model, op):
    return Mul(model, op)
