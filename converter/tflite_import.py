"""Import an int8 .tflite model into a tinyrt Graph.

The flatbuffer is read with the `tflite` package. Shape-computing subgraphs (SHAPE,
STRIDED_SLICE, PACK, ... on constant data) are evaluated here with numpy and disappear; every
remaining builtin operator is mapped to its builder in converter/layers (imported per op, so a
missing builder only stops models that use that op). Anything tinyrt cannot run exactly as
TensorFlow Lite Micro does stops the import with UnsupportedModelError, whose message names the
op (with its index in the .tflite graph), the tensor or option at fault and what is supported.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache

import numpy as np
import tflite

from .graph import Graph

__all__ = ["SUPPORTED_OPS", "UnsupportedModelError", "import_tflite"]


class UnsupportedModelError(ValueError):
    """The .tflite file uses an op, dtype or option tinyrt cannot import (or is no .tflite)."""


def _enum_names(enum: type) -> dict[int, str]:
    return {v: k for k, v in vars(enum).items() if not k.startswith("_") and isinstance(v, int)}


_OP_NAMES = _enum_names(tflite.BuiltinOperator)
_TYPE_NAMES = {k: v.lower() for k, v in _enum_names(tflite.TensorType).items()}
_OPTION_TABLES = _enum_names(tflite.BuiltinOptions)
_ACTIVATIONS = _enum_names(tflite.ActivationFunctionType)
_PADDINGS = _enum_names(tflite.Padding)
_NUMPY = {"int8": np.int8, "uint8": np.uint8, "int16": np.int16, "int32": np.int32,
          "int64": np.int64, "float32": np.float32, "bool": np.bool_}


# --------------------------------------------------------------------------------------------
# Reading the flatbuffer


@dataclass
class TflTensor:
    index: int
    name: str
    dtype: str  # 'int8', 'int32', 'float32', ... (TensorType name, lower case)
    shape: tuple[int, ...]
    scales: np.ndarray | None  # float32, None when the tensor has no quantization
    zero_points: np.ndarray | None
    quantized_dimension: int
    data: np.ndarray | None  # constant tensors: the values, in `shape`

    @property
    def quantized(self) -> bool:
        return self.scales is not None

    @property
    def per_channel(self) -> bool:
        return self.scales is not None and self.scales.size > 1

    def describe(self) -> str:
        return f"tensor {self.index} {self.name!r}"


@dataclass
class TflOp:
    index: int
    name: str  # BuiltinOperator name, or 'CUSTOM(code)'
    inputs: list[int]  # -1: optional input absent
    outputs: list[int]
    options: object | None  # the parsed builtin options table, if any

    def describe(self) -> str:
        return f"op {self.index} ({self.name})"


@dataclass
class TflModel:
    tensors: list[TflTensor]
    ops: list[TflOp]
    inputs: list[int]
    outputs: list[int]
    description: str = ""


def _options(op: tflite.Operator) -> object | None:
    table_name = _OPTION_TABLES.get(op.BuiltinOptionsType(), "NONE")
    table = op.BuiltinOptions()
    if table_name == "NONE" or table is None:
        return None
    opts = getattr(tflite, table_name)()
    opts.Init(table.Bytes, table.Pos)
    for getter in _getters(type(opts)):  # read every field now: a corrupt one fails here
        getattr(opts, getter)()
    return opts


@cache
def _getters(cls: type) -> tuple[str, ...]:
    """The argument-free field accessors of a flatc-generated options class."""
    out = []
    for name, f in vars(cls).items():
        if name[:1].isupper() and callable(f) and name != "Init" \
                and not name.startswith("GetRootAs"):
            params = inspect.signature(f).parameters
            if len(params) == 1:
                out.append(name)
    return tuple(out)


def _tensor(model: tflite.Model, t: tflite.Tensor, index: int) -> TflTensor:
    dtype = _TYPE_NAMES.get(t.Type(), f"type{t.Type()}")
    shape = tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else ()
    scales = zps = None
    qdim = 0
    q = t.Quantization()
    if q is not None and q.ScaleLength():
        scales = np.asarray(q.ScaleAsNumpy(), dtype=np.float32)
        zps = (np.asarray(q.ZeroPointAsNumpy(), dtype=np.int64) if q.ZeroPointLength()
               else np.zeros(scales.size, np.int64))
        qdim = int(q.QuantizedDimension())
    data = None
    buf = model.Buffers(t.Buffer()) if t.Buffer() < model.BuffersLength() else None
    if buf is not None and buf.DataLength():
        if dtype not in _NUMPY:
            raise UnsupportedModelError(f"tensor {index} {t.Name().decode()!r}: constant data "
                                        f"of type {dtype}, not supported")
        raw = buf.DataAsNumpy().tobytes()
        data = np.frombuffer(raw, dtype=np.dtype(_NUMPY[dtype]).newbyteorder("<"))
        data = data.astype(_NUMPY[dtype]).reshape(shape)
    elif buf is not None and buf.Offset():
        raise UnsupportedModelError(f"tensor {index} {t.Name().decode()!r}: constant data "
                                    "stored outside the flatbuffer (files > 2 GB), not supported")
    return TflTensor(index, t.Name().decode("utf-8", "replace"), dtype, shape, scales, zps,
                     qdim, data)


def read_tflite(data: bytes) -> TflModel:
    """The first subgraph of a .tflite flatbuffer as plain Python objects."""
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise UnsupportedModelError("not a .tflite file (no TFL3 identifier at byte 4)")
    try:
        model = tflite.Model.GetRootAs(data, 0)
        if model.SubgraphsLength() != 1:
            raise UnsupportedModelError(f"the model has {model.SubgraphsLength()} subgraphs; "
                                        "tinyrt imports single-subgraph models only")
        sg = model.Subgraphs(0)
        tensors = [_tensor(model, sg.Tensors(i), i) for i in range(sg.TensorsLength())]
        ops = []
        for i in range(sg.OperatorsLength()):
            op = sg.Operators(i)
            code = model.OperatorCodes(op.OpcodeIndex())
            builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
            name = _OP_NAMES.get(builtin, f"BUILTIN_{builtin}")
            if name == "CUSTOM":
                name = f"CUSTOM({(code.CustomCode() or b'?').decode()})"
            ins = [int(v) for v in op.InputsAsNumpy()] if op.InputsLength() else []
            outs = [int(v) for v in op.OutputsAsNumpy()] if op.OutputsLength() else []
            ops.append(TflOp(i, name, ins, outs, _options(op)))
        inputs = [int(v) for v in sg.InputsAsNumpy()] if sg.InputsLength() else []
        outputs = [int(v) for v in sg.OutputsAsNumpy()] if sg.OutputsLength() else []
        desc = (model.Description() or b"").decode("utf-8", "replace")
    except UnsupportedModelError:
        raise
    except Exception as e:  # noqa: BLE001 - a malformed flatbuffer fails anywhere inside
        raise UnsupportedModelError(f"cannot read the .tflite flatbuffer: "
                                    f"{type(e).__name__}: {e}") from None
    m = TflModel(tensors, ops, inputs, outputs, desc)
    _validate(m)
    return m


# Options table of each op this module reads options from (TFLite schema); ops marked True
# cannot do without theirs.
_OPTIONS_TABLE: dict[str, tuple[str, bool]] = {
    "FULLY_CONNECTED": ("FullyConnectedOptions", False),
    "CONV_2D": ("Conv2DOptions", True),
    "DEPTHWISE_CONV_2D": ("DepthwiseConv2DOptions", True),
    "AVERAGE_POOL_2D": ("Pool2DOptions", True),
    "MAX_POOL_2D": ("Pool2DOptions", True),
    "ADD": ("AddOptions", False),
    "SUB": ("SubOptions", False),
    "MUL": ("MulOptions", False),
    "SOFTMAX": ("SoftmaxOptions", False),
    "RESHAPE": ("ReshapeOptions", False),
    "CONCATENATION": ("ConcatenationOptions", True),
    "MEAN": ("ReducerOptions", False),
    "SUM": ("ReducerOptions", True),
    "REDUCE_PROD": ("ReducerOptions", True),
    "SHAPE": ("ShapeOptions", False),
    "STRIDED_SLICE": ("StridedSliceOptions", True),
    "PACK": ("PackOptions", True),
    "UNPACK": ("UnpackOptions", True),
    "GATHER": ("GatherOptions", False),
}


def _validate(m: TflModel) -> None:
    """Indices inside the tensor table, sane shapes and quantization, the options table each op
    needs: later code relies on it."""
    n = len(m.tensors)
    for op in m.ops:
        table, needed = _OPTIONS_TABLE.get(op.name, (None, False))
        found = type(op.options).__name__ if op.options is not None else None
        if table and (found not in (None, table) or (needed and found is None)):
            raise UnsupportedModelError(f"malformed .tflite: {op.describe()} has options "
                                        f"{found}, expected {table}")
    for role, ids in (("input", m.inputs), ("output", m.outputs)):
        bad = [i for i in ids if not 0 <= i < n]
        if bad:
            raise UnsupportedModelError(f"malformed .tflite: model {role} tensor index {bad[0]} "
                                        f"outside the {n} tensors")
    for op in m.ops:
        bad = [i for i in op.inputs + op.outputs if not -1 <= i < n]
        if bad or -1 in op.outputs or not op.outputs:
            raise UnsupportedModelError(f"malformed .tflite: {op.describe()} refers to tensor "
                                        f"{bad[0] if bad else -1} (the model has {n})")
    for t in m.tensors:
        if any(d < 1 for d in t.shape):
            raise UnsupportedModelError(f"{t.describe()}: shape {t.shape}; dynamic or empty "
                                        "dimensions are not supported")
        if t.quantized and (t.zero_points.size not in (1, t.scales.size)
                            or not np.all(np.isfinite(t.scales)) or np.any(t.scales < 0)
                            or np.any(np.abs(t.zero_points) > 2**31 - 1)):
            raise UnsupportedModelError(f"malformed .tflite: {t.describe()} has "
                                        f"{t.scales.size} scales {t.scales[:4]} and zero "
                                        f"points {t.zero_points[:4]}")


# --------------------------------------------------------------------------------------------
# Constant folding: shape-computing subgraphs are evaluated here


def _strided_slice(op: TflOp, x, begin, end, strides):
    o = op.options
    if o.EllipsisMask() or o.NewAxisMask() or (hasattr(o, "Offset") and o.Offset()):
        raise _CannotFold("ellipsis_mask/new_axis_mask/offset")
    idx = []
    for d in range(len(begin)):
        b = None if o.BeginMask() >> d & 1 else int(begin[d])
        e = None if o.EndMask() >> d & 1 else int(end[d])
        if o.ShrinkAxisMask() >> d & 1:
            idx.append(int(begin[d]))
        else:
            idx.append(slice(b, e, int(strides[d])))
    return np.asarray(x[tuple(idx)])


def _slice(x, begin, size):
    return x[tuple(slice(int(b), None if int(s) < 0 else int(b) + int(s))
                   for b, s in zip(begin, size))]


def _reduce_axes(axes, keep):
    return {"axis": tuple(int(a) for a in np.atleast_1d(axes)), "keepdims": bool(keep)}


class _CannotFold(Exception):
    pass


def _plain(f: Callable) -> Callable:
    """A folding rule f(values) for an op that folds only without a fused activation."""
    def fold(op: TflOp, out: TflTensor, values: list[np.ndarray]) -> np.ndarray:
        if op.options is not None and getattr(op.options, "FusedActivationFunction", None) \
                and op.options.FusedActivationFunction():
            raise _CannotFold("fused activation")
        return f(values)
    return fold


# op name -> f(op, output tensor, input values) -> output value, applied when every input is
# constant. SHAPE (needs only its input's static shape) and UNPACK (several outputs) are
# handled in _fold_op.
_FOLD: dict[str, Callable | None] = {
    "SHAPE": None,
    "UNPACK": None,
    "STRIDED_SLICE": lambda op, out, v: _strided_slice(op, *v[:4]),
    "SLICE": lambda op, out, v: _slice(*v[:3]),
    "PACK": lambda op, out, v: np.stack(v, axis=op.options.Axis()),
    "CONCATENATION": lambda op, out, v: _plain(
        lambda v: np.concatenate(v, axis=op.options.Axis()))(op, out, v),
    "GATHER": lambda op, out, v: np.take(v[0], v[1].astype(np.int64),
                                         axis=op.options.Axis() if op.options else 0),
    "CAST": lambda op, out, v: v[0].astype(_NUMPY[out.dtype]),
    "RESHAPE": lambda op, out, v: v[0].reshape(out.shape),
    "SQUEEZE": lambda op, out, v: v[0].reshape(out.shape),
    "EXPAND_DIMS": lambda op, out, v: v[0].reshape(out.shape),
    "TRANSPOSE": lambda op, out, v: np.transpose(v[0], v[1]),
    "ADD": _plain(lambda v: v[0] + v[1]),
    "SUB": _plain(lambda v: v[0] - v[1]),
    "MUL": _plain(lambda v: v[0] * v[1]),
    "FLOOR_DIV": lambda op, out, v: np.floor_divide(v[0], v[1]),
    "REDUCE_PROD": lambda op, out, v: np.prod(v[0], **_reduce_axes(v[1], op.options.KeepDims())),
    "SUM": lambda op, out, v: np.sum(v[0], **_reduce_axes(v[1], op.options.KeepDims())),
    "MAXIMUM": lambda op, out, v: np.maximum(v[0], v[1]),
    "MINIMUM": lambda op, out, v: np.minimum(v[0], v[1]),
    "FILL": lambda op, out, v: np.full(tuple(int(d) for d in v[0]), v[1]),
    "RANGE": lambda op, out, v: np.arange(v[0], v[1], v[2]),
}
_DATA_MOVEMENT = {"RESHAPE", "SQUEEZE", "EXPAND_DIMS", "TRANSPOSE", "GATHER", "STRIDED_SLICE",
                  "SLICE", "PACK", "UNPACK", "CONCATENATION"}


def _same_quantization(a: TflTensor, b: TflTensor) -> bool:
    if a.quantized != b.quantized:
        return False
    return not a.quantized or (np.array_equal(a.scales, b.scales)
                               and np.array_equal(a.zero_points, b.zero_points))


def _fold_op(m: TflModel, op: TflOp, const: dict[int, np.ndarray]) -> list[np.ndarray] | None:
    """The op's output values if it can be evaluated at conversion time, else None."""
    if op.name not in _FOLD:
        return None
    outs = [m.tensors[i] for i in op.outputs]
    if op.name == "SHAPE":
        x = m.tensors[op.inputs[0]]
        out_type = op.options.OutType() if op.options is not None else tflite.TensorType.INT32
        return [np.array(x.shape, dtype=_NUMPY.get(_TYPE_NAMES.get(out_type), np.int32))]
    if not op.inputs or any(i >= 0 and i not in const for i in op.inputs):
        return None
    ins = [m.tensors[i] for i in op.inputs if i >= 0]
    quantized = any(t.quantized for t in outs) or any(t.quantized for t in ins)
    if quantized and (op.name not in _DATA_MOVEMENT
                      or not all(_same_quantization(ins[0], t) for t in ins + outs)):
        return None  # quantized arithmetic is the runtime's job, not numpy's
    values = [const[i] for i in op.inputs if i >= 0]
    try:
        if op.name == "UNPACK":
            axis = op.options.Axis()
            result = [np.take(values[0], k, axis=axis) for k in range(values[0].shape[axis])]
        else:
            result = [_FOLD[op.name](op, outs[0], values)]
    except _CannotFold:
        return None
    except Exception as e:  # noqa: BLE001 - inconsistent constant data in the file
        raise UnsupportedModelError(f"{op.describe()}: cannot evaluate it on its constant "
                                    f"inputs: {type(e).__name__}: {e}") from None
    folded = []
    for t, v in zip(outs, result):
        v = np.asarray(v).astype(_NUMPY.get(t.dtype, v.dtype))
        if t.shape and v.size == int(np.prod(t.shape)):
            v = v.reshape(t.shape)
        folded.append(v)
    return folded


