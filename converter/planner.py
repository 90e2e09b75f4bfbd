"""Arena planning: lifetimes and greedy placement, largest first (as TFLM's greedy planner)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Buffer:
    size: int  # bytes
    first: int  # index of the first op that touches it (-1: a graph input)
    last: int  # index of the last op that touches it (n_ops: a graph output)


def _aligned(n: int, align: int) -> int:
    return (n + align - 1) // align * align


def plan_arena(buffers: list[Buffer], align: int = 4) -> tuple[list[int], int]:
    """Offsets for `buffers` such that buffers alive at the same time never overlap.

    Buffers are placed largest first (ties: earliest first), each at the lowest aligned offset
    that fits between the buffers already placed whose lifetimes intersect its own.
    Returns (offsets in the order of `buffers`, arena bytes).
    """
    order = sorted(range(len(buffers)), key=lambda i: (-buffers[i].size, buffers[i].first, i))
    offsets = [0] * len(buffers)
    placed: list[int] = []
    for i in order:
        b = buffers[i]
        live = sorted(
            (offsets[j], offsets[j] + buffers[j].size)
            for j in placed
            if buffers[j].first <= b.last and b.first <= buffers[j].last
        )
        candidate = 0
        for start, end in live:
            if candidate + b.size <= start:
                break
            candidate = max(candidate, _aligned(end, align))
        offsets[i] = candidate
        placed.append(i)
    total = max((offsets[i] + buffers[i].size for i in range(len(buffers))), default=0)
    return offsets, _aligned(total, align)


def plan_views(sizes: dict[int, int], life: dict[int, list[int]],
               views: dict[int, tuple[int, int]]) -> tuple[dict[int, int], int]:
    """Arena offsets of tensors {id: bytes} alive over life[id] = [first, last]; a tensor in
    `views` (id: (parent, byte offset)) is a range of its parent's bytes, not a buffer of its
    own, and keeps its parent alive while it is used. Returns ({id: offset}, arena bytes)."""
    span = {t: list(life[t]) for t in life if t not in views}
    for t, (parent, _) in views.items():
        s = span.setdefault(parent, list(life[t]))
        s[0] = min(s[0], life[t][0])
        s[1] = max(s[1], life[t][1])
    ids = sorted(span)
    offsets, total = plan_arena([Buffer(sizes[t], *span[t]) for t in ids])
    out = dict(zip(ids, offsets))
    for t, (parent, at) in views.items():
        out[t] = out[parent] + at
    return out, total
