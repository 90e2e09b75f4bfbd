"""Weight sharing: cluster a model's int8 FULLY_CONNECTED and CONV_2D weights into 2^b shared
int8 values per layer, stored as b-bit indices + an int8 codebook (FULLY_CONNECTED_LUT,
CONV_2D_LUT; the kernels look the weights up as they run, so they stay small in RAM too).

Clustering is on the layer's int8 weights (per-channel scales already normalise each channel to
[-127, 127]): optimal 1-D k-means over the histogram of the 255 int8 values (dynamic
programming, exact for real-valued centroids), centroids rounded to int8. The scales, bias
and requantization rows are kept, so the clustered model equals the original with its weights
replaced by the decoded ones (`decoded_graph`), bit for bit: that is the oracle the tests
hold the LUT kernels to.

Index packing (the host side of the convention; the device side is documented in
tinyrt/kernels/fully_connected_lut.py): index j takes bits j*b .. j*b + b - 1, LSB first, plus
one zero byte of padding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tinyrt import fileformat as ff
from tinyrt import opcodes

from .graph import Graph, Op, Tensor
from .inspect_model import describe

MIN_BITS, MAX_BITS = 2, 6  # what `tinyrt compress --cluster` offers (the kernels take 1..6)
_CLUSTERED = {opcodes.FULLY_CONNECTED: opcodes.FULLY_CONNECTED_LUT,
              opcodes.CONV_2D: opcodes.CONV_2D_LUT}
_DECODED = {v: k for k, v in _CLUSTERED.items()}


def kmeans_1d(values: np.ndarray, bits: int) -> np.ndarray:
    """The 2^bits int8 centroids (ascending; repeated when the values have fewer distinct
    levels) minimising the squared error of int8 `values`, each value to its nearest one."""
    k = 1 << bits
    levels, counts = np.unique(np.asarray(values, np.int64).ravel(), return_counts=True)
    n = levels.size
    if n <= k:
        return np.concatenate([levels, np.repeat(levels[-1:], k - n)]).astype(np.int8)
    c = counts.astype(np.float64)
    v = levels.astype(np.float64)
    s0 = np.concatenate([[0.0], np.cumsum(c)])
    s1 = np.concatenate([[0.0], np.cumsum(c * v)])
    s2 = np.concatenate([[0.0], np.cumsum(c * v * v)])
    i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")  # segment levels i..j
    w = s0[j + 1] - s0[i]
    with np.errstate(invalid="ignore", divide="ignore"):
        cost = s2[j + 1] - s2[i] - (s1[j + 1] - s1[i]) ** 2 / w
    cost = np.where(i <= j, np.maximum(cost, 0.0), np.inf)
    best = cost[0].copy()  # best[j]: levels 0..j in m segments
    starts = []
    for _ in range(1, k):
        cand = best[:-1, None] + cost[1:, :]  # last segment starts at i + 1
        arg = np.argmin(cand, axis=0)
        starts.append(arg + 1)
        best = np.concatenate([[np.inf], cand[arg, np.arange(n)][1:]])
    bounds, end = [], n - 1
    for s in reversed(starts):
        bounds.append(int(s[end]))
        end = bounds[-1] - 1
    edges = [0] + sorted(bounds) + [n]
    cents = [np.sum(c[a:b] * v[a:b]) / np.sum(c[a:b]) for a, b in zip(edges, edges[1:])]
    return np.clip(np.round(cents), -128, 127).astype(np.int8)


def assign(values: np.ndarray, codebook: np.ndarray) -> np.ndarray:
    """Each value's nearest codebook entry (the lowest index on a tie)."""
    d = np.abs(np.asarray(values, np.int64).reshape(-1, 1) - codebook.astype(np.int64))
    return np.argmin(d, axis=1).astype(np.int64)


