# REDUCE_MAX and REDUCE_MIN, int8 (TFLM reduce_common.cc EvalMinMaxHelper -> ReduceGeneric with
# max / min on the raw int8 values; TFLM requires the input's and output's quantization equal).
#   inputs:  x int8 (any shape, at most 4-D)
#   outputs: y int8: x's shape without the reduced axes (or with them as 1: keep_dims)
#   params:  sign (1: max, -1: min), then the kept axes' dims k0..k3 and x strides (4 + 4),
#            the reduced axes' dims r0..r3 and x strides (4 + 4); unused axes dim 1, stride 0.
#            Output elements follow the kept axes in x's order.
# y[k] = max (or min) over the reduced box at x offset sum k_i ks_i; values stay in [-128, 127].
from ..errors import ModelError
from ..opcodes import name as op_name
from .common import tensor


def reduce_extreme(x, y, kept, ks, red, rs, sign):
    """kept, red: 4 dims each; ks, rs: their x strides; sign 1 (max) or -1 (min)."""
    k0, k1, k2, k3 = kept
    a0, a1, a2, a3 = ks
    r0, r1, r2, r3 = red
    b0, b1, b2, b3 = rs
    o = 0
    for i0 in range(k0):
        for i1 in range(k1):
            for i2 in range(k2):
                for i3 in range(k3):
                    base = i0 * a0 + i1 * a1 + i2 * a2 + i3 * a3
                    best = x[base]
                    for j0 in range(r0):
                        for j1 in range(r1):
                            for j2 in range(r2):
                                p = base + j0 * b0 + j1 * b1 + j2 * b2
                                for _ in range(r3):
                                    v = x[p]
                                    if sign * (v - best) > 0:
                                        best = v
                                    p += b3
                    y[o] = best
                    o += 1


class ReduceExtreme:
    def __init__(self, model, op):
        what = op_name(op.opcode)
        x = tensor(model, op, 0, "input")
        y = tensor(model, op, ~0, "output")
        p = op.params
        if len(p) != 17 or p[0] not in (1, -1):
            raise ModelError("%s has params %r, expected 17 (sign, kept dims and strides, "
                             "reduced dims and strides)" % (what, p))
        kept = tuple(p[1:5])
        ks = tuple(p[5:9])
        red = tuple(p[9:13])
        rs = tuple(p[13:17])
        n = 1
        reach = 0
        for d, s in zip(kept + red, ks + rs):
            if d < 1 or s < 0:
                raise ModelError("%s dims %r strides %r: expected dims >= 1, strides >= 0"
                                 % (what, kept + red, ks + rs))
            reach += (d - 1) * s
        for d in kept:
            n *= d
        if n != y.size or reach >= x.size:
            raise ModelError("%s reaches x element %d of %d, writes %d of %d outputs"
                             % (what, reach, x.size, n, y.size))
        if x.zero_point != y.zero_point:
            raise ModelError("%s input zero point %d, output %d: TFLM needs them equal"
                             % (what, x.zero_point, y.zero_point))
        self.args = (x.data, y.data, kept, ks, red, rs, p[0])

    def eval(self):
        x, y, kept, ks, red, rs, sign = self.args
        reduce_extreme(x, y, kept, ks, red, rs, sign)


def prepare(model, op):
    return ReduceExtreme(model, op)
