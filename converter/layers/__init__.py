"""Layer builders: add int8 / binary operators to a Graph from numpy arrays and quantization
parameters, precomputing every integer the kernel needs as TFLM's Prepare would. Each returns
the index of its output tensor."""

from .activations import logistic, softmax
from .conv import conv2d, depthwise_conv2d
from .fully_connected import fully_connected

__all__ = ["conv2d", "depthwise_conv2d", "fully_connected", "logistic", "softmax"]
