# PAD, int8 (TFLM pad.cc / reference pad.h, constant mode without a constant_values input).
#   inputs:  x int8, rank r <= 4
#   outputs: y int8, rank r, y.shape[i] = before_i + x.shape[i] + after_i
#   params:  before_0, after_0, ..., before_{r-1}, after_{r-1} (2r values, each >= 0)
# The padding value is y's zero point (TFLM: output zero point, i.e. real 0); x's raw int8
# values are copied unchanged (TFLM does not requantize).
# int16 x and y (16x8 models, zero point 0): the byte pairs of int16 elements are copied as
# int8 bytes, the innermost dim counted in bytes (twice its size and padding), padding 0.
from ..errors import ModelError
from ..fileformat import INT8, INT16
from .common import tensor


def pad(x, y, in_dims, out_dims, before, value):
    """in_dims, out_dims, before: 4-tuples of the 4-D extended shapes and leading pads."""
    i0, i1, i2, i3 = in_dims
    o0, o1, o2, o3 = out_dims
    p0, p1, p2, p3 = before
    for k in range(o0 * o1 * o2 * o3):
        y[k] = value
    s = 0
    for a in range(i0):
        for b in range(i1):
            for c in range(i2):
                d = (((a + p0) * o1 + b + p1) * o2 + c + p2) * o3 + p3
                for e in range(i3):
                    y[d] = x[s]
                    d += 1
                    s += 1


class Pad:
    def __init__(self, model, op):
        x = model.tensors[op.inputs[0]]
        dtype = INT16 if x.dtype == "int16" else INT8
        x = tensor(model, op, 0, "input", dtype)
        y = tensor(model, op, ~0, "output", dtype)
        r = len(x.shape)
        p = op.params
        if len(y.shape) != r or len(p) != 2 * r:
            raise ModelError("PAD x %r, y %r with %d params: expected equal ranks and 2 params "
                             "per dim" % (x.shape, y.shape, len(p)))
        for i in range(r):
            if p[2 * i] < 0 or p[2 * i + 1] < 0:
                raise ModelError("PAD dim %d has paddings (%d, %d), expected >= 0"
                                 % (i, p[2 * i], p[2 * i + 1]))
            if y.shape[i] != p[2 * i] + x.shape[i] + p[2 * i + 1]:
                raise ModelError("PAD dim %d: output %d, expected %d + %d + %d"
                                 % (i, y.shape[i], p[2 * i], x.shape[i], p[2 * i + 1]))
        if y.zero_point < -128 or y.zero_point > 127:
            raise ModelError("PAD output zero point %d is not an int8" % y.zero_point)
        if dtype == INT16 and y.zero_point != 0:
            raise ModelError("PAD int16 output zero point %d, expected 0" % y.zero_point)
        ext = (1,) * (4 - r)
        before = [0] * (4 - r)
        for i in range(r):
            before.append(p[2 * i])
        xs = list(ext + tuple(x.shape))
        ys = list(ext + tuple(y.shape))
        if dtype == INT16:  # byte pairs: the innermost dim in bytes
            xs[3] *= 2
            ys[3] *= 2
            before[3] *= 2
        self.args = (x.data, y.data, tuple(xs), tuple(ys), tuple(before), y.zero_point)

    def eval(self):
        x, y, in_dims, out_dims, before, value = self.args
        pad(x, y, in_dims, out_dims, before, value)


def prepare(model, op):
    return Pad(model, op)
