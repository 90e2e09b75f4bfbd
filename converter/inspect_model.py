"""A model file's contents as plain data (what `tinyrt info` prints), read with the schema."""

from __future__ import annotations

import json
import struct

from tinyrt import fileformat as ff
from tinyrt import opcodes

from . import schema


def float_bits(x: float) -> int:
    """A float32's bit pattern: compares scales exactly across interpreters."""
    return struct.unpack("<I", struct.pack("<f", x))[0]


def describe(b: bytes) -> dict:
    """Every field of the file, decoded; raises ValueError/construct errors on a bad file.
    A compressed file (converter.compress) is described as the model file inside it."""
    from .compress import decompress_file

    f = schema.parse_file(decompress_file(b))
    by_kind = {s.kind: s.data for s in f.sections}
    meta = schema.Meta.parse(by_kind[ff.META])
    recs = schema.SECTION_STRUCTS[ff.TENSORS].parse(by_kind[ff.TENSORS])
    ops = schema.SECTION_STRUCTS[ff.OPS].parse(by_kind[ff.OPS])
    names = (list(schema.Names.parse(by_kind[ff.NAMES])) if ff.NAMES in by_kind
             else [""] * len(recs))
    tensors = []
    for i, r in enumerate(recs):
        tensors.append(dict(
            index=i, name=names[i], dtype=ff.DTYPES[r.dtype][0], shape=list(r.dims[: r.ndim]),
            storage="const" if r.storage == ff.CONST else "arena", flags=r.flags,
            offset=r.offset, nbytes=r.nbytes, scale=r.scale, scale_bits=float_bits(r.scale),
            zero_point=r.zero_point,
        ))
    none = ff.NO_TENSOR
    op_list = [dict(opcode=o.opcode, name=opcodes.name(o.opcode),
                    inputs=[-1 if t == none else t for t in o.inputs],
                    outputs=list(o.outputs), params=list(o.params)) for o in ops]

    def io(idx: int) -> dict:
        t = tensors[idx]
        return {k: t[k] for k in ("index", "name", "shape", "dtype", "scale", "zero_point")}

    metadata = by_kind.get(ff.METADATA, b"").decode("utf-8")
    return dict(
        format_version=f.format_version,
        file_bytes=f.file_bytes,
        arena_bytes=meta.arena_bytes,
        scratch_bytes=meta.scratch_bytes,
        weight_bytes=sum(t["nbytes"] for t in tensors if t["storage"] == "const"),
        data_bytes=len(by_kind[ff.DATA]),
        ops=[o["name"] for o in op_list],
        operators=op_list,
        tensors=tensors,
        inputs=[io(i) for i in meta.inputs],
        outputs=[io(i) for i in meta.outputs],
        sections=[dict(kind=ff.SECTION_NAMES.get(e.kind, str(e.kind)), offset=e.offset,
                       length=e.length, crc32=e.crc32) for e in f.table],
        metadata=json.loads(metadata) if metadata else {},
    )
