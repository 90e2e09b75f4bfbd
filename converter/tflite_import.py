"""Import an int8 .tflite model, with Larq Compute Engine binary layers or without, into a
tinyrt Graph.

converter/tflite_reader.py reads and validates the flatbuffer and folds shape-computing
subgraphs; here every remaining builtin operator is mapped to its builder in converter/layers
(imported per op, so a missing builder only stops models that use that op) and every LCE
custom op (CUSTOM(LceQuantize), CUSTOM(LceBconv2d), ...) to converter/lce_import.convert_lce_op.
Activations are int8, except the int32 tensors LCE's ops read and write, which are bit-packed
("packed" in the Graph). Anything tinyrt cannot run exactly as TensorFlow Lite Micro (or LCE)
does stops the import with UnsupportedModelError, whose message names the op (with its index in
the .tflite graph), the tensor or option at fault and what is supported.
"""

from __future__ import annotations

import hashlib
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from . import tflite_more_ops as more
from .graph import Graph
from .lce_import import LCE_OPS, convert_lce_op, lce_op_name
from .lstm_import import unidirectional_sequence_lstm
from .tflite_reader import (ACTIVATIONS, PADDINGS, TflModel, TflOp, TflTensor,
                            UnsupportedModelError, fold_constants, read_tflite, refuse_dtype)

__all__ = ["SUPPORTED_OPS", "TflModel", "UnsupportedModelError", "fold_constants",
           "import_tflite", "read_tflite"]


# --------------------------------------------------------------------------------------------
# dtype policy: int8 activations; int32 ones only as the bit-packed tensors of LCE ops; int16
# ones (TFLite's 16x8 mode, zero point 0) for the ops with a 16x8 kernel
INT16_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "PAD", "PADV2",
             "AVERAGE_POOL_2D", "MAX_POOL_2D", "QUANTIZE", "RESHAPE", "LEAKY_RELU", "ADD",
             "SOFTMAX", "STRIDED_SLICE", "SLICE", "TRANSPOSE")
STATE_OPS = ("UNIDIRECTIONAL_SEQUENCE_LSTM", "SVDF")  # int8 ops with an int16 state input


def _check_ops(m: TflModel, ops: list[TflOp], const: dict[int, np.ndarray]
               ) -> tuple[list[str], set[int]]:
    """Every op that is unsupported or has an activation of another type than int8 (or int32
    bit-packed, for LCE ops), then the model's inputs and outputs (int8, or bit-packed tensors
    of LCE ops). Returns (problems, indices of the ops at fault): every unsupported op is
    listed; of the dtype refusals only the first (they share one remedy: an int8 model)."""
    problems: list[str] = []
    bad: set[int] = set()
    dtype_reported = False

    def dtype_problem(op: TflOp | None, t: TflTensor, role: str) -> None:
        nonlocal dtype_reported
        if op is not None:
            bad.add(op.index)
        if t.dtype == "int16" and (op is None or op.name not in INT16_OPS):
            where = f"{op.describe()}: {role}" if op else role
            problems.append(f"{where} tensor {t.index} {t.name!r} is int16: this is a 16x8 "
                            "model (int16 activations); tinyrt runs int16 activations in "
                            f"{', '.join(INT16_OPS)} only")
            return
        if not dtype_reported:
            try:
                refuse_dtype(m, op, t, role)
            except UnsupportedModelError as e:
                problems.append(str(e))
            dtype_reported = True

    packed = set()
    floats = set()  # float32 outputs of DEQUANTIZE
    for op in ops:
        lce = lce_op_name(op.name) is not None
        if op.name not in _OPS and not lce:
            listed = any(" is not supported by tinyrt" in p for p in problems)
            problems.append(f"{op.describe()} is not supported by tinyrt either" if listed
                            else _unsupported_op_message(op))
            bad.add(op.index)
            continue
        allowed = ("int8", "int32") if lce else (
            ("int8", "int16") if op.name in INT16_OPS + STATE_OPS else ("int8",))
        if op.name == "DEQUANTIZE":  # int8 (or int16) in, float32 out
            allowed = ("int8", "int16", "float32")
            floats.update(i for i in op.outputs if m.tensors[i].dtype == "float32")
        for i in op.inputs + op.outputs:
            if i >= 0 and i not in const and m.tensors[i].dtype not in allowed:
                dtype_problem(op, m.tensors[i], "input" if i in op.inputs else "output")
            if lce and i >= 0 and m.tensors[i].dtype == "int32":
                packed.add(i)
    for role, ids in (("model input", m.inputs), ("model output", m.outputs)):
        for i in ids:
            if m.tensors[i].dtype not in ("int8", "int16") and i not in packed | floats:
                dtype_problem(None, m.tensors[i], role)
    return problems, bad


