# FULLY_CONNECTED_LUT: FULLY_CONNECTED with clustered weights (weight sharing, tinyrt's op 205).
# The int8 weight w[o, i] is codebook[index(o * n_in + i)]: the weights stay b-bit indices in
# the file and in RAM, looked up as eval runs; the result is FULLY_CONNECTED's with the decoded
# weights, to the bit.
#   inputs:  x int8 (batches, n_in) (any shape with n_in innermost), indices int8 (nbytes,),
#            codebook int8 (2^bits,), bias int32 (n_out) or absent, requant int32 (n_out|1, 3)
#   outputs: y int8 (batches, n_out)
#   params:  act_min, act_max, bits, n_out, n_in
# Index packing (converter/cluster.py pack_indices, the one place on the host): index j takes
# bits j*bits .. j*bits + bits - 1 of the byte string, LSB first (bit k of byte k // 8 is
# bit k % 8); nbytes = (n * bits + 7) // 8 + 1, the last byte padding, so reading the two bytes
# at j*bits // 8 stays inside. An index is those two bytes (< 2^16) >> (j*bits % 8) & mask.
# Bounds: bit positions <= bits * n_out * n_in < 2^30 (checked at prepare); |x - zx| <= 255,
# |w| <= 128, so |acc| <= |bias| + 32640 * n_in, as FULLY_CONNECTED (the converter checks it).
from array import array

from ..errors import ModelError
from ..fileformat import INT32
from ..requant import multiply_by_quantized_multiplier
from .common import check_activation, check_zero_points, int32_values, requant_table, tensor

MIN_BITS = 1
MAX_BITS = 6
BIT_LIMIT = 1 << 30  # bit positions stay small ints


def fully_connected_lut(x, p, cb, bias, y, batches, n_in, n_out, x_zp, y_zp,
                        m_hi, m_lo, left, right, act_min, act_max, bits):
    mask = (1 << bits) - 1
    for b in range(batches):
        xb = b * n_in
        pos = 0  # bit position of w[o, 0]'s index
        for o in range(n_out):
            acc = bias[o]
            for i in range(xb, xb + n_in):
                k = pos >> 3
                j = (((p[k] & 255) | ((p[k + 1] & 255) << 8)) >> (pos & 7)) & mask
                acc += (x[i] - x_zp) * cb[j]
                pos += bits
            v = multiply_by_quantized_multiplier(acc, m_hi[o], m_lo[o], left[o], right[o]) + y_zp
            if v < act_min:
                v = act_min
            elif v > act_max:
                v = act_max
            y[b * n_out + o] = v


def check_indices(what, idx, cb, bits, n):
    """The packed indices of n weights and a 2^bits codebook: sizes as the packing says."""
    if bits < MIN_BITS or bits > MAX_BITS:
        raise ModelError("%s index width %d bits, expected %d..%d" % (what, bits, MIN_BITS,
                                                                     MAX_BITS))
    if n < 1 or n * bits >= BIT_LIMIT:
        raise ModelError("%s has %d weights of %d bits, expected 1..%d bits in all"
                         % (what, n, bits, BIT_LIMIT - 1))
    want = (n * bits + 7) // 8 + 1
    if idx.size != want:
        raise ModelError("%s indices: %d bytes, expected %d for %d weights of %d bits"
                         % (what, idx.size, want, n, bits))
    if cb.size != 1 << bits:
        raise ModelError("%s codebook: %d entries, expected %d" % (what, cb.size, 1 << bits))


class FullyConnectedLut:
    def __init__(self, model, op):
        x = tensor(model, op, 0, "input")
        idx = tensor(model, op, 1, "weight indices", const=True)
        cb = tensor(model, op, 2, "codebook", const=True)
        b = tensor(model, op, 3, "bias", INT32, optional=True, const=True)
        q = tensor(model, op, 4, "requantization", INT32, const=True)
        y = tensor(model, op, ~0, "output")
        if len(op.params) != 5:
            raise ModelError("FULLY_CONNECTED_LUT has %d params, expected 5 (act_min, act_max, "
                             "bits, n_out, n_in)" % len(op.params))
        act_min, act_max, bits, n_out, n_in = op.params
        check_activation("FULLY_CONNECTED_LUT", act_min, act_max)
        check_zero_points("FULLY_CONNECTED_LUT", (x, y))
        if n_in < 1 or n_out < 1:
            raise ModelError("FULLY_CONNECTED_LUT shape (%d, %d), expected positive"
                             % (n_out, n_in))
        check_indices("FULLY_CONNECTED_LUT", idx, cb, bits, n_out * n_in)
        if b and b.size != n_out:
            raise ModelError("bias has %d values, expected %d" % (b.size, n_out))
        if x.size % n_in or y.size != x.size // n_in * n_out:
            raise ModelError("shapes x %r, weights (%d, %d), y %r do not fit"
                             % (x.shape, n_out, n_in, y.shape))
        self.args = (x.data, idx.data, cb.data,
                     int32_values(model, b) if b else array("i", bytes(4 * n_out)),
                     y.data, x.size // n_in, n_in, n_out, x.zero_point, y.zero_point)
        self.q = requant_table(model, q, n_out)
        self.act = act_min, act_max, bits
        self.impl = "reference"

    def eval(self):
        x, p, cb, b, y, batches, n_in, n_out, x_zp, y_zp = self.args
        m_hi, m_lo, left, right = self.q
        act_min, act_max, bits = self.act
        fully_connected_lut(x, p, cb, b, y, batches, n_in, n_out, x_zp, y_zp, m_hi, m_lo,
                            left, right, act_min, act_max, bits)


def prepare(model, op):
    return FullyConnectedLut(model, op)