def fold_constants(m: TflModel) -> tuple[list[TflOp], list[TflOp], dict[int, np.ndarray]]:
    """(ops kept for the runtime, ops folded away, every constant tensor's value)."""
    const = {t.index: t.data for t in m.tensors if t.data is not None}
    kept, folded = [], []
    for op in m.ops:
        values = _fold_op(m, op, const)
        if values is None:
            kept.append(op)
            continue
        folded.append(op)
        for i, v in zip(op.outputs, values):
            const[i] = v
    return kept, folded, const


# --------------------------------------------------------------------------------------------
# dtype policy: int8 models only


def _check_ops(m: TflModel, ops: list[TflOp], const: dict[int, np.ndarray]) -> None:
    """In graph order, the first op that is unsupported or has a non-int8 activation stops the
    import; then the model's inputs and outputs must be int8 too."""
    for op in ops:
        if op.name not in _HANDLERS:
            raise UnsupportedModelError(_unsupported_op_message(op))
        for i in op.inputs + op.outputs:
            if i >= 0 and i not in const and m.tensors[i].dtype != "int8":
                _refuse_dtype(m, op, m.tensors[i], "input" if i in op.inputs else "output")
    for role, ids in (("model input", m.inputs), ("model output", m.outputs)):
        for i in ids:
            if m.tensors[i].dtype != "int8":
                _refuse_dtype(m, None, m.tensors[i], role)


