# RELU and RELU6 as ops, int8 (TFLM activations.cc / activations_common.cc).
#   inputs:  x int8 (any shape), table int8 (256,)      outputs: y int8     params: none
# RELU (ReluQuantized): y = clamp(y_zp + MBQM(x - x_zp, M, shift), max(-128, y_zp), 127) with
#   QuantizeMultiplier(double(s_x) / double(s_y)).
# RELU6 (Relu6Quantized): no rescaling, y = min(max(x, x_zp), six) with six =
#   clamp(x_zp + round(6.0f / s_x), -128, 127) in the input's quantization (TFLM ignores the
#   output's parameters).
# y depends only on x: the converter evaluates it for the 256 inputs (kernels/lookup.py).
from .. import opcodes
from .lookup import TableLookup


def prepare(model, op):
    return TableLookup(model, op, "RELU6" if op.opcode == opcodes.RELU6 else "RELU")
