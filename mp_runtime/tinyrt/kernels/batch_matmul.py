# BATCH_MATMUL, int8 (TFLM batch_matmul.cc -> reference BatchMatMul, int32 accumulator).
#   inputs:  lhs int8, rhs int8 (activations or constants, per-tensor quantization; batch dims
#            broadcast as numpy), requant int32 (1, 3): (M >> 15, M & 0x7FFF, shift) of
#            QuantizeMultiplier(double(s_lhs) * double(s_rhs) / double(s_y))
#   outputs: y int8 (batch dims, M, N)
#   params:  B0, B1, M, N, K, then element strides: lhs b0, b1, m, k; rhs b0, b1, k, n
#            (the converter folds adj_x / adj_y and broadcasting into them; 0 on a broadcast dim)
# Per output: acc = sum_k (lhs[b, m, k] - zp_l) (rhs[b, k, n] - zp_r);
#   y[b, m, n] = clamp(MBQM(acc, M, shift) + zp_y, -128, 127)
# Bound (31-bit rule): |acc| <= K * 255 * 255, and acc << left < 2^30 (checked at prepare).
from ..errors import ModelError
from ..fast import select
from ..requant import multiply_by_quantized_multiplier
from .common import INT32, check_zero_points, requant_table, tensor

# fast twin, imported by load() before it allocates the big buffers (tinyrt.fast.preload)
TWINS = ("batch_matmul_viper",)


def batch_matmul(a_, b_, y, dims, ls, rs, zl, zr, q, zy):
    """a_, b_: lhs and rhs; dims: (B0, B1, M, N, K); ls: lhs strides (b0, b1, m, k); rs: rhs
    strides (b0, b1, k, n); q: (m_hi, m_lo, left, right)."""
    nb0, nb1, nm, nn, nk = dims
    lb0, lb1, lm, lk = ls
    rb0, rb1, rk, rn = rs
    hi, lo, left, right = q
    o = 0
    for b0 in range(nb0):
        for b1 in range(nb1):
            pl = b0 * lb0 + b1 * lb1
            pr = b0 * rb0 + b1 * rb1
            for m in range(nm):
                for n in range(nn):
                    a = pl + m * lm
                    c = pr + n * rn
                    acc = 0
                    for _ in range(nk):
                        acc += (a_[a] - zl) * (b_[c] - zr)  # |acc| <= K * 65025 < 2^30
                        a += lk
                        c += rk
                    v = multiply_by_quantized_multiplier(acc, hi, lo, left, right) + zy
                    if v < -128:
                        v = -128
                    elif v > 127:
                        v = 127
                    y[o] = v
                    o += 1


def _reach(what, t, strides, dims):
    hi = 0
    for s, d in zip(strides, dims):
        if s < 0:
            raise ModelError("%s stride %d < 0" % (what, s))
        hi += s * (d - 1)
    if hi >= t.size:
        raise ModelError("%s reaches element %d of tensor %d, which has %d"
                         % (what, hi, t.index, t.size))


class BatchMatMul:
    def __init__(self, model, op):
        what = "BATCH_MATMUL"
        lt = tensor(model, op, 0, "lhs")
        rt = tensor(model, op, 1, "rhs")
        tq = tensor(model, op, 2, "requantization", INT32, const=True)
        y = tensor(model, op, ~0, "output")
        p = op.params
        if len(p) != 13:
            raise ModelError("%s has %d params, expected 13" % (what, len(p)))
        dims = tuple(p[:5])
        ls = tuple(p[5:9])
        rs = tuple(p[9:13])
        nb0, nb1, nm, nn, nk = dims
        if min(dims) < 1 or nb0 * nb1 * nm * nn != y.size:
            raise ModelError("%s dims %r for output %r" % (what, dims, y.shape))
        _reach(what + " lhs", lt, ls, (nb0, nb1, nm, nk))
        _reach(what + " rhs", rt, rs, (nb0, nb1, nk, nn))
        check_zero_points(what, (lt, rt, y))
        m_hi, m_lo, left, right = requant_table(model, tq, 1)
        if (nk * 65025) << left[0] >= 1 << 30:
            raise ModelError("%s: %d products shifted left by %d leave 31-bit ints"
                             % (what, nk, left[0]))
        q = (m_hi[0], m_lo[0], left[0], right[0])
        self.args = (lt.data, rt.data, y.data, dims, ls, rs, lt.zero_point, rt.zero_point, q,
                     y.zero_point)
        self.fn = select("batch_matmul_viper", "batch_matmul", batch_matmul)
        self.impl = "viper" if self.fn is not batch_matmul else "reference"

    def eval(self):
        a, b, y, dims, ls, rs, zl, zr, q, zy = self.args
        self.fn(a, b, y, dims, ls, rs, zl, zr, q, zy)


def prepare(model, op):
    return BatchMatMul(model, op)
