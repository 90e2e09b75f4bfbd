"""Data-movement layers (int8, raw copies): STRIDED_SLICE, SLICE, TRANSPOSE, SPLIT, SPLIT_V,
PACK, UNPACK, GATHER (constant indices), DEPTH_TO_SPACE, SPACE_TO_DEPTH.

One idea for all of them (kernel mp_runtime/tinyrt/kernels/copy.py): every output element is
one input element. The op is run here, with numpy, on arrays of element indices (input k's
elements numbered from base_k, the inputs' sizes summed before it), which gives for each
output the index of the input element each of its elements copies; `moves` then covers each
output with 4-D boxes whose input and output offsets are affine in the box position:
  inputs  [x_0, ..., x_{n-1}]  outputs [y_0, ..., y_{m-1}]
  params  16 per move: k_in, k_out, x offset, y offset, 4 dims, 4 x strides, 4 y strides
A transpose, a slice (any steps), a split or an unpack is one move per output; a pack is one
per input; a gather one per run of indices that step evenly. Outputs keep the quantization
given (TFLM copies the raw int8 values, whatever the tensors' scales say).
"""

from __future__ import annotations

import numpy as np

from tinyrt import opcodes

from ..graph import Graph
from .elementwise import check_zero_point


def _affine(idx: np.ndarray) -> tuple[int, list[int]] | None:
    """(offset, strides) if idx (4-D) is offset + sum(i_k * stride_k), else None."""
    off = int(idx.flat[0])
    strides = []
    for k in range(4):
        if idx.shape[k] > 1:
            sel = [0, 0, 0, 0]
            sel[k] = 1
            strides.append(int(idx[tuple(sel)]) - off)
        else:
            strides.append(0)
    grid = np.indices(idx.shape, dtype=np.int64)
    pred = off + sum(grid[k] * strides[k] for k in range(4))
    return (off, strides) if np.array_equal(pred, idx) else None


def _moves(idx: np.ndarray, bases: list[int], k_out: int, y_off: int, y_strides: list[int]
           ) -> list[list[int]]:
    """Moves covering idx (4-D global input indices) at y_off in output k_out: one box if
    idx is affine inside one input, else split along its first dim longer than 1."""
    k_in = int(np.searchsorted(bases, int(idx.flat[0]), side="right")) - 1
    inside = np.all((idx >= bases[k_in]) & (idx < bases[k_in + 1]))
    a = _affine(idx) if inside else None
    if a is not None:
        return [[k_in, k_out, a[0] - bases[k_in], y_off, *idx.shape, *a[1], *y_strides]]
    k = next(i for i in range(4) if idx.shape[i] > 1)
    out = []
    for j in range(idx.shape[k]):
        sub = np.take(idx, [j], axis=k)
        out += _moves(sub, bases, k_out, y_off + j * y_strides[k], y_strides)
    return out


def _extend4(a: np.ndarray) -> np.ndarray:
    if a.ndim > 4:
        raise ValueError(f"shape {a.shape}: at most 4-D")
    return a.reshape((1,) * (4 - a.ndim) + a.shape)


def move_params(ins: list[np.ndarray], outs: list[np.ndarray]) -> list[int]:
    """The copy kernel's params for outputs that hold global input indices (see module)."""
    sizes = [int(a.size) for a in ins]
    bases = [0] + list(np.cumsum(sizes))
    params: list[int] = []
    for k, y in enumerate(outs):
        y4 = _extend4(np.asarray(y, np.int64))
        st = [int(np.prod(y4.shape[i + 1:])) if y4.shape[i] > 1 else 0 for i in range(4)]
        for mv in _moves(y4, bases, k, 0, st):
            params += mv
    return params


def index_arrays(g: Graph, xs: list[int]) -> list[np.ndarray]:
    """Each input's shape filled with its elements' global indices."""
    out, base = [], 0
    for x in xs:
        shape = g.tensors[x].shape
        n = int(np.prod(shape))
        out.append(np.arange(base, base + n, dtype=np.int64).reshape(shape))
        base += n
    return out


def data_movement(g: Graph, opcode: int, xs: list[int], results: list[np.ndarray],
                  quant: list[tuple[float, int]] | None = None, name: str = "move") -> list[int]:
    """Add the copy op whose outputs are `results` (index arrays from index_arrays(g, xs),
    moved by the op); outputs quantized as `quant` (default: x_0's)."""
    x0 = g.tensors[xs[0]]
    for x in xs:  # int16 (16x8 models): kernels/copy16.py moves the byte pairs
        if g.tensors[x].dtype not in ("int8", "int16") or g.tensors[x].dtype != x0.dtype:
            raise ValueError(f"{name}: input {g.tensors[x].name!r} is {g.tensors[x].dtype}, "
                             "expected int8 (or int16 throughout)")
    quant = quant or [(x0.scale, x0.zero_point)] * len(results)
    ins = index_arrays(g, xs)
    params = move_params(ins, results)
    ys = []
    for k, (r, (s, z)) in enumerate(zip(results, quant)):
        check_zero_point(z, name)
        ys.append(g.add_activation(f"{name}/out{k}" if len(results) > 1 else f"{name}/out",
                                   r.shape or (1,), s, z, x0.dtype))
    g.add_op(opcode, xs, ys, params)
    return ys


