# Buffers for the arena and the model file: int8 arrays allocated once, in one piece.
#
# MicroPython's memoryview has no cast(), so the typed view of the data comes from the array's
# own typecode: array('b') holds int8 (weights and activations) and its memoryview slices are
# int8 views that index to signed ints on every interpreter.
import sys
from array import array

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
