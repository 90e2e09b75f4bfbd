# HARD_SWISH, int8 (TFLM hard_swish_common.cc HardSwishPrepare, reference_ops::HardSwish).
#   inputs:  x int8 (any shape), table int8 (256,)      outputs: y int8     params: none
# TFLM, per element, in int16 fixed point: v = (x - x_zp) * 128; p = SRDHM16(v, out_m16);
# r = v rescaled by the "reluish" multiplier (saturating left shifts, SRDHM16, or a rounding
# right shift) to [-1, 1] in Q15, then (r + 2^15) >> 1; y = clamp(RDBP(SDHM16(r, p),
# -out_exp) + y_zp, -128, 127), with out/reluish multipliers from QuantizeMultiplier of
# float32 s_x / 128 / s_y and s_x / 128 / (3 / 32768), downscaled to int16.
# y depends only on x: the converter evaluates it for the 256 inputs (kernels/lookup.py).
from .lookup import TableLookup


def prepare(model, op):
    return TableLookup(model, op, "HARD_SWISH")