def _all_problems(problems: list[str]) -> UnsupportedModelError:
    """One error naming every problem found: the first one's message, then the others."""
    more = "".join(f"\n  - {p}" for p in problems[1:])
    head = problems[0]
    if more:
        head += f"\n{len(problems) - 1} more problem(s) stop this model:{more}"
    return UnsupportedModelError(head)


# --------------------------------------------------------------------------------------------
# Mapping ops onto the layer builders


@dataclass
class _Importer:
    m: TflModel
    const: dict[int, np.ndarray]
    g: Graph = field(default_factory=Graph)
    tmap: dict[int, int] = field(default_factory=dict)  # .tflite tensor -> graph tensor
    lce_tensors: list[TflTensor] | None = None
    problems: list[str] = field(default_factory=list)  # every refusal, in graph order
    skip: set[int] = field(default_factory=set)  # ops already refused (_check_ops)
    poisoned: set[int] = field(default_factory=set)  # outputs of refused ops, no stand-in

    def _stand_in(self, op: TflOp) -> None:
        """After a refused op, stand-in activations for its int8 outputs (so the ops after it
        are still checked), or mark them poisoned (ops reading them are skipped, unreported)."""
        for i in op.outputs:
            if i < 0 or i in self.tmap:
                continue
            t = self.t(i)
            if t.dtype == "int8" and t.quantized and not t.per_channel:
                self.tmap[i] = self.g.add_activation(t.name, t.shape, self.scale(i),
                                                     self.zero_point(i))
            else:
                self.poisoned.add(i)

    # -- tensors ------------------------------------------------------------------------------
    def t(self, i: int) -> TflTensor:
        return self.m.tensors[i]

    def scale(self, i: int) -> float:
        return float(self.t(i).scales[0])

    def zero_point(self, i: int) -> int:
        return int(self.t(i).zero_points[0])

    def value(self, op: TflOp, k: int, what: str) -> np.ndarray:
        """Constant input k of op (weights, bias, shape...)."""
        i = op.inputs[k] if k < len(op.inputs) else -1
        if i < 0 or i not in self.const:
            raise UnsupportedModelError(f"{op.describe()}: its {what} (input {k}) must be a "
                                        "constant tensor; computed at run time is not supported")
        return self.const[i]

    def act(self, op: TflOp, k: int = 0) -> int:
        """Graph index of activation input k (a constant int8 operand is added as a const)."""
        i = op.inputs[k] if k < len(op.inputs) else -1
        if i < 0:
            raise UnsupportedModelError(f"{op.describe()}: input {k} is missing")
        if i not in self.tmap:
            t = self.t(i)
            if i not in self.const:
                raise UnsupportedModelError(f"{op.describe()}: input {t.describe()} is "
                                            "produced by no op and is no model input")
            self.per_tensor(op, i, "input")
            self.tmap[i] = self.g.add_const(t.name, self.const[i], "int8", self.scale(i),
                                            self.zero_point(i))
        return self.tmap[i]

    def x(self, op: TflOp, k: int = 0, role: str = "input") -> int:
        """Graph index of int8 activation input k, checked to be quantized per tensor."""
        x = self.act(op, k)
        self.per_tensor(op, op.inputs[k], role)
        return x

    def per_tensor(self, op: TflOp, i: int, role: str) -> None:
        t = self.t(i)
        if not t.quantized:
            raise UnsupportedModelError(f"{op.describe()}: {role} {t.describe()} has no "
                                        "quantization parameters")
        if t.dtype == "int16" and not (t.scales[0] > 0 and t.zero_points[0] == 0):
            raise UnsupportedModelError(f"{op.describe()}: {role} {t.describe()} has scale "
                                        f"{t.scales[0]} and zero point {t.zero_points[0]}; "
                                        "int16 needs a positive scale and zero point 0")
        if t.dtype != "int16" and not (t.scales[0] > 0 and -128 <= t.zero_points[0] <= 127):
            raise UnsupportedModelError(f"{op.describe()}: {role} {t.describe()} has scale "
                                        f"{t.scales[0]} and zero point {t.zero_points[0]}; "
                                        "int8 needs a positive scale and -128 <= zp <= 127")
        if t.per_channel:
            raise UnsupportedModelError(f"{op.describe()}: {role} {t.describe()} is quantized "
                                        f"per channel ({t.scales.size} scales); activations "
                                        "must be per tensor")

    def weights(self, op: TflOp, k: int, axis: int) -> tuple[np.ndarray, np.ndarray]:
        """(int8 weights, float32 scales) of input k, per-channel along `axis` or per tensor."""
        w = self.value(op, k, "weights")
        t = self.t(op.inputs[k])
        if t.dtype != "int8" or not t.quantized:
            raise UnsupportedModelError(f"{op.describe()}: weights {t.describe()} are "
                                        f"{t.dtype}{'' if t.quantized else ' without scales'};"
                                        " int8 quantized weights are required")
        if np.any(t.zero_points != 0):
            raise UnsupportedModelError(f"{op.describe()}: weights {t.describe()} have a "
                                        "nonzero zero point; int8 weights must be symmetric")
        if t.per_channel:
            stored = 0 if len(t.shape) == 1 else t.quantized_dimension
            if stored != axis or t.shape[axis] != t.scales.size:
                raise UnsupportedModelError(
                    f"{op.describe()}: weights {t.describe()} shape {t.shape} are quantized "
                    f"per channel on axis {stored} ({t.scales.size} scales); {op.name} needs "
                    f"axis {axis}")
        return w, t.scales

    def bias(self, op: TflOp, k: int, n: int, wide: bool = False) -> np.ndarray | None:
        """Bias input k: int32, or with wide (16x8 ops) int32 or int64, as int64."""
        if k >= len(op.inputs) or op.inputs[k] < 0:
            return None
        b = self.value(op, k, "bias")
        t = self.t(op.inputs[k])
        if wide and t.dtype in ("int32", "int64"):
            if b.size != n:
                raise UnsupportedModelError(f"{op.describe()}: bias {t.describe()} has "
                                            f"{b.size} values for {n} channels")
            return b.reshape(n).astype(np.int64)
        if t.dtype != "int32":
            raise UnsupportedModelError(f"{op.describe()}: bias {t.describe()} is {t.dtype}; "
                                        "int32 is required (int64 bias is for 16x8 models)")
        if b.size != n:  # a 1-D per-channel bias is axis 0 whatever its stored axis says
            raise UnsupportedModelError(f"{op.describe()}: bias {t.describe()} has {b.size} "
                                        f"values for {n} channels")
        return b.reshape(n).astype(np.int32)

    def activation(self, op: TflOp) -> str:
        code = op.options.FusedActivationFunction() if op.options is not None else 0
        name = ACTIVATIONS.get(code, str(code))
        if name not in ("NONE", "RELU", "RELU6", "RELU_N1_TO_1"):
            raise UnsupportedModelError(f"{op.describe()}: fused activation {name} is not "
                                        "supported (NONE, RELU, RELU6, RELU_N1_TO_1 are)")
        return name

    def out(self, op: TflOp, k: int = 0) -> tuple[float, int]:
        i = op.outputs[k]
        self.per_tensor(op, i, "output")
        return self.scale(i), self.zero_point(i)

    # -- ops ----------------------------------------------------------------------------------
    def run(self, kept: list[TflOp]) -> Graph:
        """Convert the kept ops in graph order. int8 model inputs are made first; a bit-packed
        (int32) one is made by the LCE op that reads it (which knows its channel count), so the
        graph's inputs are set once every op is converted."""
        m, g = self.m, self.g
        for i in m.inputs:
            t = self.t(i)
            if t.dtype not in ("int8", "int16"):
                continue
            zp_ok = (t.quantized and (-128 <= t.zero_points[0] <= 127 if t.dtype == "int8"
                                      else t.zero_points[0] == 0))
            if not t.quantized or t.per_channel or not t.scales[0] > 0 or not zp_ok:
                raise UnsupportedModelError(f"model input {t.describe()} needs per-tensor "
                                            f"{t.dtype} quantization parameters"
                                            + (" (zero point 0)" if t.dtype == "int16" else ""))
            self.tmap[i] = g.add_activation(t.name, t.shape, self.scale(i), self.zero_point(i),
                                            t.dtype)
        read = set()  # tensors read by an op that was converted or refused
        for op in kept:
            read.update(op.inputs)
            if op.index in self.skip or any(i in self.poisoned for i in op.inputs):
                self._stand_in(op)
                continue
            try:
                self.op(op)
            except UnsupportedModelError as e:
                self.problems.append(str(e))
                self._stand_in(op)
        for role, ids, why in (("input", m.inputs, "is read by no op"),
                               ("output", m.outputs, "is computed by no op (a constant output "
                                                     "is not supported)")):
            for i in ids:
                if role == "input" and i in read:
                    continue  # its reader was converted, or refused with its own problem
                if i not in self.tmap and i not in self.poisoned:
                    self.problems.append(f"model {role} {self.t(i).describe()} {why}")
        if self.problems:
            raise _all_problems(self.problems)
        g.inputs = [self.tmap[i] for i in m.inputs]
        g.outputs = [self.tmap[i] for i in m.outputs]
        return g

    def op(self, op: TflOp) -> None:
        if lce_op_name(op.name) is not None:
            self.lce_op(op)
            return
        if op.name not in _OPS:
            raise UnsupportedModelError(_unsupported_op_message(op))
        handler, module, func = _OPS[op.name]
        build = _builder(op, module, func)
        first = len(self.g.tensors)
        layer = _layer_name(self.t(op.outputs[0]).name) if op.outputs else op.name
        try:
            outs = handler(self, op, layer, build)
        except UnsupportedModelError:
            raise
        except ValueError as e:  # the builder refused its arguments
            raise UnsupportedModelError(f"{op.describe()}: {e}") from None
        outs = [outs] if isinstance(outs, int) else list(outs)
        self._adopt(op, first, layer, outs)

    def lce_op(self, op: TflOp) -> None:
        """A Larq Compute Engine custom op: lce_import converts it and enters its outputs (and
        a bit-packed model input it reads) in tmap."""
        for i in op.inputs:
            if i >= 0 and i not in self.tmap and i not in self.const and i not in self.m.inputs:
                raise UnsupportedModelError(f"{op.describe()}: input {self.t(i).describe()} "
                                            "is produced by no op and is no model input")
        if self.lce_tensors is None:  # the reader's tensors, with folded constants as data
            self.lce_tensors = [t if t.data is not None or t.index not in self.const
                                else replace(t, data=self.const[t.index]) for t in self.m.tensors]
        try:
            convert_lce_op(self.g, op.name, op.custom_options, op.inputs, op.outputs,
                           self.lce_tensors, self.tmap)
        except (ValueError, TypeError, KeyError, IndexError) as e:  # refused, or bad options
            raise UnsupportedModelError(f"{op.describe()}: {e}") from None

    def _adopt(self, op: TflOp, first: int, layer: str, outs: list[int]) -> None:
        """Name the builder's tensors after the .tflite's and check its outputs agree."""
        renames = {f"{layer}/weights": 1, f"{layer}/bias": 2}
        for gi in range(first, len(self.g.tensors)):
            k = renames.get(self.g.tensors[gi].name)
            if k is not None and k < len(op.inputs) and op.inputs[k] >= 0:
                self.g.tensors[gi].name = self.t(op.inputs[k]).name
        for k, gi in enumerate(outs):
            t, gt = self.t(op.outputs[k]), self.g.tensors[gi]
            if int(np.prod(gt.shape)) != int(np.prod(t.shape)):
                raise UnsupportedModelError(f"{op.describe()}: tinyrt computes output shape "
                                            f"{gt.shape}, the model says {t.shape} for "
                                            f"{t.describe()}")
            if gi in self.tmap.values():  # an op passing its input through (e.g. reshape)
                raise UnsupportedModelError(f"{op.describe()}: builder returned an existing "
                                            "tensor as its output")
            if tuple(gt.shape) != tuple(t.shape):
                if op.name != "FULLY_CONNECTED":  # keep_num_dims: same data, more dims
                    raise UnsupportedModelError(f"{op.describe()}: tinyrt computes output "
                                                f"shape {gt.shape}, the model says {t.shape}")
                gt.shape = tuple(t.shape)
            gt.name = t.name
            if gt.dtype != t.dtype:
                raise UnsupportedModelError(f"{op.describe()}: tinyrt computes a {gt.dtype} "
                                            f"output, the model says {t.dtype} for "
                                            f"{t.describe()}")
            if gt.dtype == "float32":  # DEQUANTIZE's real values: no quantization
                self.tmap[op.outputs[k]] = gi
                continue
            self.per_tensor(op, op.outputs[k], "output")
            if (np.float32(gt.scale) != t.scales[0] or gt.zero_point != t.zero_points[0]):
                raise UnsupportedModelError(f"{op.describe()}: output {t.describe()} has "
                                            f"scale {t.scales[0]} zero point "
                                            f"{t.zero_points[0]}; tinyrt's {op.name} produces "
                                            f"scale {gt.scale} zero point {gt.zero_point}")
            self.tmap[op.outputs[k]] = gi


