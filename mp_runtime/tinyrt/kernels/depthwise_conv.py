# DEPTHWISE_CONV_2D, int8 (TFLM reference integer_ops/depthwise_conv.h DepthwiseConvPerChannel
# semantics).
#   inputs:  x int8 (N, H, W, C), w int8 (1, KH, KW, OC) with OC = C * depth_multiplier
#            (per-channel scales on axis 3), bias int32 (OC) or absent, requant int32 (OC | 1, 3)
#   outputs: y int8 (N, OH, OW, OC)
#   params:  stride_h, stride_w, dilation_h, dilation_w, pad_top, pad_left, out_h, out_w,
#            depth_multiplier, act_min, act_max
#            (padding and output size as for CONV_2D, see kernels/conv.py)
# Output channel oc = c * depth_multiplier + m reads input channel c:
# acc[n, oy, ox, oc] = bias[oc] + sum over taps (fy, fx) that fall inside the input of
#     (x[n, oy*sh - pad_top + fy*dh, ox*sw - pad_left + fx*dw, c] - x_zp) * w[0, fy, fx, oc]
# then MultiplyByQuantizedMultiplier per channel, + y_zp, clamp to [act_min, act_max].
# Bounds: |x - x_zp| <= 255, |w| <= 128, so |acc| <= |bias| + 32640 * KH*KW; the converter
# checks that this stays below 2^30 >> left_shift. Every index is below a tensor's size.
#
# As in conv.py the valid taps of each output row and column are tabulated at prepare: per
# output row (x offset of the first valid input row, w offset of the first valid filter row,
# n_fy), per output column (x offset, w offset, n_fx); eval tests no bound.

from ..errors import ModelError
from ..fast import asm_active, chosen, select
from ..fileformat import INT8, INT32
from ..requant import multiply_by_quantized_multiplier
from .common import drop_reference_tables, int32_values, requant_table, shared, tensor
from .conv import axis_windows, spatial_params
from ..buffers import int32_zeros

# fast twins, imported by load() before it allocates the big buffers (tinyrt.fast.preload)
TWINS = ("depthwise_conv_viper", "depthwise_conv_asm")

N_PARAMS = 11


def depthwise_conv2d(x, w, bias, y, batches, x_batch, rows, cols, in_c, depth_mult,
                     x_fy, w_fy, x_fx, w_fx, x_zp, y_zp, m_hi, m_lo, left, right,
                     act_min, act_max):
    """y = depthwise_conv(x, w) + bias, requantized. rows: per output row (x offset, w offset,
    n_fy); cols: per output column (x offset, w offset, n_fx); x_batch: H*W*C; x_fy, w_fy:
    offsets of the next filter row (dilation_h*W*C, KW*OC); x_fx, w_fx: offsets of the next
    filter column (dilation_w*C, OC)."""
    mbqm = multiply_by_quantized_multiplier
    n_rows = len(rows) // 3
    n_cols = len(cols) // 3
    yo = 0
    for b in range(batches):
        xb = b * x_batch
        for r in range(0, 3 * n_rows, 3):
            xr0 = xb + rows[r]
            wr0 = rows[r + 1]
            n_fy = rows[r + 2]
            for c in range(0, 3 * n_cols, 3):
                xc = xr0 + cols[c]
                wc = wr0 + cols[c + 1]
                n_fx = cols[c + 2]
                o = 0
                for ic in range(in_c):
                    for m in range(depth_mult):
                        acc = bias[o]
                        xr = xc
                        wr = wc + o
                        for fy in range(n_fy):
                            xt = xr
                            wt = wr
                            for fx in range(n_fx):
                                acc += (x[xt] - x_zp) * w[wt]
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
                        o += 1
                    xc += 1


