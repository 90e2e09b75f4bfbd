"""Small models built with the converter for tests, and raw byte-level file surgery."""

from __future__ import annotations

import struct
import zlib

import numpy as np

from converter import layers, writer
from converter.graph import Graph
from tinyrt import fileformat as ff


def mlp_model(seed: int = 0, n_in: int = 16, hidden: int = 8, n_out: int = 4) -> bytes:
    """Two FULLY_CONNECTED layers, per-channel then per-tensor weights."""
    rng = np.random.default_rng(seed)
    g = Graph()
    x = g.add_activation("x", (1, n_in), 0.05, -3)
    g.inputs.append(x)
    h = layers.fully_connected(g, x, rng.integers(-128, 128, (hidden, n_in)),
                               rng.uniform(0.001, 0.01, hidden), rng.integers(-999, 999, hidden),
                               0.1, 5, "RELU", "fc1")
    y = layers.fully_connected(g, h, rng.integers(-128, 128, (n_out, hidden)), 0.02, None,
                               0.2, -1, "NONE", "fc2")
    g.outputs.append(y)
    return writer.serialize(g)


def table_entry(b: bytes, i: int) -> tuple[int, int, int, int]:
    return struct.unpack_from(ff.SECTION_FMT, b, ff.HEADER_SIZE + ff.SECTION_SIZE * i)


def section_index(b: bytes, kind: int) -> int:
    n = struct.unpack_from("<H", b, 6)[0]
    return next(i for i in range(n) if table_entry(b, i)[0] == kind)


def _fix_table_crc(b: bytearray) -> bytearray:
    n = struct.unpack_from("<H", b, 6)[0]
    table = bytes(b[ff.HEADER_SIZE: ff.HEADER_SIZE + ff.SECTION_SIZE * n])
    struct.pack_into("<I", b, 12, zlib.crc32(table) & 0xFFFFFFFF)
    return b


def patch_entry(b: bytes, i: int, **fields) -> bytes:
    """Change fields (kind, offset, length, crc32) of section table entry i; the table CRC
    is recomputed so that the reader gets past it to the field under test."""
    out = bytearray(b)
    kind, off, length, crc = table_entry(b, i)
    vals = dict(kind=kind, offset=off, length=length, crc32=crc) | fields
    struct.pack_into(ff.SECTION_FMT, out, ff.HEADER_SIZE + ff.SECTION_SIZE * i,
                     vals["kind"], vals["offset"], vals["length"], vals["crc32"])
    return bytes(_fix_table_crc(out))


def patch_section(b: bytes, kind: int, pos: int, fmt: str, *values) -> bytes:
    """struct.pack_into a section's bytes at pos, then fix its CRC and the table CRC."""
    out = bytearray(b)
    i = section_index(b, kind)
    _, off, length, _ = table_entry(b, i)
    struct.pack_into(fmt, out, off + pos, *values)
    crc = zlib.crc32(bytes(out[off: off + length])) & 0xFFFFFFFF
    struct.pack_into("<I", out, ff.HEADER_SIZE + ff.SECTION_SIZE * i + 12, crc)
    return bytes(_fix_table_crc(out))
