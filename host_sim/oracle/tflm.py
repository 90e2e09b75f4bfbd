"""TensorFlow Lite Micro as a test oracle: a small int8 .tflite writer and a TFLM runner.

`build_tflite` writes a one-subgraph TFLite flatbuffer (schema version 3, buffer 0 empty) from
`TTensor`/`TOp` descriptions with the flatc-generated builders of the `tflite` package, no
TensorFlow needed. `run_tflm` runs a model through the `tflite-micro` Python interpreter
(reference kernels, gemmlowp-style double-rounding requantization).
"""

from __future__ import annotations

import faulthandler
import mmap
import os
import pickle
import re
import signal
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache, partial
from typing import Any, TypeVar

import flatbuffers
import numpy as np
import tflite

__all__ = [
    "TFLMError",
    "TOp",
    "TTensor",
    "build_tflite",
    "run_tflm",
    "tflm_activation_arena_bytes",
    "tflm_arena_bytes",
]

_T = TypeVar("_T")

SCHEMA_VERSION = 3
FILE_IDENTIFIER = b"TFL3"
_BUFFER_ALIGN = 16  # constant data is aligned so TFLM can read int32/float buffers in place

_DTYPES: dict[str, tuple[int, np.dtype]] = {
    "float32": (tflite.TensorType.FLOAT32, np.dtype("<f4")),
    "int32": (tflite.TensorType.INT32, np.dtype("<i4")),
    "int16": (tflite.TensorType.INT16, np.dtype("<i2")),
    "int8": (tflite.TensorType.INT8, np.dtype("i1")),
    "uint8": (tflite.TensorType.UINT8, np.dtype("u1")),
    "int64": (tflite.TensorType.INT64, np.dtype("<i8")),
    "bool": (tflite.TensorType.BOOL, np.dtype("?")),
}
_NP_BY_TFL_TYPE = {code: dt for code, dt in _DTYPES.values()}

# Builtin operator -> name of its options table (as in tflite.BuiltinOptions).
_OPTIONS_TABLE: dict[str, str] = {
    "ADD": "AddOptions",
    "SUB": "SubOptions",
    "MUL": "MulOptions",
    "DIV": "DivOptions",
    "FULLY_CONNECTED": "FullyConnectedOptions",
    "CONV_2D": "Conv2DOptions",
    "DEPTHWISE_CONV_2D": "DepthwiseConv2DOptions",
    "TRANSPOSE_CONV": "TransposeConvOptions",
    "AVERAGE_POOL_2D": "Pool2DOptions",
    "MAX_POOL_2D": "Pool2DOptions",
    "L2_POOL_2D": "Pool2DOptions",
    "RESHAPE": "ReshapeOptions",
    "SOFTMAX": "SoftmaxOptions",
    "PAD": "PadOptions",
    "PADV2": "PadV2Options",
    "MEAN": "ReducerOptions",
    "SUM": "ReducerOptions",
    "REDUCE_MAX": "ReducerOptions",
    "REDUCE_MIN": "ReducerOptions",
    "REDUCE_PROD": "ReducerOptions",
    "CONCATENATION": "ConcatenationOptions",
    "QUANTIZE": "QuantizeOptions",
    "DEQUANTIZE": "DequantizeOptions",
    "SQUEEZE": "SqueezeOptions",
    "EXPAND_DIMS": "ExpandDimsOptions",
    "LEAKY_RELU": "LeakyReluOptions",
    "HARD_SWISH": "HardSwishOptions",
    "TRANSPOSE": "TransposeOptions",
    "STRIDED_SLICE": "StridedSliceOptions",
    "SLICE": "SliceOptions",
    "SPLIT": "SplitOptions",
    "SPLIT_V": "SplitVOptions",
    "SQUARED_DIFFERENCE": "SquaredDifferenceOptions",
    "SVDF": "SVDFOptions",
    "MIRROR_PAD": "MirrorPadOptions",
    "PACK": "PackOptions",
    "UNPACK": "UnpackOptions",
    "GATHER": "GatherOptions",
    "ARG_MAX": "ArgMaxOptions",
    "ARG_MIN": "ArgMinOptions",
    "MAXIMUM": "MaximumMinimumOptions",
    "MINIMUM": "MaximumMinimumOptions",
    "BATCH_MATMUL": "BatchMatMulOptions",
    "SHAPE": "ShapeOptions",
    "DEPTH_TO_SPACE": "DepthToSpaceOptions",
    "SPACE_TO_DEPTH": "SpaceToDepthOptions",
    "RESIZE_NEAREST_NEIGHBOR": "ResizeNearestNeighborOptions",
    "RESIZE_BILINEAR": "ResizeBilinearOptions",
    "UNIDIRECTIONAL_SEQUENCE_LSTM": "UnidirectionalSequenceLSTMOptions",
}