def _layer_name(tensor_name: str) -> str:
    """A short layer name from a .tflite tensor name ('a/b/Relu;a/b/BiasAdd;...' -> 'a/b/Relu')."""
    return tensor_name.split(";")[0] or "layer"


def _builder(op: TflOp, module: str, func: str) -> Callable:
    try:
        return getattr(importlib.import_module(f"converter.layers.{module}"), func)
    except (ImportError, AttributeError) as e:
        raise UnsupportedModelError(
            f"{op.describe()}: this converter has no builder for {op.name} yet "
            f"(converter.layers.{module}.{func}: {type(e).__name__}: {e}); "
            f"supported ops: {', '.join(supported_ops())}") from None


def _unsupported_op_message(op: TflOp) -> str:
    return (f"{op.describe()} is not supported by tinyrt; supported ops: "
            f"{', '.join(supported_ops())} (shape computations on constants, such as "
            "SHAPE, are folded at conversion)")


# -- handlers: op -> builder call --------------------------------------------------------------


def _fully_connected(im: _Importer, op: TflOp, name: str, build: Callable) -> int:
    o = op.options
    if o is not None and o.WeightsFormat() != 0:
        raise UnsupportedModelError(f"{op.describe()}: weights_format "
                                    f"{o.WeightsFormat()} (shuffled) is not supported")
    w, scales = im.weights(op, 1, axis=0)
    if w.ndim != 2:
        raise UnsupportedModelError(f"{op.describe()}: weights shape {w.shape}, expected 2-D")
    x = im.x(op, 0)
    if im.t(op.inputs[0]).dtype == "int16":  # 16x8 mode
        from .layers.int16 import fully_connected_16x8

        b = im.bias(op, 2, w.shape[0], wide=True)
        scale, _ = im.out(op)
        return fully_connected_16x8(im.g, x, w, scales, b, scale, activation=im.activation(op),
                                    name=name)
    b = im.bias(op, 2, w.shape[0])
    scale, zp = im.out(op)
    return build(im.g, x, w, scales, b, scale, zp, activation=im.activation(op), name=name)


