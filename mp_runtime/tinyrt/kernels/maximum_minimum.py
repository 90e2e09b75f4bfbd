# MAXIMUM and MINIMUM, int8 (TFLM maximum_minimum.cc: reference_ops::MaximumMinimumBroadcastSlow
# with std::max / std::min on the raw int8 values; no rescaling, TFLM ignores the tensors'
# quantization parameters).
#   inputs:  x1 int8, x2 int8 (same shape, or broadcastable to y as ADD: at most 4-D)
#   outputs: y int8 (the broadcast shape)
#   params:  none
# Per element: y = max(x1, x2) (MAXIMUM) or min(x1, x2) (MINIMUM). Values stay in [-128, 127].
from .. import opcodes
from ..errors import ModelError
from .common import broadcast_geometry, tensor


def maximum(x1, x2, y, dims, s1, s2):
    """dims: output 4-D dims; s1, s2: the inputs' strides on them."""
    extreme(x1, x2, y, dims, s1, s2, 1)


def minimum(x1, x2, y, dims, s1, s2):
    """As maximum, with the smaller value."""
    extreme(x1, x2, y, dims, s1, s2, -1)


def extreme(x1, x2, y, dims, s1, s2, sign):
    """The larger (sign 1) or smaller (sign -1) of each pair; |u - v| <= 255."""
    d0, d1, d2, d3 = dims
    a0, a1, a2, a3 = s1
    b0, b1, b2, b3 = s2
    o = 0
    for i0 in range(d0):
        for i1 in range(d1):
            for i2 in range(d2):
                pa = i0 * a0 + i1 * a1 + i2 * a2
                pb = i0 * b0 + i1 * b1 + i2 * b2
                for i3 in range(d3):
                    u = x1[pa]
                    v = x2[pb]
                    y[o] = u if sign * (u - v) > 0 else v
                    o += 1
                    pa += a3
                    pb += b3


class MaximumMinimum:
    def __init__(self, model, op):
        if op.opcode == opcodes.MAXIMUM:
            what, self.fn = "MAXIMUM", maximum
        elif op.opcode == opcodes.MINIMUM:
            what, self.fn = "MINIMUM", minimum
        else:
            raise ModelError("maximum_minimum kernel given opcode %d" % op.opcode)
        x1 = tensor(model, op, 0, "input1")
        x2 = tensor(model, op, 1, "input2")
        y = tensor(model, op, ~0, "output")
        if op.params:
            raise ModelError("%s has %d params, expected none" % (what, len(op.params)))
        dims, s1, s2 = broadcast_geometry(what, x1, x2, y)
        self.args = (x1.data, x2.data, y.data, dims, s1, s2)

    def eval(self):
        x1, x2, y, dims, s1, s2 = self.args
        self.fn(x1, x2, y, dims, s1, s2)


def prepare(model, op):
    return MaximumMinimum(model, op)