# Defaults applied before the caller's options where the schema default (0) is unusable.
_OP_DEFAULTS: dict[str, dict[str, Any]] = {
    "CONV_2D": {"stride_w": 1, "stride_h": 1},
    "DEPTHWISE_CONV_2D": {"stride_w": 1, "stride_h": 1},
    "TRANSPOSE_CONV": {"stride_w": 1, "stride_h": 1},
    "AVERAGE_POOL_2D": {"stride_w": 1, "stride_h": 1},
    "MAX_POOL_2D": {"stride_w": 1, "stride_h": 1},
    "L2_POOL_2D": {"stride_w": 1, "stride_h": 1},
    "SOFTMAX": {"beta": 1.0},
}
_REQUIRED: dict[str, tuple[str, ...]] = {
    "AVERAGE_POOL_2D": ("filter_width", "filter_height"),
    "MAX_POOL_2D": ("filter_width", "filter_height"),
    "L2_POOL_2D": ("filter_width", "filter_height"),
}

# Option fields whose value may be given as an enum member name.
_ENUM_FIELDS: dict[str, type] = {
    "padding": tflite.Padding,
    "fused_activation_function": tflite.ActivationFunctionType,
    "weights_format": tflite.FullyConnectedOptionsWeightsFormat,
    "quantized_bias_type": tflite.TensorType,
    "output_type": tflite.TensorType,
    "out_type": tflite.TensorType,
    "in_data_type": tflite.TensorType,
    "out_data_type": tflite.TensorType,
}


@dataclass
class TTensor:
    """One tensor of the graph; `data` makes it a constant with its own buffer."""

    name: str
    shape: tuple
    dtype: str  # 'int8' | 'int32' | 'float32' | 'int16' (also 'uint8', 'int64', 'bool')
    scale: float | list[float] | None = None  # None: no quantization parameters
    zero_point: int | list[int] = 0
    quantized_dimension: int = 0
    data: np.ndarray | None = None
    variable: bool = False  # is_variable: state TFLM keeps across invokes (LSTM)


@dataclass
class TOp:
    """One builtin operator; `options` holds builtin option fields by schema field name."""

    opcode: str  # name as in tflite.BuiltinOperator, e.g. 'FULLY_CONNECTED'
    inputs: list[int]  # tensor indices, -1 = optional input absent
    outputs: list[int]
    options: dict = field(default_factory=dict)


class TFLMError(RuntimeError):
    """TFLM rejected a model, failed or crashed running it; `log` holds what TFLM printed."""

    def __init__(self, message: str, log: str = ""):
        log = log.strip()
        super().__init__(f"{message}\nTFLM log:\n{log}" if log else message)
        self.message = message
        self.log = log

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.message, self.log))


# --------------------------------------------------------------------------------------------
# Writer


def _camel(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in name.split("_"))


def _enum_members(enum: type) -> dict[str, int]:
    return {k: v for k, v in vars(enum).items() if not k.startswith("_") and isinstance(v, int)}


_BUILTIN_CODES = _enum_members(tflite.BuiltinOperator)


def _builtin_code(opcode: str) -> int:
    code = _BUILTIN_CODES.get(opcode.upper())
    if code is None:
        raise ValueError(f"unknown builtin operator {opcode!r}")
    return code


