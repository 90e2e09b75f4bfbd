# AVERAGE_POOL_2D and MAX_POOL_2D, int8 (TFLM reference integer_ops/pooling.h semantics).
#   inputs:  x int8 (N, H, W, C)
#   outputs: y int8 (N, OH, OW, C), same scale and zero point as x (TFLM's Prepare requires it)
#   params:  filter_h, filter_w, stride_h, stride_w, pad_h, pad_w, act_min, act_max
#            (pad_* = leading padding, as TFLM's ComputePaddingHeightWidth gives it)
# Each window is clipped to the input: only the taps inside count (no zero-point taps).
# Average: acc = sum of the raw int8 taps, rounded half away from zero by the tap count:
#   acc > 0 ? (acc + count/2) / count : (acc - count/2) / count   (C division)
# Max: max over the taps, starting from -128. Both then clamp to [act_min, act_max].
# Bounds: |acc| <= 128 * filter_h * filter_w < 2^30 (prepare checks filter_h * filter_w <= 2^22).
from .. import opcodes
from ..errors import ModelError
from ..fast import chosen, select
from .common import check_activation, tensor

# fast twins, imported by load() before it allocates the big buffers (tinyrt.fast.preload)
TWINS = ("pool_viper", "pool_asm")

_MAX_TAPS = 1 << 22


def average_pool(x, y, batches, h, w, c, oh, ow, fh, fw, sh, sw, ph, pw, act_min, act_max):
    o = 0
    for b in range(batches):
        for oy in range(oh):
            y0 = oy * sh - ph  # input row of the window's first tap
            fy0 = max(0, -y0)
            fy1 = min(fh, h - y0)
            for ox in range(ow):
                x0 = ox * sw - pw
                fx0 = max(0, -x0)
                fx1 = min(fw, w - x0)
                count = (fy1 - fy0) * (fx1 - fx0)  # >= 1: prepare checked every window
                half = count >> 1
                for ch in range(c):
                    acc = 0  # |acc| <= 128 * count < 2^29
                    for fy in range(fy0, fy1):
                        p = ((b * h + y0 + fy) * w + x0 + fx0) * c + ch
                        for fx in range(fx0, fx1):
                            acc += x[p]
                            p += c
                    if acc > 0:
                        v = (acc + half) // count
                    else:
                        v = -((half - acc) // count)  # C division truncates toward zero
                    if v < act_min:
                        v = act_min
                    elif v > act_max:
                        v = act_max
                    y[o] = v
                    o += 1


def max_pool(x, y, batches, h, w, c, oh, ow, fh, fw, sh, sw, ph, pw, act_min, act_max):
    o = 0
    for b in range(batches):
        for oy in range(oh):
            y0 = oy * sh - ph
            fy0 = max(0, -y0)
            fy1 = min(fh, h - y0)
            for ox in range(ow):
                x0 = ox * sw - pw
                fx0 = max(0, -x0)
                fx1 = min(fw, w - x0)
                for ch in range(c):
                    m = -128
                    for fy in range(fy0, fy1):
                        p = ((b * h + y0 + fy) * w + x0 + fx0) * c + ch
                        for fx in range(fx0, fx1):
                            v = x[p]
                            if v > m:
                                m = v
                            p += c
                    if m < act_min:
                        m = act_min
                    elif m > act_max:
                        m = act_max
                    y[o] = m
                    o += 1


def _check_axis(what, size, out, f, s, pad):
    if f < 1 or s < 1 or pad < 0:
        raise ModelError("pool %s: filter %d, stride %d, padding %d; expected filter >= 1, "
                         "stride >= 1, padding >= 0" % (what, f, s, pad))
    # The first window must reach the input (pad < f) and the last must start inside it;
    # every window then holds at least one tap.
    if pad >= f or (out - 1) * s - pad >= size:
        raise ModelError("pool %s: %d outputs with filter %d, stride %d, padding %d leave a "
                         "window outside the input of %d" % (what, out, f, s, pad, size))


def check_window(op, x, y, max_taps, what):
    """A pooling op's params and shapes, checked: (n, h, w, c, oh, ow) of x and y."""
    if len(op.params) != 8:
        raise ModelError("pool has %d params, expected 8 (filter_h, filter_w, stride_h, "
                         "stride_w, pad_h, pad_w, act_min, act_max)" % len(op.params))
    fh, fw, sh, sw, ph, pw, _, _ = op.params
    if len(x.shape) != 4 or len(y.shape) != 4:
        raise ModelError("pool shapes x %r, y %r, expected (N, H, W, C)" % (x.shape, y.shape))
    n, h, w, c = x.shape
    if y.shape[0] != n or y.shape[3] != c:
        raise ModelError("pool shapes x %r, y %r: batch and channels differ"
                         % (x.shape, y.shape))
    oh = y.shape[1]
    ow = y.shape[2]
    _check_axis("height", h, oh, fh, sh, ph)
    _check_axis("width", w, ow, fw, sw, pw)
    if fh * fw > max_taps:
        raise ModelError("%s filter %dx%d has more than %d taps" % (what, fh, fw, max_taps))
    return n, h, w, c, oh, ow


class Pool:
    def __init__(self, model, op):
        x = tensor(model, op, 0, "input")
        y = tensor(model, op, ~0, "output")
        n, h, w, c, oh, ow = check_window(op, x, y, _MAX_TAPS, "pool")
        fh, fw, sh, sw, ph, pw, act_min, act_max = op.params
        if x.zero_point != y.zero_point or abs(x.scale - y.scale) > 1e-6:
            raise ModelError("pool quantization x (%g, %d), y (%g, %d): expected equal"
                             % (x.scale, x.zero_point, y.scale, y.zero_point))
        check_activation("pool", act_min, act_max)
        self.args = (x.data, y.data, n, h, w, c, oh, ow, fh, fw, sh, sw, ph, pw, act_min,
                     act_max)
        if op.opcode == opcodes.AVERAGE_POOL_2D:  # asm twin: kernels/pool_asm.py
            self.fn = select("pool_viper", "average_pool", average_pool, self.args)
            self.impl = chosen["average_pool"]
        elif op.opcode == opcodes.MAX_POOL_2D:
            ref = max_pool
            self.fn = select("pool_viper", "max_pool", ref)
            self.impl = "viper" if self.fn is not ref else "reference"
        else:
            raise ModelError("pool kernel given opcode %d" % op.opcode)

    def eval(self):
        x, y, n, h, w, c, oh, ow, fh, fw, sh, sw, ph, pw, act_min, act_max = self.args
        self.fn(x, y, n, h, w, c, oh, ow, fh, fw, sh, sw, ph, pw, act_min, act_max)


def prepare(model, op):
    if model.tensors[op.inputs[0]].dtype == "int16":  # 16x8 mode: its own module
        from .pool16 import prepare as prepare_16

        return prepare_16(model, op)
    return Pool(model, op)
