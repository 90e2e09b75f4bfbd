"""Delta updates between two model files: the bytes a board needs to turn OLD into NEW.

The update file's layout is tinyrt.delta's (the board applies it). Each section of NEW is
compared with OLD's section of the same kind at the same relative offset (the header, table
and padding with OLD's bytes at the same file offset); equal runs of at least MIN_COPY bytes
become COPY records, the rest DATA records (NEW's bytes) or ADD records (the bytewise
difference new - old mod 256 from OLD's bytes at the reference offset: a fine-tuned weight
moves by a few int8 steps when the model is quantized on the old grid, ptq.quantize(...,
like=old), and a small difference deflates where the new byte does not). The records are
zlib-compressed (MicroPython's `deflate.ZLIB` decodes them); make_update keeps the smallest of
a few encodings.
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
    encoding: str = "bytes"  # bytes: COPY / DATA records; arithmetic: ADD records too


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


def _runs(old: bytes, new: bytes) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """ref (_reference), same (NEW's byte equals its reference) and the bounds of the runs
    over which both stay constant and ref advances by one."""
    o = np.frombuffer(old, np.uint8)
    n = np.frombuffer(new, np.uint8)
    ref = _reference(old, new)
    same = ref >= 0
    same[same] = o[ref[same]] == n[same]
    cut = (np.diff(same.astype(np.int8)) != 0) | (np.diff(ref) != 1)
    return ref, same, [0, *(np.flatnonzero(cut) + 1).tolist(), len(new)]


def records(old: bytes, new: bytes, arithmetic: bool = False,
            min_copy: int = MIN_COPY) -> tuple[bytes, int]:
    """The update's uncompressed record stream, and how many bytes it copies from OLD.

    Equal runs of at least `min_copy` bytes are COPY records. The rest is DATA (NEW's bytes)
    or, with `arithmetic`, ADD where NEW's bytes have a reference in OLD: (new - old) mod 256
    per byte, so a weight that moved by a few int8 steps is a small number and an unchanged
    byte inside the run a zero, which deflate codes in a few bits."""
    ref, same, bounds = _runs(old, new)
    o = np.frombuffer(old, np.uint8)
    n = np.frombuffer(new, np.uint8)
    out = bytearray()
    copied = 0
    kind, at, pending = dev.DATA, 0, bytearray()  # the record being gathered

    def flush():
        nonlocal pending
        if pending:
            out.extend(struct.pack(dev.RECORD_FMT, kind, at, len(pending)) + pending)
            pending = bytearray()

    for a, b in zip(bounds, bounds[1:]):
        if same[a] and b - a >= min_copy:
            flush()
            out.extend(struct.pack(dev.RECORD_FMT, dev.COPY, int(ref[a]), b - a))
            copied += b - a
            continue
        if arithmetic and ref[a] >= 0:
            r = int(ref[a])
            if kind != dev.ADD or at + len(pending) != r:
                flush()
                kind, at = dev.ADD, r
            d = (n[a:b].astype(np.int16) - o[r:r + b - a]) & 0xFF
            pending += d.astype(np.uint8).tobytes()
        else:
            if kind != dev.DATA:
                flush()
                kind, at = dev.DATA, 0
            pending += new[a:b]
    flush()
    out += struct.pack(dev.RECORD_FMT, dev.END, 0, 0)
    return bytes(out), copied


# (arithmetic, min_copy) of the record streams make_update tries, each deflated with each of
# zlib's strategies (Huffman-only codes a run of small differences best); it keeps the smallest
ENCODINGS = ((False, MIN_COPY), (True, MIN_COPY), (True, 256), (True, 1 << 30))
STRATEGIES = (zlib.Z_DEFAULT_STRATEGY, zlib.Z_FILTERED, zlib.Z_HUFFMAN_ONLY, zlib.Z_RLE)
WBITS = 10  # the zlib header declares a 2^10-byte window: the RAM the board's decoder takes


def make_update(old: bytes, new: bytes, arithmetic: bool | None = None
                ) -> tuple[bytes, UpdateStats]:
    """The update file that turns model file OLD into NEW on a board, and its figures: the
    smallest of the ENCODINGS (format 1 when it has no ADD record, so older runtimes apply
    it; format 2 otherwise). arithmetic=False: format 1 only; True: ADD records only."""
    for name, b in (("OLD", old), ("NEW", new)):
        if b[:4] != ff.MAGIC:
            raise ValueError(f"{name} is not a tinyrt model file (magic {b[:4]!r})")
    best = None
    for ar, min_copy in ENCODINGS:
        if arithmetic is not None and ar != arithmetic:
            continue
        recs, copied = records(old, new, ar, min_copy)
        for strategy in STRATEGIES:
            c = zlib.compressobj(9, zlib.DEFLATED, WBITS, 9, strategy)
            z = c.compress(recs) + c.flush()
            if best is None or len(z) < len(best[0]):
                best = z, copied, ar
    z, copied, arithmetic = best
    version = dev.VERSION if arithmetic else dev.VERSION_BYTES
    head = struct.pack(dev.HEADER_FMT, dev.MAGIC, version, 0, len(old), len(new),
                       hashlib.sha256(old).digest(), hashlib.sha256(new).digest())
    data = head + z
    return data, UpdateStats(len(old), len(new), len(data), copied, len(new) - copied,
                             "arithmetic" if arithmetic else "bytes")


def apply_update(old: bytes, update: bytes) -> bytes:
    """NEW from OLD and an update file, on the host (the board's algorithm, in memory)."""
    version, flags, _, _, old_h, new_h = struct.unpack_from(dev.HEADER_FMT, update)[1:]
    if version not in dev.VERSIONS or flags:
        raise ValueError(f"update format {version} (flags {flags}); expected one of "
                         f"{dev.VERSIONS}")
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
        elif kind == dev.ADD:
            d = np.frombuffer(recs[i:i + n], np.uint8)
            out += ((np.frombuffer(old[a:a + n], np.uint8) + d.astype(np.int16)) & 0xFF
                    ).astype(np.uint8).tobytes()
            i += n
        else:
            out += recs[i:i + n]
            i += n
    if hashlib.sha256(out).digest() != new_h:
        raise ValueError("the result does not hash as the update promised")
    return bytes(out)