def _one(g: Graph, opcode: int, x: int, fn, quant, name: str) -> int:
    (ix,) = index_arrays(g, [x])
    return data_movement(g, opcode, [x], [np.asarray(fn(ix))], quant and [quant], name)[0]


# -- the ops -----------------------------------------------------------------------------------

def slice_bounds(begin: int, end: int, stride: int, size: int, begin_masked: bool,
                 end_masked: bool, shrink: bool) -> list[int]:
    """The indices one dim of TFLite's STRIDED_SLICE takes: TFLM's StartForAxis, StopForAxis
    (clamped to [0, size] for a positive stride, [-1, size - 1] for a negative one; a masked
    begin / end is the dim's first / last in the stride's direction; shrink takes one)."""
    lo, hi = (0, size) if stride > 0 else (-1, size - 1)
    start = (lo if stride > 0 else hi) if begin_masked else begin + (size if begin < 0 else 0)
    start = min(max(start, lo), hi)
    if shrink:
        return [start]
    stop = (hi if stride > 0 else lo) if end_masked else end + (size if end < 0 else 0)
    stop = min(max(stop, lo), hi)
    return list(range(start, stop, stride))


def strided_slice(g: Graph, x: int, begin, end, strides, begin_mask: int = 0,
                  end_mask: int = 0, shrink_axis_mask: int = 0,
                  quant: tuple[float, int] | None = None, name: str = "strided_slice") -> int:
    """TFLite STRIDED_SLICE without ellipsis / new-axis masks, as TFLM's strided_slice.h."""
    shape = g.tensors[x].shape
    rank = len(shape)
    if not len(begin) == len(end) == len(strides) == rank:  # TFLM reads one per dim
        raise ValueError(f"{name}: begin {list(begin)}, end {list(end)}, strides "
                         f"{list(strides)} for rank {rank}")
    picks = []
    for d in range(rank):
        if strides[d] == 0:
            raise ValueError(f"{name}: stride 0 on dim {d}")
        shrink = bool(shrink_axis_mask >> d & 1)
        idx = slice_bounds(int(begin[d]), int(end[d]), int(strides[d]), shape[d],
                           bool(begin_mask >> d & 1), bool(end_mask >> d & 1), shrink)
        if not idx or not 0 <= idx[0] < shape[d]:
            raise ValueError(f"{name}: dim {d} of {shape[d]} sliced to {idx or 'nothing'}")
        picks.append(idx)
    keep = tuple(len(p) for d, p in enumerate(picks) if not shrink_axis_mask >> d & 1)

    def fn(ix):
        return ix[np.ix_(*picks)].reshape(keep or (1,))
    return _one(g, opcodes.STRIDED_SLICE, x, fn, quant, name)


def slice_(g: Graph, x: int, begin, size, quant: tuple[float, int] | None = None,
           name: str = "slice") -> int:
    """TFLite SLICE: size -1 takes the rest of the dim."""
    shape = g.tensors[x].shape
    if not len(begin) == len(size) == len(shape):
        raise ValueError(f"{name}: begin {list(begin)}, size {list(size)} for shape {shape}")
    sel = []
    for d, (b, s) in enumerate(zip(begin, size)):
        e = shape[d] if s == -1 else b + s
        if not 0 <= b < e <= shape[d]:
            raise ValueError(f"{name}: begin {b} size {s} outside dim {d} of {shape[d]}")
        sel.append(slice(int(b), int(e)))
    return _one(g, opcodes.SLICE, x, lambda ix: ix[tuple(sel)], quant, name)


def transpose(g: Graph, x: int, perm, quant: tuple[float, int] | None = None,
              name: str = "transpose") -> int:
    perm = [int(p) for p in np.asarray(perm).ravel()]
    rank = len(g.tensors[x].shape)
    if sorted(p + rank if p < 0 else p for p in perm) != list(range(rank)):
        raise ValueError(f"{name}: perm {perm} is no permutation of {rank} dims")
    return _one(g, opcodes.TRANSPOSE, x, lambda ix: np.transpose(ix, perm), quant, name)