def _padding(op: TflOp) -> str:
    name = PADDINGS.get(op.options.Padding(), str(op.options.Padding()))
    if name not in ("SAME", "VALID"):
        raise UnsupportedModelError(f"{op.describe()}: padding {name} is not supported "
                                    "(SAME, VALID are)")
    return name


def _conv_geometry(op: TflOp) -> dict:
    o = op.options
    return {"stride": (o.StrideH(), o.StrideW()),
            "dilation": (o.DilationHFactor() or 1, o.DilationWFactor() or 1),
            "padding": _padding(op)}


def _conv2d(im: _Importer, op: TflOp, name: str, build: Callable) -> int:
    w, scales = im.weights(op, 1, axis=0)
    x = im.x(op, 0)
    xs = im.t(op.inputs[0]).shape
    if w.ndim != 4 or len(xs) != 4 or xs[3] != w.shape[3]:
        raise UnsupportedModelError(f"{op.describe()}: filter shape {w.shape} for input shape "
                                    f"{xs}; only ungrouped NHWC convolutions are supported")
    if im.t(op.inputs[0]).dtype == "int16":  # 16x8 mode
        from .layers.int16 import conv2d_16x8

        b = im.bias(op, 2, w.shape[0], wide=True)
        scale, _ = im.out(op)
        return conv2d_16x8(im.g, x, w, scales, b, scale, activation=im.activation(op),
                           name=name, **_conv_geometry(op))
    b = im.bias(op, 2, w.shape[0])
    scale, zp = im.out(op)
    return build(im.g, x, w, scales, b, scale, zp, activation=im.activation(op), name=name,
                 **_conv_geometry(op))


