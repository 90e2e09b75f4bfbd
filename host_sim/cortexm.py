"""Run tinyrt's `@micropython.asm_thumb` kernels on the host, as a Cortex-M0 (or M3/M33) does.

The machine code is the real thing: `mpy-cross -march=armv6m` compiles the kernel module and
host_sim.mpy takes each asm function's bytes out of the .mpy. Unicorn executes them with the
CPU model set explicitly (UC_MODE_THUMB + ctl_set_cpu_model; UC_MODE_MCLASS would silently
make it an M33). Every buffer gets its own mapping with unmapped pages around it, flush with
the end of its mapping, so a read or write past a buffer faults (AsmFault) instead of passing.

Instructions are counted per translated block (UC_HOOK_BLOCK: one callback per straight run,
its instructions decoded once), which also counts a whole IT block whatever its conditions,
so counts never depend on the data; `exact=True` counts per instruction with the code hook,
crediting an IT block's instructions when the IT is seen (the hook skips the ones whose
condition fails).

`emulated_asm()` installs a `micropython.asm_thumb` decorator on CPython whose functions run
here: a tinyrt asm module then runs unchanged (its Python glue on CPython, its machine code in
Unicorn), with Python buffers mirrored into emulated memory around each call.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
from array import array
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import unicorn
import unicorn.arm_const as arm

from . import mpy

CPUS = {"m0": arm.UC_CPU_ARM_CORTEX_M0, "m3": arm.UC_CPU_ARM_CORTEX_M3,
        "m33": arm.UC_CPU_ARM_CORTEX_M33}
PAGE = 0x1000
CODE_BASE = 0x0001_0000  # address 0 (the vector table) stays unmapped: a fault cannot resume
STOP = 0x0000_8000  # lr on entry: returning there ends the run
STACK_TOP = 0x2000_0000 + 0x10000
BUF_BASE = 0x2010_0000  # buffers, one mapping each, a free page between them
_ARG_REGS = (arm.UC_ARM_REG_R0, arm.UC_ARM_REG_R1, arm.UC_ARM_REG_R2, arm.UC_ARM_REG_R3)
_SAVED = (arm.UC_ARM_REG_R4, arm.UC_ARM_REG_R5, arm.UC_ARM_REG_R6, arm.UC_ARM_REG_R7,
          arm.UC_ARM_REG_R8, arm.UC_ARM_REG_R9, arm.UC_ARM_REG_R10, arm.UC_ARM_REG_R11)


class AsmFault(RuntimeError):
    """The emulated code accessed memory outside every buffer (or another CPU fault)."""


def thumb_length(halfword: int) -> int:
    """Bytes of the Thumb instruction whose first halfword is given (2 or 4)."""
    return 4 if (halfword >> 11) in (0b11101, 0b11110, 0b11111) else 2


def it_block_length(halfword: int) -> int:
    """Instructions an IT instruction predicates (0 if it is not an IT)."""
    if halfword & 0xFF00 != 0xBF00 or halfword & 0xF == 0:
        return 0
    mask = halfword & 0xF
    return 4 - ((mask & -mask).bit_length() - 1)


@dataclass
class AsmFunction:
    name: str
    code: bytes
    n_args: int


_compiled: dict[tuple[str, str], dict[str, AsmFunction]] = {}


def asm_functions(source: str | Path, arch: str = "armv6m") -> dict[str, AsmFunction]:
    """The asm functions of a module, compiled by mpy-cross for `arch` (cached per process)."""
    key = (str(Path(source).resolve()), arch)
    if key not in _compiled:
        with tempfile.TemporaryDirectory() as d:
            data = mpy.compile_mpy(source, arch, Path(d) / "m.mpy")
        f = mpy.parse(data)
        if f.arch != arch:
            raise mpy.MpyError("%s compiled for %s, header says %s" % (source, arch, f.arch))
        _compiled[key] = {n: AsmFunction(n, rc.code, rc.n_pos_args)
                          for n, rc in f.functions().items() if rc.kind == "asm"}
    return _compiled[key]


def _root_and_offset(buf):
    """The object that owns a buffer's memory and the buffer's byte offset inside it."""
    mv = memoryview(buf)
    root = mv.obj if mv.obj is not None else buf
    while isinstance(root, memoryview):
        root = root.obj
    addr = np.frombuffer(mv.cast("B") if mv.ndim else mv, dtype=np.uint8).ctypes.data \
        if mv.nbytes else None
    base = np.frombuffer(memoryview(root).cast("B"), dtype=np.uint8).ctypes.data \
        if memoryview(root).nbytes else None
    off = (addr - base) if addr is not None and base is not None else 0
    return root, off


class Machine:
    """One emulated Cortex-M core with code, a stack and mapped buffers."""

    def __init__(self, cpu: str = "m0"):
        self.cpu = cpu
        uc = unicorn.Uc(unicorn.UC_ARCH_ARM, unicorn.UC_MODE_THUMB)
        uc.ctl_set_cpu_model(CPUS[cpu])
        uc.mem_map(STOP & ~(PAGE - 1), PAGE)
        uc.mem_map(STACK_TOP - 0x10000, 0x10000)
        self.uc = uc
        self._code_at: dict[bytes, int] = {}
        self._code_end = CODE_BASE
        self._next_buf = BUF_BASE
        self._roots: dict[int, tuple[object, int, int, bool]] = {}  # id -> root, addr, n, rw
        self._block_len: dict[tuple[int, int], int] = {}
        self.count = 0
        self.calls = 0
        self._exact = False
        self._it_skip: set[int] = set()
        uc.hook_add(unicorn.UC_HOOK_BLOCK, self._on_block)
        uc.hook_add(unicorn.UC_HOOK_CODE, self._on_insn)

    # memory ------------------------------------------------------------------------------
    def load_code(self, code: bytes) -> int:
        """Address of `code` in the code region (loaded once, 4-byte aligned)."""
        if code not in self._code_at:
            n = (len(code) + PAGE - 1) // PAGE * PAGE
            addr = self._code_end
            self.uc.mem_map(addr, n, unicorn.UC_PROT_READ | unicorn.UC_PROT_EXEC)
            self.uc.mem_write(addr, code)
            self._code_at[code] = addr
            self._code_end = addr + n + PAGE
        return self._code_at[code]

    def alloc(self, nbytes: int, align_end: bool = True) -> int:
        """A fresh mapping for `nbytes`: the buffer ends where the mapping ends (align_end) so
        an overrun faults at once, or starts where it starts (an underrun faults)."""
        n = max(PAGE, (nbytes + PAGE - 1) // PAGE * PAGE)
        region = self._next_buf
        self.uc.mem_map(region, n)
        self._next_buf = region + n + PAGE
        return region + n - nbytes if align_end else region

    def place(self, buf) -> int:
        """Emulated address of a Python buffer (bytes/bytearray/array/memoryview). Each
        owning object is mapped once, 4-byte aligned as a heap buffer is on the board, its
        end within 3 bytes of unmapped memory; a slice maps into its owner."""
        root, off = _root_and_offset(buf)
        entry = self._roots.get(id(root))
        if entry is None or entry[0] is not root:
            raw = memoryview(root).cast("B")
            n = raw.nbytes
            addr = self.alloc(n) & ~3
            entry = (root, addr, n, not raw.readonly)
            self._roots[id(root)] = entry
            self.uc.mem_write(addr, bytes(raw))
        return entry[1] + off

    def sync_in(self):
        for root, addr, n, _ in self._roots.values():
            self.uc.mem_write(addr, bytes(memoryview(root).cast("B")))

    def sync_out(self):
        for root, addr, n, rw in self._roots.values():
            if rw:
                memoryview(root).cast("B")[:] = self.uc.mem_read(addr, n)

    def read(self, addr: int, n: int) -> bytes:
        return bytes(self.uc.mem_read(addr, n))

    def write(self, addr: int, data: bytes):
        self.uc.mem_write(addr, bytes(data))

    # counting ----------------------------------------------------------------------------
    def _on_block(self, uc, address, size, _):
        if self._exact:
            return
        key = (address, size)
        n = self._block_len.get(key)
        if n is None:
            data = uc.mem_read(address, size)
            n = pos = 0
            while pos < size:
                pos += thumb_length(data[pos] | data[pos + 1] << 8)
                n += 1
            self._block_len[key] = n
        self.count += n

    def _on_insn(self, uc, address, size, _):
        if not self._exact:
            return
        if address in self._it_skip:
            self._it_skip.discard(address)
            return
        self.count += 1
        hw = int.from_bytes(uc.mem_read(address, 2), "little")
        k = it_block_length(hw)
        if k:  # the hook will not see the predicated instructions whose condition fails
            self.count += k
            self._it_skip = set()
            a = address + 2
            for _ in range(k):
                self._it_skip.add(a)
                a += thumb_length(int.from_bytes(uc.mem_read(a, 2), "little"))

    # calls -------------------------------------------------------------------------------
    def call(self, code: bytes, args=(), exact: bool = False, limit: int = 500_000_000) -> int:
        """Run `code` as fn(r0..r3) (ints as 32-bit words); returns r0 as a signed int. The
        instruction count of this call is added to self.count."""
        if len(args) > 4:
            raise ValueError("asm functions take at most 4 arguments")
        uc = self.uc
        entry = self.load_code(code)
        for reg, v in zip(_ARG_REGS, args):
            uc.reg_write(reg, int(v) & 0xFFFFFFFF)
        canary = 0x5A5A0000
        for i, reg in enumerate(_SAVED):
            uc.reg_write(reg, canary + i)
        uc.reg_write(arm.UC_ARM_REG_SP, STACK_TOP - 64)
        uc.reg_write(arm.UC_ARM_REG_LR, STOP | 1)
        self._exact = exact
        self._it_skip = set()
        self.calls += 1
        try:
            uc.emu_start(entry | 1, STOP, count=limit)
        except unicorn.UcError as e:
            pc = uc.reg_read(arm.UC_ARM_REG_PC)
            raise AsmFault("%s at pc=0x%x (code offset 0x%x)" % (e, pc, pc - entry)) from None
        pc = uc.reg_read(arm.UC_ARM_REG_PC)
        if pc != STOP:
            raise AsmFault("stopped at pc=0x%x, not at the return address" % pc)
        for i, reg in enumerate(_SAVED):
            if uc.reg_read(reg) != canary + i:
                raise AsmFault("callee-saved r%d not restored" % (4 + i))
        if uc.reg_read(arm.UC_ARM_REG_SP) != STACK_TOP - 64:
            raise AsmFault("stack pointer not restored")
        r0 = uc.reg_read(arm.UC_ARM_REG_R0)
        return r0 - (1 << 32) if r0 & 0x80000000 else r0


class EmulatedAsm:
    """Stands in for a MicroPython asm function on CPython: buffers become emulated addresses
    (the asm calling convention), ints pass as words, the machine code runs in `machine`."""

    def __init__(self, machine: Machine, fn: AsmFunction):
        self.machine = machine
        self.fn = fn
        self.__name__ = fn.name

    def __call__(self, *args):
        if len(args) != self.fn.n_args:
            raise TypeError("%s takes %d arguments, %d given"
                            % (self.fn.name, self.fn.n_args, len(args)))
        m = self.machine
        words = []
        for a in args:
            if isinstance(a, bool) or a is None:
                words.append(int(bool(a)))
            elif isinstance(a, int):
                words.append(a)
            else:
                words.append(m.place(a))
        m.sync_in()
        r = m.call(self.fn.code, words)
        m.sync_out()
        return r


@contextlib.contextmanager
def emulated_asm(cpu: str = "m0", arch: str = "armv6m"):
    """Within the block, `@micropython.asm_thumb` (on CPython, through host_sim's micropython
    shim) yields functions that run in one emulated Cortex-M; yields the Machine. Modules
    imported inside the block are forgotten at its end."""
    from .interpreters import SHIM_DIR

    path_before = list(sys.path)
    before = set(sys.modules)
    if "micropython" not in sys.modules:
        sys.path.insert(0, str(SHIM_DIR))
    import micropython  # host_sim's shim

    machine = Machine(cpu)

    def asm_thumb(f):
        src = f.__code__.co_filename
        fns = asm_functions(src, arch)
        if f.__name__ not in fns:
            raise mpy.MpyError("%s: no asm function %r in the .mpy" % (src, f.__name__))
        return EmulatedAsm(machine, fns[f.__name__])

    had = getattr(micropython, "asm_thumb", None)
    micropython.asm_thumb = asm_thumb
    try:
        yield machine
    finally:
        if had is None:
            del micropython.asm_thumb
        else:
            micropython.asm_thumb = had
        sys.path[:] = path_before
        for name in set(sys.modules) - before:  # leave no shim-dependent module behind
            if name == "micropython" or name.endswith(("_asm", "_viper")):
                del sys.modules[name]
                parent, _, child = name.rpartition(".")
                if parent in sys.modules and getattr(sys.modules[parent], child, None):
                    delattr(sys.modules[parent], child)


def int8_array(values) -> array:
    return array("b", [int(v) for v in values])
