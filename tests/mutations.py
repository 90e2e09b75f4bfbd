"""Damaged model files for the fuzz tests: byte-level damage anywhere, and field-level damage
of the tables (tensor records, operator records, META) that keeps the file well formed-looking;
about half the files get their CRCs and length recomputed, so that the damage reaches the
checks behind the CRCs (the file a corrupt download or a hostile OTA server could send)."""

from __future__ import annotations

import random
import struct

from tests.models import binary_model, cnn_model, mlp_model, recompute_crcs, table_entry
from tinyrt import fileformat as ff
from tinyrt import opcodes

INTERESTING = (0, 1, 2, 3, 4, 7, 8, 15, 16, 31, 32, 33, 64, 127, 128, 255, 256, 0x7FFF, 0x8000,
               0xFFFF, 0x10000, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, -1, -2, -128, -129)
_WIDTH = {"B": 0xFF, "H": 0xFFFF, "I": 0xFFFFFFFF}


def donors(small: bool = False) -> list[bytes]:
    """Valid files to damage: MLPs (FULLY_CONNECTED), a binary net and, unless `small` (the
    emulated boards' ROMFS holds ~400 KB), a CNN with most int8 ops (4.5 KB)."""
    out = [mlp_model(s, n_in=n) for s, n in ((0, 4), (1, 16), (2, 33))]
    out += [binary_model(0), binary_model(1)]
    if not small:
        out += [cnn_model(0)]
    return out


def _span(b: bytes, kind: int) -> tuple[int, int]:
    n = struct.unpack_from("<H", b, 6)[0]
    for i in range(n):
        k, off, length, _ = table_entry(b, i)
        if k == kind:
            return off, length
    raise KeyError(kind)


def _ops(b: bytes) -> list[tuple[int, int, int, int]]:
    """(record offset, n_in, n_out, n_params) of every operator of a valid file."""
    off, length = _span(b, ff.OPS)
    out, pos = [], off
    while pos < off + length:
        _, n_in, n_out, n_params, _ = struct.unpack_from(ff.OP_HEAD_FMT, b, pos)
        out.append((pos, n_in, n_out, n_params))
        pos += ff.OP_HEAD_SIZE + ((2 * (n_in + n_out) + 3) & ~3) + 4 * n_params
    return out


def _value(rng: random.Random, fmt: str, n_tensors: int) -> int:
    pick = rng.randrange(4)
    if pick == 0:
        v = rng.choice(INTERESTING)
    elif pick == 1:
        v = rng.randrange(n_tensors + 2)
    else:
        v = rng.randrange(-40, 300)
    return v & _WIDTH[fmt.strip("<")]


def _tensor_field(b: bytearray, rng: random.Random) -> None:
    off, length = _span(b, ff.TENSORS)
    n = length // ff.TENSOR_SIZE
    pos = off + rng.randrange(n) * ff.TENSOR_SIZE
    what = rng.randrange(6)
    if what == 0:  # storage flipped: an arena tensor becomes constant data or the reverse
        b[pos + 2] ^= 1
    elif what == 1:  # a new shape with a matching byte count (gets past the size check)
        dtype = rng.choice(list(ff.DTYPES))
        shape = [rng.choice((1, 1, 2, 3, 4, 5, 8, 16, 33)) for _ in range(rng.randint(1, 4))]
        struct.pack_into("<BB", b, pos, dtype, len(shape))
        struct.pack_into("<I4I", b, pos + 8, ff.stored_bytes(dtype, shape),
                         *(shape + [0] * (4 - len(shape))))
    elif what == 2:
        struct.pack_into("<i", b, pos + 32, rng.choice((-129, -128, 0, 127, 128, 5000)))
    else:
        field, fmt = rng.choice(((0, "<B"), (1, "<B"), (3, "<B"), (4, "<I"), (8, "<I"),
                                 (12, "<I"), (16, "<I"), (20, "<I"), (24, "<I")))
        struct.pack_into(fmt, b, pos + field, _value(rng, fmt, n))


def _op_field(b: bytearray, rng: random.Random) -> None:
    n_tensors = _span(b, ff.TENSORS)[1] // ff.TENSOR_SIZE
    pos, n_in, n_out, n_params = rng.choice(_ops(b))
    what = rng.randrange(4)
    if what == 0:
        struct.pack_into("<H", b, pos, rng.choice(list(opcodes.OPS)))
    elif what == 1 and n_out:  # an output index pointing at another tensor (maybe constant)
        struct.pack_into("<H", b, pos + 8 + 2 * (n_in + rng.randrange(n_out)),
                         rng.randrange(n_tensors))
    elif what == 2 and n_in:
        struct.pack_into("<H", b, pos + 8 + 2 * rng.randrange(n_in),
                         rng.choice((rng.randrange(n_tensors), ff.NO_TENSOR)))
    elif n_params:
        at = pos + 8 + ((2 * (n_in + n_out) + 3) & ~3) + 4 * rng.randrange(n_params)
        struct.pack_into("<I", b, at, _value(rng, "<I", n_tensors))


def _meta_field(b: bytearray, rng: random.Random) -> None:
    off, length = _span(b, ff.META)
    n_tensors = _span(b, ff.TENSORS)[1] // ff.TENSOR_SIZE
    field, fmt = rng.choice(((0, "<I"), (4, "<I"), (8, "<H"), (10, "<H"), (16, "<H"),
                             (18, "<H")))
    if field < length:
        struct.pack_into(fmt, b, off + field, _value(rng, fmt, n_tensors))


def _bytes_damage(b: bytearray, rng: random.Random, pool: list[bytes]) -> bytearray:
    kind = rng.randrange(5)
    if kind == 0:
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
    elif kind == 1:
        b[rng.randrange(len(b))] = rng.randrange(256)
    elif kind == 2:
        b = b[: rng.randrange(len(b))]
    elif kind == 3:
        other = rng.choice(pool)
        i, j = rng.randrange(len(b)), rng.randrange(len(other))
        b = b[:i] + other[j:]
    else:
        i, j = sorted(rng.randrange(len(b)) for _ in range(2))
        b = b[:j] + b[i:j] + b[j:]
    return b


def mutations(seed: int, n: int, small: bool = False) -> list[tuple[bytes, bool]]:
    """n damaged files [(bytes, CRCs recomputed)]: half byte-level damage, half field-level
    (1 to 3 fields of the tables); CRCs recomputed on ~60% of the files."""
    rng = random.Random(seed)
    pool = donors(small)
    out = []
    for _ in range(n):
        b = bytearray(rng.choice(pool))
        if rng.random() < 0.5:
            b = _bytes_damage(b, rng, pool)
        else:
            for _ in range(rng.randint(1, 3)):
                rng.choice((_tensor_field, _tensor_field, _op_field, _op_field,
                            _meta_field))(b, rng)
        fixed = rng.random() < 0.6
        out.append((recompute_crcs(b) if fixed else bytes(b), fixed))
    return out
