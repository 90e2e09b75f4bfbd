# DEQUANTIZE, int8 -> float32 (TFLM dequantize.cc -> reference Dequantize:
# y = static_cast<float>(double(scale) * (x - zero_point))).
#   inputs:  x int8 (any shape), table int32 (256,): the IEEE-754 bits of the float32 result
#            for x = -128..127, computed by the converter (converter/layers/arith.py)
#   outputs: y float32 (x's shape), stored in the arena as 4 little-endian bytes per element
#   params:  none
# eval copies the 4 bytes of table entry x + 128 to each output element: no float is made on
# the board (floats are heap objects there); Tensor.tolist() reads the values (struct) after.
from ..errors import ModelError
from ..fileformat import FLOAT32, INT32
from .common import tensor


def dequantize(x, y, n, table):
    """table: the 1024 bytes of 256 float32 words (int8 view); y: 4n bytes (int8 view)."""
    q = 0
    for i in range(n):
        p = (x[i] + 128) << 2
        y[q] = table[p]
        y[q + 1] = table[p + 1]
        y[q + 2] = table[p + 2]
        y[q + 3] = table[p + 3]
        q += 4


class Dequantize:
    def __init__(self, model, op):
        x = tensor(model, op, 0, "input")
        t = tensor(model, op, 1, "DEQUANTIZE table", INT32, const=True)
        y = tensor(model, op, ~0, "output", FLOAT32)
        if t.size != 256 or len(t.data) != 1024:
            raise ModelError("DEQUANTIZE table has %d entries, expected 256" % t.size)
        if y.size != x.size or len(y.data) != 4 * x.size:
            raise ModelError("DEQUANTIZE input %r, output %r: expected equal sizes"
                             % (x.shape, y.shape))
        if op.params:
            raise ModelError("DEQUANTIZE has %d params, expected none" % len(op.params))
        self.args = (x.data, y.data, x.size, t.data)

    def eval(self):
        x, y, n, table = self.args
        dequantize(x, y, n, table)


def prepare(model, op):
    if model.tensors[op.inputs[0]].dtype == "int16":  # 16x8 mode: its own module
        from .dequantize16 import prepare as prepare_16

        return prepare_16(model, op)
    return Dequantize(model, op)
