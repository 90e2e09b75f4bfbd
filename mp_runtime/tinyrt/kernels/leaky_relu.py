# LEAKY_RELU, int8 (TFLM leaky_relu_common.cc, reference_ops::QuantizeLeakyRelu).
#   inputs:  x int8 (any shape), table int8 (256,)      outputs: y int8     params: none
# TFLM, per element, v = x - x_zp:
#   y = clamp(y_zp + MBQM(v, M_identity, shift_identity), -128, 127)   if v >= 0
#   y = clamp(y_zp + MBQM(v, M_alpha, shift_alpha), -128, 127)         otherwise
# with QuantizeMultiplier(double(float(s_x / s_y))) and
# QuantizeMultiplier(double(float(s_x * alpha / s_y))) (float32 products, alpha may be < 0).
# y depends only on x: the converter evaluates it for the 256 inputs (kernels/lookup.py).
from .lookup import TableLookup


def prepare(model, op):
    if model.tensors[op.inputs[0]].dtype == "int16":  # 16x8 mode: its own module
        from .leaky_relu16 import prepare as prepare_16

        return prepare_16(model, op)
    return TableLookup(model, op, "LEAKY_RELU")