def _refuse_dtype(m: TflModel, op: TflOp | None, t: TflTensor, role: str) -> None:
    where = f"{op.describe()}: {role}" if op else role
    weights_int8 = op is not None and any(
        m.tensors[i].data is not None and m.tensors[i].dtype == "int8" for i in op.inputs
        if i >= 0)
    if t.dtype == "float32" and weights_int8:
        kind = ("a hybrid (dynamic-range quantized) model: float32 activations with int8 "
                "weights")
    elif t.dtype == "float32" and t.index in m.inputs + m.outputs and any(
            u.dtype == "int8" and u.data is None for u in m.tensors):
        kind = ("an int8 model with a float32 interface (QUANTIZE/DEQUANTIZE at its inputs "
                "or outputs)")
    elif t.dtype == "float32":
        kind = "a float model"
    elif t.dtype == "uint8":
        kind = "a uint8 (legacy asymmetric) quantized model"
    elif t.dtype == "int16":
        kind = "an int16-activation (16x8) quantized model"
    else:
        kind = f"a model with {t.dtype} activations"
    raise UnsupportedModelError(
        f"{where} tensor {t.index} {t.name!r} is {t.dtype}: this is {kind}. tinyrt imports int8 models "
        "only (full-integer post-training quantization with int8 inputs and outputs: "
        "converter.optimizations=[DEFAULT], a representative dataset, "
        "target_spec.supported_ops=[TFLITE_BUILTINS_INT8], inference_input_type and "
        "inference_output_type int8)")