def _depthwise_conv2d(im: _Importer, op: TflOp, name: str, build: Callable) -> int:
    w, scales = im.weights(op, 1, axis=3)
    x = im.x(op, 0)
    xs = im.t(op.inputs[0]).shape
    if w.ndim != 4 or w.shape[0] != 1 or len(xs) != 4 or w.shape[3] % xs[3]:
        raise UnsupportedModelError(f"{op.describe()}: filter shape {w.shape} for input shape "
                                    f"{xs}, expected (1, KH, KW, C * depth_multiplier)")
    dm = w.shape[3] // xs[3]
    stored = op.options.DepthMultiplier()
    if stored not in (0, dm):
        raise UnsupportedModelError(f"{op.describe()}: depth_multiplier option {stored} but "
                                    f"the shapes give {dm}")
    if im.t(op.inputs[0]).dtype == "int16":  # 16x8 mode
        from .layers.int16 import depthwise_conv2d_16x8

        scale, _ = im.out(op)
        return depthwise_conv2d_16x8(im.g, x, w, scales, im.bias(op, 2, w.shape[3], wide=True),
                                     scale, depth_multiplier=dm, activation=im.activation(op),
                                     name=name, **_conv_geometry(op))
    b = im.bias(op, 2, w.shape[3])
    scale, zp = im.out(op)
    return build(im.g, x, w, scales, b, scale, zp, depth_multiplier=dm,
                 activation=im.activation(op), name=name, **_conv_geometry(op))


