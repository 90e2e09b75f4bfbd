# ABS, int8 (TFLM elementwise.cc AbsEvalQuantized).
#   inputs:  x int8 (any shape), table int8 (256,)      outputs: y int8      params: none
# TFLM, per element, v = |x - x_zp|: y = clamp(v + y_zp) when s_x == s_y, else
# clamp(MBQM(v, M, shift) + y_zp), (M, shift) = QuantizeMultiplier(double(float32(s_x / s_y))).
# y depends only on x: the converter evaluates it for the 256 inputs (converter/layers/arith.py,
# kernels/lookup.py).
from .lookup import TableLookup


def prepare(model, op):
    return TableLookup(model, op, "ABS")
