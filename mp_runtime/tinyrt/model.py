# The interpreter: load -> prepare every operator once -> invoke() runs the prepared kernels.
# Memory: one file buffer (weights used in place) and one arena, both allocated at load.
import gc
import os
import sys
from array import array

from . import opcodes
from .buffers import int8_buffer
from .errors import ArenaError, ModelError, UnsupportedError
from .fileformat import ARENA, NO_TENSOR, read_metadata, read_model
from .tensor import Tensor

_MICROPYTHON = sys.implementation.name == "micropython"

try:
    from time import ticks_diff, ticks_us
except ImportError:  # CPython
    from time import perf_counter_ns

    def ticks_us():
        return perf_counter_ns() // 1000

    def ticks_diff(a, b):
        return a - b
# The 32-bit WASI build's collector misses objects held only in wasm locals, so a collection
# requested deep inside a call can free live objects there: tinyrt never asks for one on it.
_COLLECT = _MICROPYTHON and getattr(sys.implementation, "_build", "") != "wasi"


_HOST_HEAP = 1 << 28  # bytes: what the CPython simulator pretends to have free


def _free_heap():
    """Bytes free on the MicroPython heap (a notional 256 MiB on CPython)."""
    if not _MICROPYTHON:
        return _HOST_HEAP
    if _COLLECT:
        gc.collect()
    return gc.mem_free()


def _allocate(n, what):
    free = _free_heap()
    if n > free:
        raise ArenaError("%s needs %d bytes, the heap has %d free" % (what, n, free))
    try:
        return int8_buffer(n)
    except MemoryError:
        raise ArenaError("%s needs %d bytes, the heap could not supply them in one piece "
                         "(%d free)" % (what, n, free))


def _read_file(path):
    # Size from stat, buffer allocated before the file is opened: no collection runs while
    # a file object is live.
    try:
        size = os.stat(path)[6]
    except OSError as e:
        raise ModelError("cannot open model file %r: %s" % (path, e))
    buf = _allocate(size, "model file %r" % path)
    f = open(path, "rb")
    got = f.readinto(buf)
    f.close()
    if got != size:
        raise ModelError("model file %r: read %d of %d bytes" % (path, got, size))
    return buf


def load(src):
    """Load a model from a file path or a buffer (bytes, bytearray, array('b')).

    Raises ModelError for a file that is not a valid model, ArenaError when its memory does
    not fit the heap and UnsupportedError when it uses an operator this runtime lacks.
    """
    if isinstance(src, str):
        buf = _read_file(src)
    elif isinstance(src, array) and src.typecode == "b":
        buf = src
    else:
        try:
            buf = array("b", src)
        except TypeError:
            raise ModelError("load() takes a path or a buffer, got %s" % type(src).__name__)
    return Model(read_model(buf))


def _kernel_module(opcode, index):
    entry = opcodes.OPS.get(opcode)
    if entry is None:
        raise UnsupportedError("operator %d has opcode %d, which this tinyrt does not know"
                               % (index, opcode))
    modname = entry[1]
    try:
        return __import__("tinyrt.kernels." + modname, None, None, (modname,))
    except ImportError:
        raise UnsupportedError("operator %d (%s) is not implemented by this tinyrt build"
                               % (index, entry[0]))


class Model:
    def __init__(self, mf):
        self.file = mf
        self.arena = _allocate(mf.arena_bytes, "arena")
        arena_mv = memoryview(self.arena)
        file_mv = memoryview(mf.buf)
        self.tensors = []
        for i, rec in enumerate(mf.tensors):
            if rec.storage == ARENA:
                data = arena_mv[rec.offset : rec.offset + rec.nbytes]
            else:
                start = mf.data_offset + rec.offset
                data = file_mv[start : start + rec.nbytes]
            self.tensors.append(Tensor(i, rec, data))
        self.ops = mf.ops
        self.kernels = []
        for i, op in enumerate(mf.ops):
            mod = _kernel_module(op.opcode, i)
            try:
                self.kernels.append(mod.prepare(self, op))
            except (IndexError, ValueError, KeyError) as e:
                raise ModelError("operator %d (%s): malformed parameters (%s)"
                                 % (i, opcodes.name(op.opcode), e))

    # -- the REPL-facing API ------------------------------------------------------------------
    def input(self, i=0):
        return self.tensors[self.file.inputs[i]]

    def output(self, i=0):
        return self.tensors[self.file.outputs[i]]

    @property
    def n_inputs(self):
        return len(self.file.inputs)

    @property
    def n_outputs(self):
        return len(self.file.outputs)

    def invoke(self, x=None):
        """Run the model once and return output 0. With x, first copy x into input 0.

        invoke() itself allocates nothing; every buffer was made at load.
        """
        if x is not None:
            self.input(0).set(x)
        for k in self.kernels:
            k.eval()
        return self.tensors[self.file.outputs[0]]

    def metadata(self):
        return read_metadata(self.file)

    def summary(self):
        """Print the layers (output shape, weight bytes, kernel chosen) and the arena map."""
        mf = self.file
        weights = 0
        for t in mf.tensors:
            if t.storage != ARENA:
                weights += t.nbytes
        print("tinyrt model: %d ops, %d tensors; file %d B (weights %d B), arena %d B"
              % (len(mf.ops), len(mf.tensors), len(mf.buf), weights, mf.arena_bytes))
        for i, op in enumerate(mf.ops):
            w = 0
            for t in op.inputs:
                if t != NO_TENSOR and mf.tensors[t].storage != ARENA:
                    w += mf.tensors[t].nbytes
            out = self.tensors[op.outputs[0]]
            print("  %2d %-18s -> %-18s %7d B weights  %s" % (
                i, opcodes.name(op.opcode), out.shape, w, getattr(self.kernels[i], "impl",
                                                                   "reference")))
        print("  arena map (offset..end  tensor):")
        for t in self.tensors:
            rec = mf.tensors[t.index]
            if rec.storage == ARENA:
                print("    %6d..%-6d %s %s" % (rec.offset, rec.offset + rec.nbytes, t.name,
                                               t.shape))

    def profile(self, runs=1):
        """Run invoke() `runs` times timing each layer; print and return [(name, us)]."""
        times = []
        for k in self.kernels:
            times.append(0)
        for _ in range(runs):
            for i in range(len(self.kernels)):
                t0 = ticks_us()
                self.kernels[i].eval()
                times[i] += ticks_diff(ticks_us(), t0)
        total = 0
        for t in times:
            total += t
        rows = []
        for i, op in enumerate(self.file.ops):
            us = times[i] // runs
            rows.append((opcodes.name(op.opcode), us))
            print("  %2d %-18s %9d us  %5.1f%%" % (i, rows[-1][0], us,
                                                  100.0 * times[i] / (total or 1)))
        print("  total %d us per invoke (%d runs)" % (total // runs, runs))
        return rows
