"""Does a model fit a board? Flash (model file + runtime .mpy vs the filesystem) and RAM (runtime
+ model vs the free heap after boot), loaded whole or streamed, with one definitive verdict.

RAM is measured on 32-bit firmware: the emulated m0 board (host_sim "m0", genuine MicroPython
1.29 for a Cortex-M0, the RP2040's instruction set; ~192 KB free after boot). A script imports
tinyrt, loads the model whole or streamed and invokes it once, printing gc.mem_free() after
gc.collect() at each step; the smallest free heap in which import + load + invoke all succeed is
then found by bisection on host_sim's heap ballast. Arm boards run the asm_thumb twins; ESP32
firmware has no Thumb assembler and runs viper, so it is measured with asm off
(tinyrt.fast.arch[0] = 0). Objects are the same size on every 32-bit port; native code is not,
so a board's runtime figure is the m0 figure plus the size difference of the imported modules'
.mpy files (the board's arch minus armv6m): such figures are reported as scaled. A mode that
does not load within m0's heap is extrapolated from what was measured, and marked so.
m0 runs tinyrt from ROMFS (bytecode in place); flash.sh installs it on the board's filesystem,
from which imports read the bytecode into RAM too: boards.fs_runtime measures that on m3 and
it is added to every board's figures.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
import textwrap
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from tinyrt import fileformat as ff
from tinyrt import loader as device_loader
from tinyrt import opcodes
from tinyrt.stream import scratch_bytes

from boards import FIGURES, BoardProfile
from boards.runtime import blocks, compile_runtime, sources

MEASURE_ON = "m0"  # host_sim's emulated board: armv6m, 32-bit objects, 200,000-byte GC heap
MEASURE_ARCH = "armv6m"
STEP = 256  # bytes: resolution of the smallest-heap bisection
WINDOW = 16384  # bytes above the retained total where the bisection looks first
MARGIN = 2 * STEP  # bytes added to the bisected heap: its resolution and non-monotonic slack
_METHOD = b"m0 ballast-bisect 256 v1"  # part of the cache key: change it with the method

# One load in one mode on a freshly booted m0. Prints free heap before `import tinyrt` (f0),
# after it (f1), with the model loaded (f2), after one invoke (f3) and after the model is
# dropped (f4: the modules loading imported stay), and the tinyrt modules imported.
_PROBE = r"""
import gc, json, sys
gc.collect()
f0 = gc.mem_free()
import tinyrt, tinyrt.fast
if not ASM:
    tinyrt.fast.arch[0] = 0
gc.collect()
f1 = gc.mem_free()
m = tinyrt.load("m.trt", stream=STREAM)
gc.collect()
f2 = gc.mem_free()
m.invoke()
gc.collect()
f3 = gc.mem_free()
m.close()
m = None
gc.collect()
f4 = gc.mem_free()
print(json.dumps({"f": [f0, f1, f2, f3, f4],
                  "modules": [k for k in sys.modules if k.startswith("tinyrt")]}))
"""

# The runtime alone, for a model too large to load on m0 at all: tinyrt and its kernel modules.
_IMPORTS = r"""
import gc, json, sys
gc.collect()
f0 = gc.mem_free()
import tinyrt, tinyrt.fast, tinyrt.stream
for name in MODULES:
    __import__("tinyrt.kernels." + name)
gc.collect()
print(json.dumps({"f": [f0, gc.mem_free()],
                  "modules": [k for k in sys.modules if k.startswith("tinyrt")]}))
