# Data movement over int16 tensors (16x8 models): the ops of kernels/copy.py (STRIDED_SLICE,
# SLICE, TRANSPOSE, ...) with the same params (moves in elements), run on the byte pairs of
# the int16 elements (tinyrt.tensor): each element move becomes two byte moves, one for the low
# bytes (offsets and strides doubled) and one for the high bytes (offsets + 1), run by
# copy.py's copy_moves (or its viper twin) unchanged. prepare checks the element moves as
# copy.py does (every element inside its tensors), so the byte moves stay inside the buffers.
from array import array

from ..errors import ModelError
from ..fast import select
from ..fileformat import INT16
from ..opcodes import name as op_name
from .common import tensor
from .copy import _MOVE, _span, copy_moves


class Copy16:
    def __init__(self, model, op):
        what = op_name(op.opcode)
        xs = [tensor(model, op, k, "%s input %d" % (what, k), INT16)
              for k in range(len(op.inputs))]
        ys = [tensor(model, op, ~k, "%s output %d" % (what, k), INT16)
              for k in range(len(op.outputs))]
        p = op.params
        n = len(p) // _MOVE
        if not xs or not ys or n == 0 or len(p) != n * _MOVE:
            raise ModelError("%s has %d inputs, %d outputs and %d params: expected inputs, "
                             "outputs and 16 params per move" % (what, len(xs), len(ys), len(p)))
        written = [0] * len(ys)
        moves = array("i", bytes(4 * 2 * len(p)))
        for j in range(n):
            m = j * _MOVE
            k_in = p[m]
            k_out = p[m + 1]
            dims = p[m + 4: m + 8]
            if not 0 <= k_in < len(xs) or not 0 <= k_out < len(ys) or min(dims) < 1:
                raise ModelError("%s move %d: input %d, output %d, box %r: expected tensors "
                                 "of the op and dims >= 1" % (what, j, k_in, k_out, dims))
            for off, strides, t, role in ((p[m + 2], p[m + 8: m + 12], xs[k_in], "input"),
                                          (p[m + 3], p[m + 12: m + 16], ys[k_out], "output")):
                lo, hi = _span(off, dims, strides)
                if lo < 0 or hi >= t.size:
                    raise ModelError("%s move %d reaches %s elements %d..%d of tensor %d, "
                                     "which has %d" % (what, j, role, lo, hi, t.index, t.size))
            written[k_out] += dims[0] * dims[1] * dims[2] * dims[3]
            for byte in (0, 1):
                b = (2 * j + byte) * _MOVE
                moves[b] = k_in
                moves[b + 1] = k_out
                moves[b + 2] = 2 * p[m + 2] + byte
                moves[b + 3] = 2 * p[m + 3] + byte
                for i in range(4):
                    moves[b + 4 + i] = dims[i]
                    moves[b + 8 + i] = 2 * p[m + 8 + i]
                    moves[b + 12 + i] = 2 * p[m + 12 + i]
        for k in range(len(ys)):
            if written[k] != ys[k].size:
                raise ModelError("%s moves write %d elements of output %d, which has %d"
                                 % (what, written[k], k, ys[k].size))
        self.args = (tuple(t.data for t in xs), tuple(t.data for t in ys), moves, 2 * n)
        self.fn = select("copy_viper", "copy_moves", copy_moves)
        self.impl = "viper" if self.fn is not copy_moves else "reference"

    def eval(self):
        xs, ys, moves, n = self.args
        self.fn(xs, ys, moves, n)


def prepare(model, op):
    return Copy16(model, op)
