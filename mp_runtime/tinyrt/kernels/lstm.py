# UNIDIRECTIONAL_SEQUENCE_LSTM, int8 activations, int8 weights, int16 cell state (TFLM
# kernels/lstm_eval.h EvalLstm<int8_t, int8_t, int16_t, int32_t>). Layout and the converter's
# precomputed tables: converter/layers/lstm.py.
#   inputs:  x int8 (B, T, I) | time-major (T, B, I), w_in int8 (4, S, I), w_rec int8 (4, S, S),
#            bias int32 (8, S), requant int32 (11, 3), table int32 (256,),
#            h int8 (B, S) VARIABLE, c int16 (B, S) VARIABLE (byte pairs, tinyrt.tensor)
#   outputs: y int8 (x's leading dims, S)
#   params:  time_major, cell_clip, tanh_multiplier, tanh_shift
# Per step, for batch row b (the states' row b; rows are independent, so batch-major and
# time-major differ only in where x and y sit), gates k = input, forget, cell, output:
#   pre_k = sat16(sat16(MBQM(bias[2k] + w_in[k] . x)) + sat16(MBQM(bias[2k+1] + w_rec[k] . h)))
#   i, f, o = sigmoid(pre) Q0.15; g = tanh(pre)
#   c = sat16(sat16(MBQM(f * c, row 8)) + sat16(MBQM(i * g, row 9))), clipped to +-cell_clip
#   h = sat8(h_zp + MBQM(tanh_c(c) * o, row 10)); y[step] = h
# Bounds (31-bit small ints everywhere): the converter checks (|bias| + K * 2^14) << left
# < 2^30 for each FC; gate values are int16, so |a * b| <= 2^30 - 2^15 in the products,
# |c * tanh_multiplier| < 2^30 (multiplier <= 3 * 2^13); table interpolation < 2^26.
from ..errors import ModelError
from ..fileformat import INT16, INT32
from ..requant import multiply_by_quantized_multiplier as _mbqm
from ..fast import chosen, select
from .common import int32_values, requant_table, tensor, zeros

# fast twin, imported by load() before it allocates the big buffers (tinyrt.fast.preload)
TWINS = ("lstm_viper",)


def sigmoid16(v, tab):
    """TFLM's int16 Logistic of a Q3.12 value (input_multiplier 0: scaled by 3): Q0.15."""
    a = v * 3
    if a < 0:
        a = -a
    uh = a >> 9
    if uh >= 255:
        r = 0x7FFF << 10
    else:
        ua = tab[uh]
        r = (ua << 9) + (a & 511) * (tab[uh + 1] - ua)
    if v >= 0:
        return (r + 512) >> 10
    return (33554432 - r + 511) >> 10  # 2^25 - r + 2^9 - 1


def tanh16(v, tab, mul, shift):
    """TFLM's int16 Tanh of v * mul >> shift (rounded) in Q3.12 scaled by 3/4: Q0.15."""
    a = v * mul
    if shift:
        a = (a + (1 << (shift - 1))) >> shift
    neg = a < 0
    if neg:
        a = -a
    uh = a >> 8
    if uh >= 255:
        r = 0xFFFF << 8
    else:
        ua = tab[uh]
        r = (ua << 8) + (a & 255) * (tab[uh + 1] - ua)
    if neg:
        return (8388735 - r) >> 8  # -r + 2^23 + 2^7 - 1
    return (r - 8388480) >> 8  # r - 2^23 + 2^7


def _fc16(w, wo, x, xo, n, acc, m_hi, m_lo, left, right):
    """sat16(MBQM(acc + w[wo:wo+n] . x[xo:xo+n])): one gate FC output (int8 x int8, Q3.12)."""
    d = wo - xo
    for j in range(xo, xo + n):
        acc += w[j + d] * x[j]
    v = _mbqm(acc, m_hi, m_lo, left, right)
    if v > 32767:
        return 32767
    if v < -32768:
        return -32768
    return v


def _mul16(a, b, m_hi, m_lo, right):
    v = _mbqm(a * b, m_hi, m_lo, 0, right)
    if v > 32767:
        return 32767
    if v < -32768:
        return -32768
    return v


