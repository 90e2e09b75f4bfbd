# RSQRT, int8 (TFLM elementwise.cc RsqrtEvalQuantized).
#   inputs:  x int8 (any shape), table int8 (256,)      outputs: y int8      params: none
# TFLM, per element, v = x - x_zp: 127 if v == 0, else (M, s) = GetInvSqrtQuantizedMultiplierExp
# (v, -1) (gemmlowp Newton-Raphson), d = MBQM(1, M, s + 20), y = clamp(MBQM(d, M_o,
# shift_o - 20) + y_zp), (M_o, shift_o) = QuantizeMultiplier(1 / (sqrtf(s_x) s_y)). TFLM stops
# the invoke for v < 0; the table holds there what v = 1 gives. y depends only on x: the
# converter evaluates it for the 256 inputs (converter/layers/arith.py, kernels/lookup.py).
from .lookup import TableLookup


def prepare(model, op):
    return TableLookup(model, op, "RSQRT")