def split(g: Graph, x: int, axis: int, sizes, quant: list[tuple[float, int]] | None = None,
          opcode: int = opcodes.SPLIT, name: str = "split") -> list[int]:
    """SPLIT (equal sizes) and SPLIT_V (sizes given, one may be -1) along `axis`."""
    shape = g.tensors[x].shape
    ax = axis + len(shape) if axis < 0 else axis
    if not 0 <= ax < len(shape):
        raise ValueError(f"{name}: axis {axis} for shape {shape}")
    sizes = [int(s) for s in sizes]
    if sizes.count(-1) == 1:
        sizes[sizes.index(-1)] = shape[ax] - (sum(sizes) + 1)
    if sum(sizes) != shape[ax] or min(sizes) < 1:
        raise ValueError(f"{name}: sizes {sizes} do not split dim {ax} of {shape[ax]}")
    (ix,) = index_arrays(g, [x])
    parts = np.split(ix, np.cumsum(sizes)[:-1], axis=ax)
    return data_movement(g, opcode, [x], parts, quant, name)


def pack(g: Graph, xs: list[int], axis: int, quant: tuple[float, int] | None = None,
         name: str = "pack") -> int:
    shapes = {g.tensors[x].shape for x in xs}
    if len(shapes) != 1:
        raise ValueError(f"{name}: inputs of shapes {sorted(shapes)}, expected one shape")
    rank = len(shapes.pop()) + 1
    ax = axis + rank if axis < 0 else axis
    if not 0 <= ax < rank:
        raise ValueError(f"{name}: axis {axis} for rank {rank}")
    r = np.stack(index_arrays(g, xs), axis=ax)
    return data_movement(g, opcodes.PACK, xs, [r], quant and [quant], name)[0]


def unpack(g: Graph, x: int, axis: int, quant: list[tuple[float, int]] | None = None,
           name: str = "unpack") -> list[int]:
    shape = g.tensors[x].shape
    ax = axis + len(shape) if axis < 0 else axis
    if not 0 <= ax < len(shape):
        raise ValueError(f"{name}: axis {axis} for shape {shape}")
    (ix,) = index_arrays(g, [x])
    parts = [np.take(ix, k, axis=ax) for k in range(shape[ax])]
    return data_movement(g, opcodes.UNPACK, [x], parts, quant, name)


def gather(g: Graph, x: int, indices, axis: int = 0, batch_dims: int = 0,
           quant: tuple[float, int] | None = None, name: str = "gather") -> int:
    """TFLite GATHER with constant indices (TFLM stops on an index outside [0, dim))."""
    shape = g.tensors[x].shape
    idx = np.asarray(indices, np.int64)
    ax = axis + len(shape) if axis < 0 else axis
    bd = batch_dims + idx.ndim if batch_dims < 0 else batch_dims
    if not 0 <= bd <= ax < len(shape) or idx.shape[:bd] != tuple(shape[:bd]):
        raise ValueError(f"{name}: axis {axis}, batch_dims {batch_dims} for input {shape} "
                         f"and indices {idx.shape}")
    if idx.size and (idx.min() < 0 or idx.max() >= shape[ax]):
        raise ValueError(f"{name}: indices {idx.min()}..{idx.max()} outside dim {ax} of "
                         f"{shape[ax]}")

    def fn(ix):
        if bd == 0:
            return np.take(ix, idx, axis=ax)
        lead = int(np.prod(shape[:bd]))
        rows = [np.take(ix.reshape((lead,) + tuple(shape[bd:]))[b],
                        idx.reshape((lead,) + idx.shape[bd:])[b], axis=ax - bd)
                for b in range(lead)]
        return np.stack(rows).reshape(tuple(shape[:bd]) + rows[0].shape)
    return _one(g, opcodes.GATHER, x, fn, quant, name)


