"""Larq Compute Engine custom ops of a .tflite file -> tinyrt binary ops.

LCE's converter writes CUSTOM operators whose options are a flexbuffer map:
  LceQuantize    (int8 | float32 -> int32 packed)               -> BINARIZE (int8 input)
  LceDequantize  (int32 packed -> int8 | float32)               -> UNBINARIZE (int8 output)
  LceBconv2d     inputs (x, filter, post_activation_multiplier, post_activation_bias,
                 thresholds), options channels_in, stride_height/width,
                 dilation_height/width_factor, padding, pad_values, fused_activation_function
                 (older files: strides/dilations vectors, strings for the enums)  -> BCONV_2D
  LceBMaxPool2d  options padding, stride_height/width, filter_height/width  -> BMAX_POOL_2D
A packed tensor in the .tflite has int32 words as its last dimension; in the Graph it is a
"packed" tensor whose last dimension counts channels, which the ops tell: channels_in of a
bconv, the Cout of its filter, the int8 side of a (de)quantize.

The .tflite importer (converter/tflite_import.py) reads the file with converter/tflite_reader.py
and calls convert_lce_op for each CUSTOM(Lce*) op, so a model may mix int8 builtin ops and LCE
ops; `tinyrt convert` handles both alike.
"""

from __future__ import annotations

from collections.abc import MutableMapping, Sequence
from typing import Any

import numpy as np
from flatbuffers import flexbuffers

from . import bitpack
from .graph import Graph
from .layers import binary
from .tflite_reader import TflTensor

LCE_OPS = ("LceQuantize", "LceDequantize", "LceBconv2d", "LceBMaxPool2d")
_PADDINGS = {0: "SAME", 1: "VALID", "SAME": "SAME", "VALID": "VALID"}
_ACTIVATIONS = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6", "": "NONE",
                "NONE": "NONE", "RELU": "RELU", "RELU_N1_TO_1": "RELU_N1_TO_1", "RELU6": "RELU6"}


class LceImportError(ValueError):
    """An LCE op or option tinyrt cannot run (the message says which and why)."""


def lce_op_name(name: str) -> str | None:
    """'LceBconv2d' for 'LceBconv2d' or 'CUSTOM(LceBconv2d)'; None for any other op."""
    if name.startswith("CUSTOM(") and name.endswith(")"):
        name = name[7:-1]
    return name if name in LCE_OPS else None


def parse_options(custom_options: bytes) -> dict[str, Any]:
    """The flexbuffer map of an LCE op's custom options."""
    if not custom_options:
        return {}
    try:
        opts = flexbuffers.Loads(bytes(custom_options))
    except Exception as e:  # noqa: BLE001 - a malformed flexbuffer fails anywhere inside
        raise LceImportError(f"custom options are not a flexbuffer map: {e}") from None
    if not isinstance(opts, dict):
        raise LceImportError(f"custom options are a flexbuffer {type(opts).__name__}, "
                             "expected a map")
    return opts


def _enum(opts: dict, key: str, table: dict, default=None):
    v = opts.get(key, default)
    if isinstance(v, (bytes, bytearray)):
        v = v.decode()
    if isinstance(v, str):
        v = v.upper()
    if v not in table:
        raise LceImportError(f"option {key}={v!r} not understood (expected one of "
                             f"{sorted(set(table.values()))})")
    return table[v]


def _pair(opts: dict, h: str, w: str, vector: str, default: int | None = None) -> tuple[int, int]:
    if h in opts or w in opts:
        return int(opts.get(h, default)), int(opts.get(w, default))
    if vector in opts and len(opts[vector]) == 4:  # older LCE: NHWC vectors
        v = opts[vector]
        return int(v[1]), int(v[2])
    if default is None:
        raise LceImportError(f"option {h}/{w} missing")
    return default, default


def _quant(t: TflTensor) -> tuple[float | None, int]:
    """(scale, zero point) of a tensor quantized per tensor; scale None without quantization."""
    if t.scales is None:
        return None, 0
    if t.scales.size > 1:
        raise LceImportError(f"tensor {t.name!r} is quantized per channel ({t.scales.size} "
                             "scales); int8 activations must be per tensor")
    return float(t.scales[0]), int(t.zero_points[0])


def _words_ok(t: TflTensor, channels: int, what: str) -> None:
    if not t.shape or int(t.shape[-1]) != bitpack.words(channels):
        raise LceImportError(f"{what} {t.name!r} has shape {tuple(t.shape)}: {channels} "
                             f"channels pack into {bitpack.words(channels)} int32 words")