def pack_indices(idx: np.ndarray, bits: int) -> np.ndarray:
    """Indices < 2^bits -> int8 bytes: index j at bits j*bits.., LSB first, + 1 zero byte."""
    idx = np.asarray(idx, np.int64).ravel()
    if idx.size and (idx.min() < 0 or idx.max() >= 1 << bits):
        raise ValueError(f"indices outside 0..{(1 << bits) - 1}")
    bitpos = (np.arange(idx.size)[:, None] * bits + np.arange(bits)).ravel()
    on = ((idx[:, None] >> np.arange(bits)) & 1).ravel().astype(bool)
    out = np.zeros((idx.size * bits + 7) // 8 + 1, np.uint8)
    np.add.at(out, bitpos[on] >> 3, (1 << (bitpos[on] & 7)).astype(np.uint8))
    return out.view(np.int8)


def unpack_indices(packed: np.ndarray, bits: int, n: int) -> np.ndarray:
    b = np.asarray(packed).view(np.uint8).astype(np.int64)
    pos = np.arange(n) * bits
    word = b[pos >> 3] | (b[(pos >> 3) + 1] << 8)
    return (word >> (pos & 7)) & ((1 << bits) - 1)


def graph_from_file(b: bytes) -> Graph:
    """A tinyrt model file back as a Graph (tensors, constant data, ops, metadata)."""
    from . import schema
    from .compress import decompress_file

    b = decompress_file(b)
    d = describe(b)

    data = next(s.data for s in schema.parse_file(b).sections if s.kind == ff.DATA)
    g = Graph(metadata=dict(d["metadata"]))
    for t in d["tensors"]:
        arr = None
        if t["storage"] == "const":
            dt = {"int8": "<i1", "int16": "<i2", "int32": "<i4", "float32": "<f4",
                  "packed": "<i4"}[t["dtype"]]
            raw = data[t["offset"]: t["offset"] + t["nbytes"]]
            arr = np.frombuffer(raw, dt).astype(dt[1:]).reshape(_stored_shape(t))
        g.tensors.append(Tensor(t["name"], tuple(t["shape"]), t["dtype"], t["scale"],
                                t["zero_point"], arr, bool(t["flags"] & ff.PER_CHANNEL),
                                bool(t["flags"] & ff.VARIABLE)))
    for o in d["operators"]:
        g.ops.append(Op(o["opcode"], list(o["inputs"]), list(o["outputs"]), list(o["params"])))
    g.inputs = [t["index"] for t in d["inputs"]]
    g.outputs = [t["index"] for t in d["outputs"]]
    return g


def _stored_shape(t: dict) -> tuple[int, ...]:
    if t["dtype"] == "packed":
        return tuple(t["shape"][:-1]) + ((t["shape"][-1] + 31) // 32,)
    return tuple(t["shape"])


@dataclass
class LayerSize:
    name: str
    op: str
    weights: int  # number of weights
    int8_bytes: int  # as int8
    lut_bytes: int  # packed indices + codebook
    levels: int  # distinct weight values before clustering
    rms_error: float  # of the int8 weights, in int8 steps


def _aligned(n: int) -> int:
    return n + -n % ff.ALIGN


def file_cost(name: str, n_weights: int, bits: int, extra_params: int) -> int:
    """Estimated file bytes a layer's clustering adds (negative: saves): the packed indices
    and the codebook (each 16-byte aligned) instead of the int8 weights, one more tensor
    record, their names, the op's extra inputs and params."""
    lut = _aligned((n_weights * bits + 7) // 8 + 1) + _aligned(1 << bits)
    names = 2 + len(name) + len("/indices") + 2 + len(name) + len("/codebook")
    return lut - _aligned(n_weights) + ff.TENSOR_SIZE + names + 2 + 4 * extra_params


def cluster_graph(g: Graph, bits: int, min_weights: int | None = None
                  ) -> tuple[Graph, list[LayerSize]]:
    """A copy of `g` with its FULLY_CONNECTED / CONV_2D layers of int8 weights clustered to
    2^bits levels per layer, and the size of each clustered layer. A layer is clustered when
    it has >= min_weights weights; min_weights=None: when that makes the file smaller."""
    if not 1 <= bits <= MAX_BITS:
        raise ValueError(f"cluster bits {bits}, expected 1..{MAX_BITS}")
    out = Graph(list(g.tensors), [], list(g.inputs), list(g.outputs), dict(g.metadata))
    sizes = []
    for op in g.ops:
        w = g.tensors[op.inputs[1]] if op.opcode in _CLUSTERED else None
        # a layer with wide-bias channels (inputs 4, 5: kernels/wide_channels.py) stays int8
        if (w is None or len(op.inputs) > 4 or not w.is_const or w.dtype != "int8"
                or not _worth(w, bits, min_weights)):
            out.ops.append(op)
            continue
        codebook = kmeans_1d(w.data, bits)
        idx = assign(w.data, codebook)
        name = w.name
        ii = out.add_const(name + "/indices", pack_indices(idx, bits), "int8")
        ci = out.add_const(name + "/codebook", codebook, "int8", w.scale, 0, w.per_channel)
        if op.opcode == opcodes.FULLY_CONNECTED:
            n_out, n_in = w.shape
            params = list(op.params) + [bits, n_out, n_in]
        else:
            params = list(op.params[:8]) + [bits] + list(w.shape) + list(op.params[8:])
        out.add_op(_CLUSTERED[op.opcode], [op.inputs[0], ii, ci] + list(op.inputs[2:]),
                   op.outputs, params)
        err = w.data.astype(np.int64).ravel() - codebook[idx].astype(np.int64)
        sizes.append(LayerSize(name, opcodes.name(op.opcode), w.data.size, w.nbytes,
                               out.tensors[ii].nbytes + out.tensors[ci].nbytes,
                               int(np.unique(w.data).size), float(np.sqrt(np.mean(err ** 2)))))
    out.metadata["clustered_bits"] = bits
    return prune(out), sizes


def _worth(w: Tensor, bits: int, min_weights: int | None) -> bool:
    if min_weights is not None:
        return w.data.size >= min_weights
    return file_cost(w.name, w.data.size, bits, 3 if len(w.shape) == 2 else 5) < 0


def decoded_graph(g: Graph, ops=None) -> Graph:
    """The oracle: `g` with every LUT op (or those at the indices `ops` of g.ops) replaced by
    the plain op over its decoded int8 weights (the same scales, bias and requantization)."""
    out = Graph(list(g.tensors), [], list(g.inputs), list(g.outputs), dict(g.metadata))
    for i, op in enumerate(g.ops):
        if op.opcode not in _DECODED or ops is not None and i not in ops:
            out.ops.append(op)
            continue
        p = list(op.params)
        if op.opcode == opcodes.FULLY_CONNECTED_LUT:
            bits, shape, params = p[2], tuple(p[3:5]), p[:2]
        else:
            bits, shape, params = p[8], tuple(p[9:13]), p[:8] + p[13:]
        idx_t, cb_t = g.tensors[op.inputs[1]], g.tensors[op.inputs[2]]
        w = cb_t.data[unpack_indices(idx_t.data, bits, int(np.prod(shape)))].reshape(shape)
        wi = out.add_const(cb_t.name.rsplit("/", 1)[0], w, "int8", cb_t.scale, 0,
                           cb_t.per_channel)
        out.add_op(_DECODED[op.opcode], [op.inputs[0], wi] + list(op.inputs[3:]), op.outputs,
                   params)
    return prune(out)


def prune(g: Graph) -> Graph:
    """`g` without the tensors no op, input or output refers to (indices renumbered)."""
    used = set(g.inputs) | set(g.outputs)
    for op in g.ops:
        used.update(t for t in op.inputs + op.outputs if t >= 0)
    keep = sorted(used)
    new = {old: i for i, old in enumerate(keep)}
    ops = [Op(op.opcode, [new[t] if t >= 0 else -1 for t in op.inputs],
              [new[t] for t in op.outputs], list(op.params)) for op in g.ops]
    return Graph([g.tensors[i] for i in keep], ops, [new[t] for t in g.inputs],
                 [new[t] for t in g.outputs], dict(g.metadata))
