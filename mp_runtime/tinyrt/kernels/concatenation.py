# CONCATENATION, int8 (TFLM concatenation.cc -> reference_ops::Concatenation, a raw copy).
#   inputs:  x_0 .. x_{k-1} int8, k >= 1, all of y's rank, dims equal to y's except on axis
#   outputs: y int8, y.shape[axis] = sum of the inputs' shape[axis]
#   params:  axis (0..rank-1, the converter resolves negative axes)
# TFLM copies raw int8 values and its Prepare rejects inputs whose scale or zero point differ
# from the output's (an int8 restriction of TFLite); so does this kernel. The converter
# requantizes such inputs with QUANTIZE ops first, as the TFLite converter does.

from ..errors import ModelError
from .common import tensor
from ..buffers import int32_zeros


def concatenation(xs, chunks, y, outer):
    """xs: the inputs' buffers; chunks: array('i') of each input's elements per outer index
    (its dims from axis on, multiplied); outer: product of the dims before axis."""
    k = len(xs)
    o = 0
    for i in range(outer):
        for j in range(k):
            src = xs[j]
            n = chunks[j]
            p = i * n
            for e in range(n):
                y[o] = src[p + e]
                o += 1


class Concatenation:
    def __init__(self, model, op):
        y = tensor(model, op, ~0, "output")
        if len(op.params) != 1:
            raise ModelError("CONCATENATION has %d params, expected 1 (axis)" % len(op.params))
        axis = op.params[0]
        r = len(y.shape)
        if axis < 0 or axis >= r:
            raise ModelError("CONCATENATION axis %d, expected 0..%d" % (axis, r - 1))
        if not len(op.inputs):
            raise ModelError("CONCATENATION has no inputs")
        outer = 1
        for d in y.shape[:axis]:
            outer *= d
        xs = []
        chunks = int32_zeros(len(op.inputs))
        total = 0
        for j in range(len(op.inputs)):
            x = tensor(model, op, j, "input %d" % j)
            if len(x.shape) != r:
                raise ModelError("CONCATENATION input %d shape %r, output %r: ranks differ"
                                 % (j, x.shape, y.shape))
            for i in range(r):
                if i != axis and x.shape[i] != y.shape[i]:
                    raise ModelError("CONCATENATION input %d shape %r does not fit output %r "
                                     "off axis %d" % (j, x.shape, y.shape, axis))
            if x.scale != y.scale or x.zero_point != y.zero_point:
                raise ModelError("CONCATENATION input %d quantization (%g, %d) differs from "
                                 "the output's (%g, %d)"
                                 % (j, x.scale, x.zero_point, y.scale, y.zero_point))
            total += x.shape[axis]
            chunks[j] = x.size // outer
            xs.append(x.data)
        if total != y.shape[axis]:
            raise ModelError("CONCATENATION inputs give %d along axis %d, output %r has %d"
                             % (total, axis, y.shape, y.shape[axis]))
        self.args = (xs, chunks, y.data, outer)

    def eval(self):
        xs, chunks, y, outer = self.args
        concatenation(xs, chunks, y, outer)


def prepare(model, op):
    return Concatenation(model, op)
