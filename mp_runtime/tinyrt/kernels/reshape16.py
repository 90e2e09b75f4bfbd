# RESHAPE, int16 (16x8 models): as kernels/reshape.py, over the 2 * size bytes of the int16
# elements (byte pairs, tinyrt/tensor.py); the byte copy is reshape.py's (and its viper twin).
from ..errors import ModelError
from ..fast import select
from ..fileformat import INT16
from .common import tensor
from .reshape import reshape


class Reshape16:
    def __init__(self, model, op):
        x = tensor(model, op, 0, "input", INT16)
        y = tensor(model, op, ~0, "output", INT16)
        if len(op.params):
            raise ModelError("RESHAPE has %d params, expected none" % len(op.params))
        if x.size != y.size:
            raise ModelError("RESHAPE from %r (%d elements) to %r (%d elements)"
                             % (x.shape, x.size, y.shape, y.size))
        self.args = (x.data, y.data, 2 * x.size)
        self.fn = select("reshape_viper", "reshape", reshape)
        self.impl = "viper" if self.fn is not reshape else "reference"

    def eval(self):
        x, y, n = self.args
        self.fn(x, y, n)


def prepare(model, op):
    return Reshape16(model, op)
