# SVDF, int8 (TFLM svdf.cc -> svdf_common.cc EvalIntegerSvdfReference).
#   inputs:  x int8 (B, I), weights_feature int8 (F, I), weights_time int16 | int8 (F, M),
#            bias int32 (U) or absent, state int16 | int8 (B, F M), a variable tensor (kept
#            across invoke()s, Model.reset() sets it to 0 / its zero point; the dtype of
#            weights_time), requant int32 (2, 3): feature and output multipliers
#   outputs: y int8 (B, U), F = U rank
#   params:  rank
# Per invoke (converter/layers/svdf.py states the multipliers):
#   1. every state row slides one step: state[b, f, m] = state[b, f, m + 1]
#   2. state[b, f, M - 1] = T(zp_s + clamp_T(MBQM(sum_i wf[f, i] (x[b, i] - zp_x), M1)))
#   3. y[b, u] = clamp8(MBQM(wrap32(bias[u] + sum_k sum_m wt[f, m] (state[b, f, m] - zp_s)),
#      M2) + zp_y), f = u rank + k
# T() is the wrapping cast to the state's type; int16 values live as little-endian byte pairs
# in the int8 buffers (tinyrt.tensor). Bounds (31-bit rule): |sum_i| <= I * 255 * 128 < 2^30
# (converter); the time sums of int16 products (|wt| <= 2^15, |state - zp_s| < 2^16) pass 2^31
# in TFLM's wrapping int32, so each difference is split as s1 * 256 + s0 (0 <= s0 < 256):
# A0 = sum wt s0, A1 = sum wt s1, each term < 2^23 and rank M <= 127 terms (checked), and
# bias + A1 * 256 is carried as 15-bit limbs into requant_wide's MBQM of wrap32(B + A0).
from ..errors import ModelError
from ..fileformat import INT8, INT16, INT32
from ..requant_wide import multiply_by_quantized_multiplier_wide as mbqm_wide
from .common import int32_values, requant_table, tensor, zeros

_TERMS_LIMIT = 127


def svdf(x, wf, wt, bias, state, y, dims, zx, zs, zy, q, wide):
    """dims: (B, I, F, M, rank, units); wide: 1 if the state and weights_time are int16 (byte
    pairs) else 0; bias: array('i') (units, zeros when absent); q: (m_hi, m_lo, left, right)
    arrays of 2 (feature, output)."""
    nb, ni, nf, nm, rank, units = dims
    m_hi, m_lo, left, right = q
    w = wide + 1  # bytes per state / weights_time element
    lo_t = -32768 if wide else -128
    hi_t = 32767 if wide else 127
    n = nb * nf * nm * w
    for k in range(n - w):  # 1. slide (the last element of each row is written next)
        state[k] = state[k + w]
    o = 0
    for b in range(nb):
        xb = b * ni
        for f in range(nf):  # 2. the new state column
            acc = 0
            p = f * ni
            for i in range(ni):
                acc += wf[p + i] * (x[xb + i] - zx)
            v = mbqm_wide(0, 0, acc, m_hi[0], m_lo[0], left[0], right[0])
            if v < lo_t:
                v = lo_t
            elif v > hi_t:
                v = hi_t
            v += zs
            e = ((b * nf + f) * nm + nm - 1) * w
            if wide:
                v = ((v + 32768) & 0xFFFF) - 32768
                state[e] = ((v & 255) ^ 128) - 128
                state[e + 1] = v >> 8
            else:
                state[e] = ((v + 128) & 255) - 128
        for u in range(units):  # 3. the outputs
            a0 = 0
            a1 = 0
            for k in range(rank):
                f = u * rank + k
                s = (b * nf + f) * nm * w
                t = f * nm * w
                for j in range(nm):
                    if wide:
                        d = ((state[s] & 255) | state[s + 1] << 8) - zs
                        c = (wt[t] & 255) | wt[t + 1] << 8
                    else:
                        d = state[s] - zs
                        c = wt[t]
                    a0 += c * (d & 255)  # |.| < 2^23 per term
                    a1 += c * (d >> 8)
                    s += w
                    t += w
            bv = bias[u]
            b_lo = (bv & 0x7FFF) + ((a1 & 127) << 8)  # B = bias + a1 * 256 as 15-bit limbs
            b_hi = (bv >> 15) + (a1 >> 7) + (b_lo >> 15)
            v = mbqm_wide(b_hi, b_lo & 0x7FFF, a0, m_hi[1], m_lo[1], left[1], right[1]) + zy
            if v < -128:
                v = -128
            elif v > 127:
                v = 127
            y[o] = v
            o += 1


class Svdf:
    def __init__(self, model, op):
        what = "SVDF"
        x = tensor(model, op, 0, "input")
        wf = tensor(model, op, 1, "weights_feature", const=True)
        st = model.tensors[op.inputs[4]] if len(op.inputs) > 4 else None
        if st is None or st.dtype not in ("int8", "int16"):
            raise ModelError("%s state tensor is missing or not int8/int16" % what)
        dtype = INT16 if st.dtype == "int16" else INT8
        wt = tensor(model, op, 2, "weights_time", dtype, const=True)
        b = tensor(model, op, 3, "bias", INT32, optional=True, const=True)
        st = tensor(model, op, 4, "state", dtype)
        tq = tensor(model, op, 5, "requantization", INT32, const=True)
        y = tensor(model, op, ~0, "output")
        if len(op.params) != 1:
            raise ModelError("%s has %d params, expected 1 (rank)" % (what, len(op.params)))
        rank = op.params[0]
        xs = x.shape
        fs = wf.shape
        ts = wt.shape
        if (len(xs) != 2 or len(fs) != 2 or len(ts) != 2 or fs[1] != xs[1] or ts[0] != fs[0]
                or rank < 1 or fs[0] % rank or tuple(y.shape) != (xs[0], fs[0] // rank)
                or tuple(st.shape) != (xs[0], fs[0] * ts[1])):
            raise ModelError("%s x %r, weights_feature %r, weights_time %r, state %r, y %r, "
                             "rank %d do not fit" % (what, xs, fs, ts, st.shape, y.shape, rank))
        if rank * ts[1] > _TERMS_LIMIT or xs[1] * 32640 >= 1 << 30:
            raise ModelError("%s: %d inputs, rank * memory %d: beyond the kernel's bounds"
                             % (what, xs[1], rank * ts[1]))
        units = fs[0] // rank
        bias = zeros(units)
        if b is not None:
            v = int32_values(model, b)
            if len(v) != units:
                raise ModelError("%s bias has %d values for %d units" % (what, len(v), units))
            bias = v
        q = requant_table(model, tq, 2)
        dims = (xs[0], xs[1], fs[0], ts[1], rank, units)
        self.args = (x.data, wf.data, wt.data, bias, st.data, y.data, dims, x.zero_point,
                     st.zero_point, y.zero_point, q, 1 if dtype == INT16 else 0)

    def eval(self):
        x, wf, wt, bias, state, y, dims, zx, zs, zy, q, wide = self.args
        svdf(x, wf, wt, bias, state, y, dims, zx, zs, zy, q, wide)


def prepare(model, op):
    return Svdf(model, op)
