# BCONV_2D: binary convolution, Larq Compute Engine's LceBconv2d semantics.
#   inputs:  x packed (N, H, W, Cin), w packed (Cout, KH, KW, Cin) (OHWI: each tap's Cin bits in
#            words(Cin) int32 words), t0, t1: the output transform (below)
#   outputs: y packed (N, OH, OW, Cout) | int8 (N, OH, OW, Cout)
#   params:  stride_h, stride_w, dilation_h, dilation_w, pad_top, pad_left, out_h, out_w,
#            zero_pad, out_mode
#
# For each output pixel and channel c, over the KH*KW taps (K = KH*KW*Cin bits):
#   accum = popcount(x XOR w) over the taps, a padded tap reading 0-bits (+1 values);
#   zero_pad = 0 (VALID, or SAME with LCE's pad_values=1):  a = accum            in [0, K]
#   zero_pad = 1 (SAME with pad_values=0, padded taps count 0 in the dot product):
#       a = K - dot = 2 * (accum over the taps inside) + Cin * (padded taps)     in [0, 2K]
# and the output transform maps a to the output (the converter folds LCE's float multiplier,
# bias, clamp and int8 quantization into integer tables, converter/layers/binary.py):
#   out_mode 0 (bit-packed):  bit c = a > t0[c]               t0 int32 (Cout)
#   out_mode 1 (int8, steps): y = base + dir * #{i in steps of c : step_i <= a} (binary search)
#                             t0 int32 (Cout, 4) rows (first step, step count, base, dir);
#                             t1 int32 (S) steps, ascending within a channel
#   out_mode 2 (int8, table): y = t0[c, a]                    t0 int8 (Cout, A + 1)
# Bounds: a <= 2K < 2^30; every index is below its tensor's size (checked at prepare).
# The bit convention (and popcount) is tinyrt.bitpack's; no 32-bit word value is formed.
from array import array

from ..bitpack import BIT, POPCOUNT, popcount, row_bytes
from ..buffers import int8_buffer
from ..errors import ModelError
from ..fast import chosen, select
from ..fileformat import INT8, INT32, PACKED
from .common import int32_values, tensor
from ..buffers import int32_zeros

# fast twins, imported by load() before it allocates the big buffers (tinyrt.fast.preload)
TWINS = ("bconv_viper",)

N_PARAMS = 10
OUT_BITS = 0
OUT_STEPS = 1
OUT_TABLE = 2


class OutputTransform:
    """The prepared output transform of a binary conv / dense op (read from t0, t1)."""

    def __init__(self, model, op, mode, cout, a_max, y, first):
        self.mode = mode
        self.thr = self.start = self.count = self.base = self.dir = self.steps = None
        self.steps_wide = 0
        self.table = None
        self.table_row = a_max + 1
        if mode not in (OUT_BITS, OUT_STEPS, OUT_TABLE):
            raise ModelError("out_mode %d, expected 0 (bit-packed), 1 (steps) or 2 (table)"
                             % mode)
        want_dtype = PACKED if mode == OUT_BITS else INT8
        if model.file.tensors[y.index].dtype != want_dtype:
            raise ModelError("output tensor %d is %s, out_mode %d writes %s"
                             % (y.index, y.dtype, mode, "packed" if mode == OUT_BITS
                                else "int8"))
        if mode == OUT_BITS:
            t = tensor(model, op, first, "thresholds", INT32, const=True)
            v = int32_values(model, t)
            if len(v) != cout:
                raise ModelError("thresholds tensor %d has %d values for %d channels"
                                 % (t.index, len(v), cout))
            thr = int32_zeros(cout)
            for c in range(cout):  # clamp to [-1, a_max]: same bits, and small ints in eval
                thr[c] = -1 if v[c] < -1 else (a_max if v[c] > a_max else v[c])
            self.thr = thr
        elif mode == OUT_STEPS:
            t = tensor(model, op, first, "levels", INT32, const=True)
            rows = int32_values(model, t)
            s = tensor(model, op, first + 1, "steps", INT32, const=True)
            steps = int32_values(model, s)
            if len(rows) != 4 * cout:
                raise ModelError("levels tensor %d has %d values, expected %d (Cout, 4)"
                                 % (t.index, len(rows), 4 * cout))
            big = 0
            for v in steps:
                if v < 0 or v > a_max:
                    raise ModelError("steps tensor %d holds %d outside [0, %d]"
                                     % (s.index, v, a_max))
                big = big or v > 32767
            self.steps = array("i" if big else "h", steps)
            self.steps_wide = 1 if big else 0  # (the viper twin reads int16 or int32 steps)
            self.start = int32_zeros(cout)
            self.count = int32_zeros(cout)
            self.base = int32_zeros(cout)
            self.dir = int32_zeros(cout)
            for c in range(cout):
                st, n, base, d = rows[4 * c], rows[4 * c + 1], rows[4 * c + 2], rows[4 * c + 3]
                if st < 0 or n < 0 or st + n > len(steps) or d not in (-1, 1) or n > 255:
                    raise ModelError("levels row %d (%d, %d, %d, %d) invalid for %d steps"
                                     % (c, st, n, base, d, len(steps)))
                lo = base + d * n
                if min(base, lo) < -128 or max(base, lo) > 127:
                    raise ModelError("levels row %d leaves int8: base %d, %d steps of %d"
                                     % (c, base, n, d))
                for i in range(st + 1, st + n):
                    if steps[i] < steps[i - 1]:
                        raise ModelError("steps of channel %d are not ascending" % c)
                self.start[c] = st
                self.count[c] = n
                self.base[c] = base
                self.dir[c] = d
        else:
            t = tensor(model, op, first, "table", INT8, const=True)
            if t.size != cout * (a_max + 1):
                raise ModelError("table tensor %d has %d values, expected %d x %d"
                                 % (t.index, t.size, cout, a_max + 1))
            self.table = t.data


