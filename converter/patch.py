"""Patch-based inference (MCUNetV2, Lin et al. 2021) of a model's first, high-resolution stage,
as full-width row bands: exact for int8, no kernel changes.

A stage is a chain of CONV_2D / DEPTHWISE_CONV_2D ops (batch 1, NHWC, each output read only by
the next op). Its output rows are cut into bands; each band's ops run the same kernels over
band-sized tensors: the first reads a byte range of the stage's input (NHWC rows are
contiguous, so a band of rows is a `view_of` the bigger tensor), the last writes a byte range of
the stage's output, the ones between have band-sized tensors of their own, which the arena
planner lets the bands share. A band's first rows are padding only for the top band (pad_top
as in the whole layer; other bands start inside the input, pad_top 0), its last only for the
bottom band (the kernels skip taps past an input's last row, which is the bottom padding);
the halo rows that neighbouring bands both need are computed by both. Every output element
sees the same inputs and weights as the unpatched layer, so the results are identical to the
bit and invoke() allocates nothing more (the plan is ordinary ops and arena offsets).
Where each band writes its output rows below every input row a later band reads, the stage's
output lies in its input's bytes (a view of it from its start): a 1x1 layer with Cout <= Cin,
or a stride-2 stage, then runs in place with one band of temporaries.

`patch(g, max_extra_macs)` picks the stage end and band count whose arena is smallest among
those that recompute at most `max_extra_macs` (a fraction of the model's MACs) — the stated
latency cost — and prefers fewer recomputed MACs among equal arenas.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from tinyrt import opcodes

from .graph import Graph, Op, Tensor

_ROW_OPS = (opcodes.CONV_2D, opcodes.DEPTHWISE_CONV_2D)
_PT, _OH = 4, 6  # params: stride_h, stride_w, dilation_h, dilation_w, pad_top, pad_left, out_h


@dataclass(frozen=True)
class Plan:
    """A patched stage: ops [start, end) of the original graph in `bands` row bands."""

    start: int
    end: int
    bands: int
    arena: int  # bytes, as planned
    extra_macs: int  # recomputed halo MACs
    overlap: bool = False  # the stage's output in its input's bytes (band_graph)


def macs(g: Graph, op: Op) -> int:
    """Multiply-accumulates of one op (CONV_2D / DEPTHWISE_CONV_2D; 0 for the others)."""
    if op.opcode not in _ROW_OPS:
        return 0
    w = g.tensors[op.inputs[1]].shape
    y = g.tensors[op.outputs[0]].shape
    per_out = w[1] * w[2] * (w[3] if op.opcode == opcodes.CONV_2D else 1)
    return y[1] * y[2] * y[3] * per_out


def _in_rows(g: Graph, op: Op, o0: int, o1: int) -> tuple[int, int]:
    """Input rows [r0, r1) that output rows [o0, o1) of a row op read (clipped to the input)."""
    kh = g.tensors[op.inputs[1]].shape[1]
    sh, dh, pt = op.params[0], op.params[2], op.params[_PT]
    h = g.tensors[op.inputs[0]].shape[1]
    return max(0, o0 * sh - pt), min(h, (o1 - 1) * sh - pt + (kh - 1) * dh + 1)


def stages(g: Graph) -> list[tuple[int, int]]:
    """Candidate stages [start, end): chains of row ops (batch 1) starting at `start`, each
    op's output read by the next op only; every end past start + 1 is a candidate."""
    readers: dict[int, list[int]] = {}
    for i, op in enumerate(g.ops):
        for t in op.inputs:
            readers.setdefault(t, []).append(i)
    out = []
    for start, op in enumerate(g.ops):
        end = start
        while end < len(g.ops):
            o = g.ops[end]
            if o.opcode not in _ROW_OPS or g.tensors[o.inputs[0]].shape[0] != 1:
                break
            if end > start and readers.get(g.ops[end - 1].outputs[0]) != [end]:
                break
            if end > start and g.ops[end - 1].outputs[0] in g.outputs:
                break
            end += 1
            if end - start >= 2:
                out.append((start, end))
    return out


def _band_rows(g: Graph, ops: list[Op], o0: int, o1: int) -> list[tuple[int, int]]:
    """Per op of the stage, the output rows one band computes; [-1] the stage input's rows."""
    rows = [(o0, o1)]
    for op in reversed(ops):
        rows.append(_in_rows(g, op, *rows[-1]))
    rows.reverse()  # rows[k]: input rows of ops[k]; rows[k + 1]: its output rows
    return rows


def _output_over_input(g: Graph, ops: list[Op], cut: list[int]) -> bool:
    """Whether the stage's output may lie in its input's bytes from the input's start: each
    band writes its output rows below every input row a later band reads (a band's own input
    is read by its first op, before its last op writes), the input is read by the stage only
    and dies there, and neither tensor is a view, an output or state."""
    t_in = ops[0].inputs[0]
    s_in, s_out = g.tensors[t_in], g.tensors[ops[-1].outputs[0]]
    if s_in.is_const or s_in.view_of or s_out.view_of or s_in.variable or s_out.variable \
            or t_in in g.outputs or s_out.nbytes > s_in.nbytes:
        return False
    if any(t_in in op.inputs for op in g.ops if op is not ops[0]):
        return False
    row_in, row_out = s_in.nbytes // s_in.shape[1], s_out.nbytes // s_out.shape[1]
    for b in range(1, len(cut) - 1):
        if cut[b] * row_out > _band_rows(g, ops, cut[b], cut[b + 1])[0][0] * row_in:
            return False
    return True


