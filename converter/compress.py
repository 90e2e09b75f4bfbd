"""Lossless model files: a tinyrt model file in one zlib stream behind a 20-byte header
(`tinyrt convert --compress`, `tinyrt compress --lossless`). The board decodes it at load
(tinyrt/decompress.py, MicroPython's `deflate`) into the buffer the model runs from, so the
outputs are the uncompressed file's, to the bit.

`compress_graph` first drops what the board can compute exactly (SOFTMAX's 2 KB exp table).
The whole file is one stream, not each weight section on its own: the tensor records, the
requantization rows and the tables (softmax exponentials, binary thresholds) compress as well
as the weights do, and one stream shares one window. A 2^10-byte window costs 1 KB of RAM at
load on the board and loses < 1 % against zlib's 32 KB on the shared models. Files up to
OPTIMAL_MAX bytes also go through an optimal-parse encoder (converter/compress_deflate.py,
~14 % smaller than zlib's level 9 on the pruned demo CNN); the smaller stream is kept.
"""

from __future__ import annotations

import zlib

from construct import Bytes, Const, Int16ul, Int32ul, Struct, this

from tinyrt import decompress as dev
from tinyrt import fileformat as ff

WBITS = 10  # zlib window 2^10 bytes: what the board allocates to decode
LEVEL = 9
OPTIMAL_MAX = 4096  # bytes: model files up to this size also go through the optimal encoder

ZHEADER = Struct(
    "magic" / Const(ff.ZMAGIC),
    "version" / Const(dev.ZVERSION, Int16ul),
    "flags" / Const(0, Int16ul),
    "decoded_bytes" / Int32ul,
    "crc32" / Int32ul,
    "stream_bytes" / Int32ul,
)
assert ZHEADER.sizeof() == dev.ZHEADER_SIZE  # the board's layout
ZFILE = Struct("header" / ZHEADER, "stream" / Bytes(this.header.stream_bytes))


def is_compressed(b: bytes) -> bool:
    return bytes(b[:4]) == ff.ZMAGIC


def compress_file(model: bytes, wbits: int = WBITS, optimal: bool | None = None) -> bytes:
    """A model file (b"TNRT"...) as a compressed one (b"TNRZ"...). optimal: also try
    converter/compress_deflate.py's encoder (optimal parsing, blocks cut where the file's
    statistics change) and keep the smaller stream; None: for files up to OPTIMAL_MAX bytes
    (it takes seconds per KB)."""
    if bytes(model[:4]) != ff.MAGIC:
        raise ValueError(f"not a tinyrt model file: magic {bytes(model[:4])!r}")
    c = zlib.compressobj(LEVEL, zlib.DEFLATED, wbits, 9)
    z = c.compress(bytes(model)) + c.flush()
    if optimal or optimal is None and len(model) <= OPTIMAL_MAX:
        from .compress_deflate import cut_points, deflate

        o = deflate(bytes(model), wbits, cut_points(bytes(model)))
        z = o if len(o) < len(z) else z
    head = dict(decoded_bytes=len(model), crc32=zlib.crc32(model) & 0xFFFFFFFF,
                stream_bytes=len(z))
    return ZFILE.build(dict(header=head, stream=z))


def compress_graph(g, minimal: bool = False, optimal: bool | None = None) -> bytes:
    """The compressed file of a Graph: its tables that the board can compute made params
    (converter/compress_tables.py), then the whole file deflated. Outputs unchanged.
    minimal: without the optional NAMES and METADATA sections (drop_sections)."""
    from .compress_tables import compute_tables
    from .writer import serialize

    b = serialize(compute_tables(g)[0])
    return compress_file(drop_sections(b) if minimal else b, optimal=optimal)


def smallest_graph(g, minimal: bool = False):
    """`g` with each of its LUT layers (FULLY_CONNECTED_LUT / CONV_2D_LUT) kept or decoded to
    int8 weights, whichever makes the compressed file smallest (every combination for up to
    6 LUT layers, else each one alone): deflate codes bytes, so bit-packed indices gain nothing
    from it, while a pruned layer's int8 weights (mostly the zero byte, a few shared values)
    deflate below the packed indices' size. The outputs are the same either way
    (cluster.decoded_graph is bit-exact). Returns (graph, its compressed file)."""
    from itertools import combinations

    from .cluster import _DECODED, decoded_graph

    luts = [i for i, op in enumerate(g.ops) if op.opcode in _DECODED]
    if len(luts) <= 6:
        subsets = [set(c) for k in range(len(luts) + 1) for c in combinations(luts, k)]
    else:
        subsets = [set()] + [{i} for i in luts]
    graphs = [decoded_graph(g, ops) if ops else g for ops in subsets]
    # zlib's size chooses (fast); the optimal encoder then codes the two best
    ranked = sorted(graphs, key=lambda d: len(compress_graph(d, minimal, optimal=False)))
    return min(((d, compress_graph(d, minimal)) for d in ranked[:2]), key=lambda r: len(r[1]))


OPTIONAL = (ff.NAMES, ff.METADATA)


def drop_sections(model: bytes, kinds=OPTIONAL) -> bytes:
    """The model file without its sections of the given kinds (by default the optional ones:
    tensor names, and the metadata: converter version, labels, description). The board runs
    it as before; errors name tensors by index, `tinyrt info` shows no labels."""
    from . import schema

    f = schema.parse_file(bytes(model))
    keep = [dict(kind=e.kind, data=s.data) for e, s in zip(f.table, f.sections)
            if e.kind not in kinds]
    return schema.build_file(dict(format_version=f.format_version, sections=keep))


def decompress_file(b: bytes) -> bytes:
    """The model file inside a compressed one (a plain model file is returned as it is).
    Raises ValueError with what is wrong."""
    if not is_compressed(b):
        return bytes(b)
    try:
        f = ZFILE.parse(bytes(b))
    except Exception as e:  # noqa: BLE001 - construct's errors: one message
        raise ValueError(f"compressed model file: {e}") from None
    h = f.header
    if dev.ZHEADER_SIZE + h.stream_bytes != len(b):
        raise ValueError(f"compressed model file of {len(b)} bytes, its header says "
                         f"{dev.ZHEADER_SIZE + h.stream_bytes}")
    try:
        out = zlib.decompress(f.stream)
    except zlib.error as e:
        raise ValueError(f"compressed model file: corrupt stream ({e})") from None
    if len(out) != h.decoded_bytes or zlib.crc32(out) & 0xFFFFFFFF != h.crc32:
        raise ValueError("compressed model file: the decoded bytes do not match the header's "
                         "length and CRC")
    return out