"""


class FitError(ValueError):
    """The model cannot be assessed (not a model file, or the emulated board is unavailable)."""


@dataclass(frozen=True)
class ModeRam:
    """RAM of one loading mode on m0 (bytes, 32-bit)."""

    runtime: int  # import tinyrt + the modules loading imports (kept when the model is gone)
    model: int  # retained by the loaded model: buffers, objects, kernels' working memory
    need: int  # smallest free heap before `import tinyrt` in which load + invoke work
    modules: tuple[str, ...]  # tinyrt modules imported, e.g. "tinyrt.kernels.conv_asm"
    basis: str  # "measured", or how the figure was extrapolated


@dataclass(frozen=True)
class Measured:
    """Both loading modes of one model on m0, with asm twins (Arm boards) or without (ESP32)."""

    asm: bool
    board_free: int  # gc.mem_free() before `import tinyrt` on m0 with no ballast
    whole: ModeRam
    streamed: ModeRam | None  # None: the file cannot be streamed (DATA is not last)


# -- measuring on m0 ----------------------------------------------------------------------------

class _TooLarge(Exception):
    """The model does not fit m0's ROMFS image: it cannot be put on the emulated board."""


def _run(code: str, model: bytes | None, heap: int | None) -> dict | None:
    """Run `code` on m0; its JSON line, or None when it raised (out of heap)."""
    from host_sim.interpreters import InterpreterError, run

    files = {"m.trt": model} if model is not None else None
    try:
        r = run(code, MEASURE_ON, heap=heap, files=files, timeout=300, check=False)
    except InterpreterError as e:
        if "ROMFS partition" in str(e):
            raise _TooLarge() from None
        raise FitError(f"cannot measure RAM on the emulated {MEASURE_ON} board: {e}") from None
    if r.returncode != 0:
        if "MemoryError" in r.stderr or "ArenaError" in r.stderr:
            return None
        raise FitError(f"the model fails on {MEASURE_ON}: {r.stderr.strip()[-400:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def _probe(model: bytes, stream: bool, asm: bool, heap: int | None) -> dict | None:
    code = _PROBE.replace("STREAM", str(stream)).replace("ASM", str(asm))
    return _run(code, model, heap)


def _measure_mode(model: bytes, stream: bool, asm: bool) -> tuple[ModeRam | None, int]:
    """(the mode measured, or None when it does not load in m0's whole heap; m0's free heap)."""
    full = _probe(model, stream, asm, None)
    if full is None:
        return None, 0
    f0, f1, f2, _, f4 = full["f"]
    runtime, kept = f0 - f4, f4 - f2
    seen = {f0: f0}  # heap -> free heap before import, for runs that worked

    def works(heap: int) -> bool:
        if heap >= f0:
            return True
        if heap not in seen:
            r = _probe(model, stream, asm, heap)
            if r is None:
                return False
            seen[heap] = r["f"][0]
        return True

    lo = runtime + kept - 1  # cannot work: less than what stays allocated at the end
    hi = min(lo + WINDOW, f0)
    if not works(hi):
        lo, hi = hi, f0
    while hi - lo > STEP:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if works(mid) else (mid, hi)
    # Fragmentation can make success not quite monotonic: the next two sizes must work too.
    k = 0
    while k <= 2 and hi < f0:
        if works(hi + k * STEP):
            k += 1
        else:
            hi, k = hi + (k + 1) * STEP, 0
    need = seen[min(hi, f0)] if min(hi, f0) in seen else f0
    return ModeRam(runtime, kept, need, tuple(sorted(full["modules"])), "measured"), f0


def _runtime_only(mf: ff.ModelFile) -> tuple[ModeRam, int]:
    code = _IMPORTS.replace("MODULES", repr(kernel_modules(mf)))
    r = _run(code, None, None)
    f0, f1 = r["f"]
    return ModeRam(f0 - f1, 0, 0, tuple(sorted(r["modules"])), "import only"), f0


def _extrapolate(m: ModeRam | None, mine: int, theirs: int, base: ModeRam, tables: int,
                 other: str) -> ModeRam:
    """A mode that does not load in m0's heap: its buffers (`mine`) plus the other mode's
    objects and loading peak beyond its buffers (`theirs`), or else load()'s own reserve."""
    if m is not None:
        objects, peak = max(0, m.model - theirs), max(0, m.need - m.runtime - m.model)
        basis = f"extrapolated: its buffers + the {other} measurement's objects and peak"
    else:
        objects = max(device_loader._RESERVE_MIN, device_loader._RESERVE_PER_TABLE_BYTE * tables)
        peak = 0
        basis = ("extrapolated: its buffers + load()'s reserve for objects (8x the tables); "
                 "runtime without fast twins")
    return ModeRam(base.runtime, mine + objects, base.runtime + mine + objects + peak,
                   base.modules, basis)


def _cache_key(model: bytes, asm: bool) -> str:
    from host_sim.emulated import emulator_dir

    h = hashlib.sha256(model + _METHOD + (b"asm" if asm else b"viper"))
    for _, src in sources():
        h.update(src.read_bytes())
    h.update(hashlib.sha256((emulator_dir() / "firmware-m0.elf").read_bytes()).digest())
    return h.hexdigest()[:32]


def _cache_file(model: bytes, asm: bool) -> Path:
    return Path(tempfile.gettempdir()) / "tinyrt-fit-cache" / (_cache_key(model, asm) + ".json")


@lru_cache(maxsize=16)
def measure(model: bytes, asm: bool = True) -> Measured:
    """Both loading modes of `model` on m0 (asm twins on or off), cached per content hash of
    the model, the runtime's sources and the firmware."""
    cache = _cache_file(model, asm)
    if cache.exists():
        d = json.loads(cache.read_text())
        modes = {k: ModeRam(**{**v, "modules": tuple(v["modules"])}) if v else None
                 for k, v in d["modes"].items()}
        return Measured(asm, d["board_free"], modes["whole"], modes["streamed"])
    mf = ff.read_model(model)
    lay = layout(model, mf)
    whole = streamed = None
    free = free2 = 0
    try:
        with ThreadPoolExecutor(2) as pool:  # two QEMU processes at a time
            jobs = [pool.submit(_measure_mode, model, s, asm)
                    for s in ((False, True) if lay.streamable else (False,))]
            whole, free = jobs[0].result()
            if lay.streamable:
                streamed, free2 = jobs[1].result()
    except _TooLarge:
        pass
    board_free = max(free, free2)
    if whole is None or (lay.streamable and streamed is None):
        base = whole or streamed
        if base is None:
            base, board_free = _runtime_only(mf)
        tables = lay.tables
        bw, bs = lay.buffers(False), lay.buffers(True)
        if whole is None:
            whole = _extrapolate(streamed, bw, bs, base, tables, "streamed")
        if lay.streamable and streamed is None:
            streamed = _extrapolate(whole if whole.basis == "measured" else None, bs, bw, base,
                                    tables, "whole")
    m = Measured(asm, board_free, whole, streamed)
    cache.parent.mkdir(exist_ok=True)
    part = cache.with_suffix(f".{os.getpid()}.part")  # then renamed: readers see all or none
    part.write_text(json.dumps({"board_free": board_free, "modes": {
        "whole": dataclasses.asdict(whole),
        "streamed": dataclasses.asdict(streamed) if streamed else None}}))
    part.replace(cache)
    return m


# -- the model's buffers (exact) ------------------------------------------------------------------

@dataclass(frozen=True)
class Layout:
    file: int  # bytes of the model file
    tables: int  # bytes before DATA: what streaming keeps in RAM (file: cannot stream)
    arena: int
    scratch: int  # streaming's scratch buffer: the largest operator's constants

    @property
    def streamable(self) -> bool:
        return self.tables < self.file

    def buffers(self, streamed: bool) -> int:
        if streamed:
            return self.tables + self.scratch + self.arena
        return self.file + self.arena

    def largest_buffer(self, streamed: bool) -> int:
        if streamed:
            return max(self.tables, self.scratch, self.arena)
        return max(self.file, self.arena)


def layout(model: bytes, mf: ff.ModelFile) -> Layout:
    data_last = mf.data_offset + mf.data_length == len(model)
    return Layout(len(model), mf.data_offset if data_last else len(model), mf.arena_bytes,
                  scratch_bytes(mf))


def kernel_modules(mf: ff.ModelFile) -> list[str]:
    mods = []
    for op in mf.ops:
        entry = opcodes.OPS.get(op.opcode)
        if entry and entry[1] not in mods:
            mods.append(entry[1])
    return mods


@lru_cache(maxsize=8)
def _mpy_sizes(arch: str) -> dict[str, int]:
    """Module name ("tinyrt.kernels.conv") -> bytes of its .mpy for `arch` (absent: skipped)."""
    out = {}
    for f in compile_runtime(arch)[0]:
        name = f.path[: -len(".mpy")].replace("/", ".")
        out[name[: -len(".__init__")] if name.endswith(".__init__") else name] = f.size
    return out


def native_delta(modules: tuple[str, ...], arch: str) -> int:
    """RAM the imported modules take on `arch` beyond m0's armv6m: their .mpy size difference
    (native code is what differs; bytecode and objects are the same on 32-bit ports)."""
    if arch == MEASURE_ARCH:
        return 0
    mine, m0 = _mpy_sizes(arch), _mpy_sizes(MEASURE_ARCH)
    return sum(mine.get(m, 0) - m0.get(m, 0) for m in modules)


# -- the verdict for one board ----------------------------------------------------------------

IN_RAM, STREAMING, NO = "fits in RAM", "fits streaming", "does not fit"


@dataclass
class Fit:
    board: BoardProfile
    name: str
    layout: Layout
    measured: Measured
    runtime_files: int
    runtime_bytes: int
    runtime_fs_bytes: int  # in whole filesystem blocks
    skipped: list[str]  # optional modules not compilable for the board's arch

    # -- flash --------------------------------------------------------------------------------
    @property
    def model_fs_bytes(self) -> int:
        return blocks(self.layout.file, self.board.fs_block_bytes)

    @property
    def flash_needed(self) -> int:
        return self.model_fs_bytes + self.runtime_fs_bytes

    @property
    def flash_short(self) -> int:
        return max(0, self.flash_needed - self.board.fs_bytes)

    # -- RAM (32-bit) -------------------------------------------------------------------------
    def mode(self, streamed: bool) -> ModeRam | None:
        return self.measured.streamed if streamed else self.measured.whole

    def scaled(self, streamed: bool) -> int:
        """Native-code bytes added to m0's figures for this board's arch."""
        m = self.mode(streamed)
        return native_delta(m.modules, self.board.mpy_arch) if m else 0

    def from_fs(self, streamed: bool) -> int:
        """RAM the runtime takes from the board's filesystem (where flash.sh installs it)
        beyond m0's ROMFS figure: its bytecode read into RAM (boards.fs_runtime, on m3)."""
        from boards.fs_runtime import surcharge

        m = self.mode(streamed)
        return surcharge(tuple(sorted(m.modules))) if m else 0

    def runtime(self, streamed: bool) -> int:
        return self.mode(streamed).runtime + self.scaled(streamed) + self.from_fs(streamed)

    def ram_needed(self, streamed: bool) -> int:
        """Free heap after boot that import + load + one invoke need: the m0 figure, native
        code scaled to the board's arch, the runtime's bytecode read from the filesystem,
        plus MARGIN."""
        return (self.mode(streamed).need + self.scaled(streamed) + self.from_fs(streamed)
                + MARGIN)

    def ram_short(self, streamed: bool) -> int | None:
        """Bytes the board lacks for this mode (0: it fits; None: the file cannot stream):
        free heap, or one allocation's limit for the largest buffer."""
        if streamed and not self.layout.streamable:
            return None
        b = self.board
        return max(0, self.ram_needed(streamed) - b.free_heap_bytes,
                   self.layout.largest_buffer(streamed) - b.max_alloc_bytes)

    @property
    def verdict(self) -> str:
        """IN_RAM, or STREAMING when only streaming fits, or NO."""
        if self.flash_short:
            return NO
        if self.ram_short(False) == 0:
            return IN_RAM
        if self.ram_short(True) == 0:
            return STREAMING
        return NO

    @property
    def fits(self) -> bool:
        return self.verdict != NO

    @property
    def short(self) -> int:
        """Bytes short when the model does not fit (the larger of flash and RAM), else 0."""
        if self.fits:
            return 0
        ram = min(s for s in (self.ram_short(False), self.ram_short(True)) if s is not None)
        return max(self.flash_short, ram)

    @property
    def auto_streams(self) -> bool:
        """Whether load(path) with no `stream` would stream on this board (loader._load_path)."""
        lay = self.layout
        reserve = max(device_loader._RESERVE_MIN,
                      device_loader._RESERVE_PER_TABLE_BYTE * lay.tables)
        free = self.board.free_heap_bytes - self.runtime(False)
        return lay.streamable and lay.file + lay.arena + reserve > free

    # -- the report ---------------------------------------------------------------------------
    def report(self) -> str:
        b, lay, ms = self.board, self.layout, self.measured
        est = {f: " (estimate)" if f in b.estimates else "" for f in FIGURES}
        s_ok = lay.streamable
        W = 14  # number column width

        def row(label: str, whole: object, streamed: object = "-") -> str:
            cells = [c if s_ok or i == 0 else "-" for i, c in enumerate((whole, streamed))]
            text = "".join(f"{c:>{W},}" if isinstance(c, int) else f"{c:>{W}}" for c in cells)
            return f"    {label:<44}{text}"

        kib = b.fs_block_bytes // 1024
        lines = [
            f"{self.name} on {b.name}: {b.title}",
            f"  {b.mcu} @ {b.clock_hz // 1_000_000} MHz{est['clock_hz']}, "
            f"{b.ram_bytes // 1024} KB RAM, {b.flash_bytes // 1024 // 1024} MB flash, "
            f".mpy arch {b.mpy_arch}, viper {'yes' if b.viper else 'no'}",
            "",
            f"  flash: filesystem {b.fs_bytes:,} B{est['fs_bytes']}",
            f"    {'':<44}{'bytes':>{W}}{f'{kib} KiB blocks':>{W}}",
            f"    {'model file':<44}{lay.file:>{W},}{self.model_fs_bytes:>{W},}",
            f"    {f'runtime: {self.runtime_files} .mpy for {b.mpy_arch}':<44}"
            f"{self.runtime_bytes:>{W},}{self.runtime_fs_bytes:>{W},}",
            f"    {'total':<44}{lay.file + self.runtime_bytes:>{W},}{self.flash_needed:>{W},}"
            f"  {'ok' if not self.flash_short else f'{self.flash_short:,} B short'}",
        ]
        if self.skipped:
            lines += textwrap.wrap(f"(left out, not compilable for {b.mpy_arch}: "
                                   f"{', '.join(Path(s).stem for s in self.skipped)})", 92,
                                   initial_indent="    ", subsequent_indent="     ")
        how = "asm_thumb twins" if ms.asm else "asm off (viper twins, as ESP32 firmware runs)"
        basis = ("measured" if b.mpy_arch == MEASURE_ARCH and ms.asm
                 else f"scaled to {b.mpy_arch} from figures measured")
        w, s = ms.whole, ms.streamed or ms.whole
        lines += [
            "",
            f"  RAM: free heap after boot ~{b.free_heap_bytes:,} B{est['free_heap_bytes']}, "
            f"largest single allocation ~{b.max_alloc_bytes:,} B{est['max_alloc_bytes']}",
            *textwrap.wrap(f"32-bit figures, {basis} with MicroPython 1.29 on the emulated "
                           f"{MEASURE_ON} ({MEASURE_ARCH}, {ms.board_free:,} B free after boot),"
                           f" {how}:", 92, initial_indent="    ", subsequent_indent="    "),
            row("", "in RAM", "streaming"),
            row("runtime: tinyrt + imported modules (m0, in ROMFS)",
                w.runtime, s.runtime),
        ]
        if self.scaled(False) or self.scaled(True):
            lines.append(row(f"  native code scaled to {b.mpy_arch} (.mpy sizes)",
                             self.scaled(False), self.scaled(True)))
        lines.append(row("  bytecode read from the filesystem (m3 FAT)", self.from_fs(False),
                         self.from_fs(True)))
        lines += [
            row("model file / tables + scratch buffer", lay.file, lay.tables + lay.scratch),
            row("arena", lay.arena, lay.arena),
            row("objects, prepared kernels, working memory", w.model - lay.buffers(False),
                s.model - lay.buffers(True)),
            row("transient peak while loading", w.need - w.runtime - w.model,
                s.need - s.runtime - s.model),
            row("margin (bisection step x 2)", MARGIN, MARGIN),
            row("needed free heap", self.ram_needed(False),
                self.ram_needed(True) if s_ok else "-"),
            row("largest single buffer", lay.largest_buffer(False), lay.largest_buffer(True)),
            row("bytes short (0: fits)", self.ram_short(False),
                self.ram_short(True) if s_ok else "-"),
        ]
        for label, m in (("in RAM", ms.whole), ("streaming", ms.streamed)):
            if m is not None and m.basis != "measured":
                lines += textwrap.wrap(f"{label}: {m.basis} (the model does not load in "
                                       f"{MEASURE_ON}'s heap)", 92, initial_indent="    ",
                                       subsequent_indent="      ")
        if not s_ok:
            lines.append("    streaming: not possible, the file's DATA section is not last")
        lines.append("")
        return "\n".join(lines + self._verdict_lines())

    def _verdict_lines(self) -> list[str]:
        v, lay, q = self.verdict, self.layout, repr(self.name)
        head = v.upper()
        if v == IN_RAM:
            text = f"tinyrt.load({q}) reads the whole file into RAM"
            if self.auto_streams:
                text += (" (pass stream=False: load()'s own estimate is more cautious and "
                         "would stream)")
        elif v == STREAMING:
            text = (f"loading whole is {self.ram_short(False):,} B short; tinyrt.load({q}) "
                    f"keeps {lay.tables:,} B of tables in RAM and reads each layer's weights "
                    f"into a {lay.scratch:,} B scratch buffer during invoke()")
        else:
            parts = []
            if self.flash_short:
                parts.append(f"flash {self.flash_short:,} B short")
            whole, streamed = self.ram_short(False), self.ram_short(True)
            if whole:
                parts.append(f"RAM {whole:,} B short in RAM")
            if streamed:
                parts.append(f"{streamed:,} B short streaming")
            if lay.arena > self.board.max_alloc_bytes:
                parts.append("the arena alone exceeds one allocation: activations stay in RAM "
                             "even when streaming")
            text = "; ".join(parts) + ": use a smaller model or a board with more memory"
            head += f" ({self.short:,} B short)"
        return textwrap.wrap(f"verdict: {head}: {text}.", 96, initial_indent="  ",
                             subsequent_indent="    ")


def read(model: bytes) -> ff.ModelFile:
    """The model file as the board reads it; FitError when it is not a valid one."""
    try:
        return ff.read_model(model)
    except ff.ModelError as e:
        raise FitError(f"not a valid model file: {e}") from None


def fit(model: bytes, board: BoardProfile, name: str = "model.trt") -> Fit:
    """Assess `model` (file bytes) on `board`. Raises FitError for a file the runtime refuses
    or when the emulated board cannot run."""
    lay = layout(model, read(model))
    files, skipped = compile_runtime(board.mpy_arch)
    return Fit(board=board, name=name, layout=lay, measured=measure(model, board.asm_thumb),
               runtime_files=len(files), runtime_bytes=sum(f.size for f in files),
               runtime_fs_bytes=sum(blocks(f.size, board.fs_block_bytes) for f in files),
               skipped=skipped)
