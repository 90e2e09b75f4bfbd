# CONV_2D, int8 (TFLM reference integer_ops/conv.h ConvPerChannel semantics).
#   inputs:  x int8 (N, H, W, C), w int8 (OC, KH, KW, C) (per-channel scales on axis 0),
#            bias int32 (OC) or absent, requant int32 (OC | 1, 3)
#   outputs: y int8 (N, OH, OW, OC)
#   params:  stride_h, stride_w, dilation_h, dilation_w, pad_top, pad_left, out_h, out_w,
#            act_min, act_max
#            (pad_top/pad_left: leading padding of TFLite's ComputePaddingHeightWidth, computed
#            by the converter; out_h/out_w repeat the output shape and are checked against it)
# acc[n, oy, ox, oc] = bias[oc] + sum over taps (fy, fx) that fall inside the input, all c, of
#     (x[n, oy*sh - pad_top + fy*dh, ox*sw - pad_left + fx*dw, c] - x_zp) * w[oc, fy, fx, c]
# (taps in the padding contribute nothing), then MultiplyByQuantizedMultiplier per channel,
# + y_zp, clamp to [act_min, act_max].
# Bounds: |x - x_zp| <= 255, |w| <= 128, so |acc| <= |bias| + 32640 * KH*KW*C; the converter
# checks that this stays below 2^30 >> left_shift. Every index is below a tensor's size.
#
# The valid taps of each output row and column are found at prepare (axis_windows), so eval
# never tests a bound: per output row a table gives (x offset of its first valid input row,
# w offset of its first valid filter row, number of valid filter rows), per output column
# (x offset, w offset, number of runs, run length). With dilation_w == 1 the valid taps of a
# filter row are one contiguous run of n_fx * C values in both x and w; otherwise n_fx runs
# of C values, dilation_w * C apart in x and C apart in w.

from ..errors import ModelError
from ..fast import chosen, may_repack, select
from ..fileformat import ARENA, INT32, tensor_storage
from ..requant import multiply_by_quantized_multiplier
from .common import check_activation, drop_reference_tables, int32_values, requant_table, \
    shared, tensor
from ..buffers import int32_zeros

# fast twins, imported by load() before it allocates the big buffers (tinyrt.fast.preload)
TWINS = ("conv_viper", "conv_asm")

N_PARAMS = 10


def axis_windows(n_out, n_in, k, stride, dilation, pad):
    """Valid taps along one spatial axis: array('i') of n_out triples (first valid input
    index, first valid tap, number of valid taps); output o reads input
    o*stride - pad + tap*dilation, and a tap is valid when that index is in [0, n_in)."""
    t = int32_zeros(3 * n_out)
    for o in range(n_out):
        i0 = o * stride - pad
        lo = 0 if i0 >= 0 else (dilation - 1 - i0) // dilation
        hi = (n_in - 1 - i0) // dilation + 1
        hi = min(hi, k)
        if hi > lo:
            t[3 * o] = i0 + lo * dilation
            t[3 * o + 1] = lo
            t[3 * o + 2] = hi - lo
    return t


def spatial_params(what, op, n_params, x, kh, kw, out_c, y, lo=-128, hi=127):
    """Validate the op's geometry params against x (N, H, W, C), the filter's (KH, KW) and
    y (N, OH, OW, OC), the clamp against [lo, hi] (the output type); returns the params."""
    p = op.params
    if len(p) != n_params:
        raise ModelError("%s has %d params, expected %d" % (what, len(p), n_params))
    if len(x.shape) != 4 or len(y.shape) != 4:
        raise ModelError("%s input %r and output %r must be NHWC" % (what, x.shape, y.shape))
    sh, sw, dh, dw, pt, pl, oh, ow = p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7]
    if sh < 1 or sw < 1 or dh < 1 or dw < 1:
        raise ModelError("%s strides (%d, %d) and dilations (%d, %d) must be >= 1"
                         % (what, sh, sw, dh, dw))
    if pt < 0 or pl < 0 or pt >= (kh - 1) * dh + 1 or pl >= (kw - 1) * dw + 1:
        raise ModelError("%s padding (%d, %d) outside [0, filter extent)" % (what, pt, pl))
    want = (x.shape[0], oh, ow, out_c)
    if tuple(y.shape) != want:
        raise ModelError("%s output shape %r, expected %r" % (what, y.shape, want))
    check_activation(what, p[n_params - 2], p[n_params - 1], lo, hi)
    return p


