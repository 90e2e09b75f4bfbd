# BFULLY_CONNECTED: binary dense layer, Larq Compute Engine semantics (a 1x1 LceBconv2d over
# the rows of x; LCE itself runs binary dense layers that way).
#   inputs:  x packed (..., n_in) (rows of n_in bits), w packed (n_out, n_in), t0, t1: the
#            output transform of kernels.bconv (out_mode 0: thresholds; 1: levels + steps;
#            2: table)
#   outputs: y packed (..., n_out) | int8 (..., n_out), one row per row of x
#   params:  out_mode
# a = accum = popcount(x XOR w) over the row's n_in bits (in [0, n_in]); then kernels.bconv's
# output transform. The math is kernels.bconv.bconv2d with a 1x1 filter on 1x1 images.
from ..bitpack import row_bytes
from ..errors import ModelError
from ..fast import chosen, select
from ..fileformat import PACKED
from .bconv import OutputTransform, bconv2d
from .common import tensor

# fast twins, imported by load() before it allocates the big buffers (tinyrt.fast.preload)
TWINS = ("bfully_connected_viper", "bfully_connected_asm")


class BFullyConnected:
    def __init__(self, model, op):
        x = tensor(model, op, 0, "input", PACKED)
        w = tensor(model, op, 1, "weights", PACKED, const=True)
        y_rec = model.file.tensors[op.outputs[0]] if op.outputs else None
        y = tensor(model, op, ~0, "output", y_rec.dtype if y_rec else PACKED)
        if len(op.params) != 1:
            raise ModelError("BFULLY_CONNECTED has %d params, expected 1" % len(op.params))
        if len(w.shape) != 2 or not x.shape or x.shape[-1] != w.shape[1]:
            raise ModelError("BFULLY_CONNECTED weights %r do not fit input %r"
                             % (w.shape, x.shape))
        n_out, n_in = w.shape
        rows = x.size // n_in
        if not y.shape or y.shape[-1] != n_out or y.size != rows * n_out:
            raise ModelError("BFULLY_CONNECTED output shape %r, expected %d rows of %d"
                             % (y.shape, rows, n_out))
        self.ot = OutputTransform(model, op, op.params[0], n_out, n_in, y, 2)
        self.args = (x.data, w.data, y.data, rows, row_bytes(n_in), n_out, n_in, self.ot)
        self.fn = select("bfully_connected_viper", "bconv2d", bconv2d,
                         (x.data, w.data, y.data, rows, row_bytes(n_in), n_out, n_in, self.ot))
        self.impl = chosen["bconv2d"]

    def eval(self):
        x, w, y, rows, wb, n_out, n_in, ot = self.args
        self.fn(x, w, y, None, None, None, rows, 1, 1, wb, 1, 1, n_out, 1, 1, 1, 1, 1, 1, 0, 0,
                0, n_in, ot)


def prepare(model, op):
    return BFullyConnected(model, op)