# --------------------------------------------------------------------------------------------
# Mapping ops onto the layer builders


@dataclass
class _Importer:
    m: TflModel
    const: dict[int, np.ndarray]
    g: Graph = field(default_factory=Graph)
    tmap: dict[int, int] = field(default_factory=dict)  # .tflite tensor -> graph tensor

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

    def per_tensor(self, op: TflOp, i: int, role: str) -> None:
        t = self.t(i)
        if not t.quantized:
            raise UnsupportedModelError(f"{op.describe()}: {role} {t.describe()} has no "
                                        "quantization parameters")
        if not (t.scales[0] > 0 and -128 <= t.zero_points[0] <= 127):
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

    def bias(self, op: TflOp, k: int, n: int) -> np.ndarray | None:
        if k >= len(op.inputs) or op.inputs[k] < 0:
            return None
        b = self.value(op, k, "bias")
        t = self.t(op.inputs[k])
        if t.dtype != "int32":
            raise UnsupportedModelError(f"{op.describe()}: bias {t.describe()} is {t.dtype}; "
                                        "int32 is required (int64 bias is for 16x8 models)")
        if b.size != n:  # a 1-D per-channel bias is axis 0 whatever its stored axis says
            raise UnsupportedModelError(f"{op.describe()}: bias {t.describe()} has {b.size} "
                                        f"values for {n} channels")
        return b.reshape(n).astype(np.int32)

    def activation(self, op: TflOp) -> str:
        code = op.options.FusedActivationFunction() if op.options is not None else 0
        name = _ACTIVATIONS.get(code, str(code))
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
        m, g = self.m, self.g
        for i in m.inputs:
            t = self.t(i)
            if not t.quantized or t.per_channel or not t.scales[0] > 0 \
                    or not -128 <= t.zero_points[0] <= 127:
                raise UnsupportedModelError(f"model input {t.describe()} needs per-tensor "
                                            "int8 quantization parameters")
            self.tmap[i] = g.add_activation(t.name, t.shape, self.scale(i), self.zero_point(i))
        g.inputs = [self.tmap[i] for i in m.inputs]
        for op in kept:
            self.op(op)
        for i in m.outputs:
            if i not in self.tmap:
                raise UnsupportedModelError(f"model output {self.t(i).describe()} is computed "
                                            "by no op (a constant output is not supported)")
        g.outputs = [self.tmap[i] for i in m.outputs]
        return g

    def op(self, op: TflOp) -> None:
        handler = _HANDLERS.get(op.name)
        if handler is None:
            raise UnsupportedModelError(_unsupported_op_message(op))
        first = len(self.g.tensors)
        layer = _layer_name(self.t(op.outputs[0]).name) if op.outputs else op.name
        try:
            outs = handler(self, op, layer)
        except UnsupportedModelError:
            raise
        except ValueError as e:  # the builder refused its arguments
            raise UnsupportedModelError(f"{op.describe()}: {e}") from None
        outs = [outs] if isinstance(outs, int) else list(outs)
        self._adopt(op, first, layer, outs)

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
            f"{', '.join(supported_ops())} (constant shape computations such as SHAPE, "
            "STRIDED_SLICE and PACK are folded at conversion)")


