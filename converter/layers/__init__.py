"""Layer builders: add int8 / binary operators to a Graph from numpy arrays and quantization
parameters, precomputing every integer the kernel needs as TFLM's Prepare (or, for the binary
layers, Larq Compute Engine) would. Each returns the index of its output tensor."""

from .activations import logistic, softmax
from .binary import (bconv_2d, bfully_connected, binarize, binary_conv_2d, binary_dense,
                     bmax_pool_2d, unbinarize)
from .conv import conv2d, depthwise_conv2d
from .elementwise import add, maximum, minimum, mul, quantize, sub
from .fully_connected import fully_connected
from .pool import average_pool2d, max_pool2d
from .shape import concatenation, mean, pad, reshape
from .unary import hard_swish, leaky_relu, relu, relu6, tanh

__all__ = ["add", "average_pool2d", "bconv_2d", "bfully_connected", "binarize", "binary_conv_2d",
           "binary_dense", "bmax_pool_2d", "concatenation", "conv2d", "depthwise_conv2d",
           "fully_connected", "hard_swish", "leaky_relu", "logistic", "max_pool2d", "maximum",
           "mean", "minimum", "mul", "pad", "quantize", "relu", "relu6", "reshape", "softmax",
           "sub", "tanh", "unbinarize"]
