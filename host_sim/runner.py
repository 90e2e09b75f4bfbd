"""The jobs behind `tinyrt convert` and `tinyrt run`: .tflite -> model file with a summary, and
batches of raw inputs (int8 values, or int32 words for bit-packed and int32 tensors) through a
model file on one of the three interpreters."""

from __future__ import annotations

import re
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tinyrt

from .device import invoke_batch
from .interpreters import InterpreterError

# Ops whose cost is counted in multiply-accumulates: weights are input 1, and every output
# element takes (weight elements / output channels) MACs — kh*kw*Cin for CONV_2D and BCONV_2D,
# kh*kw for DEPTHWISE_CONV_2D, n_in for FULLY_CONNECTED and BFULLY_CONNECTED. The binary ops'
# MACs are binary (one XNOR-popcount bit each; a packed tensor's shape counts channels).
BINARY_MAC_OPS = ("BCONV_2D", "BFULLY_CONNECTED")
MAC_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED") + BINARY_MAC_OPS
WORD_DTYPES = ("int32", "packed")  # tensors fed and returned as int32 words


class RunnerError(Exception):
    """A user-facing failure of convert/run: the message is one line saying what is wrong.
    `code` is the command's exit status: 2 for bad input (a file, an array), 1 when the job
    itself failed (the interpreter ran out of memory, a converter bug)."""

    def __init__(self, message: str, code: int = 2):
        super().__init__(message)
        self.code = code


def _size(shape) -> int:
    return int(np.prod(shape, dtype=np.int64)) if len(shape) else 1