def lstm_step(x, w_in, w_rec, xo, bias, wsum, gates, m_hi, m_lo, left, right, tab, h, ho, c,
              y, yo, n_in, n_s, clip, t_mul, t_shift, h_zp):
    """One time step of one batch row: x row at xo, state rows at ho (h int8, c int16 byte
    pairs), y row at yo. Unit by unit: its four gates, its cell, its new hidden value into y
    (h is read by every unit's recurrent FC, so it takes y's row only at the end). wsum (the
    weight rows' sums of w + 128) and gates (4 * S words of scratch) are the viper twin's."""
    for o in range(n_s):
        i = 0
        f = 0
        g = 0
        for k in range(4):
            r = k + k
            a = _fc16(w_in, (k * n_s + o) * n_in, x, xo, n_in, bias[r * n_s + o], m_hi[r],
                      m_lo[r], left[r], right[r])
            r += 1
            b = _fc16(w_rec, (k * n_s + o) * n_s, h, ho, n_s, bias[r * n_s + o], m_hi[r],
                      m_lo[r], left[r], right[r])
            p = a + b
            if p > 32767:
                p = 32767
            elif p < -32768:
                p = -32768
            if k == 2:
                p = tanh16(p, tab, 3, 0)
            else:
                p = sigmoid16(p, tab)
            if k == 0:
                i = p
            elif k == 1:
                f = p
            elif k == 2:
                g = p
        j = ho + o
        cv = (c[j + j] & 255) | (c[j + j + 1] << 8)
        cv = _mul16(f, cv, m_hi[8], m_lo[8], right[8]) + _mul16(i, g, m_hi[9], m_lo[9],
                                                                 right[9])
        if cv > 32767:
            cv = 32767
        elif cv < -32768:
            cv = -32768
        if clip:
            if cv > clip:
                cv = clip
            elif cv < -clip:
                cv = -clip
        c[j + j] = ((cv & 255) ^ 128) - 128  # low byte, as an int8
        c[j + j + 1] = cv >> 8
        v = h_zp + _mbqm(tanh16(cv, tab, t_mul, t_shift) * p, m_hi[10], m_lo[10], 0,
                         right[10])  # p: the output gate
        if v > 127:
            v = 127
        elif v < -128:
            v = -128
        y[yo + o] = v
    for o in range(n_s):
        h[ho + o] = y[yo + o]


class Lstm:
    def __init__(self, model, op):
        x = tensor(model, op, 0, "input")
        w_in = tensor(model, op, 1, "input weights", const=True)
        w_rec = tensor(model, op, 2, "recurrent weights", const=True)
        b = tensor(model, op, 3, "bias", INT32, const=True)
        q = tensor(model, op, 4, "requantization", INT32, const=True)
        t = tensor(model, op, 5, "sigmoid table", INT32, const=True)
        h = tensor(model, op, 6, "hidden state")
        c = tensor(model, op, 7, "cell state", INT16)
        y = tensor(model, op, ~0, "output")
        if len(op.params) != 4:
            raise ModelError("%d params, expected 4" % len(op.params))
        time_major, clip, t_mul, t_shift = op.params
        xs = x.shape
        if len(xs) != 3 or len(w_in.shape) != 3 or w_in.shape[0] != 4:
            raise ModelError("input %r, input weights %r: expected (B, T, I), (4, S, I)"
                             % (xs, w_in.shape))
        n_in = xs[2]
        n_s = w_in.shape[1]
        batch, steps = (xs[1], xs[0]) if time_major else (xs[0], xs[1])
        if (w_in.shape[2] != n_in or w_rec.shape != (4, n_s, n_s) or b.size != 8 * n_s
                or q.size != 33 or t.size != 256 or h.size != batch * n_s
                or c.size != batch * n_s or y.size != batch * steps * n_s):
            raise ModelError("LSTM tensors do not fit: x %r, w %r %r, bias %d, requant %d, "
                             "table %d, states %d %d, y %r" % (
                                 xs, w_in.shape, w_rec.shape, b.size, q.size, t.size, h.size,
                                 c.size, y.shape))
        if not (0 <= clip <= 32767 and 0 < t_mul <= 3 << 13 and 0 <= t_shift <= 30):
            raise ModelError("cell clip %d, tanh multiplier %d shift %d out of range"
                             % (clip, t_mul, t_shift))
        rq = requant_table(model, q, 11)
        for r in (8, 9, 10):
            if rq[2][r]:
                raise ModelError("requantization row %d shifts left: expected a multiplier "
                                 "below 1" % r)
        wsum = zeros(8 * n_s)  # the viper twin's: rows' sums of w + 128, w_in's then w_rec's
        self.args = (x.data, w_in.data, w_rec.data, int32_values(model, b), wsum,
                     zeros(4 * n_s), rq[0], rq[1], rq[2], rq[3], int32_values(model, t), h.data,
                     c.data, y.data, n_in, n_s, clip, t_mul, t_shift, h.zero_point)
        self.shape = (time_major, batch, steps)
        if n_in > 32768 or n_s > 32768:  # beyond the viper twin's int32 bound
            self.step = lstm_step
            self.impl = "reference"
        else:
            self.step = select("lstm_viper", "lstm_step", lstm_step)
            self.impl = chosen["lstm_step"]
        if self.impl == "viper":
            from .lstm_viper import weight_sums

            mv = memoryview(wsum)
            weight_sums(w_in.data, 4 * n_s, n_in, mv[: 4 * n_s])  # type: ignore[arg-type]
            weight_sums(w_rec.data, 4 * n_s, n_s, mv[4 * n_s :])  # type: ignore[arg-type]

    def eval(self):
        (x, w_in, w_rec, bias, wsum, gates, m_hi, m_lo, left, right, tab, h, c, y, n_in, n_s,
         clip, t_mul, t_shift, h_zp) = self.args
        time_major, batch, steps = self.shape
        step = self.step
        for s in range(steps):
            for bt in range(batch):
                row = s * batch + bt if time_major else bt * steps + s
                step(x, w_in, w_rec, row * n_in, bias, wsum, gates, m_hi, m_lo, left, right,
                     tab, h, bt * n_s, c, y, row * n_s, n_in, n_s, clip, t_mul, t_shift, h_zp)


def prepare(model, op):
    return Lstm(model, op)
