# FULLY_CONNECTED 16x8: int16 activations, int8 weights, int64 bias (TFLM reference
# integer_ops/fully_connected.h for int16 input with an int64 accumulator).
#   inputs:  x int16 (batches, n_in) zero point 0, w int8 (n_out, n_in), bias int32 (n_out, 2)
#            rows (b >> 15, b & 0x7FFF) of the int64 bias or absent, requant int32
#            (n_out | 1, 2) rows (rm, ts) (tinyrt.requant16)
#   outputs: y int16 (batches, n_out) zero point 0
#   params:  act_min, act_max
# y = clamp(MultiplyByQuantizedMultiplier64(bias + sum x * w, rm, ts), act_min, act_max).
# int16 tensors are byte pairs (tinyrt.tensor). Bounds as conv16: |x * w| <= 2^22, lo carried
# into hi every 255 products (|lo| < 2^30), |hi| < 2^29 (|bias| < 2^43, n_in < 2^21).
from ..errors import ModelError
from ..fileformat import INT16, INT32
from ..requant16 import multiply_by_quantized_multiplier_64
from .common import check_activation, tensor
from .conv16 import CHUNK, bias_and_requant


def fully_connected_16x8(x, w, b_hi, b_lo, y, batches, n_in, n_out, rm, ts, act_min,
                         act_max):
    mbqm = multiply_by_quantized_multiplier_64
    for bt in range(batches):
        xb = bt * n_in
        for o in range(n_out):
            hi = b_hi[o]
            acc = b_lo[o]
            d = o * n_in - xb  # w index - x index
            i = xb
            end = xb + n_in
            while i < end:
                stop = i + CHUNK
                if stop > end:
                    stop = end
                for j in range(i, stop):
                    acc += ((x[j + j] & 255) | (x[j + j + 1] << 8)) * w[j + d]
                hi += acc >> 15
                acc &= 0x7FFF
                i = stop
            v = mbqm(hi, acc, rm[o], ts[o])
            if v < act_min:
                v = act_min
            elif v > act_max:
                v = act_max
            k = bt * n_out + o
            y[k + k] = ((v & 255) ^ 128) - 128  # low byte, as an int8
            y[k + k + 1] = v >> 8


class FullyConnected16x8:
    def __init__(self, model, op):
        x = tensor(model, op, 0, "input", INT16)
        w = tensor(model, op, 1, "weights", const=True)
        b = tensor(model, op, 2, "bias", INT32, optional=True, const=True)
        q = tensor(model, op, 3, "requantization", INT32, const=True)
        y = tensor(model, op, ~0, "output", INT16)
        if len(w.shape) != 2:
            raise ModelError("weights shape %r, expected (n_out, n_in)" % (w.shape,))
        n_out, n_in = w.shape
        if len(op.params) != 2:
            raise ModelError("%d params, expected 2 (act_min, act_max)" % len(op.params))
        check_activation("FULLY_CONNECTED", op.params[0], op.params[1], -32768, 32767)
        if x.zero_point != 0 or y.zero_point != 0:
            raise ModelError("FULLY_CONNECTED 16x8 zero points %d, %d: int16 activations are "
                             "symmetric (0)" % (x.zero_point, y.zero_point))
        if n_in >= 1 << 21:
            raise ModelError("FULLY_CONNECTED 16x8 with %d inputs, at most 2^21 - 1" % n_in)
        if x.size % n_in or y.size != x.size // n_in * n_out:
            raise ModelError("shapes x %r, w %r, y %r do not fit" % (x.shape, w.shape, y.shape))
        b_hi, b_lo, rm, ts = bias_and_requant(model, "FULLY_CONNECTED", b, q, n_out)
        self.args = (x.data, w.data, b_hi, b_lo, y.data, x.size // n_in, n_in, n_out, rm, ts,
                     op.params[0], op.params[1])
        self.impl = "reference"

    def eval(self):
        x, w, b_hi, b_lo, y, batches, n_in, n_out, rm, ts, a_min, a_max = self.args
        fully_connected_16x8(x, w, b_hi, b_lo, y, batches, n_in, n_out, rm, ts, a_min, a_max)


def prepare(model, op):
    return FullyConnected16x8(model, op)
