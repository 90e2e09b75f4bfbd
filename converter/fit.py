"""Does a model fit a board? Flash (model file + runtime .mpy vs the filesystem), RAM (runtime +
tables + weights + arena vs the free heap) and which loading mode load() will use.

RAM that depends on the runtime's code (importing tinyrt and the model's kernel modules, the
parsed tables, Tensor objects and prepared kernels) is measured by loading the model on the
MicroPython unix port, in both modes. That port is 64-bit: its objects are up to twice the size
of a 32-bit board's, so these figures are upper bounds. Buffers (file, tables, scratch, arena)
are exact.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from tinyrt import fileformat as ff
from tinyrt import model as device_model
from tinyrt import opcodes
from tinyrt.stream import scratch_bytes

try:
    import boards
except ImportError:  # a checkout whose install predates the boards package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import boards

from boards.runtime import blocks, compile_runtime

MEASURE_HEAP = 64 << 20  # bytes: ample, so the retained-bytes measurement never runs short
MEASURE_STEP = 1024  # bytes: resolution of the smallest-heap search
MEASURE_CONFIRM = 4  # larger heaps (2 steps apart) that must work too
_MEASURE_VERSION = b"mpy-x64 confirm-4"  # part of the cache key: change with the method

# Loads the model both ways on the unix port and prints retained heap bytes (after collection):
# the import of tinyrt, the kernel modules the model pulls in (kept after the model is gone),
# and each mode's whole cost.
_RETAINED = r"""
import gc, json
gc.collect()
a0 = gc.mem_alloc()
import tinyrt
gc.collect()
a1 = gc.mem_alloc()
m = tinyrt.load("m.trt", stream=False)
gc.collect()
a2 = gc.mem_alloc()
m = None
gc.collect()
a3 = gc.mem_alloc()
try:
    m = tinyrt.load("m.trt", stream=True)
    gc.collect()
    a4 = gc.mem_alloc() - a3
    m.close()
except tinyrt.ModelError:  # DATA is not the file's last section
    a4 = -1
print(json.dumps({"import": a1 - a0, "modules": a3 - a1, "whole": a2 - a3, "streamed": a4}))
"""

# One try under a given heap: the free heap before `import tinyrt` (what a board reports at the
# REPL), then import, load and one invoke. Exits non-zero when the heap runs out.
_TRY = r"""
import gc
gc.collect()
print(gc.mem_free())
import tinyrt
m = tinyrt.load("m.trt", stream=STREAM)
m.invoke()
print("ok")
"""


class FitError(ValueError):
    """The model cannot be assessed (not a model file, or the runtime refuses it)."""


@dataclass
class Measured:
    runtime: int  # retained by import tinyrt + the model's kernel modules
    whole: int  # retained by load(stream=False): file + arena + objects
    streamed: int  # retained by load(stream=True): tables + scratch + arena + objects
    need_whole: int  # smallest free heap in which import + load(stream=False) + invoke work
    need_streamed: int  # the same with stream=True (0: the file cannot be streamed)


@lru_cache(maxsize=1)
def _mpy_lib() -> Path:
    """The runtime as flash.sh installs it, compiled for the unix port (x64): importing .mpy
    skips the compiler's transient RAM that importing .py would add."""
    lib = Path(tempfile.mkdtemp(prefix="tinyrt-fit-lib-"))
    for f in compile_runtime("x64")[0]:
        dest = lib / f.path
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(f.local, dest)
    return lib


def _unix(code: str, model: bytes, heap: int) -> subprocess.CompletedProcess:
    from host_sim.interpreters import micropython_executable

    with tempfile.TemporaryDirectory(prefix="tinyrt-fit-") as tmp:
        (Path(tmp) / "m.trt").write_bytes(model)
        (Path(tmp) / "main.py").write_text(code)
        return subprocess.run([micropython_executable(), "-X", f"heapsize={heap}", "main.py"],
                              cwd=tmp, capture_output=True, text=True, timeout=600,
                              env=dict(os.environ, MICROPYPATH=f"{_mpy_lib()}:.frozen"))


