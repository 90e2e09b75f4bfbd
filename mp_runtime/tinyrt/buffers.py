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


def plan_work(mf, asks):
    """Where the kernels' working memory goes (the asm depthwise twin's padded images).
    asks: per operator None or (bytes, x_lead, y_lead, y_lag): the layer may overlap its input 0
    (when that dies there) from x_lead bytes past the input's offset on, and its output from
    y_lead bytes past the output's offset on, or up to y_lag bytes before it (None: not at
    all; kernels.depthwise_conv.padded_leads). Each image is placed in the arena at
    the lowest offset whose bytes no other tensor alive during the layer holds; the arena grows
    to the highest end, unless one shared buffer for the layers that do not fit the file's
    arena costs less. Returns the plans to try, least memory first (the next one has smaller
    pieces), each (arena bytes, {output tensor: (image offset in the arena, bytes)}, shared
    buffer bytes)."""
    n_t = mf.n_tensors
    n_ops = mf.n_ops
    # A tensor's bytes are needed at op i when the last op reading them is i or later and
    # they were written by op i or earlier: made[t] is the first op writing t, -1 when none
    # does (graph inputs, state, and the views and parents of converter.patch's row bands,
    # written through one another: their bytes are kept while any of them is read).
    off = int32_zeros(n_t)
    size = int32_zeros(n_t)  # 0: not in the arena
    made = int32_zeros(n_t)
    last = int32_zeros(n_t)
    for t in range(n_t):
        rec = mf.tensors[t]
        last[t] = -1
        made[t] = n_ops  # not written yet
        if rec.storage == 0:  # fileformat.ARENA
            off[t] = rec.offset
            size[t] = rec.nbytes
            if rec.flags & 2:  # fileformat.VARIABLE: kept across invoke()s
                made[t] = -1
                last[t] = n_ops
    for t in mf.outputs:
        last[t] = n_ops
    for i in range(n_ops):
        op = mf.ops[i]
        for t in op.inputs:
            if 0 <= t < n_t and i > last[t]:
                last[t] = i
        for t in op.outputs:
            if 0 <= t < n_t:
                if i > last[t]:
                    last[t] = i
                if i < made[t]:
                    made[t] = i
    for t in range(n_t):
        if made[t] == n_ops:
            made[t] = -1
    arena = mf.arena_bytes
    spots = {}
    end = arena  # the arena with every image in it
    shared = 0  # the shared buffer for the images that do not fit the file's arena
    for i in range(n_ops):
        a = asks[i]
        if a is None:
            continue
        op = mf.ops[i]
        nbytes, x_lead, y_lead, y_lag = a
        x = op.inputs[0]
        y = op.outputs[0]
        best = -1
        cands = [0, arena]
        if x_lead is not None and last[x] == i:
            cands.append(off[x] + x_lead)
        if y_lead is not None:
            cands.append(off[y] + y_lead)
        if y_lag is not None:
            cands.append((off[y] - y_lag) & ~3)
        for t in range(n_t):
            if size[t] and made[t] <= i <= last[t]:
                cands.append(off[t] + size[t])
        for p in cands:
            p = (p + 3) & ~3
            if p < 0 or (best >= 0 and p >= best):
                continue
            ok = True
            for t in range(n_t):
                if not size[t] or made[t] > i or last[t] < i or p + nbytes <= off[t] \
                        or off[t] + size[t] <= p:
                    continue
                if t == x and x_lead is not None and last[x] == i and p >= off[x] + x_lead:
                    continue
                if t == y and (y_lead is not None and p >= off[y] + y_lead
                               or y_lag is not None and p <= off[y] - y_lag):
                    continue
                ok = False
                break
            if ok:
                best = p
        spots[y] = (best, nbytes)
        if best + nbytes > end:
            end = best + nbytes
        if best + nbytes > arena and nbytes > shared:
            shared = nbytes
    fit = {}  # only those within the file's arena, the others in the shared buffer
    for y in spots:
        if spots[y][0] + spots[y][1] <= arena:
            fit[y] = spots[y]
    if end - arena < shared:  # all in a grown arena, else (a heap too split for it) mixed
        return ((end, spots, 0), (arena, fit, shared))
    return ((arena, fit, shared),)
