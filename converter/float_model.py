"""A float model as plain numpy data: what post-training quantization (converter.ptq) takes.

    model = FloatModel(input_shape=(8, 8, 1), layers=[
        Conv2D(w1, b1, padding="same", activation="relu"),   # w1 (Cout, KH, KW, Cin)
        MaxPool2D(2),
        Conv2D(w2, b2, activation="relu", name="conv2"),
        AvgPool2D(2),
        Flatten(),
        Dense(w3, b3),                                        # w3 (n_out, n_in)
        Softmax(),
    ])
    model.save("digits.npz"); model = FloatModel.load("digits.npz")
    y = model.forward(x)        # x (N, *input_shape) float32 -> (N, 10)

`input_shape` is one example's shape without the batch axis: (H, W, C) for images (NHWC, as
TFLite), (n,) for vectors. Layers run in list order; each reads the previous layer's output, or
the output of the layer named by its `input` ("input" is the model input), so a residual block
is a list too: `Conv2D(..., name="a"), Conv2D(...), Add(other="a")`. Names default to
`<kind>_<index>` ("conv2d_0") and must be unique. Weights are float arrays in TFLite's layouts;
what a framework user writes to export:

  Dense(weights (n_out, n_in), bias (n_out,) | None, activation=None, binary=False)
      PyTorch nn.Linear: Dense(m.weight.detach().numpy(), m.bias.detach().numpy())
      Keras Dense:       Dense(kernel.T, bias)
  Conv2D(weights (Cout, KH, KW, Cin), bias, stride=1, padding="same", dilation=1,
         activation=None, binary=False)
      PyTorch (Cout, Cin, KH, KW): w.transpose(0, 2, 3, 1);  Keras (KH, KW, Cin, Cout):
      w.transpose(3, 0, 1, 2). "same" pads as TensorFlow (odd extra row/column at the bottom/
      right); PyTorch's padding=k // 2 with stride 1 and odd k is "same".
  DepthwiseConv2D(weights (KH, KW, C * depth_multiplier), bias, stride, padding, dilation,
                  activation)  output channel c * dm + m; Keras depthwise_kernel (KH, KW, C, dm):
      w.reshape(KH, KW, -1); PyTorch (C * dm, 1, KH, KW): w[:, 0].transpose(1, 2, 0)
  BatchNorm(gamma, beta, mean, var, eps=1e-3)   per channel (last axis), after a Dense or conv
  AvgPool2D(size, stride=None, padding="valid"), MaxPool2D(...)   stride defaults to size
  Flatten(), Reshape(shape)                     shapes without the batch axis
  ReLU(), ReLU6(), Softmax(beta=1.0), Logistic()
  Add(other, activation=None)                   previous output + layer `other`'s output

activation is None, "relu" or "relu6". binary=True makes a Dense or Conv2D a binary layer with
Larq Compute Engine's semantics: y = alpha_c * (sign(x) . sign(w_c)) + bias_c, sign(v) = -1 if
v < 0 else +1, alpha_c = mean |w_c| (the latent float weights carry it); "same" padding pads
sign(x) with +1; a BatchNorm right after it applies to y. Its fused activation must be None.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import ClassVar

import numpy as np

ACTIVATIONS = (None, "relu", "relu6")
FORMAT = "tinyrt-float-model/1"


def _pair(v) -> tuple[int, int]:
    if isinstance(v, (int, np.integer)):
        return int(v), int(v)
    a, b = v
    return int(a), int(b)


def _activation(a):
    a = None if a in (None, "", "none", "NONE", "linear") else str(a).lower()
    if a not in ACTIVATIONS:
        raise ValueError(f"activation {a!r}, expected one of {ACTIVATIONS}")
    return a


def apply_activation(y: np.ndarray, activation) -> np.ndarray:
    if activation == "relu":
        return np.maximum(y, 0)
    if activation == "relu6":
        return np.clip(y, 0, 6)
    return y


def binary_sign(v: np.ndarray) -> np.ndarray:
    """LCE's sign: -1 where v < 0, else +1 (0 maps to +1)."""
    return np.where(np.asarray(v) < 0, -1.0, 1.0).astype(np.float32)


# -- layers -------------------------------------------------------------------------------------

@dataclass
class Layer:
    name: str | None = field(default=None, kw_only=True)
    input: str | None = field(default=None, kw_only=True)  # None: the previous layer

    ARRAYS: ClassVar[tuple[str, ...]] = ()  # fields holding numpy arrays (saved as such)

    @property
    def kind(self) -> str:
        return type(self).__name__


