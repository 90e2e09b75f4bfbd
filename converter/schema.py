"""The tinyrt model file, declared once with construct.

The board reads the same layout with struct.unpack_from in mp_runtime/tinyrt/fileformat.py;
tests bind the two. Derived fields (counts, lengths, offsets, CRCs) are computed on build.
"""

from __future__ import annotations

import zlib

from construct import (
    Array,
    Bytes,
    Const,
    Float32l,
    GreedyRange,
    Computed,
    Container,
    Int8ul,
    Int16ul,
    Int32sl,
    Int32ul,
    Padding,
    PascalString,
    Pointer,
    Rebuild,
    Struct,
    len_,
    this,
)

from tinyrt import fileformat as ff

MAGIC = ff.MAGIC
FORMAT_VERSION = ff.FORMAT_VERSION
ALIGN = ff.ALIGN


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


# -- section contents -----------------------------------------------------------------------

Meta = Struct(
    "arena_bytes" / Int32ul,
    "scratch_bytes" / Int32ul,
    "n_tensors" / Int16ul,
    "n_ops" / Int16ul,
    "n_inputs" / Rebuild(Int16ul, len_(this.inputs)),
    "n_outputs" / Rebuild(Int16ul, len_(this.outputs)),
    "inputs" / Array(this.n_inputs, Int16ul),
    "outputs" / Array(this.n_outputs, Int16ul),
    Padding(lambda ctx: -2 * (ctx.n_inputs + ctx.n_outputs) % 4),
)

TensorRecord = Struct(
    "dtype" / Int8ul,
    "ndim" / Int8ul,
    "storage" / Int8ul,
    "flags" / Int8ul,
    "offset" / Int32ul,
    "nbytes" / Int32ul,
    "dims" / Array(ff.MAX_DIMS, Int32ul),
    "scale" / Float32l,
    "zero_point" / Int32sl,
)
assert TensorRecord.sizeof() == ff.TENSOR_SIZE

OpRecord = Struct(
    "opcode" / Int16ul,
    "n_in" / Rebuild(Int8ul, len_(this.inputs)),
    "n_out" / Rebuild(Int8ul, len_(this.outputs)),
    "n_params" / Rebuild(Int16ul, len_(this.params)),
    "reserved" / Const(0, Int16ul),
    "inputs" / Array(this.n_in, Int16ul),
    "outputs" / Array(this.n_out, Int16ul),
    Padding(lambda ctx: -2 * (ctx.n_in + ctx.n_out) % 4),
    "params" / Array(this.n_params, Int32sl),
)

Names = GreedyRange(PascalString(Int16ul, "utf8"))

# -- the file -------------------------------------------------------------------------------

SectionEntry = Struct(
    "kind" / Int32ul,
    "offset" / Int32ul,
    "length" / Int32ul,
    "crc32" / Int32ul,
)


def _layout(ctx) -> list[Container]:
    """Section table entries for ctx.sections (list of {kind, data}), packed in order."""
    pos = _align(ff.HEADER_SIZE + ff.SECTION_SIZE * len(ctx.sections))
    table = []
    for s in ctx.sections:
        data = s["data"]
        table.append(Container(kind=s["kind"], offset=pos, length=len(data),
                               crc32=zlib.crc32(data) & 0xFFFFFFFF))
        pos = _align(pos + len(data))
    return table


def _file_bytes(ctx) -> int:
    table = _layout(ctx)
    if not table:
        return ff.HEADER_SIZE
    last = max(table, key=lambda e: e.offset)
    return last.offset + last.length


SectionTable = Array(this.n_sections, SectionEntry)


def _table_crc(ctx) -> int:
    return zlib.crc32(SectionTable.build(_layout(ctx), n_sections=len(ctx.sections))) & 0xFFFFFFFF


ModelFile = Struct(
    "magic" / Const(MAGIC),
    "format_version" / Int16ul,
    "n_sections" / Rebuild(Int16ul, len_(this.sections)),
    "file_bytes" / Rebuild(Int32ul, _file_bytes),
    "table_crc32" / Rebuild(Int32ul, _table_crc),
    "table" / Rebuild(SectionTable, _layout),
    "sections" / Array(
        this.n_sections,
        Struct(
            "kind" / Computed(lambda ctx: ctx._.table[ctx._index].kind),
            "data" / Pointer(lambda ctx: ctx._.table[ctx._index].offset,
                             Bytes(lambda ctx: ctx._.table[ctx._index].length)),
        ),
    ),
)

SECTION_STRUCTS = {
    ff.META: Meta,
    ff.TENSORS: GreedyRange(TensorRecord),
    ff.OPS: GreedyRange(OpRecord),
    ff.NAMES: Names,
}


def parse_file(b: bytes):
    """Parse a model file: the container with raw section bytes, with CRCs verified."""
    f = ModelFile.parse(b)
    if f.table_crc32 != _table_crc(f):
        raise ValueError("section table CRC mismatch")
    for entry, s in zip(f.table, f.sections):
        if zlib.crc32(s.data) & 0xFFFFFFFF != entry.crc32:
            raise ValueError(f"section {entry.kind} CRC mismatch")
    return f


def build_file(f) -> bytes:
    """Build a model file from {format_version, sections: [{kind, data}]}; offsets, lengths,
    CRCs and counts are derived."""
    b = ModelFile.build(f)
    # an empty last section ends past the last byte written: pad to the declared length
    return b + bytes(ModelFile.parse(b).file_bytes - len(b)) if len(b) < _file_bytes(
        Container(sections=f["sections"])) else b
