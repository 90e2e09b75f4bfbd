# BINARIZE: int8 -> bit-packed, Larq Compute Engine's LceQuantize on int8 input.
#   inputs:  x int8 (..., C) with the zero point of its record
#   outputs: y packed (..., C)
#   params:  none
# bit = 1 (-1) iff x < zero_point (x == zero_point, real 0.0, gives +1); the bits past C in
# each row's last word are 0. Bit convention: tinyrt.bitpack.
from ..bitpack import pack_row, row_bytes
from ..errors import ModelError
from ..fileformat import PACKED
from .common import tensor


def binarize(x, y, rows, channels, zero_point):
    rb = row_bytes(channels)
    for r in range(rows):
        pack_row(x, r * channels, channels, zero_point, y, r * rb)


class Binarize:
    def __init__(self, model, op):
        x = tensor(model, op, 0, "input")
        y = tensor(model, op, ~0, "output", PACKED)
        if op.params:
            raise ModelError("BINARIZE has %d params, expected none" % len(op.params))
        if tuple(x.shape) != tuple(y.shape) or not x.shape:
            raise ModelError("BINARIZE input %r and output %r must have one shape"
                             % (x.shape, y.shape))
        c = x.shape[-1]
        self.args = (x.data, y.data, x.size // c, c, x.zero_point)

    def eval(self):
        x, y, rows, channels, zero_point = self.args
        binarize(x, y, rows, channels, zero_point)


def prepare(model, op):
    return Binarize(model, op)