def conv2d(x, w, bias, y, batches, x_batch, rows, cols, out_c, w_oc, x_fy, w_fy, x_fx, w_fx,
           x_zp, y_zp, m_hi, m_lo, left, right, act_min, act_max):
    """y = conv(x, w) + bias, requantized. rows: per output row (x offset, w offset, n_fy);
    cols: per output column (x offset, w offset, n_runs, run); x_batch: H*W*C; w_oc: KH*KW*C;
    x_fy, w_fy: offsets of the next filter row (dilation_h*W*C, KW*C); x_fx, w_fx: offsets of
    the next run (dilation_w*C, C)."""
    mbqm = multiply_by_quantized_multiplier
    n_rows = len(rows) // 3
    n_cols = len(cols) // 4
    yo = 0
    for b in range(batches):
        xb = b * x_batch
        for r in range(0, 3 * n_rows, 3):
            xr0 = xb + rows[r]
            wr0 = rows[r + 1]
            n_fy = rows[r + 2]
            for c in range(0, 4 * n_cols, 4):
                xc = xr0 + cols[c]
                wo = wr0 + cols[c + 1]
                n_runs = cols[c + 2]
                run = cols[c + 3]
                for o in range(out_c):
                    acc = bias[o]
                    xr = xc
                    wr = wo
                    for fy in range(n_fy):
                        xt = xr
                        wt = wr
                        for t in range(n_runs):
                            d = wt - xt
                            for i in range(xt, xt + run):
                                acc += (x[i] - x_zp) * w[i + d]
                            xt += x_fx
                            wt += w_fx
                        xr += x_fy
                        wr += w_fy
                    v = mbqm(acc, m_hi[o], m_lo[o], left[o], right[o]) + y_zp
                    if v < act_min:
                        v = act_min
                    elif v > act_max:
                        v = act_max
                    y[yo] = v
                    yo += 1
                    wo += w_oc


def _cols(ow, wd, kw, sw, dw, pl, c):
    """Per output column: x offset, w offset, number of runs, run length (see above)."""
    rx = axis_windows(ow, wd, kw, sw, dw, pl)
    cols = int32_zeros(4 * ow)
    for k in range(ow):
        cols[4 * k] = rx[3 * k] * c
        cols[4 * k + 1] = rx[3 * k + 1] * c
        n_fx = rx[3 * k + 2]
        if dw == 1:  # one contiguous run
            cols[4 * k + 2] = 1 if n_fx else 0
            cols[4 * k + 3] = n_fx * c
        else:
            cols[4 * k + 2] = n_fx
            cols[4 * k + 3] = c
    return cols


def check_apart(model, x, y):
    """The kernels (reference and twins) read input rows after writing output rows: a CONV_2D
    whose planned output bytes overlap its input's would compute garbage. The converter never
    plans that; a file that does raises ModelError at load."""
    mf = model.file
    if tensor_storage(mf, x.index) != ARENA:
        return
    rx = mf.tensors[x.index]
    ry = mf.tensors[y.index]
    if rx.offset < ry.offset + ry.nbytes and ry.offset < rx.offset + rx.nbytes:
        raise ModelError("CONV_2D output tensor %d (arena bytes %d..%d) overlaps its input "
                         "tensor %d (arena bytes %d..%d), expected them apart"
                         % (y.index, ry.offset, ry.offset + ry.nbytes, x.index, rx.offset,
                            rx.offset + rx.nbytes))


