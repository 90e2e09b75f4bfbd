# Data movement, int8: STRIDED_SLICE, SLICE, TRANSPOSE, SPLIT, SPLIT_V, PACK, UNPACK, GATHER
# (constant indices), DEPTH_TO_SPACE and SPACE_TO_DEPTH. Each is TFLM's reference kernel
# (strided_slice.h, slice.h, transpose.h, split.cc, pack.cc, unpack.cc, gather.cc,
# depth_to_space.h, space_to_depth.h): every output element is one input element, copied raw
# (no requantization, as TFLM). The converter (converter/layers/movement.py) runs the op on an
# array of element indices and describes the result as "moves", 4-D boxes copied with strides.
#   inputs:  x_0 ... x_{n-1} int8 (any shapes)
#   outputs: y_0 ... y_{m-1} int8 (any shapes)
#   params:  16 ints per move: k_in, k_out, x offset, y offset, d0..d3 (box dims, >= 1),
#            x strides s0..s3, y strides t0..t3 (elements; x strides may be negative:
#            a reversing slice)
# eval, per move: y_{k_out}[yo + i0 t0 + .. + i3 t3] = x_{k_in}[xo + i0 s0 + .. + i3 s3] for
# every i in the box. prepare checks each move's lowest and highest element lies inside its
# tensors, so eval never indexes outside a buffer. Offsets are < 2^24 (tensors fit a board).
from array import array

from ..errors import ModelError
from ..fast import select
from ..opcodes import name as op_name
from .common import tensor

_MOVE = 16  # params per move

# fast twin, imported by load() before it allocates the big buffers (tinyrt.fast.preload)
TWINS = ("copy_viper",)


def copy_moves(xs, ys, moves, n):
    """Run n moves (array of 16n ints) from the input buffers xs to the output buffers ys."""
    m = 0
    for _ in range(n):
        x = xs[moves[m]]
        y = ys[moves[m + 1]]
        xo = moves[m + 2]
        yo = moves[m + 3]
        d0 = moves[m + 4]
        d1 = moves[m + 5]
        d2 = moves[m + 6]
        d3 = moves[m + 7]
        s0 = moves[m + 8]
        s1 = moves[m + 9]
        s2 = moves[m + 10]
        s3 = moves[m + 11]
        t0 = moves[m + 12]
        t1 = moves[m + 13]
        t2 = moves[m + 14]
        t3 = moves[m + 15]
        for i0 in range(d0):
            for i1 in range(d1):
                for i2 in range(d2):
                    p = xo + i0 * s0 + i1 * s1 + i2 * s2
                    q = yo + i0 * t0 + i1 * t1 + i2 * t2
                    for _ in range(d3):
                        y[q] = x[p]
                        p += s3
                        q += t3
        m += _MOVE


def _span(off, dims, strides):
    """(lowest, highest) element a box touches."""
    lo = off
    hi = off
    for i in range(4):
        step = (dims[i] - 1) * strides[i]
        if step < 0:
            lo += step
        else:
            hi += step
    return lo, hi


class Copy:
    def __init__(self, model, op):
        what = op_name(op.opcode)
        xs = []
        for k in range(len(op.inputs)):
            xs.append(tensor(model, op, k, "%s input %d" % (what, k)))
        ys = []
        for k in range(len(op.outputs)):
            ys.append(tensor(model, op, ~k, "%s output %d" % (what, k)))
        p = op.params
        n = len(p) // _MOVE
        if not xs or not ys or n == 0 or len(p) != n * _MOVE:
            raise ModelError("%s has %d inputs, %d outputs and %d params: expected inputs, "
                             "outputs and 16 params per move" % (what, len(xs), len(ys), len(p)))
        written = [0] * len(ys)
        for j in range(n):
            m = j * _MOVE
            k_in = p[m]
            k_out = p[m + 1]
            dims = p[m + 4: m + 8]
            if not 0 <= k_in < len(xs) or not 0 <= k_out < len(ys) or min(dims) < 1:
                raise ModelError("%s move %d: input %d, output %d, box %r: expected tensors "
                                 "of the op and dims >= 1" % (what, j, k_in, k_out, dims))
            box = dims[0] * dims[1] * dims[2] * dims[3]
            for off, strides, t, role in ((p[m + 2], p[m + 8: m + 12], xs[k_in], "input"),
                                          (p[m + 3], p[m + 12: m + 16], ys[k_out], "output")):
                lo, hi = _span(off, dims, strides)
                if lo < 0 or hi >= t.size:
                    raise ModelError("%s move %d reaches %s elements %d..%d of tensor %d, "
                                     "which has %d" % (what, j, role, lo, hi, t.index, t.size))
            written[k_out] += box
        for k in range(len(ys)):
            if written[k] != ys[k].size:
                raise ModelError("%s moves write %d elements of output %d, which has %d"
                                 % (what, written[k], k, ys[k].size))
        moves = array("i", p)
        bufs_in = []
        for t in xs:
            bufs_in.append(t.data)
        bufs_out = []
        for t in ys:
            bufs_out.append(t.data)
        self.args = (tuple(bufs_in), tuple(bufs_out), moves, n)
        self.fn = select("copy_viper", "copy_moves", copy_moves)
        self.impl = "viper" if self.fn is not copy_moves else "reference"

    def eval(self):
        xs, ys, moves, n = self.args
        self.fn(xs, ys, moves, n)


def prepare(model, op):
    if model.tensors[op.inputs[0]].dtype == "int16":  # 16x8 mode: its own module
        from .copy16 import prepare as prepare_16

        return prepare_16(model, op)
    return Copy(model, op)
