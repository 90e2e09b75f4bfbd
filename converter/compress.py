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

import copy
import zlib

import numpy as np
from construct import Bytes, Const, Int16ul, Int32ul, Struct, this

from tinyrt import decompress as dev
from tinyrt import fileformat as ff
from tinyrt import opcodes

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
    minimal: also slim_graph's rewrites, and without the optional NAMES and METADATA sections
    (drop_sections)."""
    from .compress_tables import compute_tables
    from .writer import serialize

    b = serialize(compute_tables(slim_graph(g) if minimal else g)[0])
    return compress_file(drop_sections(b) if minimal else b, optimal=optimal)


def smallest_graph(g, minimal: bool = False):
    """`g` with each of its LUT layers (FULLY_CONNECTED_LUT / CONV_2D_LUT) kept or decoded to
    int8 weights, whichever makes the compressed file smallest (every combination for up to
    6 LUT layers, else each one alone): deflate codes bytes, so bit-packed indices gain nothing
    from it, while a pruned layer's int8 weights (mostly the zero byte, a few shared values)
    deflate below the packed indices' size. The outputs are the same either way
    (cluster.decoded_graph is bit-exact). Returns (graph, its compressed file); minimal: the
    graph as slim_graph rewrites it (what the file holds)."""
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
    d, z = min(((d, compress_graph(d, minimal)) for d in ranked[:2]), key=lambda r: len(r[1]))
    return (slim_graph(d) if minimal else d), z


# int8 ops whose requantization table (at this input) the kernels broadcast when it has one row
_REQUANT_INPUT = {opcodes.CONV_2D: 3, opcodes.DEPTHWISE_CONV_2D: 3,
                  opcodes.FULLY_CONNECTED: 3, opcodes.CONV_2D_LUT: 4,
                  opcodes.FULLY_CONNECTED_LUT: 4}


def slim_graph(g):
    """A copy of `g` with what the runtime reads as well in fewer bytes, outputs unchanged to
    the bit: an int8 layer's (C, 3) requantization table whose rows are all the same (a layer
    quantized per tensor) kept as its one row (kernels/common.requant_table broadcasts it);
    a RESHAPE whose output only FULLY_CONNECTED layers read dropped, they read its input
    (FULLY_CONNECTED takes any shape with n_in innermost: the bytes are the same); tensors no
    op uses dropped and the rest renumbered (36 bytes each in TENSORS)."""
    g = copy.deepcopy(g)
    for op in g.ops:
        k = _REQUANT_INPUT.get(op.opcode)
        if k is None or len(op.inputs) <= k or g.tensors[op.inputs[0]].dtype != "int8":
            continue
        t = g.tensors[op.inputs[k]]
        rows = None if t.data is None else t.data.reshape(-1, 3)
        if (t.dtype == "int32" and rows is not None and len(rows) > 1
                and tuple(t.shape) == rows.shape and np.all(rows == rows[0])):
            t.data, t.shape = rows[:1].copy(), (1, 3)
    readers: dict[int, list] = {}
    for op in g.ops:
        for i in op.inputs:
            readers.setdefault(i, []).append(op)
    parents = {t.view_of[0] for t in g.tensors if t.view_of}
    dropped = []
    for op in g.ops:
        if op.opcode != opcodes.RESHAPE or len(op.inputs) != 1 or len(op.outputs) != 1:
            continue
        x, y = g.tensors[op.inputs[0]], g.tensors[op.outputs[0]]
        users = readers.get(op.outputs[0], [])
        if (op.outputs[0] in g.outputs or op.inputs[0] in g.inputs or not users
                or op.outputs[0] in parents
                or x.dtype != "int8" or y.dtype != "int8" or x.view_of or y.view_of
                or (x.scale, x.zero_point) != (y.scale, y.zero_point)
                or any(u.opcode != opcodes.FULLY_CONNECTED or u.inputs[0] != op.outputs[0]
                       or op.outputs[0] in u.inputs[1:] for u in users)):
            continue
        for u in users:
            u.inputs[0] = op.inputs[0]
        dropped.append(op)
    g.ops = [op for op in g.ops if all(op is not d for d in dropped)]
    used = set(g.inputs) | set(g.outputs) | {i for op in g.ops for i in op.inputs + op.outputs}
    used |= parents
    if len(used - {-1}) == len(g.tensors):
        return g
    new = {old: n for n, old in enumerate(i for i in range(len(g.tensors)) if i in used)}
    g.tensors = [g.tensors[i] for i in sorted(new)]
    for t in g.tensors:
        if t.view_of:
            t.view_of = (new[t.view_of[0]], t.view_of[1])
    for op in g.ops:
        op.inputs = [new[i] if i >= 0 else i for i in op.inputs]
        op.outputs = [new[i] for i in op.outputs]
    g.inputs, g.outputs = [new[i] for i in g.inputs], [new[i] for i in g.outputs]
    return g


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
