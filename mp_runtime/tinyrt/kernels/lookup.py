# Table lookup: the device half of every int8 -> int8 elementwise op whose output depends only
# on the input value (LEAKY_RELU, RELU, RELU6, HARD_SWISH, TANH). The converter runs TFLM's
# exact integer arithmetic of the op for all 256 input values (converter/layers/unary.py)
# and stores the results; the op's own kernel module states that arithmetic.
#   inputs:  x int8 (any shape), table int8 (256,): table[v + 128] is the output for input v
#   outputs: y int8, as many elements as x
#   params:  none
# eval: y[i] = table[x[i] + 128]; every intermediate lies in [0, 255].
from ..errors import ModelError
from .common import tensor


def lookup(x, y, n, table):
    for i in range(n):
        y[i] = table[x[i] + 128]


class TableLookup:
    def __init__(self, model, op, what):
        x = tensor(model, op, 0, "input")
        t = tensor(model, op, 1, "%s table" % what, const=True)
        y = tensor(model, op, ~0, "output")
        if t.size != 256:
            raise ModelError("%s table has %d entries, expected 256" % (what, t.size))
        if y.size != x.size:
            raise ModelError("%s input shape %r, output %r: expected equal sizes"
                             % (what, x.shape, y.shape))
        if op.params:
            raise ModelError("%s has %d params, expected none" % (what, len(op.params)))
        self.args = (x.data, y.data, x.size, t.data)

    def eval(self):
        x, y, n, table = self.args
        lookup(x, y, n, table)