class DepthwiseConv2D:
    def __init__(self, model, op):
        x = tensor(model, op, 0, "input")
        w = tensor(model, op, 1, "filter", const=True)
        b = tensor(model, op, 2, "bias", INT32, optional=True, const=True)
        q = tensor(model, op, 3, "requantization", INT32, const=True)
        y = tensor(model, op, ~0, "output")
        if len(w.shape) != 4 or w.shape[0] != 1:
            raise ModelError("DEPTHWISE_CONV_2D filter shape %r, expected (1, KH, KW, OC)"
                             % (w.shape,))
        kh, kw, out_c = w.shape[1], w.shape[2], w.shape[3]
        if len(op.params) != N_PARAMS:
            raise ModelError("DEPTHWISE_CONV_2D has %d params, expected %d"
                             % (len(op.params), N_PARAMS))
        dm = op.params[8]
        if len(x.shape) != 4 or dm < 1 or x.shape[3] * dm != out_c:
            raise ModelError("DEPTHWISE_CONV_2D filter shape %r does not match input shape %r "
                             "with depth multiplier %d" % (w.shape, x.shape, dm))
        p = spatial_params("DEPTHWISE_CONV_2D", op, N_PARAMS, x, kh, kw, out_c, y)
        sh, sw, dh, dw, pt, pl, oh, ow = p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7]
        if b and b.size != out_c:
            raise ModelError("DEPTHWISE_CONV_2D bias has %d values, expected %d"
                             % (b.size, out_c))
        n, h, wd, c = x.shape
        rows = axis_windows(oh, h, kh, sh, dh, pt)
        for r in range(0, 3 * oh, 3):
            rows[r] *= wd * c
            rows[r + 1] *= kw * out_c
        cols = axis_windows(ow, wd, kw, sw, dw, pl)
        for k in range(0, 3 * ow, 3):
            cols[k] *= c
            cols[k + 1] *= out_c
        bias = shared(model, ("b", b.index), int32_values, model, b) if b else \
            int32_zeros(out_c)
        self.args = (x.data, w.data, bias, y.data, n, h * wd * c, rows, cols, c, dm,
                     dh * wd * c, kw * out_c, dw * c, out_c, x.zero_point, y.zero_point)
        self.q = shared(model, ("q", q.index, out_c), requant_table, model, q, out_c)
        self.act = p[9], p[10]
        m_hi, m_lo, left, right = self.q
        self.fn = select("depthwise_conv_viper", "depthwise_conv2d", depthwise_conv2d,
                         (x.data, w.data, bias, y.data, n, h, wd, c, dm, kh, kw, sh, sw, dh,
                          dw, pt, pl, oh, ow, x.zero_point, y.zero_point, m_hi, m_lo, left,
                          right, p[9], p[10], model.work_view(op)))
        self.impl = chosen["depthwise_conv2d"]
        if self.impl == "asm":
            drop_reference_tables(self, model)
        self.wide = None
        if len(op.inputs) > 4:  # channels with int32 biases beyond small ints
            from .wide_channels import WideChannels

            self.wide = WideChannels(model, op, "DEPTHWISE_CONV_2D", x, y, (n, h, wd, c, kh, kw,
                                     sh, sw, dh, dw, pt, pl, oh, ow, out_c), 1, dm, p[9], p[10])

    def eval(self):
        x, w, b, y, n, x_batch, rows, cols, c, dm, x_fy, w_fy, x_fx, w_fx, x_zp, y_zp = (
            self.args)
        m_hi, m_lo, left, right = self.q
        self.fn(x, w, b, y, n, x_batch, rows, cols, c, dm, x_fy, w_fy, x_fx, w_fx,
                x_zp, y_zp, m_hi, m_lo, left, right, self.act[0], self.act[1])
        if self.wide is not None:
            self.wide.eval()


def prepare(model, op):
    if model.tensors[op.inputs[0]].dtype == "int16":  # 16x8 mode: its own module
        from .depthwise_conv16 import prepare as prepare_16x8

        return prepare_16x8(model, op)
    return DepthwiseConv2D(model, op)