class _Op:
    def __init__(self, g: Graph, name: str, inputs: list[int], outputs: list[int],
                 tensors: Sequence[TflTensor], tmap: MutableMapping[int, int]):
        self.g, self.name, self.inputs, self.outputs = g, name, inputs, outputs
        self.tensors, self.tmap = tensors, tmap

    def t(self, k: int) -> TflTensor | None:
        i = self.inputs[k] if k < len(self.inputs) else -1
        return None if i < 0 else self.tensors[i]

    def const(self, k: int, what: str) -> np.ndarray:
        t = self.t(k)
        if t is None or t.data is None:
            raise LceImportError(f"{self.name}: {what} (input {k}) must be a constant tensor")
        return np.asarray(t.data)

    def packed_input(self, k: int, channels: int) -> int:
        """Graph index of packed activation input k of `channels` channels (created as a model
        input if no op produced it)."""
        i, t = self.inputs[k], self.t(k)
        if t is None:
            raise LceImportError(f"{self.name}: input {k} is absent")
        if i in self.tmap:
            gt = self.g.tensors[self.tmap[i]]
            if gt.dtype != "packed" or gt.shape[-1] != channels:
                raise LceImportError(f"{self.name}: input {t.name!r} is {gt.dtype} with "
                                     f"{gt.shape[-1]} channels, the op expects packed "
                                     f"{channels}")
            return self.tmap[i]
        if t.dtype != "int32" or t.data is not None:
            raise LceImportError(f"{self.name}: input {t.name!r} is {t.dtype}"
                                 f"{' constant' if t.data is not None else ''}; expected a "
                                 "bit-packed int32 activation")
        _words_ok(t, channels, f"{self.name}: input")
        shape = tuple(int(d) for d in t.shape[:-1]) + (channels,)
        self.tmap[i] = self.g.add_activation(t.name, shape, 1.0, 0, "packed")
        return self.tmap[i]

    def int8_input(self, k: int) -> int:
        i, t = self.inputs[k], self.t(k)
        if i in self.tmap:
            return self.tmap[i]
        if t.dtype != "int8" or t.data is not None:
            raise LceImportError(f"{self.name}: input {t.name!r} is {t.dtype}; tinyrt runs "
                                 "int8 activations")
        scale, zp = _quant(t)
        if scale is None:
            raise LceImportError(f"{self.name}: int8 input {t.name!r} has no quantization")
        self.tmap[i] = self.g.add_activation(t.name, tuple(t.shape), scale, zp)
        return self.tmap[i]

    def input_channels(self, k: int) -> int | None:
        """Channels of input k if it is already a packed graph tensor."""
        i = self.inputs[k]
        if i in self.tmap and self.g.tensors[self.tmap[i]].dtype == "packed":
            return int(self.g.tensors[self.tmap[i]].shape[-1])
        return None

    def adopt(self, k: int, gi: int) -> int:
        """Name graph tensor gi after output k and check its shape."""
        t = self.tensors[self.outputs[k]]
        gt = self.g.tensors[gi]
        want = tuple(gt.shape)
        if gt.dtype == "packed":
            want = want[:-1] + (bitpack.words(want[-1]),)
        if tuple(int(d) for d in t.shape) != want:
            raise LceImportError(f"{self.name}: tinyrt computes output shape {want}, the model "
                                 f"says {tuple(t.shape)} for {t.name!r}")
        gt.name = t.name
        self.tmap[self.outputs[k]] = gi
        return gi


