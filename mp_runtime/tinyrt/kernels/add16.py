# ADD, int16 (16x8 models; TFLM add_common.cc with left_shift 15 for int16 outputs, then
# reference_ops::Add / BroadcastAdd4DSlow's general-scale path, AddGeneralParamScale).
#   inputs:  x1 int16, x2 int16 (zero points 0; broadcastable as int8 ADD, at most 4-D),
#            requant int32 (3, 3): rows (M >> 15, M & 0x7FFF, shift) for input1, input2,
#            output, each from QuantizeMultiplierSmallerThanOneExp (shift <= 0)
#   outputs: y int16 (the broadcast shape), zero point 0
#   params:  act_min, act_max
# Per element, v_i = RDBPOT(SRDHM(x_i * 2^15, M_i), -shift_i), y = clamp(RDBPOT(SRDHM(v_1 + v_2,
# M_o), -shift_o), act_min, act_max).
# Bounds (31-bit rule): x_i * 2^15 reaches -2^30, so SRDHM(x * 2^15, M) is formed from x:
# with a = |x| <= 2^15 it is sign(x) * floor((a * M + c) / 2^16), c = 2^15 (x >= 0) or
# 2^15 - 1 (x < 0), and a * M = a * m2 * 2^30 + a * m1 * 2^15 + a * m0 (each product < 2^30).
# The input multipliers are <= 1/2, so |v_i| <= 2^29 and |v_1 + v_2| <= 2^30: the output
# requantization is tinyrt.requant_wide's (exact for accumulators up to 2^31).
from ..errors import ModelError
from ..fileformat import INT16, INT32
from ..requant import rounding_divide_by_pot
from ..requant_wide import multiply_by_quantized_multiplier_wide
from .common import broadcast_geometry, check_activation, requant_table, tensor

_MASK15 = 0x7FFF


def scale_input16(x, m_hi, m_lo, right):
    """RDBPOT(SRDHM(x * 2^15, M), right) for |x| <= 2^15, M = m_hi * 2^15 + m_lo < 2^31."""
    if x < 0:
        a = -x
        c = 32767
    else:
        a = x
        c = 32768
    q = a * (m_hi >> 15) << 14  # <= 2^29
    q += (a * (m_hi & _MASK15) + ((a * m_lo + c) >> 15)) >> 1
    if x < 0:
        q = -q
    return rounding_divide_by_pot(q, right)


def add16(x1, x2, y, dims, s1, s2, q, act_min, act_max):
    """dims: output 4-D dims; s1, s2: the inputs' strides on them; q: (M1 >> 15, M1 & 0x7FFF,
    right1, M2 >> 15, M2 & 0x7FFF, right2, Mo >> 15, Mo & 0x7FFF, right_o)."""
    d0, d1, d2, d3 = dims
    a0, a1, a2, a3 = s1
    b0, b1, b2, b3 = s2
    h1, l1, r1, h2, l2, r2, ho, lo, ro = q
    mbqm = multiply_by_quantized_multiplier_wide
    o = 0
    for i0 in range(d0):
        for i1 in range(d1):
            for i2 in range(d2):
                pa = 2 * (i0 * a0 + i1 * a1 + i2 * a2)
                pb = 2 * (i0 * b0 + i1 * b1 + i2 * b2)
                for i3 in range(d3):
                    v1 = scale_input16((x1[pa] & 255) | (x1[pa + 1] << 8), h1, l1, r1)
                    v2 = scale_input16((x2[pb] & 255) | (x2[pb + 1] << 8), h2, l2, r2)
                    v = mbqm(0, 0, v1 + v2, ho, lo, 0, ro)
                    if v < act_min:
                        v = act_min
                    elif v > act_max:
                        v = act_max
                    b = v & 255
                    y[o] = b - 256 if b > 127 else b
                    y[o + 1] = v >> 8
                    o += 2
                    pa += 2 * a3
                    pb += 2 * b3


class Add16:
    def __init__(self, model, op):
        x1 = tensor(model, op, 0, "input1", INT16)
        x2 = tensor(model, op, 1, "input2", INT16)
        t = tensor(model, op, 2, "requantization", INT32, const=True)
        y = tensor(model, op, ~0, "output", INT16)
        if len(op.params) != 2:
            raise ModelError("ADD has %d params, expected 2 (act_min, act_max)"
                             % len(op.params))
        act_min, act_max = op.params
        check_activation("ADD", act_min, act_max, -32768, 32767)
        if x1.zero_point or x2.zero_point or y.zero_point:
            raise ModelError("ADD int16 zero points %d, %d, %d: expected 0"
                             % (x1.zero_point, x2.zero_point, y.zero_point))
        dims, s1, s2 = broadcast_geometry("ADD", x1, x2, y)
        m_hi, m_lo, left, right = requant_table(model, t, 3)
        for k in range(3):
            if left[k] or (k < 2 and right[k] == 0 and (m_hi[k] > 32768 or (m_hi[k] == 32768
                                                                    and m_lo[k]))):
                raise ModelError("ADD int16 requantization row %d: multiplier above %s"
                                 % (k, "1/2" if k < 2 else "1"))
        q = (m_hi[0], m_lo[0], right[0], m_hi[1], m_lo[1], right[1], m_hi[2], m_lo[2],
             right[2])
        self.args = (x1.data, x2.data, y.data, dims, s1, s2, q, act_min, act_max)
        self.impl = "reference"

    def eval(self):
        x1, x2, y, dims, s1, s2, q, act_min, act_max = self.args
        add16(x1, x2, y, dims, s1, s2, q, act_min, act_max)


def prepare(model, op):
    return Add16(model, op)