def _pool(im: _Importer, op: TflOp, name: str, build: Callable) -> int:
    o = op.options
    if im.t(op.inputs[0]).dtype == "int16":  # 16x8 mode
        from .layers import int16_ops

        build = (int16_ops.average_pool2d_16 if op.name == "AVERAGE_POOL_2D"
                 else int16_ops.max_pool2d_16)
    return build(im.g, im.x(op, 0), (o.FilterHeight(), o.FilterWidth()),
                 (o.StrideH(), o.StrideW()), padding=_padding(op),
                 activation=im.activation(op), name=name)


def _elementwise(im: _Importer, op: TflOp, name: str, build: Callable) -> int:
    if len(op.inputs) != 2:
        raise UnsupportedModelError(f"{op.describe()}: {len(op.inputs)} inputs, expected 2")
    x1, x2 = im.x(op, 0, "input 0"), im.x(op, 1, "input 1")
    scale, zp = im.out(op)
    if op.name == "ADD" and im.t(op.inputs[0]).dtype == "int16":  # 16x8 mode
        from .layers.int16_ops import add_16

        return add_16(im.g, x1, x2, scale, activation=im.activation(op), name=name)
    return build(im.g, x1, x2, scale, zp, activation=im.activation(op), name=name)


def _max_min(im: _Importer, op: TflOp, name: str, build: Callable) -> int:
    if len(op.inputs) != 2:
        raise UnsupportedModelError(f"{op.describe()}: {len(op.inputs)} inputs, expected 2")
    x1, x2 = im.x(op, 0, "input 0"), im.x(op, 1, "input 1")
    scale, zp = im.out(op)
    return build(im.g, x1, x2, scale, zp, name=name)


def _unary(im: _Importer, op: TflOp, name: str, build: Callable) -> int:
    """LEAKY_RELU, RELU, RELU6, HARD_SWISH: int8 -> int8 tables (layers/unary.py)."""
    x = im.x(op, 0)
    scale, zp = im.out(op)
    if op.name == "LEAKY_RELU":
        alpha = float(op.options.Alpha()) if op.options is not None else 0.0
        if im.t(op.inputs[0]).dtype == "int16":  # 16x8 mode
            from .layers.int16_ops import leaky_relu_16

            return leaky_relu_16(im.g, x, alpha, scale, name=name)
        return build(im.g, x, alpha, scale, zp, name=name)
    return build(im.g, x, scale, zp, name=name)


def _tanh(im: _Importer, op: TflOp, name: str, build: Callable) -> int:
    x = im.x(op, 0)
    scale, zp = im.out(op)
    if np.float32(scale) != np.float32(1.0 / 128) or zp != 0:
        raise UnsupportedModelError(f"{op.describe()}: output scale {scale} zero point {zp}; "
                                    "TFLM's int8 TANH needs scale 1/128, zero point 0")
    return build(im.g, x, name=name)


def _quantize(im: _Importer, op: TflOp, name: str, build: Callable) -> int:
    x = im.x(op, 0)
    scale, zp = im.out(op)
    out_dtype = im.t(op.outputs[0]).dtype
    if "int16" in (im.t(op.inputs[0]).dtype, out_dtype):  # 16x8 mode
        from .layers.int16_ops import quantize_16

        return quantize_16(im.g, x, scale, zp, out_dtype, name=name)
    return build(im.g, x, scale, zp, name=name)


def _softmax(im: _Importer, op: TflOp, name: str, build: Callable) -> int:
    x = im.x(op, 0)
    im.out(op)
    beta = float(op.options.Beta()) if op.options is not None else 1.0
    if im.t(op.inputs[0]).dtype == "int16":  # 16x8 mode
        from .layers.int16_ops import softmax_16

        return softmax_16(im.g, x, beta=beta, name=name)
    return build(im.g, x, beta=beta, name=name)


def _logistic(im: _Importer, op: TflOp, name: str, build: Callable) -> int:
    x = im.x(op, 0)
    im.out(op)
    return build(im.g, x, name=name)


