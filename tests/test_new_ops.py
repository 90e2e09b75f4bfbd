"""Issue 13's new int8 ops against tflite-micro: STRIDED_SLICE (at run time), SLICE, TRANSPOSE,
SPLIT, SPLIT_V, PACK, UNPACK, GATHER, DEPTH_TO_SPACE, SPACE_TO_DEPTH, REVERSE_V2, MIRROR_PAD,
BATCH_TO_SPACE_ND, BROADCAST_TO, GATHER_ND, RESIZE_NEAREST_NEIGHBOR,
RESIZE_BILINEAR, SQUARED_DIFFERENCE, RSQRT, BATCH_MATMUL, TRANSPOSE_CONV, REDUCE_MAX, REDUCE_MIN,
ABS, PRELU.

Each case is a one-op .tflite written with host_sim.oracle.tflm.build_tflite, shapes, options
and quantizations drawn from a seeded generator; tflite-micro runs it, tinyrt converts it and
every interpreter runs all cases in one process (one boot of an emulated board), invoke()
under micropython.heap_lock: outputs must equal TFLM's to the bit."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from converter.tflite_import import import_tflite
from converter.writer import serialize
from host_sim.device import invoke_models_with_kernels
from host_sim.oracle.tflm import TOp, TTensor, build_tflite, run_tflm

CASES_PER_OP = 6
MOVEMENT = ("STRIDED_SLICE", "SLICE", "TRANSPOSE", "SPLIT", "SPLIT_V", "PACK", "UNPACK", "GATHER",
            "DEPTH_TO_SPACE", "SPACE_TO_DEPTH", "REVERSE_V2", "MIRROR_PAD", "BATCH_TO_SPACE_ND",
            "BROADCAST_TO", "GATHER_ND")  # one kernel, kernels/copy.py
Rng = np.random.Generator


def _scale(rng: Rng, lo: float = 0.003, hi: float = 0.6) -> float:
    return float(np.float32(np.exp(rng.uniform(np.log(lo), np.log(hi)))))


def _q(rng: Rng) -> tuple[float, int]:
    return _scale(rng), int(rng.integers(-128, 128))


def _i32(values) -> TTensor:
    a = np.asarray(values, np.int32)
    return TTensor("c", a.shape, "int32", data=a)


def _shape(rng: Rng, lo: int = 1, hi: int = 4, dmax: int = 5) -> tuple[int, ...]:
    return tuple(int(d) for d in rng.integers(1, dmax + 1, int(rng.integers(lo, hi + 1))))


def _model(op: str, xs: list[tuple], ys: list[tuple], consts: list, opts: dict, rng: Rng,
           xq=None, yq=None) -> bytes:
    """One op: inputs xs (int8), then the constant int32 operands, outputs ys (int8). Tensor
    order of the op's inputs is given by `order` in opts (indices into xs + consts)."""
    order = opts.pop("_order", None)
    xq = xq or [_q(rng) for _ in xs]
    yq = yq or [xq[0]] * len(ys)
    t = [TTensor(f"x{i}", s, "int8", *q) for i, (s, q) in enumerate(zip(xs, xq))]
    t += [c if isinstance(c, TTensor) else _i32(c) for c in consts]
    n_in = len(t)
    t += [TTensor(f"y{i}", s, "int8", *q) for i, (s, q) in enumerate(zip(ys, yq))]
    ins = order if order is not None else list(range(n_in))
    outs = list(range(n_in, len(t)))
    return build_tflite(t, [TOp(op, ins, outs, opts)], list(range(len(xs))), outs)


# -- case generators: (tflite, input shapes) ---------------------------------------------------

