# LOGISTIC, int8 (TFLM reference integer_ops/logistic.h: gemmlowp fixed-point logistic).
#   inputs:  x int8 (any shape), table int8 (256,)
#   outputs: y int8 (x's shape), scale 1/256, zero point -128 (as TFLM requires)
#   params:  none
# The output depends only on the int8 input value, so the converter runs TFLM's exact
# arithmetic for all 256 inputs: y = table[x + 128]. No intermediate exceeds 255.
from ..errors import ModelError
from .common import tensor


def logistic(x, y, n, table):
    for i in range(n):
        y[i] = table[x[i] + 128]


class Logistic:
    def __init__(self, model, op):
        x = tensor(model, op, 0, "input")
        t = tensor(model, op, 1, "logistic table", const=True)
        y = tensor(model, op, ~0, "output")
        if t.size != 256:
            raise ModelError("logistic table has %d entries, expected 256" % t.size)
        if y.size != x.size:
            raise ModelError("logistic input shape %r, output %r: expected equal sizes"
                             % (x.shape, y.shape))
        if y.zero_point != -128:
            raise ModelError("logistic output zero point %d, expected -128" % y.zero_point)
        self.args = (x.data, y.data, x.size, t.data)

    def eval(self):
        x, y, n, table = self.args
        logistic(x, y, n, table)


def prepare(model, op):
    return Logistic(model, op)