@dataclass
class Dense(Layer):
    weights: np.ndarray  # (n_out, n_in)
    bias: np.ndarray | None = None
    activation: str | None = None
    binary: bool = False
    ARRAYS = ("weights", "bias")


@dataclass
class Conv2D(Layer):
    weights: np.ndarray  # (Cout, KH, KW, Cin)
    bias: np.ndarray | None = None
    stride: int | tuple = 1
    padding: str = "same"
    dilation: int | tuple = 1
    activation: str | None = None
    binary: bool = False
    ARRAYS = ("weights", "bias")


@dataclass
class DepthwiseConv2D(Layer):
    weights: np.ndarray  # (KH, KW, C * depth_multiplier)
    bias: np.ndarray | None = None
    stride: int | tuple = 1
    padding: str = "same"
    dilation: int | tuple = 1
    activation: str | None = None
    ARRAYS = ("weights", "bias")


@dataclass
class BatchNorm(Layer):
    gamma: np.ndarray
    beta: np.ndarray
    mean: np.ndarray
    var: np.ndarray
    eps: float = 1e-3
    ARRAYS = ("gamma", "beta", "mean", "var")

    def scale_shift(self) -> tuple[np.ndarray, np.ndarray]:
        """(s, t) with BN(y) = s * y + t, per channel (float64)."""
        s = np.asarray(self.gamma, np.float64) / np.sqrt(np.asarray(self.var, np.float64)
                                                         + float(self.eps))
        return s, np.asarray(self.beta, np.float64) - np.asarray(self.mean, np.float64) * s


@dataclass
class Pool2D(Layer):
    size: int | tuple = 2
    stride: int | tuple | None = None  # None: the window size
    padding: str = "valid"
    activation: str | None = None


@dataclass
class AvgPool2D(Pool2D):
    pass


@dataclass
class MaxPool2D(Pool2D):
    pass


@dataclass
class Flatten(Layer):
    pass


@dataclass
class Reshape(Layer):
    shape: tuple = ()


@dataclass
class ReLU(Layer):
    pass


@dataclass
class ReLU6(Layer):
    pass


@dataclass
class Softmax(Layer):
    beta: float = 1.0


@dataclass
class Logistic(Layer):
    pass


@dataclass
class Add(Layer):
    other: str = ""
    activation: str | None = None


LAYERS = {c.__name__: c for c in (Dense, Conv2D, DepthwiseConv2D, BatchNorm, AvgPool2D,
                                  MaxPool2D, Flatten, Reshape, ReLU, ReLU6, Softmax, Logistic,
                                  Add)}


# -- numpy math (also used by converter.train) ------------------------------------------------

def out_size_and_pad(padding: str, size: int, k: int, stride: int, dilation: int = 1):
    """(output size, leading pad, trailing pad) as TensorFlow computes them."""
    eff = (k - 1) * dilation + 1
    padding = padding.lower()
    if padding == "same":
        out = -(-size // stride)
    elif padding == "valid":
        out = (size - eff) // stride + 1
    else:
        raise ValueError(f"padding {padding!r}, expected 'same' or 'valid'")
    if out < 1:
        raise ValueError(f"{padding} window {k} (dilation {dilation}) does not fit size {size}")
    total = max((out - 1) * stride + eff - size, 0)
    return out, total // 2, total - total // 2


def patches(x: np.ndarray, kh: int, kw: int, stride, dilation, padding: str,
            pad_value: float = 0.0) -> np.ndarray:
    """Windows of x (N, H, W, C) as a view (N, OH, OW, KH, KW, C)."""
    (sh, sw), (dh, dw) = _pair(stride), _pair(dilation)
    n, h, w, c = x.shape
    oh, pt, pb = out_size_and_pad(padding, h, kh, sh, dh)
    ow, pl, pr = out_size_and_pad(padding, w, kw, sw, dw)
    if pt or pb or pl or pr:
        x = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)), constant_values=pad_value)
    eh, ew = (kh - 1) * dh + 1, (kw - 1) * dw + 1
    v = np.lib.stride_tricks.sliding_window_view(x, (eh, ew), axis=(1, 2))
    v = v[:, : (oh - 1) * sh + 1: sh, : (ow - 1) * sw + 1: sw, :, ::dh, ::dw]
    return v.transpose(0, 1, 2, 4, 5, 3)  # (N, OH, OW, KH, KW, C)