def _smallest_free_heap(model: bytes, stream: bool, hint: int) -> int:
    """The smallest free heap (gc.mem_free() before import) in which the runtime imports,
    loads the model and runs it, found by bisection on -X heapsize."""
    code = _TRY.replace("STREAM", str(stream))

    seen: dict[int, int] = {}  # heap -> free heap before import, for heaps that worked

    def attempt(heap: int) -> int | None:
        r = _unix(code, model, heap)
        lines = r.stdout.split()
        if r.returncode == 0 and lines[-1:] == ["ok"]:
            seen[heap] = int(lines[0])
            return seen[heap]
        return None

    lo, hi = 0, max(hint, 64 * 1024)
    while attempt(hi) is None:
        lo, hi = hi, hi * 2
        if hi > MEASURE_HEAP:
            raise FitError("the model does not load on the unix port even with a "
                           f"{MEASURE_HEAP >> 20} MiB heap")
    while hi - lo > MEASURE_STEP:
        mid = (lo + hi) // 2
        if attempt(mid) is None:
            lo = mid
        else:
            hi = mid
    # Fragmentation makes success not quite monotonic in the heap size (and twins chosen by
    # timing vary): move up until the next few sizes all work too.
    k = 1
    while k <= MEASURE_CONFIRM or hi not in seen:
        if hi not in seen and attempt(hi) is None:
            hi += 2 * MEASURE_STEP
            k = 1
        elif attempt(hi + k * 2 * MEASURE_STEP) is None:
            hi += (k + 1) * 2 * MEASURE_STEP
            k = 1
        else:
            k += 1
        if hi > MEASURE_HEAP:
            raise FitError("the model loads on the unix port only now and then")
    return seen[hi]


def _cache_key(model: bytes) -> str:
    from boards.runtime import sources

    h = hashlib.sha256(model + _MEASURE_VERSION)
    for _, src in sources():
        h.update(src.read_bytes())
    return h.hexdigest()[:32]


@lru_cache(maxsize=8)
def measure(model: bytes) -> Measured:
    """RAM on the 64-bit unix port: what the runtime and each loading mode retain, and the
    smallest free heap each mode runs in (which includes the transient peak of loading)."""
    cache = Path(tempfile.gettempdir()) / "tinyrt-fit-cache" / (_cache_key(model) + ".json")
    if cache.exists():
        return Measured(**json.loads(cache.read_text()))
    r = _unix(_RETAINED, model, MEASURE_HEAP)
    if r.returncode != 0:
        lines = [ln for ln in (r.stdout + r.stderr).splitlines() if "Error" in ln]
        raise FitError(lines[-1].strip() if lines else r.stderr.strip()[-300:])
    d = json.loads(r.stdout.strip().splitlines()[-1])
    runtime = d["import"] + d["modules"]
    need_whole = _smallest_free_heap(model, False, 2 * (runtime + d["whole"]))
    need_streamed = (_smallest_free_heap(model, True, 2 * (runtime + d["streamed"]))
                     if d["streamed"] >= 0 else 0)
    m = Measured(runtime, d["whole"], d["streamed"], need_whole, need_streamed)
    cache.parent.mkdir(exist_ok=True)
    cache.write_text(json.dumps(dataclasses.asdict(m)))
    return m


