"""RESHAPE, PAD, MEAN and CONCATENATION: tinyrt on every interpreter == the numpy oracle, bit for
bit; a subset against TFLM itself; malformed operators fail at load with ModelError."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest
import tinyrt
from hypothesis import given, settings
from hypothesis import strategies as st
from tinyrt import opcodes

from converter import writer
from converter.graph import Graph
from converter.layers.shape import concatenation, mean, pad, reshape
from host_sim.device import invoke_models
from host_sim.oracle import int8_ref as R
from host_sim.oracle.tflm import TOp, TTensor, build_tflite, run_tflm
from tests.kernel_harness import load_verdicts, tinyrt_local

BATCH = {"cpython": 80, "unix": 80, "wasm": 40, "m0": 40, "m3": 40}
EXAMPLES = {"cpython": 3, "unix": 3, "wasm": 1, "m0": 1, "m3": 1}


def f32(x: float) -> float:
    return float(np.float32(x))


def i32(values) -> TTensor:
    arr = np.asarray(values, dtype=np.int32)
    return TTensor("c", arr.shape, "int32", data=arr)


@dataclass
class Case:
    """One single-op model: `build(g, inputs) -> y` on a fresh Graph, an oracle, and a TFLite
    description (tensors, ops, inputs, outputs) of the same computation."""

    kind: str
    shapes: list[tuple[int, ...]]
    qs: list[tuple[float, int]]  # (scale, zero point) per input
    args: dict = field(default_factory=dict)
    seed: int = 0

    def model(self) -> bytes:
        g = Graph()
        xs = [g.add_activation(f"x{i}", s, *q) for i, (s, q) in enumerate(zip(self.shapes,
                                                                              self.qs))]
        a = self.args
        if self.kind == "reshape":
            y = reshape(g, xs[0], a["shape"])
        elif self.kind == "pad":
            y = pad(g, xs[0], a["paddings"], *a["oq"])
        elif self.kind == "mean":
            y = mean(g, xs[0], a["axes"], a["keep"], a["os"], a["oz"])
        else:
            y = concatenation(g, xs, a["axis"], a["os"], a["oz"])
        g.inputs, g.outputs = xs, [y]
        return writer.serialize(g)

    def inputs(self, k: int) -> list[np.ndarray]:
        rng = np.random.default_rng(self.seed + 7919 * k)
        return [rng.integers(-128, 128, s, dtype=np.int8) for s in self.shapes]

    def oracle(self, xs: list[np.ndarray]) -> np.ndarray:
        a = self.args
        if self.kind == "reshape":
            return R.reshape(xs[0], a["shape"])
        if self.kind == "pad":
            return R.pad(xs[0], a["paddings"], zero_point=a["oq"][1])
        if self.kind == "mean":
            (xs_, xz), = self.qs
            return R.mean(xs[0], a["axes"], a["keep"], x_scale=xs_, x_zp=xz, out_scale=a["os"],
                          out_zp=a["oz"])
        # inputs quantized unlike the output are requantized first (the converter's QUANTIZE)
        req = [x if (f32(s), z) == (f32(a["os"]), a["oz"]) else
               R.quantize(x, x_scale=s, x_zp=z, out_scale=a["os"], out_zp=a["oz"])
               for x, (s, z) in zip(xs, self.qs)]
        return R.concatenation(req, a["axis"])

    def tflite(self) -> bytes:
        a = self.args
        n = len(self.shapes)
        t = [TTensor(f"x{i}", s, "int8", *q) for i, (s, q) in enumerate(zip(self.shapes,
                                                                           self.qs))]
        out_shape = self.oracle(self.inputs(0)).shape
        ops = []
        if self.kind == "reshape":
            t += [TTensor("y", out_shape, "int8", *self.qs[0]), i32(a["shape"])]
            ops.append(TOp("RESHAPE", [0, 2], [1]))
        elif self.kind == "pad":
            t += [TTensor("y", out_shape, "int8", *a["oq"]), i32(a["paddings"])]
            ops.append(TOp("PAD", [0, 2], [1]))
        elif self.kind == "mean":
            t += [TTensor("y", out_shape, "int8", a["os"], a["oz"]), i32(a["axes"])]
            ops.append(TOp("MEAN", [0, 2], [1], {"keep_dims": a["keep"]}))
        else:
            ins = []
            for i, (s, q) in enumerate(zip(self.shapes, self.qs)):
                if (f32(q[0]), q[1]) != (f32(a["os"]), a["oz"]):
                    t.append(TTensor(f"r{i}", s, "int8", a["os"], a["oz"]))
                    ops.append(TOp("QUANTIZE", [i], [len(t) - 1]))
                    ins.append(len(t) - 1)
                else:
                    ins.append(i)
            t.append(TTensor("y", out_shape, "int8", a["os"], a["oz"]))
            ops.append(TOp("CONCATENATION", ins, [len(t) - 1], {"axis": a["axis"]}))
        y = n if self.kind != "concat" else len(t) - 1
        return build_tflite(t, ops, list(range(n)), [y])


def scale_zp(draw) -> tuple[float, int]:
    return f32(2.0 ** draw(st.floats(-10, 0))), draw(st.integers(-128, 127))


def shape_st():
    return st.lists(st.integers(1, 5), min_size=1, max_size=4).map(tuple)


@st.composite
def reshape_cases(draw) -> Case:
    shape = draw(shape_st())
    new = list(draw(st.permutations(list(shape)))) + [1] * draw(st.integers(0, 1))
    if len(new) > 4:
        new = new[:-1]
    if draw(st.booleans()):
        new[draw(st.integers(0, len(new) - 1))] = -1
    return Case("reshape", [shape], [scale_zp(draw)], {"shape": new}, draw(st.integers(0, 2**31)))


@st.composite
def pad_cases(draw) -> Case:
    shape = draw(shape_st())
    pads = [(draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in shape]
    xq = scale_zp(draw)
    oq = xq if draw(st.booleans()) else scale_zp(draw)  # TFLM pads with the output's zero point
    return Case("pad", [shape], [xq], {"paddings": pads, "oq": oq}, draw(st.integers(0, 2**31)))


@st.composite
def mean_cases(draw, max_axes=4) -> Case:
    shape = draw(shape_st())
    rank = len(shape)
    axes = draw(st.lists(st.integers(-rank, rank - 1), min_size=0 if max_axes > 2 else 1,
                         max_size=min(rank, max_axes), unique_by=lambda a: a % rank))
    if draw(st.booleans()):  # the global-average-pool pattern
        shape = (1, draw(st.integers(1, 8)), draw(st.integers(1, 8)),
                 draw(st.integers(1, 4)))
        axes = [1, 2]
    xq = scale_zp(draw)
    if draw(st.booleans()):
        oq = xq
    else:
        oq = (f32(xq[0] * 2.0 ** draw(st.floats(-4, 5))), draw(st.integers(-128, 127)))
    return Case("mean", [shape], [xq], {"axes": axes, "keep": draw(st.booleans()), "os": oq[0],
                                        "oz": oq[1]}, draw(st.integers(0, 2**31)))


@st.composite
def concat_cases(draw) -> Case:
    base = draw(shape_st())
    rank = len(base)
    axis = draw(st.integers(-rank, rank - 1))
    n_in = draw(st.integers(1, 4))
    shapes = []
    for _ in range(n_in):
        s = list(base)
        s[axis] = draw(st.integers(1, 3))
        shapes.append(tuple(s))
    q0 = scale_zp(draw)
    qs = [q0 if draw(st.booleans()) else scale_zp(draw) for _ in range(n_in)]
    oq = q0 if draw(st.booleans()) else scale_zp(draw)
    return Case("concat", shapes, qs, {"axis": axis, "os": oq[0], "oz": oq[1]},
                draw(st.integers(0, 2**31)))


def any_case():
    return st.one_of(reshape_cases(), pad_cases(), mean_cases(), concat_cases())


@settings(max_examples=5, deadline=None)
@given(data=st.data())
def test_shape_ops_match_oracle(interpreter, data):
    n = BATCH[interpreter]
    cases = data.draw(st.lists(any_case(), min_size=n, max_size=n))
    batch = [(c.model(), [c.inputs(k) for k in range(EXAMPLES[interpreter])]) for c in cases]
    results = invoke_models(batch, interpreter)
    for c, (_, examples), got in zip(cases, batch, results):
        for ex, (y,) in zip(examples, got):
            np.testing.assert_array_equal(y, c.oracle(ex).ravel(), err_msg=repr(c))


def _check_tflm(c: Case) -> None:
    xs = c.inputs(0)
    (y,) = tinyrt_local(c.model(), xs)
    want = run_tflm(c.tflite(), xs)[0]
    np.testing.assert_array_equal(y, want.ravel(), err_msg=repr(c))


# TFLM's MEAN resolves axes into int resolved_axis[2] (kMaxNumberOfReducedAxis): more than two
# distinct axes write past it (undefined behaviour that happens to give the oracle's result in
# the pip build); TFLM is compared with at most two, the oracle with up to four.
@settings(max_examples=100, deadline=None)
@given(c=st.one_of(reshape_cases(), pad_cases(), mean_cases(max_axes=2), concat_cases()))
def test_shape_ops_match_tflm(c):
    _check_tflm(c)


def test_mean_global_average_pool_matches_tflm():
    for shape, xq, oq in [((1, 7, 7, 8), (0.05, -3), (0.02, 5)), ((1, 12, 12, 3), (0.02, -128),
                                                                 (0.011, -128)),
                          ((2, 5, 3, 4), (0.1, 10), (0.1, 10)), ((1, 1, 49, 5), (0.3, 0),
                                                                 (0.07, -20))]:
        _check_tflm(Case("mean", [shape], [xq], {"axes": [1, 2], "keep": True, "os": oq[0],
                                                 "oz": oq[1]}, 1))


def _check_cases(interpreter, cases, tflm=True):
    batch = [(c.model(), [[x]]) for c, x in cases]
    for (c, x), ((y,),) in zip(cases, invoke_models(batch, interpreter)):
        np.testing.assert_array_equal(y, c.oracle([x]).ravel(), err_msg=repr(c))
        if tflm and interpreter == "cpython":
            np.testing.assert_array_equal(y, run_tflm(c.tflite(), [x])[0].ravel())


def test_mean_extremes_match_oracle(interpreter):
    """MEAN at its integer edges, for the 31-bit WASI build: the largest left shift allowed
    (255 * 4 << 20 < 2^30) and a long sum."""
    big = f32(1e-6 * 2.0**21.5)  # x_scale / y_scale in [2^21, 2^22): s = 22, k = 2, left 20
    _check_cases(interpreter, [
        (Case("mean", [(1, 2, 2, 3)], [(big, -128)], {"axes": [1, 2], "keep": True,
                                                      "os": 1e-6, "oz": -128}),
         np.full((1, 2, 2, 3), 127, np.int8)),
        (Case("mean", [(1, 2, 2, 3)], [(big, 127)], {"axes": [1, 2], "keep": False,
                                                     "os": 1e-6, "oz": 100}),
         np.full((1, 2, 2, 3), -128, np.int8)),
        (Case("mean", [(1, 16, 16, 1)], [(0.02, -128)], {"axes": [1, 2], "keep": True,
                                                         "os": 0.02, "oz": -128}),
         np.arange(-128, 128, dtype=np.int8).reshape(1, 16, 16, 1)),
    ])


def test_mean_tiny_multiplier_matches_oracle(interpreter):
    """TFLM's k = min(log2 n, 32, 31 + s) clamp: shift' = -31, stored as M = 0 with a right
    shift of 30 by kernels.common.requant_table (whose mask must not form 1 << 30)."""
    _check_cases(interpreter, [
        (Case("mean", [(2, 8, 1)], [(f32(2.0**-30), 5)], {"axes": [1], "keep": True, "os": 1.0,
                                                          "oz": 3}),
         np.arange(-128, 128, 16, dtype=np.int8).reshape(2, 8, 1)),
    ])


# --- malformed operators -------------------------------------------------------------------


def _graph(opcode, in_shapes, out_shape, params, consts=(), in_q=None, out_q=(0.1, 0)):
    g = Graph()
    in_q = in_q or [(0.1, 0)] * len(in_shapes)
    xs = [g.add_activation(f"x{i}", s, *q) for i, (s, q) in enumerate(zip(in_shapes, in_q))]
    cs = [g.add_const(f"c{i}", np.asarray(c, np.int32).reshape(-1, 3), "int32")
          for i, c in enumerate(consts)]
    y = g.add_activation("y", out_shape, *out_q)
    g.add_op(opcode, xs + cs, [y], list(params))
    g.inputs, g.outputs = xs, [y]
    return writer.serialize(g)


ROW = [[1 << 15, 0, 0]]
BAD_MODELS = {
    "RESHAPE size": _graph(opcodes.RESHAPE, [(2, 3)], (5,), []),
    "RESHAPE params": _graph(opcodes.RESHAPE, [(2, 3)], (6,), [1]),
    "PAD output dims": _graph(opcodes.PAD, [(2, 3)], (3, 3), [0, 0, 0, 1]),
    "PAD negative": _graph(opcodes.PAD, [(2, 3)], (1, 3), [0, -1, 0, 0]),
    "PAD params": _graph(opcodes.PAD, [(2, 3)], (2, 3), [0, 0]),
    "PAD rank": _graph(opcodes.PAD, [(2, 3)], (1, 2, 3), [0, 0, 0, 0]),
    "MEAN axis range": _graph(opcodes.MEAN, [(2, 3)], (2,), [2], [ROW]),
    "MEAN repeated axis": _graph(opcodes.MEAN, [(2, 3)], (2,), [1, 1], [ROW]),
    "MEAN output size": _graph(opcodes.MEAN, [(2, 3)], (3,), [1], [ROW]),
    "MEAN no requant": _graph(opcodes.MEAN, [(2, 3)], (2,), [1]),
    "MEAN 31-bit bound": _graph(opcodes.MEAN, [(2, 64, 64)], (2,), [1, 2], [[[1 << 15, 0, 11]]]),
    "CONCATENATION zero point": _graph(opcodes.CONCATENATION, [(2, 3), (2, 1)], (2, 4), [1],
                                       in_q=[(0.1, 0), (0.1, 1)]),
    "CONCATENATION scale": _graph(opcodes.CONCATENATION, [(2, 3), (2, 1)], (2, 4), [1],
                                  in_q=[(0.1, 0), (0.2, 0)]),
    "CONCATENATION off-axis dims": _graph(opcodes.CONCATENATION, [(2, 3), (3, 1)], (2, 4), [1]),
    "CONCATENATION axis sum": _graph(opcodes.CONCATENATION, [(2, 3), (2, 1)], (2, 5), [1]),
    "CONCATENATION axis": _graph(opcodes.CONCATENATION, [(2, 3), (2, 1)], (2, 4), [2]),
}

def test_good_params_load():
    tinyrt.load(_graph(opcodes.RESHAPE, [(2, 3)], (6,), []))
    tinyrt.load(_graph(opcodes.PAD, [(2, 3)], (3, 4), [0, 1, 1, 0]))
    tinyrt.load(_graph(opcodes.MEAN, [(2, 3)], (2, 1), [1], [ROW]))
    tinyrt.load(_graph(opcodes.MEAN, [(2, 64, 64)], (2,), [1, 2], [[[1 << 15, 0, 10]]]))
    tinyrt.load(_graph(opcodes.CONCATENATION, [(2, 3), (2, 1)], (2, 4), [1]))


@pytest.mark.parametrize("what", sorted(BAD_MODELS))
def test_bad_op_is_model_error(what):
    with pytest.raises(tinyrt.ModelError):
        tinyrt.load(BAD_MODELS[what])


def test_bad_op_is_model_error_on_device(interpreter):
    models = [BAD_MODELS[k] for k in sorted(BAD_MODELS)]
    assert load_verdicts(models, interpreter) == ["ModelError"] * len(models)


def test_concatenation_requantizes_mismatched_inputs():
    g = Graph()
    a = g.add_activation("a", (1, 2), 0.1, 0)
    b = g.add_activation("b", (1, 3), 0.05, 7)
    y = concatenation(g, [a, b], -1)
    assert [op.opcode for op in g.ops] == [opcodes.QUANTIZE, opcodes.CONCATENATION]
    t = g.tensors[y]
    assert (t.shape, t.scale, t.zero_point) == ((1, 5), f32(0.1), 0)


def test_mean_refuses_sums_beyond_31_bits():
    g = Graph()
    x = g.add_activation("x", (1, 64, 64, 1), 1.0, 0)
    with pytest.raises(ValueError, match="31-bit"):
        mean(g, x, [1, 2], out_scale=2.0**-22, out_zero_point=0)
