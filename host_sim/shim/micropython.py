"""Stand-in for MicroPython's `micropython` module under CPython (host simulator only).

`viper`/`native` are no-ops, so viper twins run as plain Python; the viper pointer types
are provided as builtins with the unix port's semantics (ptr8/ptr16/ptr32 loads are unsigned,
zero-extended; stores keep the low bits; `int(p)` is an address and `ptr8(address)` a pointer,
for pointer walks). Plain Python ints do not wrap: a kernel whose intermediates are bounded
(as tinyrt's must be, for 32-bit boards) gives the same results.
"""

import builtins
import struct


# Viper's address arithmetic (`int(p)` is an address, `ptr8(int(p) + k)` a pointer k bytes
# further on) is emulated with fake addresses: buffer slot << 32 | byte offset.
_ADDR_SHIFT = 32
_buffers = {}  # id(buffer object) -> (slot, object, byte view); objects are kept alive
_by_slot = []


def _slot_of(buf):
    entry = _buffers.get(id(buf))
    if entry is None or entry[1] is not buf:
        entry = (len(_by_slot), buf, memoryview(buf).cast("B"))
        _buffers[id(buf)] = entry
        _by_slot.append(entry)
    return entry


class _Ptr:
    _size = 1
    _fmt = "<B"

    def __init__(self, buf):
        if isinstance(buf, _Ptr):
            self._slot, self._mv, self._off = buf._slot, buf._mv, buf._off
        elif isinstance(buf, int):
            entry = _by_slot[buf >> _ADDR_SHIFT]
            self._slot, self._mv = entry[0], entry[2]
            self._off = buf & ((1 << _ADDR_SHIFT) - 1)
        else:
            self._slot, _, self._mv = _slot_of(buf)
            self._off = 0

    def __int__(self):
        return (self._slot << _ADDR_SHIFT) + self._off

    __index__ = __int__

    def __getitem__(self, i):
        return struct.unpack_from(self._fmt, self._mv, self._off + i * self._size)[0]

    def __setitem__(self, i, v):
        struct.pack_into(self._fmt, self._mv, self._off + i * self._size,
                         v & ((1 << 8 * self._size) - 1))


class ptr8(_Ptr):
    pass


class ptr16(_Ptr):
    _size = 2
    _fmt = "<H"


class ptr32(_Ptr):
    _size = 4
    _fmt = "<I"


def uint(x):
    return x & 0xFFFFFFFFFFFFFFFF


builtins.ptr8 = ptr8
builtins.ptr16 = ptr16
builtins.ptr32 = ptr32
builtins.uint = uint


def const(x):
    return x


def native(f):
    return f


def viper(f):
    """Arguments annotated ptr8/ptr16/ptr32 become pointers, as the viper emitter does."""
    import functools
    import inspect

    params = list(inspect.signature(f).parameters.values())
    casts = [(i, p.annotation) for i, p in enumerate(params)
             if isinstance(p.annotation, type) and issubclass(p.annotation, _Ptr)]
    if not casts:
        return f

    @functools.wraps(f)
    def call(*args):
        args = list(args)
        for i, ptr in casts:
            args[i] = ptr(args[i])
        return f(*args)

    return call


def heap_lock():
    return 0


def heap_unlock():
    return 0


def opt_level(level=None):
    return 0


def mem_info(*args):
    print("mem: CPython host simulator (no MicroPython heap)")
