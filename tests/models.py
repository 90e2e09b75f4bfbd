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


def cnn_model(seed: int = 0) -> bytes:
    """A small model with one of most int8 ops (conv, depthwise, pools, elementwise, shape
    ops, softmax, logistic): a donor of valid structure for the fuzz tests."""
    from converter.layers import activations, conv, elementwise, pool, shape

    rng = np.random.default_rng(seed)
    g = Graph()
    x = g.add_activation("x", (1, 5, 5, 2), 0.05, -3)
    g.inputs.append(x)
    c = conv.conv2d(g, x, rng.integers(-128, 128, (4, 3, 3, 2)), rng.uniform(0.001, 0.01, 4),
                    rng.integers(-99, 99, 4), 0.1, 2, activation="RELU")
    d = conv.depthwise_conv2d(g, c, rng.integers(-128, 128, (1, 3, 3, 4)), 0.01, None, 0.1, 2)
    a = elementwise.add(g, c, d, 0.2, 0)
    m = elementwise.mul(g, a, d, 0.3, 1)
    p = pool.max_pool2d(g, m, 2, 2)
    q = pool.average_pool2d(g, a, 2, 2)
    k = shape.concatenation(g, [p, q], 3)
    k = shape.pad(g, k, [(0, 0), (1, 0), (0, 1), (0, 0)])
    k = shape.mean(g, k, [1, 2])
    k = shape.reshape(g, k, (1, -1))
    k = elementwise.quantize(g, k, 0.07, 3)
    g.outputs.append(activations.softmax(g, k))
    g.outputs.append(activations.logistic(g, k))
    return writer.serialize(g)


def binary_model(seed: int = 0) -> bytes:
    """BINARIZE -> BCONV_2D (packed out) -> BMAX_POOL_2D -> BCONV_2D (int8 out) -> ... ->
    BFULLY_CONNECTED -> UNBINARIZE: a donor of binary ops for the fuzz tests."""
    from converter.layers import binary

    rng = np.random.default_rng(seed)
    g = Graph()
    x = g.add_activation("x", (1, 5, 5, 3), 0.05, 0)
    g.inputs.append(x)
    b = binary.binarize(g, x)
    c = binary.bconv_2d(g, b, rng.choice([-1, 1], (4, 3, 3, 3)), padding="SAME",
                        thresholds=rng.integers(-5, 20, 4))
    p = binary.bmax_pool_2d(g, c, 2, 2)
    i8 = binary.bconv_2d(g, p, rng.choice([-1, 1], (3, 1, 1, 4)),
                         multiplier=rng.uniform(0.5, 1.5, 3), bias=rng.uniform(-2, 2, 3),
                         out_scale=0.1, out_zero_point=0)
    f = binary.bfully_connected(g, binary.binarize(g, i8), rng.choice([-1, 1], (5, 3)),
                                thresholds=rng.integers(-2, 3, 5))
    g.outputs.append(binary.unbinarize(g, f, 0.5, 0))
    return writer.serialize(g)


def recompute_crcs(b: bytes | bytearray) -> bytes:
    """The header's file length, every section's CRC (those lying inside the file) and the
    section table's CRC recomputed, as the writer derives them: damage done to a file gets
    past the CRC checks to the fields behind them."""
    out = bytearray(b)
    if len(out) < ff.HEADER_SIZE:
        return bytes(out)
    struct.pack_into("<I", out, 8, len(out))
    n = min(struct.unpack_from("<H", out, 6)[0], ff.MAX_SECTIONS)
    for i in range(n):
        pos = ff.HEADER_SIZE + ff.SECTION_SIZE * i
        if pos + ff.SECTION_SIZE > len(out):
            return bytes(out)
        _, off, length, _ = struct.unpack_from(ff.SECTION_FMT, out, pos)
        if off + length <= len(out):
            crc = zlib.crc32(bytes(out[off: off + length])) & 0xFFFFFFFF
            struct.pack_into("<I", out, pos + 12, crc)
    n_all = struct.unpack_from("<H", out, 6)[0]
    if ff.HEADER_SIZE + ff.SECTION_SIZE * n_all <= len(out):
        _fix_table_crc(out)
    return bytes(out)