class Conv2D:
    def __init__(self, model, op):
        x = tensor(model, op, 0, "input")
        w = tensor(model, op, 1, "filter", const=True)
        b = tensor(model, op, 2, "bias", INT32, optional=True, const=True)
        q = tensor(model, op, 3, "requantization", INT32, const=True)
        y = tensor(model, op, ~0, "output")
        if len(w.shape) != 4:
            raise ModelError("CONV_2D filter shape %r, expected (OC, KH, KW, C)" % (w.shape,))
        out_c, kh, kw, c = w.shape
        if len(x.shape) != 4 or x.shape[3] != c:
            raise ModelError("CONV_2D filter shape %r does not match input shape %r "
                             "(expected %d input channels)" % (w.shape, x.shape, c))
        sh, sw, dh, dw, pt, pl, oh, ow, a_min, a_max = spatial_params(
            "CONV_2D", op, N_PARAMS, x, kh, kw, out_c, y)
        if b and b.size != out_c:
            raise ModelError("CONV_2D bias has %d values, expected %d" % (b.size, out_c))
        check_apart(model, x, y)
        n, h, wd = x.shape[0], x.shape[1], x.shape[2]
        ry = axis_windows(oh, h, kh, sh, dh, pt)
        rows = int32_zeros(3 * oh)
        for r in range(oh):
            rows[3 * r] = ry[3 * r] * wd * c
            rows[3 * r + 1] = ry[3 * r + 1] * kw * c
            rows[3 * r + 2] = ry[3 * r + 2]
        cols = shared(model, ("cols", ow, wd, kw, sw, dw, pl, c), _cols, ow, wd, kw, sw, dw,
                      pl, c)
        bias = shared(model, ("b", b.index), int32_values, model, b) if b else \
            int32_zeros(out_c)
        self.args = (x.data, w.data, bias, y.data, n, h * wd * c, rows, cols, out_c,
                     kh * kw * c, dh * wd * c, kw * c, dw * c, c, x.zero_point, y.zero_point)
        self.q = shared(model, ("q", q.index, out_c), requant_table, model, q, out_c)
        self.act = a_min, a_max
        m_hi, m_lo, left, right = self.q
        self.fn = select("conv_viper", "conv2d", conv2d,
                         (x.data, w.data, bias, y.data, n, h, wd, c, out_c, kh, kw, sh, sw, dh,
                          dw, pt, pl, oh, ow, x.zero_point, y.zero_point, m_hi, m_lo, left,
                          right, a_min, a_max, may_repack(model)))
        self.impl = chosen["conv2d"]
        if self.impl == "asm":
            drop_reference_tables(self, model)
        self.wide = None
        if len(op.inputs) > 4:  # channels with int32 biases beyond small ints
            from .wide_channels import WideChannels

            self.wide = WideChannels(model, op, "CONV_2D", x, y, (n, h, wd, c, kh, kw, sh, sw,
                                     dh, dw, pt, pl, oh, ow, out_c), c, 1, a_min, a_max)

    def eval(self):
        x, w, b, y, n, x_batch, rows, cols, out_c, w_oc, x_fy, w_fy, x_fx, w_fx, x_zp, y_zp = (
            self.args)
        m_hi, m_lo, left, right = self.q
        self.fn(x, w, b, y, n, x_batch, rows, cols, out_c, w_oc, x_fy, w_fy, x_fx, w_fx,
                x_zp, y_zp, m_hi, m_lo, left, right, self.act[0], self.act[1])
        if self.wide is not None:
            self.wide.eval()


def prepare(model, op):
    if model.tensors[op.inputs[0]].dtype == "int16":  # 16x8 mode: its own module
        from .conv16 import prepare as prepare_16x8

        return prepare_16x8(model, op)
    return Conv2D(model, op)
