# DEQUANTIZE, int16 -> float32 (16x8 models; TFLM dequantize.cc -> reference Dequantize:
# y = static_cast<float>(double(scale) * x), zero point 0).
#   inputs:  x int16 (any shape), table int32 (2,): (ms, es) with the float32 scale = ms * 2^es,
#            ms in [2^23, 2^24) (the converter checks every |x| * scale is a normal float32)
#   outputs: y float32 (x's shape), 4 little-endian bytes per element
#   params:  none
# double(scale) * x = ms * |x| * 2^es exactly (at most 39 significant bits); the cast rounds
# it to 24 bits, to nearest, ties to even. eval builds the IEEE-754 bits with small ints
# (P = |x| * ms as ph * 2^12 + pl, ph < 2^28) and writes them byte by byte: no float is made.
from ..errors import ModelError
from ..fileformat import FLOAT32, INT16, INT32
from .common import int32_values, tensor


def _byte(v):
    return v - 256 if v > 127 else v


def dequantize16(x, y, n, mh, ml, es):
    """mh, ml: ms >> 12, ms & 0xFFF."""
    q = 0
    for i in range(n):
        v = (x[2 * i] & 255) | (x[2 * i + 1] << 8)
        if v == 0:
            y[q] = 0
            y[q + 1] = 0
            y[q + 2] = 0
            y[q + 3] = 0
            q += 4
            continue
        sign = 128 if v < 0 else 0
        a = -v if v < 0 else v
        t = a * ml
        pl = t & 0xFFF
        ph = a * mh + (t >> 12)  # P = ph * 2^12 + pl < 2^40
        n_bits = 0
        u = ph
        while u:
            u >>= 1
            n_bits += 1
        length = n_bits + 12  # bit length of P (ph >= 2^11: a >= 1, ms >= 2^23)
        r = length - 24  # >= 0
        if r <= 12:
            mant = (ph << (12 - r)) | (pl >> r)
            rem = pl & ((1 << r) - 1)
        else:
            mant = ph >> (r - 12)
            rem = ((ph & ((1 << (r - 12)) - 1)) << 12) | pl
        e = es + length - 1 + 127  # biased exponent
        if r:
            half = 1 << (r - 1)
            if rem > half or (rem == half and mant & 1):
                mant += 1
                if mant == 1 << 24:
                    mant >>= 1
                    e += 1
        frac = mant & 0x7FFFFF
        y[q] = _byte(frac & 255)
        y[q + 1] = _byte((frac >> 8) & 255)
        y[q + 2] = _byte(((e & 1) << 7) | (frac >> 16))
        y[q + 3] = _byte(sign | (e >> 1))
        q += 4


class Dequantize16:
    def __init__(self, model, op):
        x = tensor(model, op, 0, "input", INT16)
        t = tensor(model, op, 1, "DEQUANTIZE scale", INT32, const=True)
        y = tensor(model, op, ~0, "output", FLOAT32)
        v = int32_values(model, t)
        if len(v) != 2 or v[0] < 1 << 23 or v[0] >= 1 << 24 or v[1] < -149 or v[1] > 88:
            raise ModelError("DEQUANTIZE int16 scale table %r, expected (ms in [2^23, 2^24), "
                             "es)" % (tuple(v),))
        if y.size != x.size or len(y.data) != 4 * x.size or x.zero_point:
            raise ModelError("DEQUANTIZE input %r zero point %d, output %r: expected equal "
                             "sizes, zero point 0" % (x.shape, x.zero_point, y.shape))
        if op.params:
            raise ModelError("DEQUANTIZE has %d params, expected none" % len(op.params))
        self.args = (x.data, y.data, x.size, v[0] >> 12, v[0] & 0xFFF, v[1])

    def eval(self):
        x, y, n, mh, ml, es = self.args
        dequantize16(x, y, n, mh, ml, es)


def prepare(model, op):
    return Dequantize16(model, op)
