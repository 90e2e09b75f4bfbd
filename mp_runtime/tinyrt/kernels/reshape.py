# RESHAPE, int8 (TFLM reshape.cc: the data is unchanged, only the shape differs).
#   inputs:  x int8, any shape
#   outputs: y int8, the new shape (same element count; tinyrt keeps shapes in the tensors, so
#            TFLite's optional shape input / new_shape option is not stored)
#   params:  none
# The kernel copies x into y. The converter could instead give y the arena bytes of x (an
# alias, when x dies here) and drop the op; the copy keeps the planner simple for now.
from ..errors import ModelError
from ..fast import select
from .common import tensor

# fast twins, imported by load() before it allocates the big buffers (tinyrt.fast.preload)
TWINS = ("reshape_viper",)


def reshape(x, y, n):
    for i in range(n):
        y[i] = x[i]


class Reshape:
    def __init__(self, model, op):
        x = tensor(model, op, 0, "input")
        y = tensor(model, op, ~0, "output")
        if len(op.params):
            raise ModelError("RESHAPE has %d params, expected none" % len(op.params))
        if x.size != y.size:
            raise ModelError("RESHAPE from %r (%d elements) to %r (%d elements)"
                             % (x.shape, x.size, y.shape, y.size))
        self.args = (x.data, y.data, x.size)
        self.fn = select("reshape_viper", "reshape", reshape)
        self.impl = "viper" if self.fn is not reshape else "reference"

    def eval(self):
        x, y, n = self.args
        self.fn(x, y, n)


def prepare(model, op):
    if model.tensors[op.inputs[0]].dtype == "int16":  # 16x8 mode: its own module
        from .reshape16 import prepare as prepare_16

        return prepare_16(model, op)
    return Reshape(model, op)