def stored_shape(spec: dict) -> tuple[int, ...]:
    """The shape of a model input/output as its values are given and returned: a packed
    tensor's last dimension counts int32 words, (C + 31) // 32 for C channels."""
    shape = tuple(spec["shape"])
    if spec["dtype"] == "packed":
        shape = shape[:-1] + ((shape[-1] + 31) // 32,)
    return shape


def op_macs(d: dict) -> list[int]:
    """Multiply-accumulates of each operator of a described model (inspect_model.describe)."""
    out = []
    for o in d["operators"]:
        if o["name"] == "UNIDIRECTIONAL_SEQUENCE_LSTM":  # per step and cell: 4 gates' FCs
            w = d["tensors"][o["inputs"][1]]["shape"]  # (4, S, I)
            out.append(_size(d["tensors"][o["outputs"][0]]["shape"]) * w[0] * (w[2] + w[1]))
            continue
        if o["name"] not in MAC_OPS or len(o["inputs"]) < 2 or o["inputs"][1] < 0:
            out.append(0)
            continue
        w = d["tensors"][o["inputs"][1]]["shape"]
        y = d["tensors"][o["outputs"][0]]["shape"]
        out.append(_size(y) * _size(w) // max(y[-1], 1))
    return out


@dataclass
class ConversionReport:
    source: Path
    output: Path
    tflite_bytes: int
    info: dict  # inspect_model.describe() of the written file
    macs: list[int]

    @property
    def parameters(self) -> int:
        return int(self.info["metadata"].get("parameters", 0))

    def summary(self) -> str:
        d = self.info
        counts = Counter(d["ops"])
        ops = ", ".join(f"{n} x{c}" if c > 1 else n for n, c in counts.items())
        binary = sum(m for m, name in zip(self.macs, d["ops"]) if name in BINARY_MAC_OPS)
        macs = f"{sum(self.macs):,} per inference"
        if binary:
            macs += f" ({binary:,} of them binary: one XNOR-popcount bit each)"
        lines = [
            f"converted {self.source} -> {self.output}",
            f"  ops           {len(d['ops'])}: {ops}",
            f"  parameters    {self.parameters:,}",
            f"  weight bytes  {d['weight_bytes']:,} (constants incl. requantization tables)",
            f"  arena bytes   {d['arena_bytes']:,}",
            f"  file bytes    {d['file_bytes']:,} (.tflite {self.tflite_bytes:,})",
            f"  MACs          {macs}",
        ]
        folded = d["metadata"].get("folded_ops") or []
        if folded:
            lines.append(f"  folded at conversion: {', '.join(folded)}")
        for kind in ("inputs", "outputs"):
            for r in d[kind]:
                lines.append(f"  {kind[:-1]:<6} {r['name']!r} {r['dtype']} {tuple(r['shape'])} "
                             f"scale={r['scale']:.6g} zero_point={r['zero_point']}")
        for i, o in enumerate(d["operators"]):
            y = d["tensors"][o["outputs"][0]]
            mac = f"{self.macs[i]:>10,} MACs" if self.macs[i] else ""
            if self.macs[i] and o["name"] in BINARY_MAC_OPS:
                mac += " (binary)"
            lines.append(f"  {i:3d} {o['name']:<18} -> {tuple(y['shape'])!s:<16} {mac}")
        return "\n".join(lines)


def convert(source: str | Path, output: str | Path | None = None,
            strip_names: bool = False, patch: bool = False) -> ConversionReport:
    """Convert a .tflite file, write the model file, and describe what was written.
    strip_names: keep only the model inputs' and outputs' tensor names. patch: run the first
    high-resolution stage in row bands where that lowers the arena (converter.patch)."""
    from converter.inspect_model import describe
    from converter.tflite_import import UnsupportedModelError, import_tflite
    from converter.writer import serialize

    src = Path(source)
    out = Path(output) if output else src.with_suffix(".trt")
    try:
        data = src.read_bytes()
    except OSError as e:
        raise RunnerError(f"cannot read {src}: {e.strerror or e}") from None
    try:
        g = import_tflite(data, source_name=src.name)
        if strip_names:
            g.strip_names()
        if patch:
            from converter.patch import patch as patch_stage

            g, _ = patch_stage(g)
        model = serialize(g)
    except UnsupportedModelError as e:
        msg = str(e)
        head = "cannot read the .tflite flatbuffer: "
        if msg.startswith(head):  # the reader's index ran off the buffer or a field is absurd
            msg = f"the .tflite file is truncated or corrupt ({msg[len(head):]})"
        elif "float" in msg.lower():
            msg += (f"; or quantize the float model with tinyrt: tinyrt quantize {src} "
                    "--calib X.npy (X: real inputs, batch on axis 0)")
        raise RunnerError(f"{src}: {msg}") from None
    except ValueError as e:  # a builder or the writer refused a layer (e.g. accumulator bound)
        raise RunnerError(f"{src}: cannot convert: {e}") from None
    except Exception as e:  # noqa: BLE001 - a converter bug: still one line, with its type
        raise RunnerError(f"{src}: internal error in the converter (please report it): "
                          f"{type(e).__name__}: {e}", 1) from None
    try:
        out.write_bytes(model)
    except OSError as e:
        raise RunnerError(f"cannot write {out}: {e.strerror or e}") from None
    d = describe(model)
    return ConversionReport(src, out, len(data), d, op_macs(d))


def _read_model(path: str | Path) -> tuple[bytes, dict]:
    from converter.inspect_model import describe

    try:
        model = Path(path).read_bytes()
    except OSError as e:
        raise RunnerError(f"cannot read {path}: {e.strerror or e}") from None
    from converter.compress import decompress_file

    try:
        plain = decompress_file(model)  # a compressed file: the model file inside it
    except ValueError as e:
        raise RunnerError(f"{path}: ModelError: {e}") from None
    try:
        tinyrt.fileformat.read_model(plain)  # the board reader's verdict, with its message
        return model, describe(plain)
    except tinyrt.TinyrtError as e:
        raise RunnerError(f"{path}: {type(e).__name__}: {e}") from None
    except Exception as e:  # noqa: BLE001 - the board reader passed it, the schema did not
        raise RunnerError(f"{path}: not a valid tinyrt model file: {type(e).__name__}: "
                          f"{str(e).splitlines()[0] if str(e) else ''}") from None


def read_model(path: str | Path) -> tuple[bytes, dict]:
    """The file's bytes and its description; RunnerError (exit 2) saying what is wrong."""
    return _read_model(path)


def batch_examples(x: np.ndarray, d: dict) -> list[list[np.ndarray]]:
    """Split raw inputs along axis 0, each reshaped to the model's input shape: int8 values for
    an int8 input, int32 words for an int32 or bit-packed one (packed: the last dimension
    counts words, LCE's layout)."""
    if len(d["inputs"]) != 1:
        raise RunnerError(f"the model has {len(d['inputs'])} inputs; tinyrt run feeds one")
    spec = d["inputs"][0]
    dtype, shape = spec["dtype"], stored_shape(spec)
    if dtype not in ("int8",) + WORD_DTYPES:
        raise RunnerError(f"the model input {spec['name']!r} is {dtype}; tinyrt run feeds "
                          "int8, int32 and packed inputs")
    words = dtype in WORD_DTYPES
    if x.dtype.kind not in "iu":
        if words:
            raise RunnerError(f"the input array holds {x.dtype} values; the model input is "
                              f"{dtype}: tinyrt run takes its int32 words (bit-packed: channel "
                              "c in word c // 32, bit c % 32, bit 1 = -1)")
        raise RunnerError(f"the input array holds {x.dtype} values; tinyrt run takes raw int8 "
                          f"tensor values (--float-input quantizes real ones with scale "
                          f"{spec['scale']:.6g} and zero point {spec['zero_point']})")
    if x.ndim < 1 or x.shape[0] == 0:
        raise RunnerError(f"the input array has shape {x.shape}; axis 0 must be the batch")
    lo, hi, kind = (-(2**31), 2**32 - 1, "int32 words") if words else (-128, 127, "int8")
    if x.size and (int(x.min()) < lo or int(x.max()) > hi):
        raise RunnerError(f"input values range over [{x.min()}, {x.max()}], outside {kind} "
                          f"[{lo}, {hi}]")
    per = _size(x.shape[1:])
    if per != _size(shape):
        what = "int32 words" if words else "values"
        raise RunnerError(f"each input x[i] has shape {x.shape[1:]} ({per} values) but the "
                          f"model input {spec['name']!r} has shape {shape} ({_size(shape)} "
                          f"{what}); axis 0 of the array is the batch")
    cast = np.int64 if words else np.int8
    return [[x[i].reshape(shape).astype(cast)] for i in range(x.shape[0])]


def run(model_path: str | Path, x: np.ndarray, interpreter: str = "unix",
        heap: int | None = None, progress: bool = False, sequence: bool = False
        ) -> tuple[list[np.ndarray], dict]:
    """Raw outputs of every x[i]: one array (n,) + output shape per model output, int8 for an
    int8 output, signed int32 words for an int32 or bit-packed one (last dimension: words).
    progress: show a bar on stderr (a terminal only) when the run looks longer than a few
    seconds; the batch then runs in chunks of about a second, one interpreter process each.
    Each x[i] starts from zero state (a stateful model's, an LSTM's); with `sequence` the state
    carries from x[i] to x[i + 1] (one process, no chunks)."""
    model, d = _read_model(model_path)
    examples = batch_examples(np.asarray(x), d)
    if sequence:
        rows = _invoke(model, examples, interpreter, heap, reset=False)
    else:
        rows = _invoke_chunked(model, examples, interpreter, heap, progress)
    outs = []
    for k, spec in enumerate(d["outputs"]):
        shape = (len(rows),) + stored_shape(spec)
        cast = {"float32": np.float32}.get(spec["dtype"],
                                          np.int32 if spec["dtype"] in WORD_DTYPES else np.int8)
        outs.append(np.stack([r[k] for r in rows]).astype(cast).reshape(shape))
    return outs, d


PROGRESS_AFTER = 3.0  # seconds: a run expected to take longer shows a progress bar
_FIRST_CHUNK = 8  # examples timed before deciding


def _invoke_chunked(model: bytes, examples: list, interpreter: str, heap: int | None,
                    progress: bool) -> list[list[np.ndarray]]:
    import time

    if not progress or len(examples) <= _FIRST_CHUNK:
        return _invoke(model, examples, interpreter, heap)
    t0 = time.perf_counter()
    rows = _invoke(model, examples[:_FIRST_CHUNK], interpreter, heap)
    per = (time.perf_counter() - t0) / _FIRST_CHUNK
    rest = examples[_FIRST_CHUNK:]
    if per * len(rest) < PROGRESS_AFTER:
        return rows + _invoke(model, rest, interpreter, heap)
    from tqdm import tqdm

    chunk = max(_FIRST_CHUNK, int(1.0 / max(per, 1e-6)))
    with tqdm(total=len(examples), initial=len(rows), unit="input", desc=interpreter,
              file=sys.stderr, disable=None, leave=False) as bar:
        for i in range(0, len(rest), chunk):
            rows += _invoke(model, rest[i: i + chunk], interpreter, heap)
            bar.update(len(rest[i: i + chunk]))
    return rows


def _invoke(model: bytes, examples: list, interpreter: str, heap: int | None,
            reset: bool = True) -> list[list[np.ndarray]]:
    where = interpreter if heap is None else f"{interpreter} (heap {heap:,} B)"
    try:
        return invoke_batch(model, examples, interpreter, heap=heap, reset=reset)
    except (InterpreterError, AssertionError) as e:  # Assertion: fewer results than examples
        raise RunnerError(f"{where}: {failure_line(e, heap)}", 1) from None


def failure_line(e: Exception, heap: int | None = None) -> str:
    """One line saying why a run on an interpreter failed, with a hint for a small heap."""
    line = _error_line(e)
    if line.startswith("MemoryError") and heap:
        line += (f" (--heap {heap} is too small for this model: give more, or ask "
                 "`tinyrt fit MODEL.trt --board NAME` what a board has)")
    elif line.startswith("MemoryError"):
        line += " (the interpreter's heap is too small for this model: give --heap N)"
    return line


_EXCEPTION_LINE = re.compile(r"^(\w+\.)*\w*(Error|Exception|Interrupt)\b.*")


def _error_line(e: Exception) -> str:
    """The exception the interpreter reported last, not the whole traceback (MicroPython
    prints tracebacks on stdout, CPython on stderr, wasmtime a trap on stderr)."""
    r = getattr(e, "result", None)
    text = (r.stderr + "\n" + r.stdout) if r is not None else str(e)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    found = [ln for ln in lines if _EXCEPTION_LINE.match(ln)]
    if found:
        return found[-1]
    traps = [ln for ln in lines if "wasm trap:" in ln]
    if traps:
        return traps[-1][traps[-1].index("wasm trap:"):]
    return lines[-1] if lines else str(e).splitlines()[0]
