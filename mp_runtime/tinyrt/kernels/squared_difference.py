# SQUARED_DIFFERENCE, int8 (TFLM squared_difference.cc, left_shift 7).
#   inputs:  x1 int8, x2 int8 (same shape, or broadcastable to y as ADD: at most 4-D),
#            scaled int32 (2, 256): row i holds v_i = MBQM((x_i - zp_i) << 7, M_i, shift_i) for
#            x_i = -128..127 (each input's scaling depends only on its value: the converter,
#            converter/layers/arith.py, runs TFLM's arithmetic for the 256 values),
#            requant int32 (1, 3): (M_o >> 15, M_o & 0x7FFF, shift_o)
#   outputs: y int8 (the broadcast shape)
#   params:  none
# Per element: y = clamp(MBQM((v_1 - v_2)^2, M_o, shift_o) + zp_y, -128, 127).
# Bounds (31-bit rule): |x - zp| << 7 <= 255 * 128 and M_i <= 1/2, so |v_i| <= 16320,
# |v_1 - v_2| <= 32640 and its square < 2^30; the converter checks square << left < 2^30
# (the MBQM limb multiply's input bound, requant.py).
from ..errors import ModelError
from ..requant import multiply_by_quantized_multiplier
from .common import INT32, broadcast_geometry, int32_values, requant_table, tensor, zeros


def squared_difference(x1, x2, y, dims, s1, s2, v1, v2, q, zy):
    """dims: output 4-D dims; s1, s2: the inputs' strides on them; v1, v2: scaled values by
    input value + 128; q: (m_hi, m_lo, left, right) of the output multiplier."""
    d0, d1, d2, d3 = dims
    a0, a1, a2, a3 = s1
    b0, b1, b2, b3 = s2
    hi, lo, left, right = q
    o = 0
    for i0 in range(d0):
        for i1 in range(d1):
            for i2 in range(d2):
                pa = i0 * a0 + i1 * a1 + i2 * a2
                pb = i0 * b0 + i1 * b1 + i2 * b2
                for i3 in range(d3):
                    d = v1[x1[pa] + 128] - v2[x2[pb] + 128]  # |d| <= 32640
                    v = multiply_by_quantized_multiplier(d * d, hi, lo, left, right) + zy
                    if v < -128:
                        v = -128
                    elif v > 127:
                        v = 127
                    y[o] = v
                    o += 1
                    pa += a3
                    pb += b3


class SquaredDifference:
    def __init__(self, model, op):
        what = "SQUARED_DIFFERENCE"
        x1 = tensor(model, op, 0, "input1")
        x2 = tensor(model, op, 1, "input2")
        ts = tensor(model, op, 2, "scaled inputs", INT32, const=True)
        tq = tensor(model, op, 3, "requantization", INT32, const=True)
        y = tensor(model, op, ~0, "output")
        if op.params:
            raise ModelError("%s has %d params, expected none" % (what, len(op.params)))
        dims, s1, s2 = broadcast_geometry(what, x1, x2, y)
        v = int32_values(model, ts)
        if len(v) != 512:
            raise ModelError("%s scaled table has %d values, expected 512" % (what, len(v)))
        v1 = zeros(256)
        v2 = zeros(256)
        for i in range(256):
            if abs(v[i]) > 16320 or abs(v[256 + i]) > 16320:
                raise ModelError("%s scaled value %d beyond 16320" % (what, max(abs(v[i]),
                                                                               abs(v[256 + i]))))
            v1[i] = v[i]
            v2[i] = v[256 + i]
        m_hi, m_lo, left, right = requant_table(model, tq, 1)
        d = max(max(v1) - min(v2), max(v2) - min(v1))
        if (d * d) << left[0] >= 1 << 30:
            raise ModelError("%s squares up to %d^2 shifted left by %d leave 31-bit ints"
                             % (what, d, left[0]))
        q = (m_hi[0], m_lo[0], left[0], right[0])
        self.args = (x1.data, x2.data, y.data, dims, s1, s2, v1, v2, q, y.zero_point)

    def eval(self):
        x1, x2, y, dims, s1, s2, v1, v2, q, zy = self.args
        squared_difference(x1, x2, y, dims, s1, s2, v1, v2, q, zy)


def prepare(model, op):
    return SquaredDifference(model, op)
