# Helpers for kernels' prepare(): reading constant int32 tables and checking tensors.
# Tables are allocated as array('i', bytes(4 * n)): no list of n ints on the way (array()
# copies a bytes initializer raw, on MicroPython and CPython; the ports are little-endian,
# as the file).
from array import array

from ..errors import ModelError
from ..fast import asm_active
from ..fileformat import ARENA, DTYPES, INT8, INT32, NO_TENSOR, tensor_storage


def tensor(model, op, index, what, dtype=INT8, optional=False, const=False):
    """The op's tensor `index` (into op.inputs, or op.outputs if index < 0 as ~i), checked to
    be of `dtype` and, for weights and tables (const=True), constant data. Outputs must be
    arena tensors (the reader checks it too); activation inputs may be either (a constant
    operand of ADD or CONCATENATION): reading a constant is safe, writing one is not."""
    table = op.inputs if index >= 0 else op.outputs
    i = index if index >= 0 else ~index
    if i >= len(table) or table[i] == NO_TENSOR:
        if optional:
            return None
        raise ModelError("%s tensor is missing" % what)
    t = model.tensors[table[i]]
    if t.dtype != DTYPES[dtype][0]:
        raise ModelError("%s tensor %d is %s, expected %s" % (what, t.index, t.dtype,
                                                            DTYPES[dtype][0]))
    arena = tensor_storage(model.file, t.index) == ARENA
    if (index < 0 or const) and arena == const:
        raise ModelError("%s tensor %d is %s, expected %s" % (
            what, t.index, "in the arena" if arena else "constant data",
            "constant data (weights and tables)" if const else "an arena tensor"))
    return t


def int32_values(model, t):
    """A constant int32 tensor's values copied into an array('i') (at load, not in invoke).
    Reads the tensor's own view, which streamed weights fill just before prepare()."""
    return array("i", bytes(t.data))  # the tensor's nbytes, a multiple of 4


def shared(model, key, make, *args):
    """make(*args), once per load for equal keys: the row bands of one layer (converter.patch)
    share their bias, requantization and column tables. Model._prepare drops the cache when
    every op is prepared (an asm twin's dropped tables are then freed). Where asm twins run,
    they keep tables of their own and the reference's are dropped: nothing is cached there
    (a cache would only change where the heap's pieces land)."""
    if asm_active():
        return make(*args)
    cache = getattr(model, "shared_tables", None)
    if cache is None:
        cache = model.shared_tables = {}
    v = cache.get(key)
    if v is None:
        v = cache[key] = make(*args)
    return v


def zeros(n):
    """array('i') of n zeros, from one n-word allocation (and a transient bytes(4n))."""
    return array("i", bytes(4 * n))


def requant_table(model, t, channels):
    """Per-channel requantization parameters from an int32 (C, 3) table of rows
    (M >> 15, M & 0x7FFF, shift): returns arrays m_hi, m_lo, left, right of length `channels`
    (a one-row table is broadcast)."""
    v = int32_values(model, t)
    rows = len(v) // 3
    if len(v) != 3 * rows or rows not in (1, channels):
        raise ModelError("requantization table %d has %d values, expected 3 or %d"
                         % (t.index, len(v), 3 * channels))
    m_hi = zeros(channels)
    m_lo = zeros(channels)
    left = zeros(channels)
    right = zeros(channels)
    for c in range(channels):
        r = 3 * c if rows > 1 else 0
        hi = v[r]
        lo = v[r + 1]
        shift = v[r + 2]
        if hi < 0 or hi > 0xFFFF or lo < 0 or lo > 0x7FFF or shift < -62 or shift > 30:
            raise ModelError("requantization row %d out of range: %d %d %d" % (c, hi, lo, shift))
        if shift >= 0:
            left[c] = shift
        elif shift < -30:  # exact result is 0 for every |x| < 2^30
            hi = 0
            lo = 0
            right[c] = 30
        else:
            right[c] = -shift
        m_hi[c] = hi
        m_lo[c] = lo
    return m_hi, m_lo, left, right