def depth_to_space(g: Graph, x: int, block: int, quant: tuple[float, int] | None = None,
                   name: str = "depth_to_space") -> int:
    n, h, w, c = _nhwc(g, x, name)
    if block < 1 or c % (block * block):
        raise ValueError(f"{name}: block {block} for {c} channels")

    def fn(ix):
        r = ix.reshape(n, h, w, block, block, c // block // block)
        return r.transpose(0, 1, 3, 2, 4, 5).reshape(n, h * block, w * block, -1)
    return _one(g, opcodes.DEPTH_TO_SPACE, x, fn, quant, name)


def space_to_depth(g: Graph, x: int, block: int, quant: tuple[float, int] | None = None,
                   name: str = "space_to_depth") -> int:
    n, h, w, c = _nhwc(g, x, name)
    if block < 1 or h % block or w % block:
        raise ValueError(f"{name}: block {block} for height {h}, width {w}")

    def fn(ix):
        r = ix.reshape(n, h // block, block, w // block, block, c)
        return r.transpose(0, 1, 3, 2, 4, 5).reshape(n, h // block, w // block, -1)
    return _one(g, opcodes.SPACE_TO_DEPTH, x, fn, quant, name)


def _nhwc(g: Graph, x: int, name: str) -> tuple[int, int, int, int]:
    shape = g.tensors[x].shape
    if len(shape) != 4:
        raise ValueError(f"{name}: input shape {shape}, expected NHWC")
    return tuple(int(d) for d in shape)  # type: ignore[return-value]


def reverse(g: Graph, x: int, axes, quant: tuple[float, int] | None = None,
            name: str = "reverse") -> int:
    """REVERSE_V2: x's order reversed along `axes` (one move, negative strides)."""
    rank = len(g.tensors[x].shape)
    ax = sorted({a + rank if a < 0 else a for a in (int(v) for v in np.ravel(axes))})
    if any(not 0 <= a < rank for a in ax):
        raise ValueError(f"{name}: axes {list(np.ravel(axes))} for rank {rank}")
    return _one(g, opcodes.REVERSE_V2, x, lambda ix: np.flip(ix, axis=tuple(ax)), quant, name)


def mirror_pad(g: Graph, x: int, paddings, mode: str, quant: tuple[float, int] | None = None,
               name: str = "mirror_pad") -> int:
    """MIRROR_PAD, mode REFLECT (edge not repeated) or SYMMETRIC (edge repeated), as np.pad."""
    shape = g.tensors[x].shape
    pairs = [(int(a), int(b)) for a, b in np.asarray(paddings, np.int64).reshape(-1, 2)]
    limit = 0 if mode == "reflect" else 1
    if len(pairs) != len(shape) or any(min(p) < 0 or max(p) > d - 1 + limit
                                       for p, d in zip(pairs, shape)):
        raise ValueError(f"{name}: paddings {pairs} for shape {shape} in {mode} mode")
    return _one(g, opcodes.MIRROR_PAD, x, lambda ix: np.pad(ix, pairs, mode=mode), quant, name)


def batch_to_space_nd(g: Graph, x: int, block, crops, quant: tuple[float, int] | None = None,
                      name: str = "batch_to_space") -> int:
    """BATCH_TO_SPACE_ND on (B, H, W, C) or (B, H, C): batches into spatial blocks, cropped."""
    shape = g.tensors[x].shape
    block = [int(b) for b in np.ravel(block)]
    crops = np.asarray(crops, np.int64).reshape(-1, 2)
    ns = len(block)
    if len(shape) != ns + 2 or crops.shape[0] != ns or min(block) < 1 \
            or shape[0] % int(np.prod(block)) or crops.min() < 0:
        raise ValueError(f"{name}: block {block}, crops {crops.tolist()} for shape {shape}")

    def fn(ix):
        b = shape[0] // int(np.prod(block))
        r = ix.reshape(tuple(block) + (b,) + tuple(shape[1:]))
        order = [ns] + [k for i in range(ns) for k in (ns + 1 + i, i)] + [2 * ns + 1]
        r = r.transpose(order).reshape((b,) + tuple(d * s for d, s in zip(shape[1:], block))
                                       + (shape[-1],))
        sel = tuple(slice(int(c0), r.shape[1 + i] - int(c1)) for i, (c0, c1) in
                    enumerate(crops))
        return r[(slice(None),) + sel]
    return _one(g, opcodes.BATCH_TO_SPACE_ND, x, fn, quant, name)


def broadcast_to(g: Graph, x: int, shape, quant: tuple[float, int] | None = None,
                 name: str = "broadcast_to") -> int:
    shape = tuple(int(d) for d in np.ravel(shape))
    return _one(g, opcodes.BROADCAST_TO, x, lambda ix: np.broadcast_to(ix, shape).copy(),
                quant, name)


def gather_nd(g: Graph, x: int, indices, quant: tuple[float, int] | None = None,
              name: str = "gather_nd") -> int:
    """GATHER_ND with constant indices: out[i...] = x[indices[i..., :]] (TFLM stops on an index
    outside its dim)."""
    shape = g.tensors[x].shape
    idx = np.asarray(indices, np.int64)
    if idx.ndim < 1 or not 1 <= idx.shape[-1] <= len(shape):
        raise ValueError(f"{name}: indices {idx.shape} for input {shape}")
    if idx.size and (idx.min() < 0 or np.any(idx.max(axis=tuple(range(idx.ndim - 1)))
                                             >= np.array(shape[:idx.shape[-1]]))):
        raise ValueError(f"{name}: an index lies outside input {shape}")
    return _one(g, opcodes.GATHER_ND, x, lambda ix: ix[tuple(np.moveaxis(idx, -1, 0))], quant,
                name)