def _int32_vector(b: flatbuffers.Builder, values: Sequence[int]) -> int:
    b.StartVector(4, len(values), 4)
    for v in reversed(values):
        b.PrependInt32(int(v))
    return b.EndVector()


def _int64_vector(b: flatbuffers.Builder, values: Sequence[int]) -> int:
    b.StartVector(8, len(values), 8)
    for v in reversed(values):
        b.PrependInt64(int(v))
    return b.EndVector()


def _float32_vector(b: flatbuffers.Builder, values: Sequence[float]) -> int:
    b.StartVector(4, len(values), 4)
    for v in reversed(values):
        b.PrependFloat32(float(v))
    return b.EndVector()


def _aligned_bytes(b: flatbuffers.Builder, data: bytes, align: int = _BUFFER_ALIGN) -> int:
    b.StartVector(1, len(data), align)
    b.head = b.head - len(data)
    b.Bytes[b.head : b.head + len(data)] = data
    return b.EndVector()


def _quantization(b: flatbuffers.Builder, t: TTensor) -> int | None:
    if t.scale is None:
        return None
    scales = [float(s) for s in np.atleast_1d(np.asarray(t.scale, dtype=np.float64))]
    zps = [int(z) for z in np.atleast_1d(np.asarray(t.zero_point, dtype=np.int64))]
    if len(zps) == 1 and len(scales) > 1:
        zps = zps * len(scales)
    if len(zps) != len(scales):
        raise ValueError(f"tensor {t.name!r}: {len(scales)} scales but {len(zps)} zero points")
    if len(scales) > 1:
        # A 1-D tensor is per-channel on its only axis whatever quantized_dimension says
        # (some converters write 3 for biases); write it as given.
        dim = 0 if len(t.shape) == 1 else t.quantized_dimension
        if not 0 <= dim < len(t.shape) or t.shape[dim] != len(scales):
            raise ValueError(
                f"tensor {t.name!r}: {len(scales)} scales do not match shape {tuple(t.shape)} "
                f"on quantized_dimension {dim}"
            )
    scale_vec = _float32_vector(b, scales)
    zp_vec = _int64_vector(b, zps)
    tflite.QuantizationParametersStart(b)
    tflite.QuantizationParametersAddScale(b, scale_vec)
    tflite.QuantizationParametersAddZeroPoint(b, zp_vec)
    tflite.QuantizationParametersAddQuantizedDimension(b, int(t.quantized_dimension))
    return tflite.QuantizationParametersEnd(b)


def _resolve_options(op: TOp, tensors: list[TTensor]) -> dict[str, Any]:
    name = op.opcode.upper()
    opts: dict[str, Any] = dict(_OP_DEFAULTS.get(name, {}))
    if name == "DEPTHWISE_CONV_2D" and len(op.inputs) >= 2 and min(op.inputs[:2]) >= 0:
        in_shape, filt_shape = tensors[op.inputs[0]].shape, tensors[op.inputs[1]].shape
        if in_shape and filt_shape and in_shape[-1] and filt_shape[-1] % in_shape[-1] == 0:
            opts["depth_multiplier"] = filt_shape[-1] // in_shape[-1]  # default from shapes
    opts.update(op.options)
    missing = [f for f in _REQUIRED.get(name, ()) if f not in opts]
    if missing:
        raise ValueError(f"{name}: missing required options {missing}")
    return opts


