"""Read a float32 .tflite model into a converter.float_model.FloatModel (for converter.ptq).

The flatbuffer is read and its constant shape computations folded by the int8 importer's reading
code; every remaining op maps onto one float_model layer:
CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED, AVERAGE_POOL_2D, MAX_POOL_2D, RESHAPE / SQUEEZE /
EXPAND_DIMS, MEAN over the spatial axes (a global average pool), ADD of two activations, RELU,
RELU6, SOFTMAX, LOGISTIC. Anything else (or int8 / hybrid weights) raises UnsupportedModelError
naming the op. Batch size 1 is assumed on axis 0, as TFLite Micro models have it.
"""

from __future__ import annotations

import numpy as np
import tflite

from . import float_model as fm

try:  # the reading code is moving to converter.tflite_reader; either place works
    from .tflite_reader import UnsupportedModelError, fold_constants, read_tflite
except ImportError:
    from .tflite_import import UnsupportedModelError, fold_constants, read_tflite

_PADDING = {v: k.lower() for k, v in vars(tflite.Padding).items() if not k.startswith("_")}
_ACTIVATION = {v: k for k, v in vars(tflite.ActivationFunctionType).items()
               if not k.startswith("_")}
_FUSED = {"NONE": None, "RELU": "relu", "RELU6": "relu6"}


def _activation(op) -> str | None:
    code = op.options.FusedActivationFunction() if op.options is not None else 0
    name = _ACTIVATION.get(code, str(code))
    if name not in _FUSED:
        raise UnsupportedModelError(f"{op.describe()}: fused activation {name} is not supported "
                                    "(NONE, RELU, RELU6 are)")
    return _FUSED[name]


def _padding(op) -> str:
    p = _PADDING.get(op.options.Padding(), str(op.options.Padding()))
    if p not in ("same", "valid"):
        raise UnsupportedModelError(f"{op.describe()}: padding {p}")
    return p


def read_float_tflite(data: bytes, name: str = "") -> fm.FloatModel:
    """The FloatModel of a float32 .tflite flatbuffer."""
    m = read_tflite(bytes(data))
    kept, _, const = fold_constants(m)
    if len(m.inputs) != 1 or len(m.outputs) != 1:
        raise UnsupportedModelError(f"the model has {len(m.inputs)} inputs and "
                                    f"{len(m.outputs)} outputs; one of each is supported")
    x = m.tensors[m.inputs[0]]
    if x.dtype != "float32":
        raise UnsupportedModelError(f"model input {x.describe()} is {x.dtype}: not a float "
                                    "model (int8 models go through `tinyrt convert`)")
    names = {m.inputs[0]: "input"}  # .tflite tensor -> the name of the layer producing it
    layers: list[fm.Layer] = []

    def value(op, k: int, what: str) -> np.ndarray:
        i = op.inputs[k] if k < len(op.inputs) else -1
        if i < 0 or i not in const:
            raise UnsupportedModelError(f"{op.describe()}: its {what} must be constant")
        t = m.tensors[i]
        if t.dtype != "float32" and what in ("weights", "bias"):
            raise UnsupportedModelError(f"{op.describe()}: {what} {t.describe()} are {t.dtype}; "
                                        "float32 weights are expected (a quantized model goes "
                                        "through `tinyrt convert`)")
        return np.asarray(const[i])

    def bias(op, k: int) -> np.ndarray | None:
        return None if k >= len(op.inputs) or op.inputs[k] < 0 else value(op, k, "bias")

    def source(op, k: int = 0) -> str:
        i = op.inputs[k]
        if i not in names:
            raise UnsupportedModelError(f"{op.describe()}: input {m.tensors[i].describe()} is "
                                        "a constant or produced by no op; only activations "
                                        "are supported there")
        return names[i]

    def add(layer: fm.Layer, src: str) -> str:
        layer.name = f"{layer.kind.lower()}_{len(layers)}"
        layer.input = None if src == (layers[-1].name if layers else "input") else src
        layers.append(layer)
        return layer.name

    for op in kept:
        out_shape = m.tensors[op.outputs[0]].shape
        o = op.options
        src = source(op)
        if op.name == "CONV_2D":
            layer = fm.Conv2D(value(op, 1, "weights"), bias(op, 2), (o.StrideH(), o.StrideW()),
                              _padding(op), (o.DilationHFactor() or 1, o.DilationWFactor() or 1),
                              _activation(op))
        elif op.name == "DEPTHWISE_CONV_2D":
            w = value(op, 1, "weights")
            layer = fm.DepthwiseConv2D(w.reshape(w.shape[1:]), bias(op, 2),
                                       (o.StrideH(), o.StrideW()), _padding(op),
                                       (o.DilationHFactor() or 1, o.DilationWFactor() or 1),
                                       _activation(op))
        elif op.name == "FULLY_CONNECTED":
            layer = fm.Dense(value(op, 1, "weights"), bias(op, 2), _activation(op))
        elif op.name in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
            kind = fm.AvgPool2D if op.name == "AVERAGE_POOL_2D" else fm.MaxPool2D
            layer = kind((o.FilterHeight(), o.FilterWidth()), (o.StrideH(), o.StrideW()),
                         _padding(op), _activation(op))
        elif op.name in ("RESHAPE", "SQUEEZE", "EXPAND_DIMS"):
            layer = (fm.Flatten() if len(out_shape) == 2
                     else fm.Reshape(tuple(int(d) for d in out_shape[1:])))
        elif op.name == "MEAN":
            xs = m.tensors[op.inputs[0]].shape
            axes = sorted(int(a) % len(xs) for a in value(op, 1, "axes").ravel())
            if len(xs) != 4 or axes != [1, 2]:
                raise UnsupportedModelError(f"{op.describe()}: MEAN over axes {axes} of shape "
                                            f"{xs}; only the spatial mean of NHWC is supported")
            src = add(fm.AvgPool2D((xs[1], xs[2])), src)  # global average pool, then reshape
            layer = (fm.Flatten() if len(out_shape) == 2
                     else fm.Reshape(tuple(int(d) for d in out_shape[1:])))
        elif op.name == "ADD":
            if len(op.inputs) != 2 or any(i in const for i in op.inputs):
                raise UnsupportedModelError(f"{op.describe()}: only ADD of two activations is "
                                            "supported")
            layer = fm.Add(other=source(op, 1), activation=_activation(op))
        elif op.name in ("RELU", "RELU6", "LOGISTIC"):
            layer = {"RELU": fm.ReLU, "RELU6": fm.ReLU6, "LOGISTIC": fm.Logistic}[op.name]()
        elif op.name == "SOFTMAX":
            layer = fm.Softmax(float(o.Beta()) if o is not None else 1.0)
        else:
            raise UnsupportedModelError(
                f"{op.describe()} is not supported for float models (supported: CONV_2D, "
                "DEPTHWISE_CONV_2D, FULLY_CONNECTED, AVERAGE_POOL_2D, MAX_POOL_2D, RESHAPE, "
                "SQUEEZE, EXPAND_DIMS, MEAN, ADD, RELU, RELU6, SOFTMAX, LOGISTIC)")
        names[op.outputs[0]] = add(layer, src)
    if m.outputs[0] not in names or names[m.outputs[0]] != layers[-1].name:
        raise UnsupportedModelError("the model output must be computed by its last op")
    return fm.FloatModel(tuple(x.shape[1:]), layers, name=name)


def load_float_tflite(path) -> fm.FloatModel:
    with open(path, "rb") as f:
        return read_float_tflite(f.read(), name=str(path))
