# Helpers for kernels' prepare(): reading constant int32 tables and checking tensors.
import struct
from array import array

from ..errors import ModelError
from ..fileformat import INT8, NO_TENSOR


def tensor(model, op, index, what, dtype=INT8, optional=False):
    """The op's tensor `index` (into op.inputs, or op.outputs if index < 0 as ~i)."""
    table = op.inputs if index >= 0 else op.outputs
    i = index if index >= 0 else ~index
    if i >= len(table) or table[i] == NO_TENSOR:
        if optional:
            return None
        raise ModelError("%s tensor is missing" % what)
    t = model.tensors[table[i]]
    rec = model.file.tensors[table[i]]
    if rec.dtype != dtype:
        raise ModelError("%s tensor %d is %s" % (what, t.index, t.dtype))
    return t


def int32_values(model, t):
    """A constant int32 tensor's values copied into an array('i') (at load, not in invoke).
    Reads the tensor's own view, which streamed weights fill just before prepare()."""
    n = model.file.tensors[t.index].nbytes // 4
    data = t.data
    out = array("i", [0] * n)
    for k in range(n):
        out[k] = struct.unpack_from("<i", data, 4 * k)[0]
    return out


def requant_table(model, t, channels):
    """Per-channel requantization parameters from an int32 (C, 3) table of rows
    (M >> 15, M & 0x7FFF, shift): returns arrays m_hi, m_lo, left, right of length `channels`
    (a one-row table is broadcast)."""
    v = int32_values(model, t)
    rows = len(v) // 3
    if len(v) != 3 * rows or rows not in (1, channels):
        raise ModelError("requantization table %d has %d values, expected 3 or %d"
                         % (t.index, len(v), 3 * channels))
    m_hi = array("i", [0] * channels)
    m_lo = array("i", [0] * channels)
    left = array("i", [0] * channels)
    right = array("i", [0] * channels)
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
