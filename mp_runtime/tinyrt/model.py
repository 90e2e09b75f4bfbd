# The interpreter: prepare every operator once (the kernel modules imported first) -> invoke()
# runs the prepared kernels. Memory, allocated when a Model is made: one arena, the kernels'
# shared working memory and, when the weights are streamed, one scratch buffer; the file's
# buffer (or its mapping, or the open file) comes from tinyrt.loader, which makes Models.
import gc

from . import opcodes
from .errors import ArenaError, ModelError, TinyrtError, UnsupportedError
from .fileformat import ARENA, NO_TENSOR, VARIABLE, read_metadata
from .buffers import COLLECT as _COLLECT, allocate as _allocate, free_heap as _free_heap, \
    plan_work as _plan_work, ticks_diff, ticks_us
from .tensor import FAILED, NO_RESULT, RESULT, Input, Output, Tensor


def _import_kernels(mf):
    """The kernel module of every operator, with the fast twins it may choose, imported
    before the big buffers are allocated (so no module lands between them)."""
    from .fast import preload

    # one list of its final size: a list grown op by op is moved up the heap at each growth
    # and may end in the middle of the free space the arena needs (a 119-op model on m0)
    mods = [None] * mf.n_ops
    for i, op in enumerate(mf.ops):
        mod = _kernel_module(op.opcode, i)
        preload(mod)
        mods[i] = mod
    return mods


def _kernel_module(opcode, index):
    entry = opcodes.OPS.get(opcode)
    if entry is None:
        raise UnsupportedError("operator %d has opcode %d, which this tinyrt does not know: "
                               "a newer tinyrt may (flash.sh installs the current one)"
                               % (index, opcode))
    modname = entry[1]
    try:
        return __import__("tinyrt.kernels." + modname, None, None, (modname,))
    except ImportError:
        raise UnsupportedError("operator %d (%s) is not implemented by this tinyrt build"
                               % (index, entry[0]))


# Operators whose cost is counted in multiply-accumulates (weights are input 1): every output
# element takes (weight elements / output channels) MACs (binary ops: XOR-popcount bit MACs).
_MAC_OPS = (opcodes.CONV_2D, opcodes.DEPTHWISE_CONV_2D, opcodes.FULLY_CONNECTED,
            opcodes.BCONV_2D, opcodes.BFULLY_CONNECTED)
_NAME_WIDTH = 40  # characters of a tensor name shown in the arena map
_ARENA_HINT = ": activations live in RAM even when weights are streamed; use a smaller model"


def _elements(shape):
    n = 1
    for d in shape:
        n *= d
    return n


class _Rows(list):
    """profile()'s [(op name, us)]: printed as a table already, so its repr is one line."""

    def __repr__(self):
        return "<profile of %d layers: the table above>" % len(self)