def _reshape(im: _Importer, op: TflOp, name: str, build: Callable) -> int:
    """RESHAPE, SQUEEZE and EXPAND_DIMS: the data as it is, under the output's shape."""
    x = im.act(op, 0)
    xt, yt = im.t(op.inputs[0]), im.t(op.outputs[0])
    if op.name == "RESHAPE":
        if len(op.inputs) > 1 and op.inputs[1] >= 0:
            new_shape = [int(d) for d in im.value(op, 1, "shape").ravel()]
        elif op.options is not None and op.options.NewShapeLength():
            new_shape = [int(d) for d in op.options.NewShapeAsNumpy()]
        else:
            new_shape = list(yt.shape)
        if -1 in new_shape and new_shape.count(-1) == 1:
            rest = -int(np.prod(new_shape))
            new_shape[new_shape.index(-1)] = int(np.prod(xt.shape)) // max(rest, 1)
        if tuple(new_shape) != tuple(yt.shape):
            raise UnsupportedModelError(f"{op.describe()}: shape input {new_shape} disagrees "
                                        f"with the output shape {yt.shape}")
    return build(im.g, x, list(yt.shape), name=name)


def _pad(im: _Importer, op: TflOp, name: str, build: Callable) -> int:
    x = im.x(op, 0)
    paddings = im.value(op, 1, "paddings")
    _, zp = im.out(op)
    if op.name == "PADV2" and len(op.inputs) > 2 and op.inputs[2] >= 0:
        value = int(np.asarray(im.value(op, 2, "constant value")).ravel()[0])
        if value != zp:
            raise UnsupportedModelError(f"{op.describe()}: pads with {value}; only padding "
                                        f"with the zero point ({zp}, real 0) is supported")
    return build(im.g, x, paddings.reshape(-1, 2), name=name)


def _mean(im: _Importer, op: TflOp, name: str, build: Callable) -> int:
    x = im.x(op, 0)
    axes = im.value(op, 1, "axes").ravel()
    scale, zp = im.out(op)
    keep = bool(op.options.KeepDims()) if op.options is not None else False
    return build(im.g, x, axes, keep_dims=keep, out_scale=scale, out_zero_point=zp, name=name)


def _concatenation(im: _Importer, op: TflOp, name: str, build: Callable) -> int:
    if im.activation(op) != "NONE":
        raise UnsupportedModelError(f"{op.describe()}: a fused activation on CONCATENATION "
                                    "is not supported for int8")
    xs = [im.act(op, k) for k in range(len(op.inputs))]
    scale, zp = im.out(op)
    for k, i in enumerate(op.inputs):
        im.per_tensor(op, i, f"input {k}")
        if im.t(i).scales[0] != np.float32(scale) or im.zero_point(i) != zp:
            raise UnsupportedModelError(
                f"{op.describe()}: input {k} {im.t(i).describe()} is quantized with scale "
                f"{im.t(i).scales[0]} zero point {im.zero_point(i)}, the output with {scale} "
                f"{zp}; TFLM's int8 CONCATENATION needs them equal")
    return build(im.g, xs, int(op.options.Axis()), out_scale=scale, out_zero_point=zp,
                 name=name)


