# QUANTIZE with int16 (16x8 models; TFLM quantize_common.cc -> reference_ops::Requantize):
# int8 -> int16, int16 -> int8, int16 -> int16.
#   inputs:  x int8 or int16, requant int32 (1, 3): one row (M >> 15, M & 0x7FFF, shift) from
#            QuantizeMultiplier(double(scale_x) / double(scale_y))
#   outputs: y int16 or int8, same shape (int16 zero points 0)
#   params:  none
# Per element: y = clamp(MBQM(x - zp_x, M, shift) + zp_y) to the output type's range.
# int16 elements are byte pairs (tinyrt/tensor.py). Bounds (31-bit rule): |x - zp_x| <= 2^15
# (int16) or 255 (int8); prepare refuses a left shift that would take it to 2^30.
from ..errors import ModelError
from ..fileformat import INT8, INT16, INT32
from ..requant import multiply_by_quantized_multiplier
from .common import requant_table, tensor


def requantize16(x, y, n, x16, y16, x_zp, y_zp, m_hi, m_lo, left, right, lo, hi):
    for i in range(n):
        if x16:
            v = (x[2 * i] & 255) | (x[2 * i + 1] << 8)
        else:
            v = x[i]
        v = multiply_by_quantized_multiplier(v - x_zp, m_hi, m_lo, left, right) + y_zp
        if v < lo:
            v = lo
        elif v > hi:
            v = hi
        if y16:
            b = v & 255
            y[2 * i] = b - 256 if b > 127 else b
            y[2 * i + 1] = v >> 8
        else:
            y[i] = v


class Quantize16:
    def __init__(self, model, op):
        x = model.tensors[op.inputs[0]]
        y = model.tensors[op.outputs[0]]
        x16 = x.dtype == "int16"
        y16 = y.dtype == "int16"
        x = tensor(model, op, 0, "input", _code(x16))
        y = tensor(model, op, ~0, "output", _code(y16))
        t = tensor(model, op, 1, "requantization", INT32, const=True)
        if len(op.params):
            raise ModelError("QUANTIZE has %d params, expected none" % len(op.params))
        if x.shape != y.shape:
            raise ModelError("QUANTIZE shapes x %r, y %r: expected equal" % (x.shape, y.shape))
        for u, wide in ((x, x16), (y, y16)):
            if (wide and u.zero_point) or u.zero_point < -128 or u.zero_point > 127:
                raise ModelError("QUANTIZE tensor %d has zero point %d, expected %s"
                                 % (u.index, u.zero_point, "0" if wide else "-128..127"))
        m_hi, m_lo, left, right = requant_table(model, t, 1)
        most = 14 if x16 else 21  # 2^15 << 14 and 255 << 21 stay below 2^30
        if left[0] > most:
            raise ModelError("QUANTIZE requantization shift %d, at most %d" % (left[0], most))
        lo, hi = (-32768, 32767) if y16 else (-128, 127)
        self.args = (x.data, y.data, x.size, x16, y16, x.zero_point, y.zero_point, m_hi[0],
                     m_lo[0], left[0], right[0], lo, hi)

    def eval(self):
        x, y, n, x16, y16, x_zp, y_zp, m_hi, m_lo, left, right, lo, hi = self.args
        requantize16(x, y, n, x16, y16, x_zp, y_zp, m_hi, m_lo, left, right, lo, hi)


def _code(wide):
    return INT16 if wide else INT8


def prepare(model, op):
    return Quantize16(model, op)
