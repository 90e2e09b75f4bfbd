"""Read a .tflite flatbuffer (with the `tflite` package) into plain Python objects, validate it,
and fold its constant subgraphs.

read_tflite gives the first subgraph as TflModel (tensors with their quantization and constant
data, ops with their builtin options table or, for CUSTOM ops, their raw custom options);
fold_constants evaluates shape-computing subgraphs (SHAPE, STRIDED_SLICE, PACK, ... on constant
data) with numpy; refuse_dtype explains why a tensor's type is not importable. Everything wrong
with a file is an UnsupportedModelError whose message names the op, tensor or option at fault.
The mapping onto tinyrt's layers is converter/tflite_import.py.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache

import numpy as np
import tflite

__all__ = ["TflModel", "TflOp", "TflTensor", "UnsupportedModelError", "fold_constants",
           "read_tflite", "refuse_dtype"]


class UnsupportedModelError(ValueError):
    """The .tflite file uses an op, dtype or option tinyrt cannot import (or is no .tflite)."""


def _enum_names(enum: type) -> dict[int, str]:
    return {v: k for k, v in vars(enum).items() if not k.startswith("_") and isinstance(v, int)}


_OP_NAMES = _enum_names(tflite.BuiltinOperator)
_TYPE_NAMES = {k: v.lower() for k, v in _enum_names(tflite.TensorType).items()}
_OPTION_TABLES = _enum_names(tflite.BuiltinOptions)
ACTIVATIONS = _enum_names(tflite.ActivationFunctionType)  # code -> name, for the importer
PADDINGS = _enum_names(tflite.Padding)
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
    variable: bool = False  # is_variable: state kept across invokes (LSTM), not a constant

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
    custom_options: bytes = b""  # CUSTOM ops: their options as stored (LCE: a flexbuffer map)
    intermediates: list[int] = field(default_factory=list)  # LSTM: tensors carrying only the
    # quantization of gate intermediates (shape [0] FLOAT32 ones too): never data

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
                     qdim, data, bool(t.IsVariable()))


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
            if name == "CUSTOM" or code.CustomCode():  # tflite-micro's model_editor leaves
                # deprecated_builtin_code 0, which `tflite`'s BuiltinCode() then returns
                name = f"CUSTOM({(code.CustomCode() or b'?').decode()})"
            ins = [int(v) for v in op.InputsAsNumpy()] if op.InputsLength() else []
            outs = [int(v) for v in op.OutputsAsNumpy()] if op.OutputsLength() else []
            custom = (op.CustomOptionsAsNumpy().tobytes() if op.CustomOptionsLength()
                      else b"")
            mids = ([int(v) for v in op.IntermediatesAsNumpy()] if op.IntermediatesLength()
                    else [])
            ops.append(TflOp(i, name, ins, outs, _options(op), custom, mids))
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
    only_intermediate = ({i for op in m.ops for i in op.intermediates}
                         - {i for op in m.ops for i in op.inputs + op.outputs})
    for t in m.tensors:
        if any(d < 1 for d in t.shape) and t.index not in only_intermediate:
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
# dtype policy: int8 activations (and the bit-packed int32 tensors of LCE's ops)


def refuse_dtype(m: TflModel, op: TflOp | None, t: TflTensor, role: str) -> None:
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
    """Raise the error for tensor t of dtype tinyrt cannot run, in the role it has for op (or
    for the model, op None), saying what kind of model this is and how to get an int8 one."""
    raise UnsupportedModelError(
        f"{where} tensor {t.index} {t.name!r} is {t.dtype}: this is {kind}. tinyrt imports int8 "
        "models only (full-integer post-training quantization with int8 inputs and outputs: "
        "converter.optimizations=[DEFAULT], a representative dataset, "
        "target_spec.supported_ops=[TFLITE_BUILTINS_INT8], inference_input_type and "
        "inference_output_type int8)")