def conv2d(x, w, bias, stride=1, padding="same", dilation=1, pad_value=0.0) -> np.ndarray:
    """x (N, H, W, Cin), w (Cout, KH, KW, Cin) -> (N, OH, OW, Cout)."""
    cout, kh, kw, cin = w.shape
    p = patches(x, kh, kw, stride, dilation, padding, pad_value)
    n, oh, ow = p.shape[:3]
    y = p.reshape(n * oh * ow, kh * kw * cin) @ w.reshape(cout, -1).T
    y = y.reshape(n, oh, ow, cout)
    return y if bias is None else y + bias


def depthwise_conv2d(x, w, bias, stride=1, padding="same", dilation=1) -> np.ndarray:
    """x (N, H, W, C), w (KH, KW, C * dm) -> (N, OH, OW, C * dm), channel c * dm + m."""
    kh, kw, cm = w.shape
    c = x.shape[3]
    p = patches(x, kh, kw, stride, dilation, padding)
    y = np.einsum("nhwijc,ijcm->nhwcm", p, w.reshape(kh, kw, c, cm // c))
    y = y.reshape(y.shape[:3] + (cm,))
    return y if bias is None else y + bias


def pool2d(x, size, stride, padding: str, op: str) -> np.ndarray:
    """TFLite's pooling: the mean / max of the in-bounds taps of each window."""
    (fh, fw) = _pair(size)
    stride = _pair(stride if stride is not None else size)
    if op == "max":
        return patches(x, fh, fw, stride, 1, padding, -np.inf).max(axis=(3, 4))
    s = patches(x, fh, fw, stride, 1, padding).sum(axis=(3, 4))
    ones = np.ones((1,) + x.shape[1:3] + (1,), x.dtype)
    return s / patches(ones, fh, fw, stride, 1, padding).sum(axis=(3, 4))


def softmax(x: np.ndarray, beta: float = 1.0) -> np.ndarray:
    z = beta * (x - x.max(axis=-1, keepdims=True))
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def binary_weights(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(signs +-1 of float weights, alpha = mean |w| per output channel (axis 0))."""
    w = np.asarray(w, np.float64)
    return binary_sign(w), np.mean(np.abs(w), axis=tuple(range(1, w.ndim))).astype(np.float32)


def layer_forward(layer: Layer, x: np.ndarray, other: np.ndarray | None = None) -> np.ndarray:
    """One layer on a batch (float32 in and out)."""
    if isinstance(layer, (Dense, Conv2D)) and layer.binary:
        signs, alpha = binary_weights(layer.weights)
        if isinstance(layer, Dense):
            y = binary_sign(x.reshape(len(x), -1)) @ signs.T
        else:
            y = conv2d(binary_sign(x), signs, None, layer.stride, layer.padding, layer.dilation,
                       pad_value=1.0)
        y = y * alpha
        return (y if layer.bias is None else y + layer.bias).astype(np.float32)
    if isinstance(layer, Dense):
        y = x.reshape(len(x), -1) @ np.asarray(layer.weights).T
        y = y if layer.bias is None else y + layer.bias
    elif isinstance(layer, Conv2D):
        y = conv2d(x, layer.weights, layer.bias, layer.stride, layer.padding, layer.dilation)
    elif isinstance(layer, DepthwiseConv2D):
        y = depthwise_conv2d(x, layer.weights, layer.bias, layer.stride, layer.padding,
                             layer.dilation)
    elif isinstance(layer, BatchNorm):
        s, t = layer.scale_shift()
        return (x * s + t).astype(np.float32)
    elif isinstance(layer, Pool2D):
        op = "max" if isinstance(layer, MaxPool2D) else "avg"
        y = pool2d(x, layer.size, layer.stride, layer.padding, op)
    elif isinstance(layer, Flatten):
        return x.reshape(len(x), -1)
    elif isinstance(layer, Reshape):
        return x.reshape((len(x),) + tuple(layer.shape))
    elif isinstance(layer, ReLU):
        return np.maximum(x, 0)
    elif isinstance(layer, ReLU6):
        return np.clip(x, 0, 6)
    elif isinstance(layer, Softmax):
        return softmax(x, layer.beta).astype(np.float32)
    elif isinstance(layer, Logistic):
        return (1 / (1 + np.exp(-x))).astype(np.float32)
    elif isinstance(layer, Add):
        y = x + other
    else:
        raise TypeError(f"unknown layer {layer!r}")
    return apply_activation(y, layer.activation).astype(np.float32)


def _refs(layer: Layer) -> list[str]:
    return [r for r in (layer.input, getattr(layer, "other", None)) if r is not None]


def _rename_refs(layer: Layer, old: str, new: str) -> None:
    if layer.name == new:
        return
    if layer.input == old:
        layer.input = new
    if getattr(layer, "other", None) == old:
        layer.other = new


def _fold_batch_norm(layer: Layer, bn: BatchNorm) -> Layer | None:
    """The Dense / conv `layer` with the batch norm after it folded into its weights and bias,
    or None when it cannot take it (binary, fused activation, another kind of layer)."""
    if not isinstance(layer, (Dense, Conv2D, DepthwiseConv2D)) or layer.activation \
            or getattr(layer, "binary", False):
        return None
    s, t = bn.scale_shift()
    w = np.asarray(layer.weights, np.float64)
    if isinstance(layer, DepthwiseConv2D):
        w = w * s  # output channels on the last axis
    else:
        w = w * s.reshape((-1,) + (1,) * (w.ndim - 1))
    b = 0.0 if layer.bias is None else np.asarray(layer.bias, np.float64)
    out = copy.copy(layer)
    out.weights = w.astype(np.float32)
    out.bias = (b * s + t).astype(np.float32)
    return out


# -- the model ----------------------------------------------------------------------------------

@dataclass
class FloatModel:
    input_shape: tuple
    layers: list
    labels: list | None = None
    name: str = ""

    def __post_init__(self):
        self.input_shape = tuple(int(d) for d in self.input_shape)
        seen = {"input"}
        for i, layer in enumerate(self.layers):
            if not isinstance(layer, Layer):
                raise TypeError(f"layer {i}: {layer!r} is not a converter.float_model layer")
            if layer.name is None:
                layer.name = f"{layer.kind.lower()}_{i}"
            if layer.name in seen:
                raise ValueError(f"layer {i}: name {layer.name!r} is used twice")
            for ref in (layer.input, getattr(layer, "other", None)):
                if ref is not None and ref not in seen:
                    raise ValueError(f"layer {i} {layer.name!r} reads {ref!r}: no earlier layer "
                                     "has that name")
            if hasattr(layer, "activation"):
                layer.activation = _activation(layer.activation)
                if getattr(layer, "binary", False) and layer.activation:
                    raise ValueError(f"layer {layer.name!r}: a binary layer takes no fused "
                                     "activation (add a BatchNorm or a following layer)")
            for k in layer.ARRAYS:
                v = getattr(layer, k)
                if v is not None:
                    setattr(layer, k, np.asarray(v, dtype=np.float32))
            seen.add(layer.name)
        if not self.layers:
            raise ValueError("a model needs at least one layer")

    def layer(self, name: str) -> Layer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(f"no layer named {name!r} (layers: "
                       f"{', '.join(la.name for la in self.layers)})")

    def sources(self, i: int) -> list[str]:
        """Names of the tensors layer i reads: its input, then Add's other ("input" = model)."""
        layer = self.layers[i]
        first = layer.input or ("input" if i == 0 else self.layers[i - 1].name)
        return [first] + ([layer.other] if isinstance(layer, Add) else [])

    def forward(self, x: np.ndarray, all_outputs: bool = False):
        """Run a batch x (N, *input_shape); the output, or {name: output} of every layer."""
        x = np.asarray(x, dtype=np.float32)
        if x.shape[1:] != self.input_shape:
            x = x.reshape((-1,) + self.input_shape)
        outs = {"input": x}
        for i, layer in enumerate(self.layers):
            src = [outs[s] for s in self.sources(i)]
            outs[layer.name] = layer_forward(layer, src[0], src[1] if len(src) > 1 else None)
        return outs if all_outputs else outs[self.layers[-1].name]

    def predict(self, x: np.ndarray, batch: int = 512) -> np.ndarray:
        """Class indices (argmax of the output), in batches."""
        return np.concatenate([self.forward(x[i: i + batch]).reshape(len(x[i: i + batch]), -1)
                               .argmax(axis=1) for i in range(0, len(x), batch)])

    # -- the form quantization takes ------------------------------------------------------------
    def folded(self, binary=()) -> FloatModel:
        """An equivalent model ready for quantization: the layers named in `binary` made binary
        (a fused activation moved to a ReLU / ReLU6 after it), each BatchNorm folded into the
        Dense / conv before it and each ReLU / ReLU6 fused into the layer before it, where that
        layer is read by nothing else. A BatchNorm or ReLU after a binary layer stays: the
        quantizer turns them into that layer's output transform."""
        layers = []
        for i, layer in enumerate(self.layers):  # explicit inputs while layers come and go
            layer = copy.copy(layer)
            layer.input = self.sources(i)[0]
            layers.append(layer)
        by_name = {la.name: la for la in layers}
        for name in binary:
            layer = by_name.get(name)
            if layer is None:
                raise ValueError(f"binary layer {name!r}: no layer has that name (layers: "
                                 f"{', '.join(by_name)})")
            if not isinstance(layer, (Dense, Conv2D)):
                raise ValueError(f"binary layer {name!r} is a {layer.kind}: only Dense and "
                                 "Conv2D layers can be binary")
            layer.binary = True
            if layer.activation:
                act = (ReLU if layer.activation == "relu" else ReLU6)(
                    name=f"{name}/{layer.activation}", input=name)
                layer.activation = None
                for other in layers:
                    _rename_refs(other, name, act.name)
                layers.insert(layers.index(layer) + 1, act)
        i = 0
        while i < len(layers):
            layer = layers[i]
            src = by_name.get(layer.input) if not isinstance(layer, Add) else None
            readers = sum(ref == layer.input for la in layers for ref in _refs(la))
            fused = None
            if isinstance(layer, BatchNorm) and readers == 1 and src is not None:
                fused = _fold_batch_norm(src, layer)
            elif isinstance(layer, (ReLU, ReLU6)) and readers == 1 and src is not None \
                    and getattr(src, "activation", "x") is None \
                    and not getattr(src, "binary", False):
                fused = copy.copy(src)
                fused.activation = "relu" if isinstance(layer, ReLU) else "relu6"
            if fused is None:
                i += 1
                continue
            layers[layers.index(src)] = by_name[src.name] = fused
            del layers[i]
            for other in layers:
                _rename_refs(other, layer.name, src.name)
        out = layers
        for i, layer in enumerate(out):
            if layer.input == (out[i - 1].name if i else "input"):
                layer.input = None
        return FloatModel(self.input_shape, out, self.labels, self.name)

    # -- .npz ---------------------------------------------------------------------------------
    def save(self, path) -> None:
        """Write the model to an .npz (arrays `<index>/<field>`, the rest as JSON)."""
        arrays, specs = {}, []
        for i, layer in enumerate(self.layers):
            spec = {"kind": layer.kind}
            for f in fields(layer):
                v = getattr(layer, f.name)
                if f.name in layer.ARRAYS:
                    if v is not None:
                        arrays[f"{i}/{f.name}"] = np.asarray(v, np.float32)
                else:
                    spec[f.name] = list(v) if isinstance(v, tuple) else v
            specs.append(spec)
        meta = {"format": FORMAT, "input_shape": list(self.input_shape), "layers": specs,
                "labels": self.labels, "name": self.name}
        with open(path, "wb") as f:
            np.savez(f, __model__=np.array(json.dumps(meta)), **arrays)

    @classmethod
    def load(cls, path) -> FloatModel:
        z = np.load(Path(path), allow_pickle=False)
        if not isinstance(z, np.lib.npyio.NpzFile):
            raise ValueError(f"{path}: not a tinyrt float model (an .npz file)")
        with z:
            if "__model__" not in z:
                raise ValueError(f"{path}: not a tinyrt float model (.npz without __model__)")
            meta = json.loads(str(z["__model__"]))
            if meta.get("format") != FORMAT:
                raise ValueError(f"{path}: format {meta.get('format')!r}, expected {FORMAT!r}")
            layers = []
            for i, spec in enumerate(meta["layers"]):
                kind = LAYERS.get(spec.pop("kind"))
                if kind is None:
                    raise ValueError(f"{path}: layer {i} of unknown kind")
                for k in kind.ARRAYS:
                    spec[k] = np.array(z[f"{i}/{k}"]) if f"{i}/{k}" in z else None
                layers.append(kind(**spec))
        return cls(tuple(meta["input_shape"]), layers, meta.get("labels"), meta.get("name", ""))
