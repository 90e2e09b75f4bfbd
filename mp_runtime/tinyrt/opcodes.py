# Operator codes of the model file. Builtin ops keep TensorFlow Lite's BuiltinOperator numbers;
# tinyrt's own ops (binary ones with Larq Compute Engine semantics, weight-shared LUT ones)
# use 200 and up.
ADD = 0
AVERAGE_POOL_2D = 1
CONCATENATION = 2
CONV_2D = 3
DEPTHWISE_CONV_2D = 4
FULLY_CONNECTED = 9
LOGISTIC = 14
MAX_POOL_2D = 17
MUL = 18
RELU = 19
RELU6 = 21
RESHAPE = 22
SOFTMAX = 25
TANH = 28
PAD = 34
MEAN = 40
SUB = 41
MAXIMUM = 55
MINIMUM = 57
LEAKY_RELU = 98
QUANTIZE = 114
HARD_SWISH = 117
UNIDIRECTIONAL_SEQUENCE_LSTM = 44  # int8 in/out, int16 cell state in a VARIABLE tensor
# issue 13's new ops (kernels: copy = data movement, one kernel for all of it)
DEPTH_TO_SPACE = 5
GATHER = 36
TRANSPOSE = 39
STRIDED_SLICE = 45
SPLIT = 49
SPACE_TO_DEPTH = 26
SLICE = 65
PACK = 83
UNPACK = 88
SPLIT_V = 102
BATCH_TO_SPACE_ND = 37
MIRROR_PAD = 100
REVERSE_V2 = 105
GATHER_ND = 107
BROADCAST_TO = 130
REDUCE_MAX = 82
REDUCE_MIN = 89
ABS = 101
PRELU = 54
RESIZE_BILINEAR = 23
RESIZE_NEAREST_NEIGHBOR = 97
SQUARED_DIFFERENCE = 99
RSQRT = 76
BATCH_MATMUL = 126
TRANSPOSE_CONV = 67
DEQUANTIZE = 6
SVDF = 27
BINARIZE = 200  # int8 -> packed (LceQuantize)
BCONV_2D = 201  # packed -> packed | int8 (LceBconv2d)
BFULLY_CONNECTED = 202  # packed -> packed | int8
UNBINARIZE = 203  # packed -> int8 (LceDequantize)
BMAX_POOL_2D = 204  # packed -> packed
FULLY_CONNECTED_LUT = 205  # int8, weights as b-bit indices into an int8 codebook
CONV_2D_LUT = 206  # int8, filter as b-bit indices into an int8 codebook
SOFTMAX_EXP = 210  # SOFTMAX with its exp table computed at prepare from 3 params

# opcode -> (name, kernel module in tinyrt.kernels)
OPS = {
    ADD: ("ADD", "add"),
    AVERAGE_POOL_2D: ("AVERAGE_POOL_2D", "pool"),
    CONCATENATION: ("CONCATENATION", "concatenation"),
    CONV_2D: ("CONV_2D", "conv"),
    DEPTHWISE_CONV_2D: ("DEPTHWISE_CONV_2D", "depthwise_conv"),
    FULLY_CONNECTED: ("FULLY_CONNECTED", "fully_connected"),
    LOGISTIC: ("LOGISTIC", "logistic"),
    MAX_POOL_2D: ("MAX_POOL_2D", "pool"),
    MUL: ("MUL", "mul"),
    RELU: ("RELU", "relu"),
    RELU6: ("RELU6", "relu"),
    RESHAPE: ("RESHAPE", "reshape"),
    SOFTMAX: ("SOFTMAX", "softmax"),
    TANH: ("TANH", "tanh"),
    PAD: ("PAD", "pad"),
    MEAN: ("MEAN", "mean"),
    SUB: ("SUB", "sub"),
    MAXIMUM: ("MAXIMUM", "maximum_minimum"),
    MINIMUM: ("MINIMUM", "maximum_minimum"),
    LEAKY_RELU: ("LEAKY_RELU", "leaky_relu"),
    QUANTIZE: ("QUANTIZE", "quantize"),
    HARD_SWISH: ("HARD_SWISH", "hard_swish"),
    UNIDIRECTIONAL_SEQUENCE_LSTM: ("UNIDIRECTIONAL_SEQUENCE_LSTM", "lstm"),
    DEPTH_TO_SPACE: ("DEPTH_TO_SPACE", "copy"),
    GATHER: ("GATHER", "copy"),
    TRANSPOSE: ("TRANSPOSE", "copy"),
    STRIDED_SLICE: ("STRIDED_SLICE", "copy"),
    SPLIT: ("SPLIT", "copy"),
    SPACE_TO_DEPTH: ("SPACE_TO_DEPTH", "copy"),
    SLICE: ("SLICE", "copy"),
    PACK: ("PACK", "copy"),
    UNPACK: ("UNPACK", "copy"),
    SPLIT_V: ("SPLIT_V", "copy"),
    BATCH_TO_SPACE_ND: ("BATCH_TO_SPACE_ND", "copy"),
    MIRROR_PAD: ("MIRROR_PAD", "copy"),
    REVERSE_V2: ("REVERSE_V2", "copy"),
    GATHER_ND: ("GATHER_ND", "copy"),
    BROADCAST_TO: ("BROADCAST_TO", "copy"),
    REDUCE_MAX: ("REDUCE_MAX", "reduce_extreme"),
    REDUCE_MIN: ("REDUCE_MIN", "reduce_extreme"),
    ABS: ("ABS", "abs"),
    PRELU: ("PRELU", "prelu"),
    RESIZE_BILINEAR: ("RESIZE_BILINEAR", "resize_bilinear"),
    RESIZE_NEAREST_NEIGHBOR: ("RESIZE_NEAREST_NEIGHBOR", "resize_nearest"),
    SQUARED_DIFFERENCE: ("SQUARED_DIFFERENCE", "squared_difference"),
    RSQRT: ("RSQRT", "rsqrt"),
    BATCH_MATMUL: ("BATCH_MATMUL", "batch_matmul"),
    TRANSPOSE_CONV: ("TRANSPOSE_CONV", "transpose_conv"),
    DEQUANTIZE: ("DEQUANTIZE", "dequantize"),
    SVDF: ("SVDF", "svdf"),
    BINARIZE: ("BINARIZE", "binarize"),
    BCONV_2D: ("BCONV_2D", "bconv"),
    BFULLY_CONNECTED: ("BFULLY_CONNECTED", "bfully_connected"),
    UNBINARIZE: ("UNBINARIZE", "unbinarize"),
    BMAX_POOL_2D: ("BMAX_POOL_2D", "bmax_pool"),
    FULLY_CONNECTED_LUT: ("FULLY_CONNECTED_LUT", "fully_connected_lut"),
    CONV_2D_LUT: ("CONV_2D_LUT", "conv_lut"),
    SOFTMAX_EXP: ("SOFTMAX_EXP", "softmax_exp"),
}


def name(opcode):
    entry = OPS.get(opcode)
    return entry[0] if entry else "OPCODE_%d" % opcode