# op name -> (its handler, the builder module and function it calls, passed as `build`)
_OPS: dict[str, tuple[Callable, str, str]] = {
    "FULLY_CONNECTED": (_fully_connected, "fully_connected", "fully_connected"),
    "CONV_2D": (_conv2d, "conv", "conv2d"),
    "DEPTHWISE_CONV_2D": (_depthwise_conv2d, "conv", "depthwise_conv2d"),
    "AVERAGE_POOL_2D": (_pool, "pool", "average_pool2d"),
    "MAX_POOL_2D": (_pool, "pool", "max_pool2d"),
    "ADD": (_elementwise, "elementwise", "add"),
    "MUL": (_elementwise, "elementwise", "mul"),
    "SUB": (_elementwise, "elementwise", "sub"),
    "MAXIMUM": (_max_min, "elementwise", "maximum"),
    "MINIMUM": (_max_min, "elementwise", "minimum"),
    "LEAKY_RELU": (_unary, "unary", "leaky_relu"),
    "RELU": (_unary, "unary", "relu"),
    "RELU6": (_unary, "unary", "relu6"),
    "HARD_SWISH": (_unary, "unary", "hard_swish"),
    "TANH": (_tanh, "unary", "tanh"),
    "QUANTIZE": (_quantize, "elementwise", "quantize"),
    "SOFTMAX": (_softmax, "activations", "softmax"),
    "LOGISTIC": (_logistic, "activations", "logistic"),
    "RESHAPE": (_reshape, "shape", "reshape"),
    "SQUEEZE": (_reshape, "shape", "reshape"),
    "EXPAND_DIMS": (_reshape, "shape", "reshape"),
    "PAD": (_pad, "shape", "pad"),
    "PADV2": (_pad, "shape", "pad"),
    "MEAN": (_mean, "shape", "mean"),
    "CONCATENATION": (_concatenation, "shape", "concatenation"),
    "UNIDIRECTIONAL_SEQUENCE_LSTM": (unidirectional_sequence_lstm, "lstm",
                                     "unidirectional_sequence_lstm"),
    "STRIDED_SLICE": (more.strided_slice, "movement", "strided_slice"),
    "SLICE": (more.slice_, "movement", "slice_"),
    "TRANSPOSE": (more.transpose, "movement", "transpose"),
    "SPLIT": (more.split, "movement", "split"),
    "SPLIT_V": (more.split, "movement", "split"),
    "PACK": (more.pack, "movement", "pack"),
    "UNPACK": (more.unpack, "movement", "unpack"),
    "GATHER": (more.gather, "movement", "gather"),
    "DEPTH_TO_SPACE": (more.space_depth, "movement", "depth_to_space"),
    "SPACE_TO_DEPTH": (more.space_depth, "movement", "space_to_depth"),
    "REVERSE_V2": (more.reverse, "movement", "reverse"),
    "MIRROR_PAD": (more.mirror_pad, "movement", "mirror_pad"),
    "BATCH_TO_SPACE_ND": (more.batch_to_space_nd, "movement", "batch_to_space_nd"),
    "BROADCAST_TO": (more.broadcast_to, "movement", "broadcast_to"),
    "GATHER_ND": (more.gather_nd, "movement", "gather_nd"),
    "REDUCE_MAX": (more.reduce_extreme, "reduce", "reduce_extreme"),
    "REDUCE_MIN": (more.reduce_extreme, "reduce", "reduce_extreme"),
    "ABS": (more.unary, "arith", "abs_"),
    "PRELU": (more.prelu, "arith", "prelu"),
    "RESIZE_NEAREST_NEIGHBOR": (more.resize, "resize", "resize_nearest_neighbor"),
    "RESIZE_BILINEAR": (more.resize, "resize", "resize_bilinear"),
    "SQUARED_DIFFERENCE": (more.squared_difference, "arith", "squared_difference"),
    "RSQRT": (more.unary, "arith", "rsqrt"),
    "BATCH_MATMUL": (more.batch_matmul, "matmul", "batch_matmul"),
    "TRANSPOSE_CONV": (more.transpose_conv, "transpose_conv", "transpose_conv"),
    "DEQUANTIZE": (more.dequantize, "arith", "dequantize"),
    "SVDF": (more.svdf, "svdf", "svdf"),
}
SUPPORTED_OPS = tuple(sorted(_OPS))  # builtin ops; LCE's custom ops: lce_import.LCE_OPS


def supported_ops() -> list[str]:
    """The builtin ops this converter maps whose builder is present (imported to check), then
    the LCE custom ops."""
    ok = []
    for name in SUPPORTED_OPS:
        _, module, func = _OPS[name]
        try:
            getattr(importlib.import_module(f"converter.layers.{module}"), func)
        except (ImportError, AttributeError):
            continue
        ok.append(name)
    return ok + [f"CUSTOM({name})" for name in LCE_OPS]


# --------------------------------------------------------------------------------------------


def import_tflite(data: bytes, source_name: str | None = None) -> Graph:
    """The tinyrt Graph of an int8 .tflite model, LCE binary layers included (raises
    UnsupportedModelError)."""
    data = bytes(data)
    m = read_tflite(data)
    if not m.inputs or not m.outputs:
        raise UnsupportedModelError("the model's subgraph declares no inputs or no outputs")
    from .compress_tflm import decode_tflm_ops

    decode_tflm_ops(m)  # TFLM's LUT-compressed tensors, expanded to their values
    kept, folded, const = fold_constants(m)
    problems, bad = _check_ops(m, kept, const)
    g = _Importer(m, const, problems=problems, skip=bad).run(kept)
    used = {i for op in kept for i in op.inputs if i in const and m.tensors[i].quantized}
    binary = sum(int(np.prod(t.shape)) for t in g.tensors if t.is_const and t.dtype == "packed")
    g.metadata.update({
        "parameters": int(sum(const[i].size for i in used)) + binary,  # binary weights: bits
        "source_sha256": hashlib.sha256(data).hexdigest(),
        "source_ops": [op.name for op in m.ops],
        "folded_ops": [f"{op.index}:{op.name}" for op in folded],
        "source_description": m.description,
    })
    if binary:
        g.metadata["binary_parameters"] = binary
    if source_name:
        g.metadata["source"] = source_name
    return g