# -- handlers: op -> builder call --------------------------------------------------------------


def _fully_connected(im: _Importer, op: TflOp, name: str) -> int:
    o = op.options
    if o is not None and o.WeightsFormat() != 0:
        raise UnsupportedModelError(f"{op.describe()}: weights_format "
                                    f"{o.WeightsFormat()} (shuffled) is not supported")
    w, scales = im.weights(op, 1, axis=0)
    if w.ndim != 2:
        raise UnsupportedModelError(f"{op.describe()}: weights shape {w.shape}, expected 2-D")
    x = im.act(op, 0)
    im.per_tensor(op, op.inputs[0], "input")
    b = im.bias(op, 2, w.shape[0])
    scale, zp = im.out(op)
    fc = _builder(op, "fully_connected", "fully_connected")
    return fc(im.g, x, w, scales, b, scale, zp, activation=im.activation(op), name=name)


def _padding(op: TflOp) -> str:
    name = _PADDINGS.get(op.options.Padding(), str(op.options.Padding()))
    if name not in ("SAME", "VALID"):
        raise UnsupportedModelError(f"{op.describe()}: padding {name} is not supported "
                                    "(SAME, VALID are)")
    return name


def _conv_geometry(op: TflOp) -> dict:
    o = op.options
    return {"stride": (o.StrideH(), o.StrideW()),
            "dilation": (o.DilationHFactor() or 1, o.DilationWFactor() or 1),
            "padding": _padding(op)}