def band_graph(g: Graph, start: int, end: int, bands: int,
               overlap: bool = True) -> tuple[Graph, int]:
    """The graph with ops [start, end) run in `bands` row bands, and its recomputed MACs.
    overlap: place the stage's output in its input's bytes where that is safe
    (_output_over_input): the arena then holds the input and one band's intermediates, not
    the input and the whole output."""
    ops = g.ops[start:end]
    s_in, s_out = ops[0].inputs[0], ops[-1].outputs[0]
    h_out = g.tensors[s_out].shape[1]
    bands = min(bands, h_out)
    cut = [h_out * b // bands for b in range(bands + 1)]
    ng = Graph(list(g.tensors), [], list(g.inputs), list(g.outputs), dict(g.metadata))
    out_parent = s_out
    if overlap and _output_over_input(g, ops, cut):
        t = ng.tensors[s_out] = copy.copy(g.tensors[s_out])
        t.view_of = (s_in, 0)
        out_parent = s_in
    ng.ops = list(g.ops[:start])
    extra = -sum(macs(g, op) for op in ops)
    for b in range(bands):
        rows = _band_rows(g, ops, cut[b], cut[b + 1])
        x = _view(ng, s_in, *rows[0], f"band{b}")
        for k, op in enumerate(ops):
            o0, o1 = rows[k + 1]
            r0 = rows[k][0]
            full = op.outputs[0]
            if k == len(ops) - 1:
                y = _view(ng, s_out, o0, o1, f"band{b}", out_parent)
            else:
                t = g.tensors[full]
                y = ng.add_tensor(Tensor(f"{t.name}/band{b}", (1, o1 - o0) + t.shape[2:],
                                         t.dtype, t.scale, t.zero_point))
            params = list(op.params)
            params[_PT] = r0 - (o0 * op.params[0] - op.params[_PT])
            params[_OH] = o1 - o0
            band_op = Op(op.opcode, [x] + list(op.inputs[1:]), [y], params)
            ng.ops.append(band_op)
            extra += macs(ng, band_op)
            x = y
    ng.ops.extend(g.ops[end:])
    return _drop_unused(ng), extra


def _view(g: Graph, of: int, r0: int, r1: int, tag: str, parent: int | None = None) -> int:
    """A tensor for rows [r0, r1) of NHWC tensor `of` (batch 1), in its bytes; `parent`: the
    buffer holding `of` from its start (`of` itself by default)."""
    t = g.tensors[of]
    row = t.nbytes // t.shape[1]
    v = copy.copy(t)
    v.name = f"{t.name}/{tag}" if t.name else ""
    v.shape = (1, r1 - r0) + tuple(t.shape[2:])
    v.view_of = (of if parent is None else parent, r0 * row)
    return g.add_tensor(v)


def _drop_unused(g: Graph) -> Graph:
    """The graph without the tensors no op, input, output or view uses (the stage's full
    intermediates), indices renumbered."""
    used = set(g.inputs) | set(g.outputs)
    for op in g.ops:
        used.update(t for t in op.inputs + op.outputs if t >= 0)
    used.update(t.view_of[0] for i, t in enumerate(g.tensors) if i in used and t.view_of)
    keep = sorted(used)
    new = {old: i for i, old in enumerate(keep)}
    tensors = []
    for old in keep:
        t = g.tensors[old]
        if t.view_of:
            t = copy.copy(t)
            t.view_of = (new[t.view_of[0]], t.view_of[1])
        tensors.append(t)
    remap = lambda ts: [new[t] if t >= 0 else t for t in ts]  # noqa: E731
    ops = [Op(op.opcode, remap(op.inputs), remap(op.outputs), list(op.params)) for op in g.ops]
    return Graph(tensors, ops, remap(g.inputs), remap(g.outputs), dict(g.metadata))


def best_plan(g: Graph, max_extra_macs: float = 0.25, max_bands: int = 6) -> Plan | None:
    """The patch plan with the smallest arena within the latency cost, or None when no plan
    beats the unpatched arena."""
    from .writer import plan

    total_macs = sum(macs(g, op) for op in g.ops) or 1
    best = Plan(0, 0, 1, plan(g)[1], 0, False)
    for start, end in stages(g):
        h = g.tensors[g.ops[end - 1].outputs[0]].shape[1]
        for bands in range(2, min(h, max_bands) + 1):
            for overlap in (False, True):
                ng, extra = band_graph(g, start, end, bands, overlap)
                if extra > max_extra_macs * total_macs:
                    break
                arena = plan(ng)[1]
                if (arena, extra, overlap) < (best.arena, best.extra_macs, best.overlap):
                    best = Plan(start, end, bands, arena, extra, overlap)
            if extra > max_extra_macs * total_macs:
                break  # more bands recompute more
    return best if best.bands > 1 else None


def patch(g: Graph, max_extra_macs: float = 0.25, max_bands: int = 6) -> tuple[Graph, Plan | None]:
    """`g` with its best patch plan applied (or `g` itself when none lowers the arena)."""
    p = best_plan(g, max_extra_macs, max_bands)
    if p is None:
        return g, None
    ng, _ = band_graph(g, p.start, p.end, p.bands, p.overlap)
    ng.metadata["patch"] = {"ops": [p.start, p.end], "bands": p.bands,
                            "extra_macs": p.extra_macs, "overlap": p.overlap}
    return ng, p
