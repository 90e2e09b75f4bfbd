# ADD, int8 (TFLM reference integer_ops/add.h semantics, add_common.cc's OpDataAdd).
#   inputs:  x1 int8, x2 int8 (same shape, or broadcastable to y as numpy/TFLite broadcast:
#            shapes right-aligned, each dim equal or 1; at most 4-D),
#            requant int32 (3, 3): rows (M >> 15, M & 0x7FFF, shift) for input1, input2, output,
#            each from QuantizeMultiplierSmallerThanOneExp (shift <= 0)
#   outputs: y int8 (the broadcast shape)
#   params:  act_min, act_max
# Per element, with left_shift = 20 (TFLM's value for int8):
#   v_i = MBQM((x_i - zp_i) << 20, M_i, shift_i)         i = 1, 2
#   y   = clamp(MBQM(v_1 + v_2, M_o, shift_o) + zp_y, act_min, act_max)
# Bounds (31-bit rule): |x_i - zp_i| <= 255 (zero points checked to be int8), so
# |(x_i - zp_i) << 20| <= 255 * 2^20 < 2^28; every multiplier is < 1 (M < 2^31, shift <= 0,
# checked at prepare; the converter's input multipliers are even <= 1/2), so |v_i| < 2^28,
# |v_1 + v_2| < 2^29 and the output MBQM result is < 2^29. Every MBQM input is < 2^30 with no
# left shift, as requant.srdhm needs.
from ..errors import ModelError
from ..fast import select
from ..requant import rounding_divide_by_pot, srdhm
from .common import elementwise_operands

# fast twins, imported by load() before it allocates the big buffers (tinyrt.fast.preload)
TWINS = ("add_viper",)

_LEFT_SHIFT = 20


def add(x1, x2, y, dims, s1, s2, q, act_min, act_max):
    """dims: output 4-D dims; s1, s2: the inputs' strides on them; q: (zp1, zp2, zp_y,
    M1 >> 15, M1 & 0x7FFF, right1, M2 >> 15, M2 & 0x7FFF, right2, Mo >> 15, Mo & 0x7FFF,
    right_o) with right = -shift."""
    add_or_sub(x1, x2, y, dims, s1, s2, q, act_min, act_max, 1)


def add_or_sub(x1, x2, y, dims, s1, s2, q, act_min, act_max, sign):
    """ADD (sign 1) or SUB (sign -1: TFLM's SUB subtracts the second scaled input, v_1 - v_2,
    which is exactly v_1 + (-v_2): the negation follows the input's own rounding)."""
    d0, d1, d2, d3 = dims
    a0, a1, a2, a3 = s1
    b0, b1, b2, b3 = s2
    z1, z2, zy, h1, l1, r1, h2, l2, r2, ho, lo, ro = q
    o = 0
    for i0 in range(d0):
        for i1 in range(d1):
            for i2 in range(d2):
                pa = i0 * a0 + i1 * a1 + i2 * a2
                pb = i0 * b0 + i1 * b1 + i2 * b2
                for i3 in range(d3):
                    # |(x - zp) << 20| < 2^28; |v1|, |v2| < 2^28; |v1 +- v2| < 2^29
                    v1 = rounding_divide_by_pot(srdhm((x1[pa] - z1) << _LEFT_SHIFT, h1, l1), r1)
                    v2 = rounding_divide_by_pot(srdhm((x2[pb] - z2) << _LEFT_SHIFT, h2, l2), r2)
                    v = rounding_divide_by_pot(srdhm(v1 + sign * v2, ho, lo), ro) + zy
                    if v < act_min:
                        v = act_min
                    elif v > act_max:
                        v = act_max
                    y[o] = v
                    o += 1
                    pa += a3
                    pb += b3


class Add:
    """ADD; SUB is this with its own name and loop (kernels/sub.py)."""

    NAME = "ADD"

    def __init__(self, model, op):
        name = self.NAME
        x1, x2, y, act_min, act_max, (dims, s1, s2), (m_hi, m_lo, left, right) = (
            elementwise_operands(model, op, name, 3))
        for k in range(3):
            if left[k]:
                raise ModelError("%s requantization row %d has shift %d, expected <= 0 "
                                 "(a multiplier below one)" % (name, k, left[k]))
        q = (x1.zero_point, x2.zero_point, y.zero_point, m_hi[0], m_lo[0], right[0],
             m_hi[1], m_lo[1], right[1], m_hi[2], m_lo[2], right[2])
        self.args = (x1.data, x2.data, y.data, dims, s1, s2, q, act_min, act_max)
        self.fn, self.impl = self.select()

    def select(self):
        """The function eval() runs, and what summary() calls it."""
        fn = select("add_viper", "add", add)
        return fn, "viper" if fn is not add else "reference"

    def eval(self):
        x1, x2, y, dims, s1, s2, q, act_min, act_max = self.args
        self.fn(x1, x2, y, dims, s1, s2, q, act_min, act_max)


def prepare(model, op):
    if model.tensors[op.inputs[0]].dtype == "int16":  # 16x8 mode: its own module
        from .add16 import prepare as prepare_16

        return prepare_16(model, op)
    return Add(model, op)