def bconv2d(x, w, y, scratch, pads, wpop, batches, in_h, in_w, wb, out_h, out_w, cout, kh, kw,
            sh, sw, dh, dw, pt, pl, zero_pad, cin, ot):
    """Binary conv of packed x (wb bytes per pixel) with packed OHWI w into y.

    scratch: int8 buffer of one im2col row (KH*KW*wb bytes), unused for a 1x1 filter (the row
    is then the input pixel itself); pads: room for KH*KW tap indices; wpop: per (c, tap) the
    filter's 1-bits (zero_pad only); ot: OutputTransform."""
    pc = POPCOUNT
    bit = BIT
    taps = kh * kw
    row = taps * wb
    direct = taps == 1
    bits_mode = ot.mode == 0  # OUT_BITS
    steps_mode = ot.mode == 1  # OUT_STEPS
    thr = ot.thr
    start = ot.start
    count = ot.count
    base = ot.base
    dirs = ot.dir
    steps = ot.steps
    table = ot.table
    t_row = ot.table_row
    ybytes = row_bytes(cout)
    yo = 0
    for b in range(batches):
        for oy in range(out_h):
            iy0 = oy * sh - pt
            for ox in range(out_w):
                ix0 = ox * sw - pl
                n_pad = 0
                if direct:
                    src = x
                    so = ((b * in_h + iy0) * in_w + ix0) * wb
                else:
                    src = scratch
                    so = 0
                    o = 0
                    t = 0
                    for fy in range(kh):
                        iy = iy0 + fy * dh
                        for fx in range(kw):
                            ix = ix0 + fx * dw
                            if 0 <= iy < in_h and 0 <= ix < in_w:
                                d = ((b * in_h + iy) * in_w + ix) * wb - o
                                for i in range(o, o + wb):
                                    scratch[i] = x[i + d]
                            else:
                                for i in range(o, o + wb):
                                    scratch[i] = 0
                                pads[n_pad] = t
                                n_pad += 1
                            o += wb
                            t += 1
                v = 0
                yend = yo + ybytes
                wo = 0
                for c in range(cout):
                    acc = 0
                    d = wo - so
                    for i in range(so, so + row):
                        acc += pc[src[i] ^ w[i + d]]
                    wo += row
                    if zero_pad:
                        for j in range(n_pad):
                            acc -= wpop[c * taps + pads[j]]
                        acc = 2 * acc + n_pad * cin
                    if bits_mode:
                        if acc > thr[c]:
                            v += bit[c & 7]
                        if (c & 7) == 7:
                            y[yo] = v
                            yo += 1
                            v = 0
                    elif steps_mode:
                        lo = start[c]
                        hi = lo + count[c]
                        while lo < hi:
                            mid = (lo + hi) >> 1
                            if steps[mid] <= acc:
                                lo = mid + 1
                            else:
                                hi = mid
                        y[yo] = base[c] + dirs[c] * (lo - start[c])
                        yo += 1
                    else:  # acc <= a_max unless a hostile file sets padding bits: clamp
                        y[yo] = table[c * t_row + (acc if acc < t_row else t_row - 1)]
                        yo += 1
                if bits_mode:
                    if cout & 7:
                        y[yo] = v
                        yo += 1
                    while yo < yend:  # unused bits of the last word are 0
                        y[yo] = 0
                        yo += 1