@dataclass
class Fit:
    board: boards.BoardProfile
    name: str
    file_bytes: int
    tables_bytes: int  # the bytes before DATA: what streaming keeps in RAM
    arena_bytes: int
    scratch_bytes: int
    kernel_modules: list[str]
    runtime_files: int
    runtime_bytes: int
    runtime_fs_bytes: int  # in whole filesystem blocks
    measured: Measured
    skipped: list[str] = field(default_factory=list)  # optional modules not for this arch

    # -- flash --------------------------------------------------------------------------------
    @property
    def model_fs_bytes(self) -> int:
        return blocks(self.file_bytes, self.board.fs_block_bytes)

    @property
    def flash_needed(self) -> int:
        return self.model_fs_bytes + self.runtime_fs_bytes

    @property
    def flash_ok(self) -> bool:
        return self.flash_needed <= self.board.fs_bytes

    # -- RAM ----------------------------------------------------------------------------------
    # Objects (runtime code, tables, tensors, prepared kernels) are measured on the 64-bit unix
    # port; on a 32-bit board they take between half of that (pointer-sized fields, 16-byte GC
    # blocks instead of 32) and all of it (byte data). Buffers are exact on both.
    @property
    def streamable(self) -> bool:
        return self.tables_bytes < self.file_bytes

    def buffers(self, streamed: bool) -> int:
        if streamed:
            return self.tables_bytes + self.scratch_bytes + self.arena_bytes
        return self.file_bytes + self.arena_bytes

    def objects(self, streamed: bool) -> int:
        """Retained bytes of the model's objects (tables, tensors, prepared kernels)."""
        m = self.measured
        return (m.streamed if streamed else m.whole) - self.buffers(streamed)

    def peak(self, streamed: bool) -> int:
        """What loading needs beyond what it keeps: garbage and fragmentation at its peak."""
        m = self.measured
        need = m.need_streamed if streamed else m.need_whole
        return need - m.runtime - self.buffers(streamed) - self.objects(streamed)

    def ram_needed(self, streamed: bool, low: bool = False) -> int:
        """The free heap the model needs: the 64-bit measurement, or (low) that with
        everything but the buffers halved, a lower bound for 32-bit boards."""
        m = self.measured
        need = m.need_streamed if streamed else m.need_whole
        b = self.buffers(streamed)
        return b + (need - b) // 2 if low else need

    def largest_buffer(self, streamed: bool) -> int:
        if streamed:
            return max(self.tables_bytes, self.scratch_bytes, self.arena_bytes)
        return max(self.file_bytes, self.arena_bytes)

    def ram(self, streamed: bool) -> str:
        """'fits' (by the 64-bit upper bound), 'may fit' (only by the 32-bit lower bound) or
        'no'."""
        b = self.board
        if streamed and not self.streamable:
            return "no"
        if self.largest_buffer(streamed) > b.max_alloc_bytes:
            return "no"
        if self.ram_needed(streamed) <= b.free_heap_bytes:
            return "fits"
        if self.ram_needed(streamed, low=True) <= b.free_heap_bytes:
            return "may fit"
        return "no"

    @property
    def auto_streams(self) -> bool:
        """What load(path) decides on this board (tinyrt.model._load_path's rule), with the
        runtime's RAM taken by the 64-bit measurement."""
        free = self.board.free_heap_bytes - self.measured.runtime
        reserve = max(device_model._RESERVE_MIN,
                      device_model._RESERVE_PER_TABLE_BYTE * self.tables_bytes)
        return self.streamable and self.file_bytes + self.arena_bytes + reserve > free

    @property
    def verdict(self) -> tuple[str, str | None]:
        """('fits' | 'may fit' | 'no', 'in RAM' | 'streaming' | None): the best mode. load()
        tries the whole file when its estimate allows and falls back to streaming."""
        if not self.flash_ok:
            return "no", None
        whole, streamed = self.ram(False), self.ram(True)
        if whole == "fits":
            return "fits", "in RAM"
        if streamed == "fits":
            return "fits", "streaming"
        if streamed == "may fit":
            return "may fit", "streaming"
        if whole == "may fit":
            return "may fit", "in RAM"
        return "no", None

    @property
    def fits(self) -> bool:
        return self.verdict[0] == "fits"

    def problems(self) -> list[str]:
        b = self.board
        out = []
        if not self.flash_ok:
            out.append(f"flash: needs {self.flash_needed:,} B, the filesystem holds "
                       f"{b.fs_bytes:,} B")
        mode = self.streamable
        if self.ram(False) == "no" and self.ram(True) == "no":
            low = self.ram_needed(mode, low=True)
            if self.arena_bytes > min(b.max_alloc_bytes, b.free_heap_bytes):
                out.append(f"RAM: the arena needs {self.arena_bytes:,} B in one piece and "
                           "activations stay in RAM even when weights are streamed: use a "
                           "smaller model or input")
            elif self.largest_buffer(mode) > b.max_alloc_bytes:
                out.append(f"RAM: a single buffer of {self.largest_buffer(mode):,} B exceeds "
                           f"the ~{b.max_alloc_bytes:,} B one allocation can get on this board")
            else:
                out.append(f"RAM: needs at least {low:,} B{' even when streaming' if mode else ''}"
                           f" (buffers {self.buffers(mode):,} B: arena, tables, scratch; the "
                           f"rest runtime and model objects), the heap has "
                           f"~{b.free_heap_bytes:,} B free: use a smaller model or a board with "
                           "more RAM")
        return out

    def report(self) -> str:
        b = self.board
        m = self.measured
        est = {f: " (estimate)" if f in b.estimates else "" for f in boards.FIGURES}
        kib = b.fs_block_bytes // 1024
        L, W = 44, 14  # label and number column widths

        def row(label: str, *cells: object) -> str:
            text = "".join(f"{c:>{W},}" if isinstance(c, int) else f"{c:>{W}}" for c in cells)
            return f"    {label:<{L}}{text}"

        lines = [
            f"{self.name} on {b.name}: {b.title}",
            f"  {b.mcu} @ {b.clock_hz // 1_000_000} MHz{est['clock_hz']}, "
            f"{b.ram_bytes // 1024} KB RAM, {b.flash_bytes // 1024 // 1024} MB flash, "
            f".mpy arch {b.mpy_arch}, viper {'yes' if b.viper else 'no'}",
            "",
            f"  flash: filesystem {b.fs_bytes:,} B{est['fs_bytes']}",
            row("", "bytes", f"{kib} KiB blocks"),
            row("model file", self.file_bytes, self.model_fs_bytes),
            row(f"runtime: {self.runtime_files} .mpy for {b.mpy_arch}", self.runtime_bytes,
                self.runtime_fs_bytes),
            row("total", self.file_bytes + self.runtime_bytes, self.flash_needed)
            + f"  {100 * self.flash_needed / b.fs_bytes:.0f}%: "
            + ("ok" if self.flash_ok else "DOES NOT FIT"),
        ]
        if self.skipped:
            lines.append(f"    (left out, not compilable for {b.mpy_arch}: "
                         f"{', '.join(Path(s).stem for s in self.skipped)})")
        dash = "-"
        s_ok = self.streamable
        lines += [
            "",
            f"  RAM: free heap after boot ~{b.free_heap_bytes:,} B{est['free_heap_bytes']}, "
            f"largest single allocation ~{b.max_alloc_bytes:,} B{est['max_alloc_bytes']}",
            row("", "in RAM", "streaming"),
            row(f"runtime: tinyrt + {len(self.kernel_modules)} kernel modules *", m.runtime,
                m.runtime),
            row("tables, tensors, prepared kernels *", self.objects(False),
                self.objects(True) if s_ok else dash),
            row("model file", self.file_bytes, dash),
            row("tables + scratch buffer", dash,
                self.tables_bytes + self.scratch_bytes if s_ok else dash),
            row("arena", self.arena_bytes, self.arena_bytes),
            row("peak garbage while loading *", self.peak(False),
                self.peak(True) if s_ok else dash),
            row("needed free heap, 64-bit (upper bound)", self.ram_needed(False),
                self.ram_needed(True) if s_ok else dash),
            row("with * halved (32-bit lower bound)", self.ram_needed(False, low=True),
                self.ram_needed(True, low=True) if s_ok else dash),
            row("largest single buffer", self.largest_buffer(False),
                self.largest_buffer(True) if s_ok else dash),
            row("verdict", self.ram(False), self.ram(True)),
            "    * measured on the 64-bit MicroPython unix port (needed free heap: by bisecting",
            "      -X heapsize); a 32-bit board's objects take from half to all of that",
            "",
        ]
        level, mode = self.verdict
        lines += self._verdict_lines(level, mode)
        return "\n".join(lines)

    def _verdict_lines(self, level: str, mode: str | None) -> list[str]:
        lines: list[str] = []
        q = repr(self.name)
        how = {"in RAM": f"tinyrt.load({q}) loads the whole file; weights are used in place"
                         + (" (pass stream=False: load()'s own estimate of the objects' RAM "
                            "is more cautious and would stream)" if self.auto_streams else ""),
               "streaming": f"tinyrt.load({q}) keeps {self.tables_bytes:,} B of tables in RAM "
                            f"and reads each layer's weights into a {self.scratch_bytes:,} B "
                            "scratch buffer during invoke()"}
        if level == "fits" and mode:
            text = f"FITS {mode}: {how[mode]}."
        elif level == "may fit" and mode:
            text = (f"MAY FIT {mode}, if the board's 32-bit objects are small enough: "
                    f"{how[mode]}. flash.sh checks against the board's real free heap.")
        else:
            lines.append("  DOES NOT FIT:")
            return lines + [textwrap.fill(p, 96, initial_indent="    ",
                                          subsequent_indent="      ") for p in self.problems()]
        return lines + textwrap.wrap(text, 96, initial_indent="  ", subsequent_indent="    ")


def kernel_modules(mf: ff.ModelFile) -> list[str]:
    mods = []
    for op in mf.ops:
        entry = opcodes.OPS.get(op.opcode)
        if entry and entry[1] not in mods:
            mods.append(entry[1])
    return mods


def fit(model: bytes, board: boards.BoardProfile, name: str = "model.trt") -> Fit:
    """Assess `model` (file bytes) on `board`. Raises FitError for a file the runtime refuses."""
    try:
        mf = ff.read_model(model)
    except ff.ModelError as e:
        raise FitError(f"not a valid model file: {e}") from None
    files, skipped = compile_runtime(board.mpy_arch)
    data_last = mf.data_offset + mf.data_length == len(model)
    return Fit(
        board=board, name=name, file_bytes=len(model),
        tables_bytes=mf.data_offset if data_last else len(model),
        arena_bytes=mf.arena_bytes, scratch_bytes=scratch_bytes(mf),
        kernel_modules=kernel_modules(mf), runtime_files=len(files),
        runtime_bytes=sum(f.size for f in files),
        runtime_fs_bytes=sum(blocks(f.size, board.fs_block_bytes) for f in files),
        measured=measure(model), skipped=skipped,
    )