def _geometry(model, op):
    """(h, wd, c, kh, kw, sh, sw, dh, dw, pt, pl, oh, ow, n, dm) of an int8 layer an asm twin
    may run, else None (a malformed op asks for no memory: prepare() refuses it)."""
    if (not asm_active() or len(op.params) != N_PARAMS or len(op.inputs) < 2
            or max(op.inputs[0], op.inputs[1]) >= len(model.file.tensors)):
        return None
    xt = model.file.tensors[op.inputs[0]]
    x = xt.shape
    w = model.file.tensors[op.inputs[1]].shape
    if len(x) != 4 or len(w) != 4 or xt.dtype != INT8:
        return None
    p = op.params
    if min(p[0], p[1], p[2], p[3], p[6], p[7], p[8], w[1], w[2]) < 1:
        return None
    return (x[1], x[2], x[3], w[1], w[2], p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], x[0],
            p[8])


def work_bytes(model, op):
    """Bytes of working memory this layer's asm twin needs (its padded input image), 0 where
    no asm twin runs."""
    g = _geometry(model, op)
    if g is None:
        return 0
    h, wd, c, kh, kw, sh, sw, dh, dw, pt, pl, oh, ow, n, dm = g
    return padded_bytes(h, wd, c, kh, kw, sh, sw, dh, dw, oh, ow)


def work_leads(model, op):
    """(x_lead, y_lead, y_lag) of padded_leads() for this layer (tinyrt.buffers.plan_work);
    the input is not overwritten where the wide-bias fix-up reads it after the kernel."""
    h, wd, c, kh, kw, sh, sw, dh, dw, pt, pl, oh, ow, n, dm = _geometry(model, op)
    x_lead, y_lead, y_lag = padded_leads(n, h, wd, c, dm, kh, kw, sh, sw, dh, dw, pt, pl, oh,
                                         ow)
    return (x_lead if len(op.inputs) <= 4 else None), y_lead, y_lag


def padded_bytes(h, wd, c, kh, kw, sh, sw, dh, dw, oh, ow):
    """Bytes (a multiple of 4) of the padded input image the asm twin reads: the rows and
    columns the outputs' windows span, border included."""
    hp = (oh - 1) * sh + (kh - 1) * dh + 1
    wp = (ow - 1) * sw + (kw - 1) * dw + 1
    return (hp * wp * c + 3) & ~3


def padded_leads(n, h, wd, c, dm, kh, kw, sh, sw, dh, dw, pt, pl, oh, ow):
    """How the asm twin's padded image at P may overlap the layer's input at X and output at
    Y (one batch only): (x_lead, y_lead, y_lag), bytes. P >= X + x_lead: every input byte is
    copied to an address at or above its own, and the copy runs from the last byte down, so it
    reads each byte before anything overwrites it. P >= Y + y_lead: output rows are written
    top down (after the copy), row oy ending at or below padded row oy * sh, the first one
    rows oy.. still read. P <= Y - y_lag (and the image reaching into the output): rows are
    written bottom up, row oy starting at or above the end of the last padded row it reads,
    above all that rows ..oy still read."""
    if n != 1:
        return None, None, None
    hp = (oh - 1) * sh + (kh - 1) * dh + 1
    wp = (ow - 1) * sw + (kw - 1) * dw + 1
    nr = h if h < hp - pt else hp - pt  # input rows and columns copied (asm twin's prepare)
    nc = wd if wd < wp - pl else wp - pl
    x_lead = 0
    if nr > 0 and nc > 0:  # P - X >= src - dst of each copied row's first byte
        x_lead = -(pt * wp + pl) * c
        last = (nr - 1) * wd * c - ((pt + nr - 1) * wp + pl) * c
        if last > x_lead:
            x_lead = last
    row = ow * c * dm
    y_lead = row
    last = oh * row - (oh - 1) * sh * wp * c
    if last > y_lead:
        y_lead = last
    span = (kh - 1) * dh + 1  # padded rows an output row reads
    y_lag = span * wp * c
    last = ((oh - 1) * sh + span) * wp * c - (oh - 1) * row
    if last > y_lag:
        y_lag = last
    return x_lead, y_lead, y_lag
