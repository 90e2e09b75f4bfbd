"""Delta updates between two model files: the bytes a board needs to turn OLD into NEW.

The update file's layout is tinyrt.delta's (the board applies it). Each section of NEW is
compared with OLD's section of the same kind at the same relative offset (the header, table
and padding with OLD's bytes at the same file offset); equal runs of at least MIN_COPY bytes
become COPY records, the rest DATA records, and the records are zlib-compressed (MicroPython's
`deflate.ZLIB` decodes them).
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from dataclasses import dataclass

import numpy as np

from tinyrt import delta as dev
from tinyrt import fileformat as ff

MIN_COPY = 24  # bytes: a shorter equal run costs more as a COPY record than inside DATA


@dataclass(frozen=True)
class UpdateStats:
    old_bytes: int
    new_bytes: int
    update_bytes: int
    copied: int  # bytes of NEW taken from OLD
    literal: int  # bytes of NEW carried in the update (before compression)


def _sections(b: bytes) -> list[tuple[int, int, int]]:
    """(kind, offset, length) of a model file's sections (a ModelError if it is not one)."""
    n = struct.unpack_from(ff.HEADER_FMT, b)[2]
    out = []
    for i in range(n):
        kind, off, length, _ = struct.unpack_from(ff.SECTION_FMT, b,
                                                  ff.HEADER_SIZE + i * ff.SECTION_SIZE)
        out.append((kind, off, length))
    return out


def _reference(old: bytes, new: bytes) -> np.ndarray:
    """For each byte of NEW, the offset in OLD it is expected to equal (-1: none)."""
    ref = np.arange(len(new), dtype=np.int64)
    ref[ref >= len(old)] = -1
    olds = {kind: (off, length) for kind, off, length in _sections(old)}
    for kind, off, length in _sections(new):
        if kind not in olds:
            ref[off:off + length] = -1
            continue
        o_off, o_len = olds[kind]
        r = np.arange(o_off, o_off + length, dtype=np.int64)
        r[length if length <= o_len else o_len:] = -1
        ref[off:off + length] = r
    return ref


def records(old: bytes, new: bytes) -> tuple[bytes, int]:
    """The update's uncompressed record stream, and how many bytes it copies from OLD."""
    o = np.frombuffer(old, np.uint8)
    n = np.frombuffer(new, np.uint8)
    ref = _reference(old, new)
    same = ref >= 0
    same[same] = o[ref[same]] == n[same]
    # runs: a new one wherever `same` flips or the reference jumps (a section boundary)
    cut = (np.diff(same.astype(np.int8)) != 0) | (np.diff(ref) != 1)
    bounds = [0, *(np.flatnonzero(cut) + 1).tolist(), len(new)]
    out = bytearray()
    copied = 0
    pending = bytearray()  # DATA not yet written (short equal runs join it)
    for a, b in zip(bounds, bounds[1:]):
        if same[a] and b - a >= MIN_COPY:
            if pending:
                out += struct.pack(dev.RECORD_FMT, dev.DATA, 0, len(pending)) + pending
                pending = bytearray()
            out += struct.pack(dev.RECORD_FMT, dev.COPY, int(ref[a]), b - a)
            copied += b - a
        else:
            pending += new[a:b]
    if pending:
        out += struct.pack(dev.RECORD_FMT, dev.DATA, 0, len(pending)) + pending
    out += struct.pack(dev.RECORD_FMT, dev.END, 0, 0)
    return bytes(out), copied


def make_update(old: bytes, new: bytes) -> tuple[bytes, UpdateStats]:
    """The update file that turns model file OLD into NEW on a board, and its figures."""
    for name, b in (("OLD", old), ("NEW", new)):
        if b[:4] != ff.MAGIC:
            raise ValueError(f"{name} is not a tinyrt model file (magic {b[:4]!r})")
    recs, copied = records(old, new)
    head = struct.pack(dev.HEADER_FMT, dev.MAGIC, dev.VERSION, 0, len(old), len(new),
                       hashlib.sha256(old).digest(), hashlib.sha256(new).digest())
    data = head + zlib.compress(recs, 9)
    return data, UpdateStats(len(old), len(new), len(data), copied, len(new) - copied)


def apply_update(old: bytes, update: bytes) -> bytes:
    """NEW from OLD and an update file, on the host (the board's algorithm, in memory)."""
    old_n, new_n, old_h, new_h = struct.unpack_from(dev.HEADER_FMT, update)[3:]
    if hashlib.sha256(old).digest() != old_h:
        raise ValueError("the update was made for another model")
    recs = zlib.decompress(update[dev.HEADER_SIZE:])
    out = bytearray()
    i = 0
    while True:
        kind, a, n = struct.unpack_from(dev.RECORD_FMT, recs, i)
        i += dev.RECORD_SIZE
        if kind == dev.END:
            break
        if kind == dev.COPY:
            out += old[a:a + n]
        else:
            out += recs[i:i + n]
            i += n
    if hashlib.sha256(out).digest() != new_h:
        raise ValueError("the result does not hash as the update promised")
    return bytes(out)
