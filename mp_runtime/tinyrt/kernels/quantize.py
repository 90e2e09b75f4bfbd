# QUANTIZE, int8 -> int8 (TFLM quantize_common.cc -> reference_ops::Requantize).
#   inputs:  x int8, requant int32 (1, 3): one row (M >> 15, M & 0x7FFF, shift) from
#            QuantizeMultiplier(double(scale_x) / double(scale_y))
#   outputs: y int8, same shape
#   params:  none
# Per element: y = clamp(MBQM(x - zp_x, M, shift) + zp_y, -128, 127).
# (float -> int8 QUANTIZE is not supported: invoke() does no float arithmetic.)
# Bounds (31-bit rule): |x - zp_x| <= 255; prepare refuses a left shift above 21, so
# |(x - zp_x) << left| < 2^30 as requant.srdhm needs.
from ..errors import ModelError
from ..fileformat import INT32
from ..requant import multiply_by_quantized_multiplier
from .common import requant_table, tensor

_MAX_LEFT = 21  # 255 << 21 < 2^30


def requantize(x, y, n, x_zp, y_zp, m_hi, m_lo, left, right):
    for i in range(n):
        v = multiply_by_quantized_multiplier(x[i] - x_zp, m_hi, m_lo, left, right) + y_zp
        if v < -128:
            v = -128
        elif v > 127:
            v = 127
        y[i] = v


class Quantize:
    def __init__(self, model, op):
        x = tensor(model, op, 0, "input")
        t = tensor(model, op, 1, "requantization", INT32, const=True)
        y = tensor(model, op, ~0, "output")
        if len(op.params):
            raise ModelError("QUANTIZE has %d params, expected none" % len(op.params))
        if x.shape != y.shape:
            raise ModelError("QUANTIZE shapes x %r, y %r: expected equal" % (x.shape, y.shape))
        for u in (x, y):
            if u.zero_point < -128 or u.zero_point > 127:
                raise ModelError("QUANTIZE tensor %d has zero point %d, expected -128..127"
                                 % (u.index, u.zero_point))
        m_hi, m_lo, left, right = requant_table(model, t, 1)
        if left[0] > _MAX_LEFT:
            raise ModelError("QUANTIZE requantization shift %d, at most %d (scale ratio below "
                             "2^21)" % (left[0], _MAX_LEFT))
        self.args = (x.data, y.data, x.size, x.zero_point, y.zero_point, m_hi[0], m_lo[0],
                     left[0], right[0])

    def eval(self):
        x, y, n, x_zp, y_zp, m_hi, m_lo, left, right = self.args
        requantize(x, y, n, x_zp, y_zp, m_hi, m_lo, left, right)


def prepare(model, op):
    t = model.tensors
    if "int16" in (t[op.inputs[0]].dtype, t[op.outputs[0]].dtype):  # 16x8 mode: own module
        from .quantize16 import prepare as prepare_16

        return prepare_16(model, op)
    return Quantize(model, op)