def _tflm_slice_shape(x, begin, end, strides, bm, em, sm) -> tuple[int, ...]:
    """The output shape TFLM's StridedSlicePrepare accepts (strided_slice_common.cc), written
    from its StartForAxis / StopForAxis; () when a shrunk index falls outside its dim."""
    out = []
    for d, n in enumerate(x):
        s = strides[d]
        lo, hi = (0, n) if s > 0 else (-1, n - 1)
        start = (lo if s > 0 else hi) if bm >> d & 1 else begin[d] + (n if begin[d] < 0 else 0)
        start = min(max(start, lo), hi)
        if sm >> d & 1:
            if not 0 <= start < n:
                return ()
            continue
        stop = (hi if s > 0 else lo) if em >> d & 1 else end[d] + (n if end[d] < 0 else 0)
        stop = min(max(stop, lo), hi)
        out.append(max(0, -(-(stop - start) // s)))
    return tuple(out)


def _movement(op: str, rng: Rng) -> tuple[bytes, list[tuple]]:
    x = _shape(rng)
    ix = np.arange(int(np.prod(x))).reshape(x)
    if op == "TRANSPOSE":
        perm = [int(p) for p in rng.permutation(len(x))]
        return _model(op, [x], [np.transpose(ix, perm).shape], [perm], {}, rng), [x]
    if op == "STRIDED_SLICE":
        while True:
            begin = [int(rng.integers(-d - 1, d + 1)) for d in x]
            end = [int(rng.integers(-d - 1, d + 2)) for d in x]
            strides = [int(rng.choice([-2, -1, 1, 1, 2, 3])) for _ in x]
            bm, em, sm = (int(rng.integers(0, 1 << len(x))) for _ in range(3))
            # TFLM's eval loops `index > start + 1` on a shrunk dim with a negative stride: it
            # writes nothing there (the output keeps stale arena bytes), so those are not drawn
            strides = [abs(s) if sm >> d & 1 else s for d, s in enumerate(strides)]
            y = _tflm_slice_shape(x, begin, end, strides, bm, em, sm)
            if y and min(y) > 0:
                break
        opts = {"begin_mask": bm, "end_mask": em, "shrink_axis_mask": sm}
        return _model(op, [x], [y], [begin, end, strides], opts, rng), [x]
    if op == "SLICE":
        begin = [int(rng.integers(0, d)) for d in x]
        size = [int(rng.integers(1, d - b + 1)) if rng.random() < 0.7 else -1
                for b, d in zip(begin, x)]
        y = tuple(d - b if s == -1 else s for b, s, d in zip(begin, size, x))
        return _model(op, [x], [y], [begin, size], {}, rng), [x]
    axis = int(rng.integers(-len(x), len(x)))
    if op in ("SPLIT", "SPLIT_V"):
        x = tuple(d * int(rng.integers(2, 4)) if i == axis % len(x) else d
                  for i, d in enumerate(x))
        dim = x[axis]
        if op == "SPLIT":
            n = int(rng.choice([k for k in range(1, dim + 1) if dim % k == 0]))
            ys = [tuple(dim // n if i == axis % len(x) else d for i, d in enumerate(x))] * n
            return _model(op, [x], ys, [[axis]], {"num_splits": n, "_order": [1, 0]}, rng), [x]
        cuts = sorted(int(c) for c in rng.choice(np.arange(1, dim), int(rng.integers(
            1, min(dim, 4))), replace=False))
        sizes = list(np.diff([0] + cuts + [dim]))
        ys = [tuple(s if i == axis % len(x) else d for i, d in enumerate(x)) for s in sizes]
        if rng.random() < 0.5:
            sizes[int(rng.integers(len(sizes)))] = -1
        return _model(op, [x], ys, [[int(s) for s in sizes], [axis]],
                      {"num_splits": len(sizes)}, rng), [x]
    if op == "PACK":
        x = x[:3]
        n = int(rng.integers(1, 4))
        axis = int(rng.integers(-len(x) - 1, len(x) + 1))
        y = np.stack([np.zeros(x)] * n, axis=axis).shape
        q = _q(rng)
        return _model(op, [x] * n, [y], [], {"values_count": n, "axis": axis}, rng,
                      xq=[q] * n), [x] * n
    if op == "UNPACK":
        ys = [np.take(ix, 0, axis=axis).shape] * x[axis]
        if not ys[0]:
            x, axis = x + (2,), 0
            ys = [np.take(np.zeros(x), 0, axis=0).shape] * x[0]
        return _model(op, [x], ys, [], {"num": x[axis], "axis": axis}, rng), [x]
    if op == "GATHER":
        x = x[:3]
        axis = int(rng.integers(0, len(x)))
        idx = rng.integers(0, x[axis], _shape(rng, 1, 2, 4))
        y = np.take(np.zeros(x), idx, axis=axis).shape
        if len(y) > 4:
            idx = idx.ravel()
            y = np.take(np.zeros(x), idx, axis=axis).shape
        return _model(op, [x], [y], [idx], {"axis": axis}, rng), [x]
    if op in ("REVERSE_V2", "MIRROR_PAD", "BATCH_TO_SPACE_ND", "BROADCAST_TO", "GATHER_ND"):
        return _movement_more(op, x, rng)
    block = int(rng.choice([2, 3]))
    n, h, w, c = (int(d) for d in rng.integers(1, 4, 4))
    if op == "DEPTH_TO_SPACE":
        x, y = (n, h, w, c * block * block), (n, h * block, w * block, c)
    else:
        x, y = (n, h * block, w * block, c), (n, h, w, c * block * block)
    return _model(op, [x], [y], [], {"block_size": block}, rng), [x]


def _movement_more(op: str, x: tuple, rng: Rng) -> tuple[bytes, list[tuple]]:
    z = np.zeros(x)
    if op == "REVERSE_V2":  # TFLM takes contiguous axes only
        a = int(rng.integers(len(x)))
        axes = list(range(a, int(rng.integers(a + 1, len(x) + 1))))
        return _model(op, [x], [x], [axes], {}, rng), [x]
    if op == "MIRROR_PAD":
        mode = int(rng.integers(2))  # 0 REFLECT, 1 SYMMETRIC
        pads = [[int(rng.integers(0, d + mode)) for _ in range(2)] for d in x]
        y = np.pad(z, pads, mode="symmetric" if mode else "reflect").shape
        return _model(op, [x], [y], [pads], {"mode": mode}, rng), [x]
    if op == "BATCH_TO_SPACE_ND":
        spatial = [int(d) for d in rng.integers(1, 4, int(rng.integers(1, 3)))]
        block = [int(b) for b in rng.integers(1, 4, len(spatial))]
        crops = [[int(rng.integers(0, d * b // 2 + 1)) for _ in range(2)]
                 for d, b in zip(spatial, block)]
        b = int(rng.integers(1, 3))
        x = (b * int(np.prod(block)), *spatial, int(rng.integers(1, 4)))
        y = (b, *(d * k - c0 - c1 for d, k, (c0, c1) in zip(spatial, block, crops)), x[-1])
        return _model(op, [x], [y], [block, crops], {}, rng), [x]
    if op == "BROADCAST_TO":
        x = tuple(1 if rng.random() < 0.5 else d for d in x[-3:])
        y = tuple(int(d) for d in rng.integers(1, 4, 4 - len(x))) + tuple(
            int(rng.integers(1, 4)) if d == 1 else d for d in x)
        return _model(op, [x], [y], [list(y)], {}, rng), [x]
    x = x[:3]  # GATHER_ND
    z = np.zeros(x)
    depth = int(rng.integers(1, len(x) + 1))
    lead = _shape(rng, 1, 4 - len(x) + depth, 3)[: 4 - len(x) + depth]
    idx = np.stack([rng.integers(0, d, lead) for d in x[:depth]], axis=-1)
    y = z[tuple(np.moveaxis(idx, -1, 0))].shape
    return _model(op, [x], [y], [idx], {}, rng), [x]


def _reduce(op: str, rng: Rng) -> tuple[bytes, list[tuple]]:
    x = _shape(rng)
    keep = len(x) == 1 or bool(rng.integers(2))  # never a 0-D output
    n = int(rng.integers(1, len(x) + 1 if keep else len(x)))
    axes = sorted(int(a) for a in rng.choice(len(x), n, replace=False))
    y = np.max(np.zeros(x), axis=tuple(axes), keepdims=keep).shape
    return _model(op, [x], [y], [[a - len(x) if rng.random() < 0.3 else a for a in axes]],
                  {"keep_dims": keep}, rng), [x]


def _abs(op: str, rng: Rng) -> tuple[bytes, list[tuple]]:
    x = (2, 128)
    xq = _q(rng)
    yq = xq if rng.random() < 0.3 else (_scale(rng), int(rng.integers(-128, 128)))
    return _model(op, [x], [x], [], {}, rng, xq=[xq], yq=[yq]), [x]


def _prelu(op: str, rng: Rng) -> tuple[bytes, list[tuple]]:
    x = _shape(rng, 2, 4)
    a = x[-int(rng.integers(1, len(x) + 1)):]
    a = tuple(1 if rng.random() < 0.3 else d for d in a)
    yq = [(_scale(rng), int(rng.integers(-128, 128)))]
    if rng.random() < 0.5:  # alpha a constant, as converters write it
        alpha = TTensor("alpha", a, "int8", _scale(rng, 0.001, 0.05), int(rng.integers(-20, 20)),
                        0, rng.integers(-128, 128, a).astype(np.int8))
        return _model(op, [x], [x], [alpha], {}, rng, yq=yq), [x]
    return _model(op, [x, a], [x], [], {}, rng, yq=yq), [x, a]


def _resize(op: str, rng: Rng) -> tuple[bytes, list[tuple]]:
    n, h, w, c = (int(d) for d in rng.integers(1, 6, 4))
    oh, ow = (int(d) for d in rng.integers(1, 11, 2))
    ac, hp = [(False, False), (True, False), (False, True)][int(rng.integers(3))]
    if op == "RESIZE_NEAREST_NEIGHBOR" and rng.random() < 0.2:
        ac = hp = True  # TFLM's nearest neighbour takes both
    x = (n, h, w, c)
    return _model(op, [x], [(n, oh, ow, c)], [[oh, ow]],
                  {"align_corners": ac, "half_pixel_centers": hp}, rng), [x]


BROADCASTS = (((2, 3, 4, 5), (2, 3, 4, 5)), ((1, 3, 4, 5), (5,)), ((3, 1, 5), (1, 4, 1)),
              ((2, 1, 4, 1), (1, 3, 1, 6)), ((7,), (1,)))


def _squared_difference(op: str, rng: Rng) -> tuple[bytes, list[tuple]]:
    a, b = BROADCASTS[int(rng.integers(len(BROADCASTS)))]
    y = tuple(int(d) for d in np.broadcast_shapes(a, b))
    return _model(op, [a, b], [y], [], {}, rng, yq=[(_scale(rng, 0.002, 2.0),
                                                     int(rng.integers(-128, 128)))]), [a, b]


def _rsqrt(op: str, rng: Rng) -> tuple[bytes, list[tuple]]:
    x = (1, 256)
    return _model(op, [x], [x], [], {}, rng, xq=[(_scale(rng, 1e-4, 1.0), -128)],
                  yq=[(_scale(rng, 0.002, 2.0), int(rng.integers(-128, 128)))]), [x]


def _batch_matmul(op: str, rng: Rng) -> tuple[bytes, list[tuple]]:
    m, n, k = (int(d) for d in rng.integers(1, 7, 3))
    batch_l = _shape(rng, 0, 2, 3)
    batch_r = tuple(1 if rng.random() < 0.3 else d for d in batch_l)[int(rng.integers(0, 2)):]
    ax, ay = bool(rng.integers(2)), bool(rng.integers(2))
    ls = batch_l + ((k, m) if ax else (m, k))
    rs = batch_r + ((n, k) if ay else (k, n))
    y = tuple(int(d) for d in np.broadcast_shapes(batch_l, batch_r)) + (m, n)
    return _model(op, [ls, rs], [y], [], {"adj_x": ax, "adj_y": ay}, rng,
                  yq=[(_scale(rng, 0.05, 4.0), int(rng.integers(-128, 128)))]), [ls, rs]


def _transpose_conv(op: str, rng: Rng) -> tuple[bytes, list[tuple]]:
    n, h, w, ic, oc = (int(d) for d in rng.integers(1, 5, 5))
    kh, kw, sh, sw = (int(d) for d in rng.integers(1, 4, 4))
    padding = str(rng.choice(["SAME", "VALID"]))
    oh, ow = (h * sh, w * sw) if padding == "SAME" else ((h - 1) * sh + kh, (w - 1) * sw + kw)
    xq = _q(rng)
    ws = [_scale(rng, 0.001, 0.05) for _ in range(oc)]
    t = [_i32([n, oh, ow, oc]),
         TTensor("w", (oc, kh, kw, ic), "int8", ws, [0] * oc, 0,
                 rng.integers(-127, 128, (oc, kh, kw, ic)).astype(np.int8)),
         TTensor("x", (n, h, w, ic), "int8", *xq),
         TTensor("b", (oc,), "int32", [xq[0] * s for s in ws], [0] * oc, 0,
                 rng.integers(-5000, 5000, oc).astype(np.int32)),
         TTensor("y", (n, oh, ow, oc), "int8", _scale(rng, 0.01, 1.0),
                 int(rng.integers(-128, 128)))]
    ins = [0, 1, 2, 3] if rng.random() < 0.7 else [0, 1, 2, -1]
    opts = {"padding": padding, "stride_h": sh, "stride_w": sw}
    return build_tflite(t, [TOp(op, ins, [4], opts)], [2], [4]), [(n, h, w, ic)]


GENERATORS = {op: _movement for op in MOVEMENT}
GENERATORS.update({"RESIZE_NEAREST_NEIGHBOR": _resize, "RESIZE_BILINEAR": _resize,
                   "SQUARED_DIFFERENCE": _squared_difference, "RSQRT": _rsqrt,
                   "BATCH_MATMUL": _batch_matmul, "TRANSPOSE_CONV": _transpose_conv,
                   "REDUCE_MAX": _reduce, "REDUCE_MIN": _reduce, "ABS": _abs,
                   "PRELU": _prelu})
TESTED_OPS = (*GENERATORS, "DEQUANTIZE", "SVDF")  # checked against TFLM here, SVDF in
# tests/test_new_ops_state.py


def _inputs(op: str, shapes: list[tuple], rng: Rng) -> list[np.ndarray]:
    if op in ("RSQRT", "ABS"):  # every int8 value (RSQRT's zero point is -128: all valid)
        return [rng.permutation(np.resize(np.arange(-128, 128), int(np.prod(shapes[0]))))
                .astype(np.int8).reshape(shapes[0])]
    xs = [rng.integers(-128, 128, s, dtype=np.int8) for s in shapes]
    if rng.random() < 0.3:
        xs[0] = np.full(shapes[0], 127 if rng.random() < 0.5 else -128, np.int8)
    return xs


@lru_cache(maxsize=None)
def cases() -> tuple:
    """(op, model file, examples, TFLM outputs per example) for every op."""
    out = []
    for k, op in enumerate(GENERATORS):
        rng = np.random.default_rng(1300 + k)
        for _ in range(CASES_PER_OP):
            tfl, shapes = GENERATORS[op](op, rng)
            ex = [_inputs(op, shapes, rng) for _ in range(2)]
            want = [[y.ravel().astype(np.int64) for y in run_tflm(tfl, e)] for e in ex]
            out.append((op, serialize(import_tflite(tfl)), ex, want))
    return tuple(out)


VIPER_TWINS = MOVEMENT + ("RESIZE_NEAREST_NEIGHBOR", "RESIZE_BILINEAR", "BATCH_MATMUL",
                          "TRANSPOSE_CONV")


def test_new_ops_match_tflm(interpreter: str) -> None:
    cs = cases()
    got, kernels = invoke_models_with_kernels([(m, ex) for _, m, ex, _ in cs], interpreter)
    twin = "reference" if interpreter == "wasm" else "viper"  # no viper emitter in the WASI build
    assert [k for (op, *_), k in zip(cs, kernels) if op in VIPER_TWINS] == \
        [[twin]] * (CASES_PER_OP * len(VIPER_TWINS))
    counts: dict[str, int] = {}
    for (op, _, _, want), rows in zip(cs, got):
        for w, ys in zip(want, rows):
            assert len(ys) == len(w)
            for a, b in zip(ys, w):
                np.testing.assert_array_equal(a, b, err_msg=f"{op} on {interpreter}")
        counts[op] = counts.get(op, 0) + 1
    assert counts == {op: CASES_PER_OP for op in GENERATORS}
