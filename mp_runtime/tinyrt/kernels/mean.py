# MEAN, int8 (TFLM reduce_common.cc EvalIntegerMean -> reference reduce.h QuantizedMeanOrSum,
# the integer path TFLM takes for every int8 MEAN, equal quantization or not).
#   inputs:  x int8, rank r <= 4
#            requant int32 (1, 3): one row (M' >> 15, M' & 0x7FFF, shift') with 1/n folded in
#            by the converter as TFLM does: (M, s) = QuantizeMultiplier(scale_x / scale_y),
#            k = min(floor(log2 n), 32, 31 + s), M' = (M << k) / n, shift' = s - k
#   outputs: y int8: x's shape without the reduced dims (or with them as 1: keep_dims only
#            changes the shape, not the data order)
#   params:  the reduced axes, each in 0..r-1, no repeats (none: n = 1, a plain requantize)
# Per output: y = clamp(MBQM(sum(x) - zp_x * n, M', shift') + zp_y, -128, 127), n = number of
# elements reduced into it.
# Bounds (31-bit rule): |sum(x) - zp_x * n| <= 255 * n; prepare refuses models where
# (255 * n) << left reaches 2^30, so every MBQM input is a small int.
from ..errors import ModelError
from ..fileformat import INT32
from ..requant import multiply_by_quantized_multiplier
from .common import requant_table, tensor


def mean(x, y, kept, reduced, strides, x_zp_n, y_zp, m_hi, m_lo, left, right):
    """kept, reduced: 4-tuples of the 4-D extended input dims split into those kept (1 where
    reduced) and those reduced (1 where kept); strides: x's element strides on them."""
    k0, k1, k2, k3 = kept
    r0, r1, r2, r3 = reduced
    s0, s1, s2, s3 = strides
    o = 0
    for a0 in range(k0):
        for a1 in range(k1):
            for a2 in range(k2):
                for a3 in range(k3):
                    base = a0 * s0 + a1 * s1 + a2 * s2 + a3 * s3
                    acc = -x_zp_n  # |acc| <= 255 * n at the end
                    for b0 in range(r0):
                        p0 = base + b0 * s0
                        for b1 in range(r1):
                            p1 = p0 + b1 * s1
                            for b2 in range(r2):
                                p = p1 + b2 * s2
                                for b3 in range(r3):
                                    acc += x[p]
                                    p += s3
                    v = multiply_by_quantized_multiplier(acc, m_hi, m_lo, left, right) + y_zp
                    if v < -128:
                        v = -128
                    elif v > 127:
                        v = 127
                    y[o] = v
                    o += 1


class Mean:
    def __init__(self, model, op):
        x = tensor(model, op, 0, "input")
        t = tensor(model, op, 1, "requantization", INT32, const=True)
        y = tensor(model, op, ~0, "output")
        r = len(x.shape)
        ext = 4 - r
        dims = [1] * ext + list(x.shape)
        reduced_mask = [False] * 4
        for a in op.params:
            if a < 0 or a >= r or reduced_mask[ext + a]:
                raise ModelError("MEAN axes %r: expected distinct axes in 0..%d"
                                 % (tuple(op.params), r - 1))
            reduced_mask[ext + a] = True
        kept = [1, 1, 1, 1]
        reduced = [1, 1, 1, 1]
        strides = [0, 0, 0, 0]
        step = 1
        for i in (3, 2, 1, 0):
            strides[i] = step
            step *= dims[i]
            if reduced_mask[i]:
                reduced[i] = dims[i]
            else:
                kept[i] = dims[i]
        n = reduced[0] * reduced[1] * reduced[2] * reduced[3]
        if y.size != kept[0] * kept[1] * kept[2] * kept[3]:
            raise ModelError("MEAN of %r over axes %r gives %d elements, output %r has %d"
                             % (x.shape, tuple(op.params), x.size // n, y.shape, y.size))
        for u in (x, y):
            if u.zero_point < -128 or u.zero_point > 127:
                raise ModelError("MEAN tensor %d has zero point %d, expected -128..127"
                                 % (u.index, u.zero_point))
        m_hi, m_lo, left, right = requant_table(model, t, 1)
        if (255 * n) >> (30 - left[0]):  # (255 n) << left >= 2^30, without forming 2^30
            raise ModelError("MEAN over %d elements with requantization shift %d: sums up to "
                             "255 * %d << %d leave 31-bit ints" % (n, left[0], n, left[0]))
        self.args = (x.data, y.data, tuple(kept), tuple(reduced), tuple(strides),
                     x.zero_point * n, y.zero_point, m_hi[0], m_lo[0], left[0], right[0])

    def eval(self):
        x, y, kept, reduced, strides, x_zp_n, y_zp, m_hi, m_lo, left, right = self.args
        mean(x, y, kept, reduced, strides, x_zp_n, y_zp, m_hi, m_lo, left, right)


def prepare(model, op):
    return Mean(model, op)