def _options(b: flatbuffers.Builder, op: TOp, tensors: list[TTensor]) -> tuple[int, int]:
    """Write the op's builtin options table; returns (BuiltinOptions type, offset)."""
    name = op.opcode.upper()
    table = _OPTIONS_TABLE.get(name)
    if table is None:
        if op.options:
            raise ValueError(f"{name}: this writer knows no options table (got {op.options})")
        return tflite.BuiltinOptions.NONE, 0
    opts = _resolve_options(op, tensors)
    adders = []
    for key, given in opts.items():
        adder = getattr(tflite, f"{table}Add{_camel(key)}", None)
        value: Any = given
        if adder is None:
            raise ValueError(f"{name}: {table} has no field {key!r}")
        if isinstance(value, str):
            enum = _ENUM_FIELDS.get(key)
            code = _enum_members(enum).get(value.upper()) if enum is not None else None
            if code is None:
                raise ValueError(f"{name}: bad value {value!r} for option {key!r}")
            value = code
        elif isinstance(value, (list, tuple, np.ndarray)):
            if getattr(tflite, f"{table}Start{_camel(key)}Vector", None) is None:
                raise ValueError(f"{name}: option {key!r} is not a vector")
            value = _int32_vector(b, [int(v) for v in value])  # before the table starts
        elif isinstance(value, (bool, np.bool_)):
            value = bool(value)
        elif isinstance(value, (int, np.integer)):
            value = int(value)
        elif isinstance(value, (float, np.floating)):
            value = float(value)
        else:
            raise TypeError(f"{name}: unsupported value {value!r} for option {key!r}")
        adders.append((adder, value))
    getattr(tflite, f"{table}Start")(b)
    for adder, value in adders:
        adder(b, value)
    return getattr(tflite.BuiltinOptions, table), getattr(tflite, f"{table}End")(b)


def _check_graph(
    tensors: list[TTensor], ops: list[TOp], inputs: list[int], outputs: list[int]
) -> None:
    n = len(tensors)
    for t in tensors:
        if t.dtype not in _DTYPES:
            raise ValueError(f"tensor {t.name!r}: unsupported dtype {t.dtype!r}")
    for op in ops:
        for i in list(op.inputs) + list(op.outputs):
            if not -1 <= i < n:
                raise ValueError(f"{op.opcode}: tensor index {i} out of range")
        if -1 in op.outputs:
            raise ValueError(f"{op.opcode}: outputs cannot be absent (-1)")
    for i in list(inputs) + list(outputs):
        if not 0 <= i < n:
            raise ValueError(f"graph input/output index {i} out of range")