def convert_lce_op(g: Graph, op_name: str, custom_options: bytes, inputs: list[int],
                   outputs: list[int], tensors: Sequence[TflTensor],
                   tmap: MutableMapping[int, int]) -> list[int]:
    """Add the tinyrt ops of one LCE custom op to g.

    inputs / outputs: the op's .tflite tensor indices (-1 = absent). tensors: the .tflite
    tensors by index, as converter.tflite_reader reads them (data: the constant values).
    tmap: .tflite index -> Graph index of the activations made so far; an activation input
    that is not in it is created as a model input (packed with the op's channel count, or
    int8), and the outputs are entered in it. Returns the Graph indices of the outputs.
    Raises LceImportError (a ValueError)."""
    name = lce_op_name(op_name)
    if name is None:
        raise LceImportError(f"{op_name} is not an LCE op ({', '.join(LCE_OPS)})")
    if len(outputs) != 1:
        raise LceImportError(f"{name}: {len(outputs)} outputs, expected 1")
    opts = parse_options(custom_options)
    op = _Op(g, name, list(inputs), list(outputs), tensors, tmap)
    out = tensors[outputs[0]]
    label = out.name.split(";")[0] or name
    if name == "LceQuantize":
        t = op.t(0)
        if t is None or t.dtype != "int8":
            raise LceImportError(f"LceQuantize of {t.dtype if t else 'nothing'}: tinyrt "
                                 "binarizes int8 tensors (float activations do not run)")
        y = binary.binarize(g, op.int8_input(0), name=label)
    elif name == "LceDequantize":
        if out.dtype != "int8":
            raise LceImportError(f"LceDequantize to {out.dtype}: tinyrt dequantizes to int8")
        scale, zp = _quant(out)
        if scale is None:
            raise LceImportError(f"LceDequantize output {out.name!r} has no quantization")
        x = op.packed_input(0, int(out.shape[-1]))
        y = binary.unbinarize(g, x, scale, zp, name=label)
    elif name == "LceBMaxPool2d":
        t = op.t(0)
        if t is not None and t.dtype == "int8":
            x = binary.binarize(g, op.int8_input(0), name=label + "/binarize")
        else:
            ch = op.input_channels(0)
            x = op.packed_input(0, ch if ch is not None else 32 * int(t.shape[-1]))
        y = binary.bmax_pool_2d(
            g, x, _pair(opts, "filter_height", "filter_width", "ksize"),
            _pair(opts, "stride_height", "stride_width", "strides"),
            _enum(opts, "padding", _PADDINGS), name=label)
    else:
        y = _bconv(op, opts, out, label)
    return [op.adopt(0, y)]


def _bconv(op: _Op, opts: dict, out: TflTensor, label: str) -> int:
    g = op.g
    filt = op.const(1, "filter")
    if filt.ndim != 4:
        raise LceImportError(f"LceBconv2d: filter shape {filt.shape}, expected 4-D OHWI")
    x_t = op.t(0)
    if x_t is not None and x_t.dtype == "int8":  # older LCE: the bconv bitpacks its input
        cin = int(x_t.shape[-1])
        x = binary.binarize(g, op.int8_input(0), name=label + "/binarize")
    else:
        if "channels_in" not in opts:
            raise LceImportError("LceBconv2d reads bit-packed input without a channels_in "
                                 "option")
        cin = int(opts["channels_in"])
        x = op.packed_input(0, cin)
    if filt.dtype == np.float32:  # older LCE: float +-1 filters, OHWI
        if filt.shape[3] != cin:
            raise LceImportError(f"LceBconv2d: float filter {filt.shape} for {cin} channels")
        filt = bitpack.pack_signs(filt)
    elif filt.dtype != np.int32 or filt.shape[3] != bitpack.words(cin):
        if filt.dtype == np.int32 and bitpack.words(cin) % filt.shape[3] == 0:
            raise LceImportError("LceBconv2d: grouped binary convolutions are not supported")
        raise LceImportError(f"LceBconv2d: filter {filt.dtype} {filt.shape} does not fit "
                             f"{cin} input channels")
    stride = _pair(opts, "stride_height", "stride_width", "strides", None)
    dilation = _pair(opts, "dilation_height_factor", "dilation_width_factor", "dilations", 1)
    padding = _enum(opts, "padding", _PADDINGS)
    pad_values = int(opts.get("pad_values", 0))
    activation = _enum(opts, "fused_activation_function", _ACTIVATIONS, "NONE")
    common = dict(stride=stride, dilation=dilation, padding=padding, pad_values=pad_values,
                  activation=activation, name=label)
    if out.dtype == "int32":
        thr = op.const(4, "thresholds")
        return binary.bconv_2d(g, x, filt, thresholds=thr.astype(np.int64), **common)
    if out.dtype != "int8":
        raise LceImportError(f"LceBconv2d with {out.dtype} output: tinyrt writes bit-packed "
                             "or int8 outputs")
    mul = op.const(2, "post_activation_multiplier")
    bias = op.const(3, "post_activation_bias")
    if mul.dtype != np.float32 or bias.dtype != np.float32:
        raise LceImportError(f"LceBconv2d: post-activation multiplier/bias are {mul.dtype}/"
                             f"{bias.dtype}, expected float32")
    scale, zp = _quant(out)
    if scale is None:
        raise LceImportError(f"LceBconv2d: int8 output {out.name!r} has no quantization")
    return binary.bconv_2d(g, x, filt, multiplier=mul, bias=bias, out_scale=scale,
                           out_zero_point=zp, **common)