def elements(t):
    return t.size


def broadcast_geometry(what, a, b, y):
    """Loop geometry of a binary elementwise op over its 4-D extended output shape.

    Returns (dims, strides_a, strides_b): 4-tuples of the output dims and each input's element
    strides along them (0 along a broadcast dim). Same shapes collapse to one flat dim."""
    sa = a.shape
    sb = b.shape
    sy = y.shape
    if len(sa) > 4 or len(sb) > 4 or len(sy) > 4:
        raise ModelError("%s shapes %r, %r -> %r: at most 4-D" % (what, sa, sb, sy))
    ea = (1,) * (4 - len(sa)) + tuple(sa)
    eb = (1,) * (4 - len(sb)) + tuple(sb)
    ey = (1,) * (4 - len(sy)) + tuple(sy)
    dims = []
    for i in range(4):
        da = ea[i]
        db = eb[i]
        if da != db and da != 1 and db != 1:
            raise ModelError("%s shapes %r and %r do not broadcast" % (what, sa, sb))
        dims.append(da if da != 1 else db)
    if tuple(dims) != ey:
        raise ModelError("%s output shape %r, expected %r from inputs %r, %r"
                         % (what, sy, tuple(dims), sa, sb))
    if ea == eb:
        return (1, 1, 1, y.size), (0, 0, 0, 1), (0, 0, 0, 1)
    return tuple(dims), _strides(ea), _strides(eb)


def check_zero_points(what, tensors):
    """int8 zero points lie in [-128, 127]: the kernels' bounds (|x - zp| <= 255) rest on it."""
    for t in tensors:
        if t.zero_point < -128 or t.zero_point > 127:
            raise ModelError("%s tensor %d has zero point %d, expected -128..127"
                             % (what, t.index, t.zero_point))


def _strides(shape):
    st = [0, 0, 0, 0]
    step = 1
    for i in (3, 2, 1, 0):
        st[i] = step if shape[i] != 1 else 0
        step *= shape[i]
    return tuple(st)


def check_activation(what, act_min, act_max, lo=-128, hi=127):
    """A fused activation's clamp must lie inside the output's type, int8 (or [lo, hi])."""
    if act_min < lo or act_max > hi or act_min > act_max:
        raise ModelError("%s activation range [%d, %d] is not inside [%d, %d]"
                         % (what, act_min, act_max, lo, hi))


def elementwise_operands(model, op, what, rows):
    """ADD/MUL's shared preparation: x1, x2, a `rows`-row requant table and y, the clamp
    params checked, equal zero points and the broadcast geometry. Returns
    (x1, x2, y, act_min, act_max, (dims, s1, s2), (m_hi, m_lo, left, right))."""
    x1 = tensor(model, op, 0, "input1")
    x2 = tensor(model, op, 1, "input2")
    t = tensor(model, op, 2, "requantization", INT32, const=True)
    y = tensor(model, op, ~0, "output")
    if len(op.params) != 2:
        raise ModelError("%s has %d params, expected 2 (act_min, act_max)"
                         % (what, len(op.params)))
    act_min, act_max = op.params
    check_activation(what, act_min, act_max)
    check_zero_points(what, (x1, x2, y))
    geometry = broadcast_geometry(what, x1, x2, y)
    return x1, x2, y, act_min, act_max, geometry, requant_table(model, t, rows)


def drop_reference_tables(kernel, model=None):
    """An asm twin keeps its own tables and ignores the arguments eval() passes: put None in
    their place (the call keeps its shape) so that the reference's tables are freed (and
    `model`'s shared tables, which would keep them)."""
    kernel.args = (None,) * len(kernel.args)
    kernel.q = (None, None, None, None)
    if model is not None:
        model.shared_tables = None