def _conv2d(im: _Importer, op: TflOp, name: str) -> int:
    w, scales = im.weights(op, 1, axis=0)
    x = im.act(op, 0)
    im.per_tensor(op, op.inputs[0], "input")
    xs = im.t(op.inputs[0]).shape
    if w.ndim != 4 or len(xs) != 4 or xs[3] != w.shape[3]:
        raise UnsupportedModelError(f"{op.describe()}: filter shape {w.shape} for input shape "
                                    f"{xs}; only ungrouped NHWC convolutions are supported")
    b = im.bias(op, 2, w.shape[0])
    scale, zp = im.out(op)
    conv = _builder(op, "conv", "conv2d")
    return conv(im.g, x, w, scales, b, scale, zp, activation=im.activation(op), name=name,
                **_conv_geometry(op))


def _depthwise_conv2d(im: _Importer, op: TflOp, name: str) -> int:
    w, scales = im.weights(op, 1, axis=3)
    x = im.act(op, 0)
    im.per_tensor(op, op.inputs[0], "input")
    xs = im.t(op.inputs[0]).shape
    if w.ndim != 4 or w.shape[0] != 1 or len(xs) != 4 or w.shape[3] % xs[3]:
        raise UnsupportedModelError(f"{op.describe()}: filter shape {w.shape} for input shape "
                                    f"{xs}, expected (1, KH, KW, C * depth_multiplier)")
    dm = w.shape[3] // xs[3]
    stored = op.options.DepthMultiplier()
    if stored not in (0, dm):
        raise UnsupportedModelError(f"{op.describe()}: depth_multiplier option {stored} but "
                                    f"the shapes give {dm}")
    b = im.bias(op, 2, w.shape[3])
    scale, zp = im.out(op)
    dw = _builder(op, "conv", "depthwise_conv2d")
    return dw(im.g, x, w, scales, b, scale, zp, depth_multiplier=dm,
              activation=im.activation(op), name=name, **_conv_geometry(op))