def build_tflite(
    tensors: list[TTensor], ops: list[TOp], inputs: list[int], outputs: list[int]
) -> bytes:
    """Serialize one subgraph as a .tflite flatbuffer (schema version 3, buffer 0 empty)."""
    _check_graph(tensors, ops, inputs, outputs)
    b = flatbuffers.Builder(1024)

    # Buffers: 0 is the empty sentinel, then one per tensor (empty unless constant), as the
    # TFLite converter does.
    buffer_offsets = []
    tflite.BufferStart(b)
    buffer_offsets.append(tflite.BufferEnd(b))
    for t in tensors:
        data_vec = None
        if t.data is not None:
            np_dtype = _DTYPES[t.dtype][1]
            arr = np.asarray(t.data)
            if arr.size != int(np.prod(t.shape, dtype=np.int64)):
                raise ValueError(
                    f"tensor {t.name!r}: data has {arr.size} elements, shape {tuple(t.shape)}"
                )
            data_vec = _aligned_bytes(b, np.ascontiguousarray(arr.astype(np_dtype)).tobytes())
        tflite.BufferStart(b)
        if data_vec is not None:
            tflite.BufferAddData(b, data_vec)
        buffer_offsets.append(tflite.BufferEnd(b))

    tensor_offsets = []
    for i, t in enumerate(tensors):
        name = b.CreateString(t.name)
        shape = _int32_vector(b, [int(d) for d in t.shape])
        quant = _quantization(b, t)
        tflite.TensorStart(b)
        tflite.TensorAddShape(b, shape)
        tflite.TensorAddType(b, _DTYPES[t.dtype][0])
        tflite.TensorAddBuffer(b, i + 1)
        tflite.TensorAddName(b, name)
        if quant is not None:
            tflite.TensorAddQuantization(b, quant)
        if t.variable:
            tflite.TensorAddIsVariable(b, True)
        tensor_offsets.append(tflite.TensorEnd(b))

    opcode_index: dict[int, int] = {}
    op_offsets = []
    for op in ops:
        code = _builtin_code(op.opcode)
        idx = opcode_index.setdefault(code, len(opcode_index))
        opt_type, opt_off = _options(b, op, tensors)
        ins = _int32_vector(b, op.inputs)
        outs = _int32_vector(b, op.outputs)
        tflite.OperatorStart(b)
        tflite.OperatorAddOpcodeIndex(b, idx)
        tflite.OperatorAddInputs(b, ins)
        tflite.OperatorAddOutputs(b, outs)
        if opt_type != tflite.BuiltinOptions.NONE:
            tflite.OperatorAddBuiltinOptionsType(b, opt_type)
            tflite.OperatorAddBuiltinOptions(b, opt_off)
        op_offsets.append(tflite.OperatorEnd(b))

    code_offsets = []
    for code in opcode_index:  # insertion order == index order
        tflite.OperatorCodeStart(b)
        tflite.OperatorCodeAddDeprecatedBuiltinCode(b, min(code, 127))
        tflite.OperatorCodeAddBuiltinCode(b, code)
        tflite.OperatorCodeAddVersion(b, 1)
        code_offsets.append(tflite.OperatorCodeEnd(b))

    def offsets_vector(offsets: list[int]) -> int:
        b.StartVector(4, len(offsets), 4)
        for off in reversed(offsets):
            b.PrependUOffsetTRelative(off)
        return b.EndVector()

    tensors_vec = offsets_vector(tensor_offsets)
    ops_vec = offsets_vector(op_offsets)
    sg_inputs = _int32_vector(b, inputs)
    sg_outputs = _int32_vector(b, outputs)
    sg_name = b.CreateString("main")
    tflite.SubGraphStart(b)
    tflite.SubGraphAddTensors(b, tensors_vec)
    tflite.SubGraphAddInputs(b, sg_inputs)
    tflite.SubGraphAddOutputs(b, sg_outputs)
    tflite.SubGraphAddOperators(b, ops_vec)
    tflite.SubGraphAddName(b, sg_name)
    subgraph = tflite.SubGraphEnd(b)

    subgraphs_vec = offsets_vector([subgraph])
    codes_vec = offsets_vector(code_offsets)
    buffers_vec = offsets_vector(buffer_offsets)
    description = b.CreateString("tinyrt host_sim.oracle.tflm")
    tflite.ModelStart(b)
    tflite.ModelAddVersion(b, SCHEMA_VERSION)
    tflite.ModelAddOperatorCodes(b, codes_vec)
    tflite.ModelAddSubgraphs(b, subgraphs_vec)
    tflite.ModelAddDescription(b, description)
    tflite.ModelAddBuffers(b, buffers_vec)
    b.Finish(tflite.ModelEnd(b), file_identifier=FILE_IDENTIFIER)
    return bytes(b.Output())


# --------------------------------------------------------------------------------------------
# Runner


@dataclass
class _ModelInfo:
    inputs: list[tuple[tuple[int, ...], np.dtype | None]]
    n_outputs: int
    tensor_bytes: int


def _model_info(model_bytes: bytes) -> _ModelInfo:
    """Check the flatbuffer enough that TFLM won't read out of bounds; size its tensors."""
    if len(model_bytes) < 8 or model_bytes[4:8] != FILE_IDENTIFIER:
        raise TFLMError("not a .tflite flatbuffer (file identifier 'TFL3' missing)")
    try:
        model = tflite.Model.GetRootAsModel(model_bytes, 0)
        if model.SubgraphsLength() < 1:
            raise TFLMError("model has no subgraph")
        sg = model.Subgraphs(0)
        total = 0
        infos = []
        for i in range(sg.TensorsLength()):
            t = sg.Tensors(i)
            np_dtype = _NP_BY_TFL_TYPE.get(t.Type())
            shape = tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else ()
            itemsize = np_dtype.itemsize if np_dtype is not None else 8
            total += itemsize * int(np.prod([max(d, 1) for d in shape], dtype=np.int64)) + 64
            infos.append((shape, np_dtype))
        ins = [infos[int(i)] for i in sg.InputsAsNumpy()] if sg.InputsLength() else []
        return _ModelInfo(ins, sg.OutputsLength(), total)
    except TFLMError:
        raise
    except Exception as e:  # malformed flatbuffer: struct.error, IndexError, ...
        raise TFLMError(f"cannot parse .tflite flatbuffer: {type(e).__name__}: {e}") from e


