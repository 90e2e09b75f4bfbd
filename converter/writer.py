"""Graph -> model file bytes: plan the arena, lay out constant data, build with the schema."""

from __future__ import annotations

import json

import numpy as np

from tinyrt import fileformat as ff
from tinyrt.stream import plan_reads

from . import schema
from .graph import DTYPE_CODES, Graph
from .planner import plan_views

CONVERTER_VERSION = "0.1.0"


def _lifetimes(g: Graph) -> dict[int, list[int]]:
    """First and last op index touching each activation tensor (inputs from -1, outputs
    to n_ops)."""
    life: dict[int, list[int]] = {}
    for t in g.inputs:
        life[t] = [-1, -1]
    for i, op in enumerate(g.ops):
        for t in list(op.inputs) + list(op.outputs):
            if t < 0 or g.tensors[t].is_const:
                continue
            span = life.setdefault(t, [i, i])
            span[0] = min(span[0], i)
            span[1] = max(span[1], i)
    for t in g.outputs:
        life.setdefault(t, [len(g.ops), len(g.ops)])[1] = len(g.ops)
    for t in life:  # state (LSTM) lives across invokes: no other tensor may share its bytes
        if g.tensors[t].variable:
            life[t] = [-1, len(g.ops)]
    return life


def plan(g: Graph) -> tuple[dict[int, int], int]:
    """Arena offsets of every activation tensor, and the arena size."""
    life = _lifetimes(g)
    views = {t: g.tensors[t].view_of for t in life if g.tensors[t].view_of}
    sizes = {i: t.nbytes for i, t in enumerate(g.tensors) if not t.is_const}
    return plan_views(sizes, life, views)


def _const_blob(g: Graph) -> tuple[dict[int, int], bytes]:
    """DATA section: every constant tensor once (identical bytes are stored once), aligned."""
    blob = bytearray()
    seen: dict[bytes, int] = {}
    offsets: dict[int, int] = {}
    for i, t in enumerate(g.tensors):
        if not t.is_const:
            continue
        raw = np.ascontiguousarray(t.data).astype(t.data.dtype.newbyteorder("<")).tobytes()
        if len(raw) != t.nbytes:
            raise ValueError(f"tensor {t.name!r}: {len(raw)} bytes of data, shape needs "
                             f"{t.nbytes}")
        if raw not in seen:
            blob.extend(bytes(-len(blob) % ff.ALIGN))
            seen[raw] = len(blob)
            blob.extend(raw)
        offsets[i] = seen[raw]
    return offsets, bytes(blob)


def stream_scratch_bytes(g: Graph, const_offsets: dict[int, int]) -> int:
    """The scratch buffer streaming needs: the largest operator's constants, laid out as the
    runtime reads them (tinyrt.stream.plan_reads, on DATA-relative offsets)."""
    need = 0
    for op in g.ops:
        consts = {t for t in op.inputs if t >= 0 and g.tensors[t].is_const}
        spans = [(const_offsets[t], g.tensors[t].nbytes) for t in sorted(consts)]
        need = max(need, plan_reads(spans)[1])
    return need


def serialize(g: Graph, scratch_bytes: int | None = None) -> bytes:
    """The model file for graph `g`. META's scratch_bytes defaults to what streaming needs."""
    if not g.inputs or not g.outputs:
        raise ValueError("graph needs at least one input and one output")
    arena_offsets, arena_bytes = plan(g)
    const_offsets, blob = _const_blob(g)
    if scratch_bytes is None:
        scratch_bytes = stream_scratch_bytes(g, const_offsets)
    records = []
    for i, t in enumerate(g.tensors):
        if t.is_const:
            storage, offset = ff.CONST, const_offsets[i]
        elif i in arena_offsets:
            storage, offset = ff.ARENA, arena_offsets[i]
        else:
            raise ValueError(f"tensor {t.name!r} is neither constant nor used by any op")
        records.append(dict(
            dtype=DTYPE_CODES[t.dtype], ndim=len(t.shape), storage=storage,
            flags=(ff.PER_CHANNEL if t.per_channel else 0) | (ff.VARIABLE if t.variable else 0),
            offset=offset, nbytes=t.nbytes,
            dims=list(t.shape) + [0] * (ff.MAX_DIMS - len(t.shape)), scale=t.scale,
            zero_point=t.zero_point,
        ))
    none = ff.NO_TENSOR
    ops = [dict(opcode=op.opcode, inputs=[none if t < 0 else t for t in op.inputs],
                outputs=list(op.outputs), params=list(op.params)) for op in g.ops]
    meta = dict(arena_bytes=arena_bytes, scratch_bytes=scratch_bytes,
                n_tensors=len(g.tensors), n_ops=len(g.ops), inputs=g.inputs, outputs=g.outputs)
    metadata = dict(g.metadata)
    metadata.setdefault("converter", f"tinyrt {CONVERTER_VERSION}")
    sections = [
        dict(kind=ff.META, data=schema.Meta.build(meta)),
        dict(kind=ff.TENSORS, data=b"".join(schema.TensorRecord.build(r) for r in records)),
        dict(kind=ff.OPS, data=b"".join(schema.OpRecord.build(o) for o in ops)),
        dict(kind=ff.NAMES, data=schema.Names.build([t.name for t in g.tensors])),
        dict(kind=ff.METADATA, data=json.dumps(metadata, sort_keys=True).encode()),
        dict(kind=ff.DATA, data=blob),
    ]
    return schema.build_file(dict(format_version=ff.FORMAT_VERSION, sections=sections))
