# TANH, int8 (TFLM tanh.cc CalculateArithmeticOpData, reference_integer_ops::Tanh).
#   inputs:  x int8 (any shape), table int8 (256,)      outputs: y int8 (scale 1/128, zero
#   point 0, as TFLM requires)                          params: none
# TFLM, per element, v = x - x_zp: -128 if v <= -radius, 127 if v >= radius, else
# clamp(RDBP(gemmlowp::tanh(Q4.27 MBQM(v, M, left_shift)), 24), -128, 127), with
# (M, left_shift) = frexp(double(s_x) * 2^27) and radius = CalculateInputRadius(4, left_shift).
# y depends only on x: the converter evaluates it for the 256 inputs (kernels/lookup.py).
from .lookup import TableLookup


def prepare(model, op):
    return TableLookup(model, op, "TANH")
