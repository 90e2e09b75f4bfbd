# AVERAGE_POOL_2D and MAX_POOL_2D, int16 (16x8 models; TFLM reference integer_ops/pooling.h,
# the int16 overloads): as kernels/pool.py for int8, over int16 elements stored as byte pairs
# (element i = (d[2i] & 255) | d[2i + 1] << 8, tinyrt/tensor.py).
#   inputs:  x int16 (N, H, W, C), zero point 0
#   outputs: y int16 (N, OH, OW, C), x's scale (TFLM's Prepare requires equal quantization)
#   params:  filter_h, filter_w, stride_h, stride_w, pad_h, pad_w, act_min, act_max
# Average: acc = sum of the in-bounds taps, (acc +- count/2) / count truncated toward zero;
# max: the largest tap (from -32768); both clamped to [act_min, act_max] within int16.
# Bounds: |acc| <= 32768 * taps < 2^30 (prepare checks taps <= 2^15 - 1).
from .. import opcodes
from ..errors import ModelError
from ..fileformat import INT16
from .common import check_activation, tensor
from .pool import check_window

_MAX_TAPS = (1 << 15) - 1


def pool16(x, y, batches, h, w, c, oh, ow, fh, fw, sh, sw, ph, pw, act_min, act_max, average):
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
                    acc = 0
                    m = -32768
                    for fy in range(fy0, fy1):
                        p = 2 * (((b * h + y0 + fy) * w + x0 + fx0) * c + ch)
                        for fx in range(fx0, fx1):
                            v = (x[p] & 255) | (x[p + 1] << 8)
                            acc += v
                            if v > m:
                                m = v
                            p += 2 * c
                    if not average:
                        v = m
                    elif acc > 0:
                        v = (acc + half) // count
                    else:
                        v = -((half - acc) // count)  # C division truncates toward zero
                    if v < act_min:
                        v = act_min
                    elif v > act_max:
                        v = act_max
                    lo = v & 255
                    y[o] = lo - 256 if lo > 127 else lo
                    y[o + 1] = v >> 8
                    o += 2


class Pool16:
    def __init__(self, model, op):
        x = tensor(model, op, 0, "input", INT16)
        y = tensor(model, op, ~0, "output", INT16)
        n, h, w, c, oh, ow = check_window(op, x, y, _MAX_TAPS, "int16 pool")
        fh, fw, sh, sw, ph, pw, act_min, act_max = op.params
        if x.zero_point or y.zero_point:
            raise ModelError("int16 pool zero points %d, %d: expected 0"
                             % (x.zero_point, y.zero_point))
        check_activation("pool", act_min, act_max, -32768, 32767)
        if op.opcode not in (opcodes.AVERAGE_POOL_2D, opcodes.MAX_POOL_2D):
            raise ModelError("pool kernel given opcode %d" % op.opcode)
        self.impl = "reference"
        self.args = (x.data, y.data, n, h, w, c, oh, ow, fh, fw, sh, sw, ph, pw, act_min,
                     act_max, op.opcode == opcodes.AVERAGE_POOL_2D)

    def eval(self):
        x, y, n, h, w, c, oh, ow, fh, fw, sh, sw, ph, pw, act_min, act_max, avg = self.args
        pool16(x, y, n, h, w, c, oh, ow, fh, fw, sh, sw, ph, pw, act_min, act_max, avg)


def prepare(model, op):
    return Pool16(model, op)
