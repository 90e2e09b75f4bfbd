# SOFTMAX_EXP (tinyrt opcode 210): SOFTMAX (tinyrt/kernels/softmax.py) whose 256-entry exp table
# is computed here at prepare from TFLM's three softmax constants instead of being read from the
# file: the table is 2 KB of a model file (most of a small compressed one); the constants 12 B.
#   inputs:  x int8 (..., depth)
#   outputs: y int8 (..., depth), scale 1/256, zero point -128
#   params:  input_multiplier, input_left_shift, diff_min (TFLM's CalculateSoftmaxParams)
# E[d] = exp_on_negative_values(MultiplyByQuantizedMultiplierGreaterThanOne(-d), 5) for
# -d >= diff_min, else 0; E[0] = 2^31 - 1 (gemmlowp fixed point on exact ints: prepare may
# allocate, invoke uses the table as SOFTMAX does). converter/layers/activations.py computes
# the same table on the host; tests/test_compress_softmax.py binds the two.
from array import array

from ..errors import ModelError
from .softmax import Softmax

_I32_MIN = -(1 << 31)
_I32_MAX = (1 << 31) - 1
# (bit of the Q5.26 remainder, Q0.31 exp(-2^(bit - 26))) of gemmlowp's barrel shifter
_BARREL = ((24, 1672461947), (25, 1302514674), (26, 790015084), (27, 290630308),
           (28, 39332535), (29, 720401), (30, 242))


def _wrap(v):
    return ((v + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def _srdhm(a, b):
    """SaturatingRoundingDoublingHighMul of int32 a, b (C's truncating division)."""
    if a == _I32_MIN and b == _I32_MIN:
        return _I32_MAX
    p = a * b
    if p >= 0:
        return (p + (1 << 30)) >> 31
    return -((-(p + 1 - (1 << 30))) >> 31)


def _rdbp(x, exponent):
    """RoundingDivideByPOT."""
    mask = (1 << exponent) - 1
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> exponent) + (1 if (x & mask) > threshold else 0)


def exp_q5(a):
    """gemmlowp exp_on_negative_values for a raw Q5.26 a <= 0: raw Q0.31."""
    if a == 0:
        return _I32_MAX
    one_quarter = 1 << 24
    mq = _wrap((a & (one_quarter - 1)) - one_quarter)
    # Rescale<0> of a Q5.26 value in [-1/4, 0): a shift by 5 that cannot saturate
    x = _wrap((mq << 5) + (1 << 28))  # Taylor expansion around -1/8
    x2 = _srdhm(x, x)
    x3 = _srdhm(x2, x)
    x4 = _srdhm(x2, x2)
    poly = _rdbp(_wrap(_srdhm(_wrap(_rdbp(x4, 2) + x3), 715827883) + x2), 1)
    r = _wrap(1895147668 + _srdhm(1895147668, _wrap(x + poly)))
    rem = _wrap(mq - a)
    for bit, mult in _BARREL:
        if rem & (1 << bit):
            r = _srdhm(r, mult)
    return r


def exp_table(multiplier, left_shift, diff_min):
    """The int32 (2, 256) table SOFTMAX reads, as array('i') of 512: E >> 15, then E & 0x7FFF."""
    e = array("i", bytes(4 * 512))
    for d in range(256):
        if -d < diff_min:
            continue
        v = exp_q5(_srdhm(_wrap(-d * (1 << left_shift)), multiplier))
        e[d] = v >> 15
        e[256 + d] = v & 0x7FFF
    return e


class SoftmaxExp(Softmax):
    def table(self, model, op):
        if len(op.params) != 3:
            raise ModelError("SOFTMAX_EXP has %d params, expected 3 (input_multiplier, "
                             "input_left_shift, diff_min)" % len(op.params))
        multiplier, left_shift, diff_min = op.params
        if multiplier < (1 << 30) or left_shift < 0 or left_shift > 31 or diff_min > 0:
            raise ModelError("SOFTMAX_EXP params %r: expected a multiplier in [2^30, 2^31), a "
                             "left shift in 0..31 and diff_min <= 0" % (tuple(op.params),))
        return exp_table(multiplier, left_shift, diff_min)


def prepare(model, op):
    return SoftmaxExp(model, op)