def _arena_size(model_bytes: bytes, info: _ModelInfo) -> int:
    # Generous on purpose: TFLM's python wrapper crashes (SIGSEGV) when the arena is too small.
    # A multiple of 1 KiB: an unaligned arena end adds alignment overhead to the recorded total.
    size = 10 * len(model_bytes) + 4 * info.tensor_bytes + (256 << 10)
    return -(-size // 1024) * 1024


class _RunError(Exception):
    """TFLM raised; the caller adds TFLM's log and turns this into a TFLMError."""


@lru_cache(maxsize=1)
def _runtime() -> Any:
    """The tflite_micro runtime module (imported once, before any fork)."""
    from tflite_micro.python.tflite_micro import runtime

    return runtime


def _no_stage(stage: str) -> None:
    pass


def _tflm_session(
    model_bytes: bytes,
    info: _ModelInfo,
    arrays: list[np.ndarray],
    report: bool,
    stage: Callable[[str], None] = _no_stage,
) -> list[np.ndarray]:
    """Construct one interpreter, run it once; outputs (and arena report on fd 2 if asked)."""
    stage("constructing the interpreter (AllocateTensors: kernels' Prepare)")
    try:
        interp = _runtime().Interpreter.from_bytes(
            bytes(model_bytes), arena_size=_arena_size(model_bytes, info)
        )
    except Exception as e:  # noqa: BLE001 - any wrapper error means TFLM rejected the model
        raise _RunError(f"TFLM rejected the model: {type(e).__name__}: {e}") from None
    try:
        stage("setting inputs")
        for i, arr in enumerate(arrays):
            interp.set_input(arr, i)
        stage("invoking")
        interp.invoke()
        stage("reading outputs")
        outs = [np.array(interp.get_output(i), copy=True) for i in range(info.n_outputs)]
        if report:
            interp.print_allocations()
    except Exception as e:  # noqa: BLE001 - reported with TFLM's log
        raise _RunError(f"TFLM failed to run the model: {type(e).__name__}: {e}") from None
    return outs


@contextmanager
def _stderr_to(fileno: int) -> Iterator[None]:
    sys.stderr.flush()
    saved = os.dup(2)
    os.dup2(fileno, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _read_log(f: Any) -> str:
    f.seek(0)
    return f.read().decode("utf-8", "replace")


def _in_process(fn: Callable[[Callable[[str], None]], _T]) -> tuple[_T, str]:
    with tempfile.TemporaryFile() as log:
        try:
            with _stderr_to(log.fileno()):
                result = fn(_no_stage)
        except _RunError as e:
            raise TFLMError(str(e), _read_log(log)) from None
        return result, _read_log(log)


def _in_child(fn: Callable[[Callable[[str], None]], _T]) -> tuple[_T, str]:
    """Run fn in a forked child so that TFLM aborts and segfaults become TFLMError."""
    shared = mmap.mmap(-1, 256)  # the child's current stage, readable after a crash

    def stage(name: str) -> None:
        shared[:] = name.encode()[:255].ljust(256, b"\0")

    with shared, tempfile.TemporaryFile() as log:
        sys.stdout.flush()
        sys.stderr.flush()
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: never returns
            code = 0
            try:
                faulthandler.disable()  # a crash is expected here: no traceback dump
                os.close(r)
                os.dup2(log.fileno(), 2)
                try:
                    payload = (True, fn(stage))
                except _RunError as e:
                    payload = (False, str(e))
                except Exception as e:  # noqa: BLE001 - reported to the parent
                    payload = (False, f"{type(e).__name__}: {e}")
                with os.fdopen(w, "wb") as pipe:
                    pickle.dump(payload, pipe, protocol=pickle.HIGHEST_PROTOCOL)
            except BaseException:  # noqa: BLE001 - the child must reach os._exit
                code = 70
            finally:
                os._exit(code)
        os.close(w)
        with os.fdopen(r, "rb") as pipe:
            data = pipe.read()
        _, status = os.waitpid(pid, 0)
        text = _read_log(log)
        where = shared[:].rstrip(b"\0").decode() or "starting"
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        name = signal.Signals(sig).name if sig in set(signal.Signals) else str(sig)
        raise TFLMError(
            f"TFLM crashed with {name} while {where}; TFLM checks little of a model's "
            "consistency (e.g. shapes), so the model is probably malformed",
            text,
        )
    if not data:
        raise TFLMError(f"TFLM child process exited with status {os.WEXITSTATUS(status)}", text)
    ok, value = pickle.loads(data)
    if not ok:
        raise TFLMError(value, text)
    return value, text


def _guarded(fn: Callable[[Callable[[str], None]], _T], isolate: bool) -> tuple[_T, str]:
    """Run fn with TFLM's log captured; returns (result, log)."""
    _runtime()
    if isolate and hasattr(os, "fork"):
        return _in_child(fn)
    return _in_process(fn)


def _as_input(x: Any, index: int, shape: tuple[int, ...], dtype: np.dtype | None) -> np.ndarray:
    arr = np.asarray(x)
    if dtype is not None and arr.dtype != dtype:
        if arr.dtype.kind in "iub" and dtype.kind in "iu":
            lim = np.iinfo(dtype)
            if arr.size and (arr.min() < lim.min or arr.max() > lim.max):
                raise ValueError(f"input {index}: values out of range for {dtype}")
        elif not np.can_cast(arr.dtype, dtype, "same_kind"):
            raise TypeError(f"input {index}: dtype {arr.dtype} given, model wants {dtype}")
        arr = arr.astype(dtype)
    if arr.shape != shape:
        if arr.size != int(np.prod(shape, dtype=np.int64)):
            raise ValueError(f"input {index}: shape {arr.shape} given, model wants {shape}")
        arr = arr.reshape(shape)
    return np.ascontiguousarray(arr)


def run_tflm(
    model_bytes: bytes, inputs: list[np.ndarray], *, isolate: bool = True
) -> list[np.ndarray]:
    """Run one inference under TFLM; inputs are raw tensor values (reshaped if sizes match).

    With `isolate` (default) TFLM runs in a forked child, so models that make it abort or
    segfault raise TFLMError instead of killing the caller (costs ~2 ms). Without it, fd 2 is
    redirected in this process while TFLM runs (not thread-safe).
    """
    info = _model_info(model_bytes)
    if len(inputs) != len(info.inputs):
        raise ValueError(f"model has {len(info.inputs)} inputs, {len(inputs)} given")
    arrays = [_as_input(x, i, *info.inputs[i]) for i, x in enumerate(inputs)]
    outs, _ = _guarded(partial(_tflm_session, model_bytes, info, arrays, False), isolate)
    return outs


_ARENA_TOTAL = re.compile(r"Arena allocation total (\d+) bytes")
_ARENA_HEAD = re.compile(r"Arena allocation head (\d+) bytes")


def _arena_figure(model_bytes: bytes, pattern: re.Pattern, isolate: bool) -> int:
    info = _model_info(model_bytes)
    arrays = [np.zeros(shape, dtype=dtype or np.int8) for shape, dtype in info.inputs]
    _, log = _guarded(partial(_tflm_session, model_bytes, info, arrays, True), isolate)
    m = pattern.search(log)
    if m is None:
        raise TFLMError("TFLM printed no arena figures", log)
    return int(m.group(1))


def tflm_arena_bytes(model_bytes: bytes, *, isolate: bool = True) -> int:
    """TFLM's recorded arena total (RecordingMicroAllocator) after one zero-input inference."""
    return _arena_figure(model_bytes, _ARENA_TOTAL, isolate)


def tflm_activation_arena_bytes(model_bytes: bytes, *, isolate: bool = True) -> int:
    """TFLM's non-persistent arena (the allocator's head: activations and kernel scratch, as
    planned by its greedy planner), the figure tinyrt's arena is compared with."""
    return _arena_figure(model_bytes, _ARENA_HEAD, isolate)