def check_geometry(p, x, kh, kw, cout, y):
    """Validate BCONV_2D params against x (N, H, W, Cin) and y (N, OH, OW, Cout)."""
    if len(p) != N_PARAMS:
        raise ModelError("BCONV_2D has %d params, expected %d" % (len(p), N_PARAMS))
    if len(x.shape) != 4 or len(y.shape) != 4:
        raise ModelError("BCONV_2D input %r and output %r must be NHWC" % (x.shape, y.shape))
    sh, sw, dh, dw, pt, pl, oh, ow, zero_pad = p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8]
    if sh < 1 or sw < 1 or dh < 1 or dw < 1:
        raise ModelError("BCONV_2D strides (%d, %d) and dilations (%d, %d) must be >= 1"
                         % (sh, sw, dh, dw))
    if pt < 0 or pl < 0 or pt >= (kh - 1) * dh + 1 or pl >= (kw - 1) * dw + 1:
        raise ModelError("BCONV_2D padding (%d, %d) outside [0, filter extent)" % (pt, pl))
    if zero_pad not in (0, 1):
        raise ModelError("BCONV_2D zero_pad %d, expected 0 or 1" % zero_pad)
    if kh * kw == 1 and (pt or pl or (oh - 1) * sh >= x.shape[1] or (ow - 1) * sw >= x.shape[2]):
        raise ModelError("BCONV_2D 1x1 filter reads outside the input")
    want = (x.shape[0], oh, ow, cout)
    if tuple(y.shape) != want:
        raise ModelError("BCONV_2D output shape %r, expected %r" % (y.shape, want))


class BConv2D:
    def __init__(self, model, op):
        x = tensor(model, op, 0, "input", PACKED)
        w = tensor(model, op, 1, "filters", PACKED, const=True)
        y_rec = model.file.tensors[op.outputs[0]] if op.outputs else None
        y = tensor(model, op, ~0, "output", y_rec.dtype if y_rec else PACKED)
        if len(w.shape) != 4 or len(x.shape) != 4 or w.shape[3] != x.shape[3]:
            raise ModelError("BCONV_2D filters %r do not fit input %r (OHWI, NHWC)"
                             % (w.shape, x.shape))
        cout, kh, kw, cin = w.shape
        p = op.params
        check_geometry(p, x, kh, kw, cout, y)
        zero_pad = p[8]
        taps = kh * kw
        a_max = taps * cin * (2 if zero_pad else 1)
        wb = row_bytes(cin)
        self.ot = OutputTransform(model, op, p[9], cout, a_max, y, 2)
        self.scratch = int8_buffer(taps * wb) if taps > 1 else None
        self.pads = int32_zeros(taps)
        self.wpop = None
        if zero_pad:
            self.wpop = int32_zeros(cout * taps)
            for k in range(cout * taps):
                self.wpop[k] = popcount(w.data, k * wb, wb)
        self.args = (x.data, w.data, y.data, self.scratch, self.pads, self.wpop, x.shape[0],
                     x.shape[1], x.shape[2], wb, p[6], p[7], cout, kh, kw, p[0], p[1], p[2],
                     p[3], p[4], p[5], zero_pad, cin, self.ot)
        self.fn = select("bconv_viper", "bconv2d", bconv2d)
        self.impl = chosen["bconv2d"]

    def eval(self):
        (x, w, y, scratch, pads, wpop, batches, in_h, in_w, wb, out_h, out_w, cout, kh, kw,
         sh, sw, dh, dw, pt, pl, zero_pad, cin, ot) = self.args
        self.fn(x, w, y, scratch, pads, wpop, batches, in_h, in_w, wb, out_h, out_w, cout, kh,
                kw, sh, sw, dh, dw, pt, pl, zero_pad, cin, ot)


def prepare(model, op):
    return BConv2D(model, op)
