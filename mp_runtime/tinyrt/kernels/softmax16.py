# SOFTMAX, int16 over the last axis (16x8 models; TFLM softmax_common.cc + reference
# softmax.h SoftmaxInt16): LUT-based exp and 1 / (1 + x).
#   inputs:  x int16 (..., depth) zero point 0; table int32 (3 + 2 * 513): M >> 15, M & 0x7FFF,
#            shift of QuantizeMultiplier(float(s_x * beta) / (10 / 65535)), then TFLM's exp LUT
#            (exp over [-10, 0]) and 1 / (1 + x) LUT (over [0, 1]), 513 int16 entries each
#            (gen_lut, computed by the converter)
#   outputs: y int16 (..., depth), scale 1/32768, zero point 0
#   params:  none
# Per row: m = max(x); e_c = lut(exp, clamp(MBQM(x_c - m, M, shift) + 32767)) (Q0.15);
# sum = sum of e_c; h = 32 - bitlength(sum) (count of leading zeros);
# shifted = ((sum << (h - 1)) + 2^13) >> 14; r = lut(1/(1+x), clamp(shifted - 98304));
# y_c = clamp((e_c * r + 2^(30 - h)) >> (31 - h), 0, 32767).
# lut(t, v) = t[256 + (v >> 7)] + (((t[i + 1] - t[i]) * (v & 127) + 64) >> 7).
# 31-bit rule: |x_c - m| <= 65535 and the converter keeps shift <= 14; sum <= 32767 * depth
# < 2^30 (depth < 2^15); sum << (h - 1) lies in [2^30, 2^31), so shifted is formed without it:
# sum << (h - 15) when h >= 15, else (sum + 2^(14 - h)) >> (15 - h); e_c * r < 2^30.
from array import array

from ..errors import ModelError
from ..fileformat import INT16, INT32
from ..requant import multiply_by_quantized_multiplier
from .common import int32_values, tensor

_LUT = 513


def _lookup(t, base, v):
    i = base + 256 + (v >> 7)
    b = t[i]
    return b + (((t[i + 1] - b) * (v & 127) + 64) >> 7)


def softmax16(x, y, rows, depth, t, e):
    """t: the table (M >> 15, M & 0x7FFF, left, right, exp LUT, reciprocal LUT); e: an
    array('i') of depth for the row's exps."""
    m_hi = t[0]
    m_lo = t[1]
    left = t[2]
    right = t[3]
    p = 0
    for _ in range(rows):
        mx = -32768
        for c in range(depth):
            v = (x[p + 2 * c] & 255) | (x[p + 2 * c + 1] << 8)
            if v > mx:
                mx = v
        s = 0
        for c in range(depth):
            v = (x[p + 2 * c] & 255) | (x[p + 2 * c + 1] << 8)
            d = multiply_by_quantized_multiplier(v - mx, m_hi, m_lo, left, right) + 32767
            if d < -32768:
                d = -32768
            elif d > 32767:
                d = 32767
            v = _lookup(t, 4, d)
            e[c] = v
            s += v
        h = 32
        v = s
        while v:
            v >>= 1
            h -= 1
        if h >= 15:
            sh = s << (h - 15)
        else:
            sh = (s + (1 << (14 - h))) >> (15 - h)
        sh -= 98304  # - (2^15 + 2^16)
        if sh < -32768:
            sh = -32768
        elif sh > 32767:
            sh = 32767
        r = _lookup(t, 4 + _LUT, sh)
        rs = 31 - h
        rnd = 1 << (rs - 1)
        for c in range(depth):
            v = (e[c] * r + rnd) >> rs
            if v < 0:
                v = 0
            elif v > 32767:
                v = 32767
            b = v & 255
            y[p + 2 * c] = b - 256 if b > 127 else b
            y[p + 2 * c + 1] = v >> 8
        p += 2 * depth


class Softmax16:
    def __init__(self, model, op):
        x = tensor(model, op, 0, "input", INT16)
        tt = tensor(model, op, 1, "softmax tables", INT32, const=True)
        y = tensor(model, op, ~0, "output", INT16)
        if len(op.params):
            raise ModelError("SOFTMAX has %d params, expected none" % len(op.params))
        if x.shape != y.shape or not x.shape or x.zero_point or y.zero_point:
            raise ModelError("SOFTMAX int16 shapes x %r, y %r, zero points %d, %d: expected "
                             "equal shapes, zero points 0"
                             % (x.shape, y.shape, x.zero_point, y.zero_point))
        depth = x.shape[len(x.shape) - 1]
        if depth < 1 or depth >= 1 << 15:
            raise ModelError("SOFTMAX int16 depth %d, expected 1..32767" % depth)
        v = int32_values(model, tt)
        if len(v) != 3 + 2 * _LUT:
            raise ModelError("SOFTMAX int16 table has %d values, expected %d"
                             % (len(v), 3 + 2 * _LUT))
        shift = v[2]
        if v[0] < 0 or v[0] > 0xFFFF or v[1] < 0 or v[1] > 0x7FFF or shift > 14 or shift < -30:
            raise ModelError("SOFTMAX int16 multiplier out of range: %d %d %d"
                             % (v[0], v[1], shift))
        t = array("i", bytes(4 * (4 + 2 * _LUT)))
        t[0] = v[0]
        t[1] = v[1]
        t[2] = shift if shift > 0 else 0
        t[3] = -shift if shift < 0 else 0
        for i in range(2 * _LUT):
            if v[3 + i] < -32768 or v[3 + i] > 32767:
                raise ModelError("SOFTMAX int16 LUT entry %d out of int16" % i)
            t[4 + i] = v[3 + i]
        self.args = (x.data, y.data, x.size // depth, depth, t, array("i", bytes(4 * depth)))
        self.impl = "reference"

    def eval(self):
        x, y, rows, depth, t, e = self.args
        softmax16(x, y, rows, depth, t, e)


def prepare(model, op):
    return Softmax16(model, op)
