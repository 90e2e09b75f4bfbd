# FULLY_CONNECTED, int8 (TFLM reference integer_ops/fully_connected.h semantics).
#   inputs:  x int8 (batches, n_in) (any shape with n_in innermost), w int8 (n_out, n_in),
#            bias int32 (n_out) or absent, requant int32 (n_out | 1, 3)
#   outputs: y int8 (batches, n_out)
#   params:  act_min, act_max
# Bounds: |x - zx| <= 255, |w| <= 128, so |acc| <= |bias| + 32640 * n_in; the converter
# checks that this stays below 2^30 >> left_shift.

from ..errors import ModelError
from ..fast import chosen, may_repack, select
from ..fileformat import INT32
from ..requant import multiply_by_quantized_multiplier
from .common import check_activation, check_zero_points, drop_reference_tables, \
    int32_values, requant_table, tensor
from ..buffers import int32_zeros

# fast twins, imported by load() before it allocates the big buffers (tinyrt.fast.preload)
TWINS = ("fully_connected_viper", "fully_connected_asm")


def fully_connected(x, w, bias, y, batches, n_in, n_out, x_zp, y_zp,
                    m_hi, m_lo, left, right, act_min, act_max):
    for b in range(batches):
        xb = b * n_in
        for o in range(n_out):
            acc = bias[o]
            wo = o * n_in
            for i in range(n_in):
                acc += (x[xb + i] - x_zp) * w[wo + i]
            v = multiply_by_quantized_multiplier(acc, m_hi[o], m_lo[o], left[o], right[o]) + y_zp
            if v < act_min:
                v = act_min
            elif v > act_max:
                v = act_max
            y[b * n_out + o] = v


class FullyConnected:
    def __init__(self, model, op):
        x = tensor(model, op, 0, "input")
        w = tensor(model, op, 1, "weights", const=True)
        b = tensor(model, op, 2, "bias", INT32, optional=True, const=True)
        q = tensor(model, op, 3, "requantization", INT32, const=True)
        y = tensor(model, op, ~0, "output")
        if len(w.shape) != 2:
            raise ModelError("weights shape %r, expected (n_out, n_in)" % (w.shape,))
        n_out, n_in = w.shape
        if b and b.size != n_out:
            raise ModelError("bias has %d values, expected %d" % (b.size, n_out))
        if len(op.params) != 2:
            raise ModelError("%d params, expected 2 (act_min, act_max)" % len(op.params))
        check_activation("FULLY_CONNECTED", op.params[0], op.params[1])
        check_zero_points("FULLY_CONNECTED", (x, y))
        if x.size % n_in or y.size != x.size // n_in * n_out:
            raise ModelError("shapes x %r, w %r, y %r do not fit" % (x.shape, w.shape, y.shape))
        self.args = (x.data, w.data, int32_values(model, b) if b else int32_zeros(n_out),
                     y.data, x.size // n_in, n_in, n_out, x.zero_point, y.zero_point)
        self.q = requant_table(model, q, n_out)
        self.act = op.params[0], op.params[1]
        m_hi, m_lo, left, right = self.q
        self.fn = select("fully_connected_viper", "fully_connected", fully_connected,
                         self.args + (m_hi, m_lo, left, right) + self.act
                         + (may_repack(model),))
        self.impl = chosen["fully_connected"]
        if self.impl == "asm":
            drop_reference_tables(self)
        self.wide = None
        if len(op.inputs) > 4:  # channels with int32 biases beyond small ints
            from .wide_channels import WideChannels

            self.wide = WideChannels(model, op, "FULLY_CONNECTED", x, y, (x.size // n_in, 1, 1,
                                     n_in, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, n_out), n_in, 1,
                                     op.params[0], op.params[1])

    def eval(self):
        x, w, b, y, batches, n_in, n_out, x_zp, y_zp = self.args
        m_hi, m_lo, left, right = self.q
        self.fn(x, w, b, y, batches, n_in, n_out, x_zp, y_zp, m_hi, m_lo, left, right,
                self.act[0], self.act[1])
        if self.wide is not None:
            self.wide.eval()


def prepare(model, op):
    if model.tensors[op.inputs[0]].dtype == "int16":  # 16x8 mode: its own module
        from .fully_connected16 import prepare as prepare_16x8

        return prepare_16x8(model, op)
    return FullyConnected(model, op)
