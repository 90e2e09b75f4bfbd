# Buffers for the arena and the model file: int8 arrays allocated once, in one piece, with the
# heap bookkeeping around them (free bytes, an ArenaError that says needed vs free) and ticks.
#
# MicroPython's memoryview has no cast(), so the typed view of the data comes from the array's
# own typecode: array('b') holds int8 (weights and activations) and its memoryview slices are
# int8 views that index to signed ints on every interpreter.
import gc
import sys
from array import array

from .errors import ArenaError

_MICROPYTHON = sys.implementation.name == "micropython"
_ZERO_CHUNK = 256  # bytes zeroed per memoryview assignment


def int8_buffer(n, zero=True):
    """An array('b') of n items from a single allocation.

    On MicroPython, array('b', range(n)) sizes the array from len(range) and fills it in C
    without a temporary of n bytes (array('b', bytes(n)) would need 2n at its peak).
    """
    if not _MICROPYTHON:
        return array("b", bytes(n))
    buf = array("b", range(n))
    if zero:
        mv = memoryview(buf)
        z = bytes(_ZERO_CHUNK)
        off = 0
        while off + _ZERO_CHUNK <= n:
            mv[off : off + _ZERO_CHUNK] = z
            off += _ZERO_CHUNK
        if off < n:
            mv[off:n] = z[: n - off]
    return buf


def int32_zeros(n):
    """An array('i') of n zeros from a single allocation. array('i', [0] * n) first builds an
    n-item list: garbage of the same size as the table, left as a hole between the tables a
    model keeps (on a 190 KB heap such holes split the free space that later layers need)."""
    if not _MICROPYTHON:
        return array("i", bytes(4 * n))
    a = array("i", range(n))  # sized from len(range), filled in C: no temporary
    for i in range(n):
        a[i] = 0
    return a


try:
    from time import ticks_diff, ticks_us
except ImportError:  # CPython (the host simulator); boards have ticks_us
    from time import perf_counter_ns  # type: ignore[attr-defined]

    def ticks_us():  # type: ignore[misc]
        return perf_counter_ns() // 1000

    def ticks_diff(a, b):  # type: ignore[misc,no-redef]
        return a - b
# The 32-bit WASI build's collector misses objects held only in wasm locals, so a collection
# requested deep inside a call can free live objects there: tinyrt never asks for one on it.
COLLECT = _MICROPYTHON and getattr(sys.implementation, "_build", "") != "wasi"


_HOST_HEAP = 1 << 28  # bytes: what the CPython simulator pretends to have free


def free_heap():
    """Bytes free on the MicroPython heap (a notional 256 MiB on CPython)."""
    if not _MICROPYTHON:
        return _HOST_HEAP
    if COLLECT:
        gc.collect()
    return gc.mem_free()


def allocate(n, what, hint="", zero=True):
    free = free_heap()
    if n > free:
        raise ArenaError("%s needs %d bytes, the heap has %d free%s" % (what, n, free, hint))
    try:
        return int8_buffer(n, zero)
    except MemoryError:
        raise ArenaError("%s needs %d bytes, the heap could not supply them in one piece "
                         "(%d free, fragmented): load models first after a reset (Ctrl-D)%s"
                         % (what, n, free, hint))
