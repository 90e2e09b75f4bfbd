# SUB, int8 (TFLM reference_ops sub.h SubElementwise / BroadcastSubSlow, sub_common.cc's
# CalculateOpDataSub).
#   inputs:  x1 int8, x2 int8 (same shape, or broadcastable to y as ADD: at most 4-D),
#            requant int32 (3, 3): rows (M >> 15, M & 0x7FFF, shift) for input1, input2,
#            output, each from QuantizeMultiplierSmallerThanOneExp (shift <= 0)
#   outputs: y int8 (the broadcast shape)
#   params:  act_min, act_max
# Per element, with left_shift = 20 (TFLM's value for int8):
#   v_i = MBQM((x_i - zp_i) << 20, M_i, shift_i)         i = 1, 2
#   y   = clamp(MBQM(v_1 - v_2, M_o, shift_o) + zp_y, act_min, act_max)
# Bounds (31-bit rule), as ADD: |(x_i - zp_i) << 20| < 2^28, every multiplier < 1 (shift <= 0,
# checked at prepare), so |v_i| < 2^28 and |v_1 - v_2| < 2^29 < 2^30 as requant.srdhm needs.
from .add import Add, add_or_sub


def sub(x1, x2, y, dims, s1, s2, q, act_min, act_max):
    """As kernels.add.add, with v_1 - v_2."""
    add_or_sub(x1, x2, y, dims, s1, s2, q, act_min, act_max, -1)


class Sub(Add):
    NAME = "SUB"

    def select(self):
        return sub, "reference"  # no fast twin yet


def prepare(model, op):
    return Sub(model, op)
