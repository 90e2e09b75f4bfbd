# UNBINARIZE: bit-packed -> int8, Larq Compute Engine's LceDequantize with int8 output.
#   inputs:  x packed (..., C)
#   outputs: y int8 (..., C)
#   params:  plus_value, minus_value (int8 for a 0-bit (+1) and a 1-bit (-1); the converter
#            computes LCE's min(127, zp + round(1 / scale)) and max(-128, zp - round(1 / scale)))
# Bit convention: tinyrt.bitpack.
from ..bitpack import row_bytes, unpack_row
from ..errors import ModelError
from ..fileformat import PACKED
from .common import tensor


def unbinarize(x, y, rows, channels, plus_value, minus_value):
    rb = row_bytes(channels)
    for r in range(rows):
        unpack_row(x, r * rb, channels, plus_value, minus_value, y, r * channels)


class Unbinarize:
    def __init__(self, model, op):
        x = tensor(model, op, 0, "input", PACKED)
        y = tensor(model, op, ~0, "output")
        p = op.params
        if len(p) != 2:
            raise ModelError("UNBINARIZE has %d params, expected 2" % len(p))
        if p[0] < -128 or p[0] > 127 or p[1] < -128 or p[1] > 127:
            raise ModelError("UNBINARIZE values %d, %d outside int8" % (p[0], p[1]))
        if tuple(x.shape) != tuple(y.shape) or not x.shape:
            raise ModelError("UNBINARIZE input %r and output %r must have one shape"
                             % (x.shape, y.shape))
        c = x.shape[-1]
        self.args = (x.data, y.data, x.size // c, c, p[0], p[1])

    def eval(self):
        x, y, rows, channels, plus_value, minus_value = self.args
        unbinarize(x, y, rows, channels, plus_value, minus_value)


def prepare(model, op):
    return Unbinarize(model, op)