def _pool(func: str) -> Callable:
    def handler(im: _Importer, op: TflOp, name: str) -> int:
        o = op.options
        x = im.act(op, 0)
        im.per_tensor(op, op.inputs[0], "input")
        pool = _builder(op, "pool", func)
        return pool(im.g, x, (o.FilterHeight(), o.FilterWidth()), (o.StrideH(), o.StrideW()),
                    padding=_padding(op), activation=im.activation(op), name=name)
    return handler


def _binary(func: str) -> Callable:
    def handler(im: _Importer, op: TflOp, name: str) -> int:
        if len(op.inputs) != 2:
            raise UnsupportedModelError(f"{op.describe()}: {len(op.inputs)} inputs, expected 2")
        x1, x2 = im.act(op, 0), im.act(op, 1)
        for k in (0, 1):
            im.per_tensor(op, op.inputs[k], f"input {k}")
        scale, zp = im.out(op)
        binary = _builder(op, "elementwise", func)
        return binary(im.g, x1, x2, scale, zp, activation=im.activation(op), name=name)
    return handler


def _quantize(im: _Importer, op: TflOp, name: str) -> int:
    x = im.act(op, 0)
    im.per_tensor(op, op.inputs[0], "input")
    scale, zp = im.out(op)
    return _builder(op, "elementwise", "quantize")(im.g, x, scale, zp, name=name)


def _softmax(im: _Importer, op: TflOp, name: str) -> int:
    x = im.act(op, 0)
    im.per_tensor(op, op.inputs[0], "input")
    im.out(op)
    beta = float(op.options.Beta()) if op.options is not None else 1.0
    return _builder(op, "activations", "softmax")(im.g, x, beta=beta, name=name)


def _logistic(im: _Importer, op: TflOp, name: str) -> int:
    x = im.act(op, 0)
    im.per_tensor(op, op.inputs[0], "input")
    im.out(op)
    return _builder(op, "activations", "logistic")(im.g, x, name=name)


def _reshape(im: _Importer, op: TflOp, name: str) -> int:
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
    return _builder(op, "shape", "reshape")(im.g, x, list(yt.shape), name=name)


def _pad(im: _Importer, op: TflOp, name: str) -> int:
    x = im.act(op, 0)
    im.per_tensor(op, op.inputs[0], "input")
    paddings = im.value(op, 1, "paddings")
    _, zp = im.out(op)
    if op.name == "PADV2" and len(op.inputs) > 2 and op.inputs[2] >= 0:
        value = int(np.asarray(im.value(op, 2, "constant value")).ravel()[0])
        if value != zp:
            raise UnsupportedModelError(f"{op.describe()}: pads with {value}; only padding "
                                        f"with the zero point ({zp}, real 0) is supported")
    return _builder(op, "shape", "pad")(im.g, x, paddings.reshape(-1, 2), name=name)


