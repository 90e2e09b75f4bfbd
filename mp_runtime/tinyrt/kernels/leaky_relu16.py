# LEAKY_RELU, int16 (16x8 models; TFLM leaky_relu_common.cc, reference_ops::QuantizeLeakyRelu
# for int16): per element, zero points 0,
#   y = clamp(MBQM(x, M_identity, shift_identity), -32768, 32767)   if x >= 0
#   y = clamp(MBQM(x, M_alpha, shift_alpha), -32768, 32767)         otherwise
#   inputs:  x int16 (any shape), requant int32 (2, 3): rows (M >> 15, M & 0x7FFF, shift) of
#            QuantizeMultiplier(double(float(s_x / s_y))) and of
#            QuantizeMultiplier(double(float(s_x * alpha / s_y))) (alpha >= 0)
#   outputs: y int16, same shape               params: none
# int16 elements are byte pairs (tinyrt.tensor). Bounds: |x| <= 2^15 and the converter keeps
# both left shifts <= 14, so |x << left| <= 2^29 as requant.srdhm needs.
from ..errors import ModelError
from ..fileformat import INT16, INT32
from ..requant import multiply_by_quantized_multiplier
from .common import requant_table, tensor


def leaky_relu16(x, y, n, m_hi, m_lo, left, right):
    for i in range(n):
        v = (x[2 * i] & 255) | (x[2 * i + 1] << 8)
        r = 0 if v >= 0 else 1
        v = multiply_by_quantized_multiplier(v, m_hi[r], m_lo[r], left[r], right[r])
        if v < -32768:
            v = -32768
        elif v > 32767:
            v = 32767
        b = v & 255
        y[2 * i] = b - 256 if b > 127 else b
        y[2 * i + 1] = v >> 8


class LeakyRelu16:
    def __init__(self, model, op):
        x = tensor(model, op, 0, "input", INT16)
        t = tensor(model, op, 1, "requantization", INT32, const=True)
        y = tensor(model, op, ~0, "output", INT16)
        if len(op.params):
            raise ModelError("LEAKY_RELU has %d params, expected none" % len(op.params))
        if x.size != y.size or x.zero_point or y.zero_point:
            raise ModelError("LEAKY_RELU int16 x %r zp %d, y %r zp %d: expected equal sizes, "
                             "zero points 0" % (x.shape, x.zero_point, y.shape, y.zero_point))
        q = requant_table(model, t, 2)
        if q[2][0] > 14 or q[2][1] > 14:
            raise ModelError("LEAKY_RELU int16 left shifts %d, %d: at most 14"
                             % (q[2][0], q[2][1]))
        self.args = (x.data, y.data, x.size) + q

    def eval(self):
        x, y, n, m_hi, m_lo, left, right = self.args
        leaky_relu16(x, y, n, m_hi, m_lo, left, right)


def prepare(model, op):
    return LeakyRelu16(model, op)
