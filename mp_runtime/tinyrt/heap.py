# Heap bookkeeping shared by loading and running: free bytes (collecting first where that is
# safe), one-piece int8 buffers with an ArenaError that says needed vs free, and ticks.
import gc
import sys

from .buffers import int8_buffer
from .errors import ArenaError

MICROPYTHON = sys.implementation.name == "micropython"

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
COLLECT = MICROPYTHON and getattr(sys.implementation, "_build", "") != "wasi"


_HOST_HEAP = 1 << 28  # bytes: what the CPython simulator pretends to have free


def free_heap():
    """Bytes free on the MicroPython heap (a notional 256 MiB on CPython)."""
    if not MICROPYTHON:
        return _HOST_HEAP
    if COLLECT:
        gc.collect()
    return gc.mem_free()


def allocate(n, what, hint=""):
    free = free_heap()
    if n > free:
        raise ArenaError("%s needs %d bytes, the heap has %d free%s" % (what, n, free, hint))
    try:
        return int8_buffer(n)
    except MemoryError:
        raise ArenaError("%s needs %d bytes, the heap could not supply them in one piece "
                         "(%d free, fragmented): load models first after a reset (Ctrl-D)%s"
                         % (what, n, free, hint))