def _mean(im: _Importer, op: TflOp, name: str) -> int:
    x = im.act(op, 0)
    im.per_tensor(op, op.inputs[0], "input")
    axes = im.value(op, 1, "axes").ravel()
    scale, zp = im.out(op)
    keep = bool(op.options.KeepDims()) if op.options is not None else False
    mean = _builder(op, "shape", "mean")
    return mean(im.g, x, axes, keep_dims=keep, out_scale=scale, out_zero_point=zp, name=name)


def _concatenation(im: _Importer, op: TflOp, name: str) -> int:
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
    concat = _builder(op, "shape", "concatenation")
    return concat(im.g, xs, int(op.options.Axis()), out_scale=scale, out_zero_point=zp,
                  name=name)


# op name -> (builder module, function) used by its handler, and the handler.
_BUILDERS: dict[str, tuple[str, str]] = {
    "FULLY_CONNECTED": ("fully_connected", "fully_connected"),
    "CONV_2D": ("conv", "conv2d"),
    "DEPTHWISE_CONV_2D": ("conv", "depthwise_conv2d"),
    "AVERAGE_POOL_2D": ("pool", "average_pool2d"),
    "MAX_POOL_2D": ("pool", "max_pool2d"),
    "ADD": ("elementwise", "add"),
    "MUL": ("elementwise", "mul"),
    "QUANTIZE": ("elementwise", "quantize"),
    "SOFTMAX": ("activations", "softmax"),
    "LOGISTIC": ("activations", "logistic"),
    "RESHAPE": ("shape", "reshape"),
    "SQUEEZE": ("shape", "reshape"),
    "EXPAND_DIMS": ("shape", "reshape"),
    "PAD": ("shape", "pad"),
    "PADV2": ("shape", "pad"),
    "MEAN": ("shape", "mean"),
    "CONCATENATION": ("shape", "concatenation"),
}
_HANDLERS: dict[str, Callable] = {
    "FULLY_CONNECTED": _fully_connected,
    "CONV_2D": _conv2d,
    "DEPTHWISE_CONV_2D": _depthwise_conv2d,
    "AVERAGE_POOL_2D": _pool("average_pool2d"),
    "MAX_POOL_2D": _pool("max_pool2d"),
    "ADD": _binary("add"),
    "MUL": _binary("mul"),
    "QUANTIZE": _quantize,
    "SOFTMAX": _softmax,
    "LOGISTIC": _logistic,
    "RESHAPE": _reshape,
    "SQUEEZE": _reshape,
    "EXPAND_DIMS": _reshape,
    "PAD": _pad,
    "PADV2": _pad,
    "MEAN": _mean,
    "CONCATENATION": _concatenation,
}
SUPPORTED_OPS = tuple(sorted(_HANDLERS))


def supported_ops() -> list[str]:
    """The ops this converter maps whose builder is present (imported to check)."""
    ok = []
    for name in SUPPORTED_OPS:
        module, func = _BUILDERS[name]
        try:
            getattr(importlib.import_module(f"converter.layers.{module}"), func)
        except (ImportError, AttributeError):
            continue
        ok.append(name)
    return ok


# --------------------------------------------------------------------------------------------


def import_tflite(data: bytes, source_name: str | None = None) -> Graph:
    """The tinyrt Graph of an int8 .tflite model (raises UnsupportedModelError)."""
    data = bytes(data)
    m = read_tflite(data)
    if not m.inputs or not m.outputs:
        raise UnsupportedModelError("the model's subgraph declares no inputs or no outputs")
    kept, folded, const = fold_constants(m)
    _check_ops(m, kept, const)
    g = _Importer(m, const).run(kept)
    used = {i for op in kept for i in op.inputs if i in const and m.tensors[i].quantized}
    g.metadata.update({
        "parameters": int(sum(const[i].size for i in used)),
        "source_sha256": hashlib.sha256(data).hexdigest(),
        "source_ops": [op.name for op in m.ops],
        "folded_ops": [f"{op.index}:{op.name}" for op in folded],
        "source_description": m.description,
    })
    if source_name:
        g.metadata["source"] = source_name
    return g