class Model:
    """A loaded model. `f` is the open model file when the weights are streamed from it,
    `flash` the memory-mapped file (tinyrt.romfs.Flash) when they are used in place."""

    def __init__(self, mf, f=None, path=None, flash=None):
        self.file = mf
        self.stream = f
        self.flash = flash
        self.path = path
        self.note = None  # why the weights are not where they could be (summary() says it)
        self.closed = False
        self.state = NO_RESULT  # what the outputs hold (tinyrt.tensor: NO_RESULT, ...)
        try:
            self._allocate_memory(_import_kernels(mf))
            self._prepare()
        except BaseException:
            self.close()
            raise

    def _allocate_memory(self, kernels):
        mf = self.file
        # Working memory of the kernels' fast twins (the asm depthwise kernel's padded image):
        # planned into the arena where the layer leaves room (tinyrt.buffers.plan_work), else
        # one buffer for the largest layer's need, shared by the layers like the arena.
        asks = None  # type: list[tuple | None] | None
        for i, op in enumerate(mf.ops):
            ask = getattr(kernels[i], "work_bytes", None)
            n = ask(self, op) if ask is not None else 0
            if n:
                if asks is None:
                    asks = [None] * mf.n_ops
                lead = getattr(kernels[i], "work_leads", None)
                asks[i] = (n,) + (lead(self, op) if lead is not None else (None, None, None))
        plans = ((mf.arena_bytes, None, 0),) if asks is None else _plan_work(mf, asks)
        asks = None
        self.work = None
        for k in range(len(plans)):
            arena, self.padded, need = plans[k]
            try:
                self.arena = _allocate(arena, "arena", _ARENA_HINT)
                break
            except ArenaError:  # the next plan's pieces are smaller (the images in a buffer)
                if k + 1 == len(plans):
                    raise
        if need:
            self.work = _allocate(need, "kernels' working memory", _ARENA_HINT)
        self.scratch = None
        if self.stream is not None:
            # imported only by a model that streams its weights
            from .stream import check_data, scratch_bytes

            n = scratch_bytes(mf)
            free = _free_heap()
            if n > free:
                raise ArenaError(
                    "model file %r needs %d bytes streamed (its largest layer's weights) or "
                    "%d loaded whole, the heap has %d free: use a smaller model"
                    % (self.path, n, mf.file_bytes, free))
            self.scratch = _allocate(n, "streaming scratch buffer")
            check_data(self.stream, mf, self.scratch)

    def _prepare(self):
        mf = self.file
        arena_mv = memoryview(self.arena)
        file_mv = memoryview(mf.buf)
        self.tensors = []  # type: list[Tensor | None]
        self.variables = []  # type: list[Tensor]  # state across invoke()s (LSTM): reset()
        inputs = mf.inputs
        outputs = mf.outputs
        for i, rec in enumerate(mf.tensors):
            if rec.storage == ARENA:
                data = arena_mv[rec.offset : rec.offset + rec.nbytes]
            elif self.stream is not None:
                data = None  # a view of the scratch buffer, set per operator by stream.bind
            elif self.flash is not None:
                data = self.flash.tensor_view(mf.data_offset + rec.offset, rec)
            else:
                start = mf.data_offset + rec.offset
                data = file_mv[start : start + rec.nbytes]
            if i in outputs:
                t = Output(i, rec, data, self)  # type: Tensor
            elif i in inputs:
                t = Input(i, rec, data, self)
            else:
                t = Tensor(i, rec, data)
            self.tensors.append(t)
            if rec.flags & VARIABLE:
                self.variables.append(t)
        self.ops = mf.ops
        self.kernels = []
        scratch = None
        if self.scratch is not None:
            from .stream import StreamedKernel, bind, read_into

            scratch = memoryview(self.scratch)
        for i, op in enumerate(mf.ops):
            mod = _kernel_module(op.opcode, i)
            if _COLLECT:
                gc.collect()  # the last prepare()'s garbage, before this one's tables
            reads = ()
            if scratch is not None:
                reads = bind(self, op, scratch)
                read_into(self.stream, reads)  # prepare() reads the tables it copies
            try:
                k = mod.prepare(self, op)
            except ModelError as e:  # the kernel's check, named with the operator
                raise ModelError("operator %d (%s): %s" % (i, opcodes.name(op.opcode), e))
            except TinyrtError:  # a ValueError too, but already precise
                raise
            except (IndexError, ValueError, KeyError) as e:
                raise ModelError("operator %d (%s): malformed parameters (%s)"
                                 % (i, opcodes.name(op.opcode), e))
            if reads:
                k = StreamedKernel(self.stream, reads, k)
            self.kernels.append(k)
        self.shared_tables = None  # tables the kernels share (kernels.common.shared)
        # The kernels hold the views they need; a Tensor object per intermediate tensor
        # (~200 B on a board each, 45 for kws) is dropped: only inputs, outputs and state stay.
        for i in range(len(self.tensors)):
            if not (i in inputs or i in outputs or self.tensors[i] in self.variables):
                self.tensors[i] = None
        self.reset()

    def reset(self):
        """Forget the state kept across invoke()s (an LSTM's hidden and cell state), as
        TFLM's Reset(): int8 state tensors to their zero point, others to 0. Models without
        state have nothing to reset. Allocates nothing."""
        for t in self.variables:
            d = t.data
            v = t.zero_point if t.dtype == "int8" else 0
            for i in range(len(d)):
                d[i] = v

    def work_view(self, op):
        """The working memory of `op`'s fast twin: its padded image's place in the arena, or
        the buffer the layers share (None when there is none)."""
        spot = self.padded.get(op.outputs[0]) if self.padded else None
        if spot is None:
            return self.work
        return memoryview(self.arena)[spot[0] : spot[0] + spot[1]]

    def close(self):
        """Close the model file (streaming mode); the model cannot run after that (invoke()
        and profile() raise ModelError). Its tensors stay readable."""
        self.closed = True
        if self.stream is not None:
            self.stream.close()
        if self.flash is not None:
            self.flash.close()

    @property
    def mode(self):
        """Where the weights are: "in place" (flash, ROMFS), "streamed" (read from the file
        during invoke()) or "whole file" (the file in RAM)."""
        if self.flash is not None:
            return "in place"
        return "streamed" if self.stream is not None else "whole file"

    # -- the REPL-facing API ------------------------------------------------------------------
    def input(self, i=0):
        """Input tensor i (a Tensor: set(), quantize(), tolist())."""
        try:
            return self.tensors[self.file.inputs[i]]
        except (IndexError, TypeError):
            from .explain import no_such

            raise no_such("input", i, self.file.inputs)

    def output(self, i=0):
        """Output tensor i (a Tensor: tolist(), dequantize(), valid after invoke())."""
        try:
            return self.tensors[self.file.outputs[i]]
        except (IndexError, TypeError):
            from .explain import no_such

            raise no_such("output", i, self.file.outputs)

    @property
    def n_inputs(self):
        return len(self.file.inputs)

    @property
    def n_outputs(self):
        return len(self.file.outputs)

    def invoke(self, x=None):
        """Run the model once and return output 0. With x, first copy x into input 0.

        invoke() itself allocates nothing; every buffer was made at load. Until it completes
        (or after it raised) the outputs hold no result: reading them raises ModelError.
        """
        if self.closed:
            from .explain import closed

            raise closed()
        if x is not None:
            self.input(0).set(x)
        self.state = FAILED  # until the last kernel has run
        for k in self.kernels:
            k.eval()
        self.state = RESULT
        return self.tensors[self.file.outputs[0]]

    def metadata(self):
        return read_metadata(self.file)

    def macs(self, i):
        """Multiply-accumulates of operator i per invoke (0 for ops without weights)."""
        op = self.file.ops[i]
        if op.opcode == opcodes.UNIDIRECTIONAL_SEQUENCE_LSTM:  # per step and cell: 4 gates,
            w = self.file.tensors[op.inputs[1]].shape  # (4, S, I): input and recurrent FCs
            return _elements(self.file.tensors[op.outputs[0]].shape) * w[0] * (w[2] + w[1])
        if op.opcode not in _MAC_OPS or len(op.inputs) < 2 or op.inputs[1] == NO_TENSOR:
            return 0
        y = self.file.tensors[op.outputs[0]].shape
        w = self.file.tensors[op.inputs[1]].shape
        return _elements(y) * _elements(w) // y[-1]

    def summary(self):
        """Print the layers (output shape, MACs, weight bytes, kernel chosen), the memory
        mode and the arena map."""
        mf = self.file
        weights = 0
        for t in mf.tensors:
            if t.storage != ARENA:
                weights += t.nbytes
        total = 0
        for i in range(len(mf.ops)):
            total += self.macs(i)
        print("tinyrt model: %d ops, %d tensors, %d MACs per invoke"
              % (len(mf.ops), len(mf.tensors), total))
        print("  file %d B (weights %d B), arena %d B" % (mf.file_bytes, weights, mf.arena_bytes))
        if self.flash is not None:
            print("  weights in place from flash: %r on ROMFS, no copy of the file in RAM"
                  % self.path)
        elif self.scratch is not None:
            print("  weights streamed from %r: %d B of tables in RAM + %d B scratch buffer"
                  % (self.path, len(mf.buf), len(self.scratch)))
        else:
            print("  weights in RAM: the whole file is loaded, weights used in place")
        if self.note:
            print("  note: %s" % self.note)
        print("   #  %-18s %-18s %9s %8s  kernel" % ("op", "output", "MACs", "weights"))
        for i, op in enumerate(mf.ops):
            w = 0
            for t in op.inputs:
                if t != NO_TENSOR and mf.tensors[t].storage != ARENA:
                    w += mf.tensors[t].nbytes
            print("  %2d  %-18s %-18s %9d %6d B  %s" % (
                i, opcodes.name(op.opcode), mf.tensors[op.outputs[0]].shape, self.macs(i), w,
                getattr(self.kernels[i], "impl", "reference")))
        if self.padded:
            print("  arena: %d B with %d depthwise padded images planned into it (file: %d B)"
                  % (len(self.arena), len(self.padded), mf.arena_bytes))
        if self.work is not None:
            print("  kernels' working memory: %d B, shared by the layers" % len(self.work))
        from .fast import fallback

        for name in fallback:
            print("  note: %s runs slower than it could: %s" % (name, fallback[name]))
        print("  arena map (offset..end  tensor):")
        for i in range(mf.n_tensors):
            rec = mf.tensors[i]
            if rec.storage == ARENA:
                name = rec.name
                if len(name) > _NAME_WIDTH:  # keep the end: converters put the op there
                    name = "..." + name[len(name) - _NAME_WIDTH + 3 :]
                print("    %6d..%-6d %s %s%s" % (rec.offset, rec.offset + rec.nbytes, name,
                                                 rec.shape, " state: kept across invoke(), "
                                                 "reset()" if rec.flags & VARIABLE else ""))

    def profile(self, runs=1):
        """Run invoke() `runs` times timing each layer; print and return [(name, us)] (a list
        that the REPL does not echo: the table is already printed). With streamed weights a
        layer's time includes reading its weights from the file."""
        if self.closed:
            from .explain import closed

            raise closed()
        times = []
        for k in self.kernels:
            times.append(0)
        self.state = FAILED
        for _ in range(runs):
            for i in range(len(self.kernels)):
                t0 = ticks_us()
                self.kernels[i].eval()
                times[i] += ticks_diff(ticks_us(), t0)
        self.state = RESULT
        total = 0
        for t in times:
            total += t
        rows = _Rows()
        for i, op in enumerate(self.file.ops):
            us = times[i] // runs
            rows.append((opcodes.name(op.opcode), us))
            print("  %2d %-18s %9d us  %5.1f%%" % (i, rows[-1][0], us,
                                                  100.0 * times[i] / (total or 1)))
        print("  total %d us per invoke (%d runs)%s" % (
            total // runs, runs, ", weights streamed from the file" if self.stream else ""))
        return rows
