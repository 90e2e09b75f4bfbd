"""ADD, MUL and QUANTIZE (int8 -> int8): tinyrt on every interpreter == the numpy oracle, bit
for bit; a subset against TFLM itself; malformed operators fail at load with ModelError."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import tinyrt
from hypothesis import given, settings
from hypothesis import strategies as st
from tinyrt import opcodes

from converter import writer
from converter.graph import Graph
from converter.layers.elementwise import add, mul, quantize
from host_sim.device import invoke_models
from host_sim.oracle import int8_ref as R
from host_sim.oracle.tflm import TOp, TTensor, build_tflite, run_tflm
from tests.kernel_harness import load_verdicts, tinyrt_local

BATCH = {"cpython": 80, "unix": 80, "wasm": 40, "m0": 40, "m3": 40}
EXAMPLES = {"cpython": 3, "unix": 3, "wasm": 1, "m0": 1, "m3": 1}
ACTS = ["NONE", "RELU", "RELU6", "RELU_N1_TO_1"]


def f32(x: float) -> float:
    return float(np.float32(x))


def log2_scale(draw, lo: float, hi: float) -> float:
    return f32(2.0 ** draw(st.floats(lo, hi)))


@dataclass
class BinaryCase:
    op: str  # "ADD" | "MUL"
    shape1: tuple[int, ...]
    shape2: tuple[int, ...]
    const2: bool  # second operand a constant tensor (e.g. a per-channel offset)
    act: str
    s1: float
    z1: int
    s2: float
    z2: int
    so: float
    zo: int
    seed: int

    def operand2(self) -> np.ndarray:
        return np.random.default_rng(self.seed ^ 0x5EED).integers(-128, 128, self.shape2,
                                                                  dtype=np.int8)

    def model(self) -> bytes:
        return writer.serialize(self.graph())

    def graph(self) -> Graph:
        g = Graph()
        a = g.add_activation("a", self.shape1, self.s1, self.z1)
        if self.const2:
            b = g.add_const("b", self.operand2(), "int8", self.s2, self.z2)
        else:
            b = g.add_activation("b", self.shape2, self.s2, self.z2)
        build = add if self.op == "ADD" else mul
        y = build(g, a, b, self.so, self.zo, self.act)
        g.inputs, g.outputs = ([a] if self.const2 else [a, b]), [y]
        return g

    def inputs(self, k: int) -> list[np.ndarray]:
        rng = np.random.default_rng(self.seed + 7919 * k)
        a = rng.integers(-128, 128, self.shape1, dtype=np.int8)
        if self.const2:
            return [a]
        return [a, rng.integers(-128, 128, self.shape2, dtype=np.int8)]

    def oracle(self, xs: list[np.ndarray]) -> np.ndarray:
        a = xs[0]
        b = self.operand2() if self.const2 else xs[1]
        fn = R.add if self.op == "ADD" else R.mul
        return fn(a, b, x1_scale=self.s1, x1_zp=self.z1, x2_scale=self.s2, x2_zp=self.z2,
                  out_scale=self.so, out_zp=self.zo, activation=self.act)


@st.composite
def broadcast_pair(draw):
    """Same shapes, a per-channel vector, a scalar, or any numpy broadcast (up to 4-D)."""
    rank = draw(st.integers(1, 4))
    out = tuple(draw(st.integers(1, 5)) for _ in range(rank))
    kind = draw(st.sampled_from(["same", "channel", "scalar", "general"]))
    if kind == "same":
        a, b = out, out
    elif kind == "channel":
        a, b = out, draw(st.sampled_from([out[-1:], (1,) * (rank - 1) + out[-1:]]))
    elif kind == "scalar":
        a, b = out, draw(st.sampled_from([(1,), (1,) * rank]))
    else:
        a = tuple(d if draw(st.booleans()) else 1 for d in out)
        b = tuple(d if draw(st.booleans()) else 1 for d in out)
        if draw(st.booleans()):
            b = b[draw(st.integers(0, rank - 1)):] or (1,)
    if draw(st.booleans()):
        a, b = b, a
    return a, b


@st.composite
def binary_cases(draw) -> BinaryCase:
    op = draw(st.sampled_from(["ADD", "MUL"]))
    shape1, shape2 = draw(broadcast_pair())
    s1, s2 = log2_scale(draw, -10, 0), log2_scale(draw, -10, 0)
    if op == "ADD":
        so = f32(max(s1, s2) * 2.0 ** draw(st.floats(-2, 4)))
    else:  # products of up to 255^2 steps mapped into int8, with some saturation
        so = f32(s1 * s2 * 2.0 ** draw(st.floats(-3, 11)))
    zp = st.integers(-128, 127)
    return BinaryCase(op, shape1, shape2, draw(st.booleans()), draw(st.sampled_from(ACTS)),
                      s1, draw(zp), s2, draw(zp), so, draw(zp), draw(st.integers(0, 2**31)))


@dataclass
class QuantizeCase:
    shape: tuple[int, ...]
    xs: float
    xz: int
    os: float
    oz: int
    seed: int

    def model(self) -> bytes:
        return writer.serialize(self.graph())

    def graph(self) -> Graph:
        g = Graph()
        x = g.add_activation("x", self.shape, self.xs, self.xz)
        y = quantize(g, x, self.os, self.oz)
        g.inputs, g.outputs = [x], [y]
        return g

    def inputs(self, k: int) -> list[np.ndarray]:
        rng = np.random.default_rng(self.seed + 7919 * k)
        return [rng.integers(-128, 128, self.shape, dtype=np.int8)]

    def oracle(self, xs: list[np.ndarray]) -> np.ndarray:
        return R.quantize(xs[0], x_scale=self.xs, x_zp=self.xz, out_scale=self.os,
                          out_zp=self.oz)


@st.composite
def quantize_cases(draw) -> QuantizeCase:
    shape = tuple(draw(st.lists(st.integers(1, 8), min_size=1, max_size=3)))
    xs = log2_scale(draw, -10, 0)
    os_ = f32(xs * 2.0 ** draw(st.floats(-8, 8)))
    zp = st.integers(-128, 127)
    return QuantizeCase(shape, xs, draw(zp), os_, draw(zp), draw(st.integers(0, 2**31)))


def check_batch(interpreter: str, cases: list) -> None:
    batch = [(c.model(), [c.inputs(k) for k in range(EXAMPLES[interpreter])]) for c in cases]
    results = invoke_models(batch, interpreter)
    for c, (_, examples), got in zip(cases, batch, results):
        for ex, (y,) in zip(examples, got):
            np.testing.assert_array_equal(y, c.oracle(ex).ravel(), err_msg=repr(c))


@settings(max_examples=5, deadline=None)
@given(data=st.data())
def test_add_mul_match_oracle(interpreter, data):
    n = BATCH[interpreter]
    check_batch(interpreter, data.draw(st.lists(binary_cases(),
                                                min_size=n, max_size=n)))


@settings(max_examples=4, deadline=None)
@given(data=st.data())
def test_quantize_matches_oracle(interpreter, data):
    n = BATCH[interpreter]
    check_batch(interpreter, data.draw(st.lists(quantize_cases(),
                                                min_size=n, max_size=n)))


def _tflm_binary(c: BinaryCase, xs: list[np.ndarray]) -> np.ndarray:
    out = np.broadcast_shapes(c.shape1, c.shape2)
    b = TTensor("b", c.shape2, "int8", c.s2, c.z2, data=c.operand2() if c.const2 else None)
    tensors = [TTensor("a", c.shape1, "int8", c.s1, c.z1), b,
               TTensor("y", out, "int8", c.so, c.zo)]
    op = TOp(c.op, [0, 1], [2], {"fused_activation_function": c.act})
    model = build_tflite(tensors, [op], [0] if c.const2 else [0, 1], [2])
    return run_tflm(model, xs)[0]


@settings(max_examples=100, deadline=None)
@given(c=binary_cases())
def test_add_mul_match_tflm(c):
    xs = c.inputs(0)
    (y,) = tinyrt_local(c.model(), xs)
    np.testing.assert_array_equal(y, _tflm_binary(c, xs).ravel())


@settings(max_examples=50, deadline=None)
@given(c=quantize_cases())
def test_quantize_matches_tflm(c):
    xs = c.inputs(0)
    (y,) = tinyrt_local(c.model(), xs)
    tensors = [TTensor("x", c.shape, "int8", c.xs, c.xz),
               TTensor("y", c.shape, "int8", c.os, c.oz)]
    want = run_tflm(build_tflite(tensors, [TOp("QUANTIZE", [0], [1])], [0], [1]), xs)[0]
    np.testing.assert_array_equal(y, want.ravel())


def test_add_extremes_match_tflm():
    """Zero points at the ends of int8 and unequal scales: the largest (x - zp) << 20."""
    a = np.arange(-128, 128, dtype=np.int8).reshape(1, 16, 16, 1)
    b = a[:, ::-1, ::-1, :].copy()
    for z1, z2, s1, s2, so in [(-128, 127, 1.0, 1e-3, 0.5), (127, -128, 0.3, 0.7, 2e-3)]:
        c = BinaryCase("ADD", a.shape, b.shape, False, "NONE", f32(s1), z1, f32(s2), z2,
                       f32(so), 0, 0)
        (y,) = tinyrt_local(c.model(), [a, b])
        np.testing.assert_array_equal(y, _tflm_binary(c, [a, b]).ravel())
        np.testing.assert_array_equal(y, c.oracle([a, b]).ravel())


def extreme_cases() -> list:
    """Largest intermediates the kernels allow, for the 31-bit WASI build: (x - zp) << 20 at
    |x - zp| = 255 (ADD), 65025 << 14 (MUL), 255 << 21 (QUANTIZE)."""
    full = (16, 16)  # all 256 int8 values, see extreme_inputs
    s = f32(0.02)
    return [
        BinaryCase("ADD", full, full, False, "NONE", f32(1.0), -128, f32(1e-3), 127, f32(0.5),
                   0, 1),
        BinaryCase("ADD", full, full, False, "RELU", s, 127, s, 127, f32(2e-3), -128, 2),
        BinaryCase("MUL", full, full, False, "NONE", s, -128, s, 127, f32(s * s / 2**13.5), 0,
                   3),
        BinaryCase("MUL", full, (1,), True, "RELU6", s, 127, s, -128, f32(s * s * 300), 5, 4),
        QuantizeCase(full, f32(2.0**20.5 * 1e-6), -128, f32(1e-6), 0, 5),
        QuantizeCase(full, s, 127, f32(s * 2**-8), -3, 6),
    ]


def extreme_inputs(c) -> list[np.ndarray]:
    v = np.arange(-128, 128, dtype=np.int8).reshape(16, 16)
    return [v, v[::-1].copy()][: len(c.inputs(0))]


def test_extreme_intermediates_match_oracle(interpreter):
    cases = extreme_cases()
    shifts = [[int(s) for s in t.data[:, 2]] for c in cases for t in c.graph().tensors
              if t.dtype == "int32"]
    assert shifts[2] == [14] and shifts[4] == [21]  # the largest left shifts allowed
    batch = [(c.model(), [extreme_inputs(c)]) for c in cases]
    for c, (_, (ex,)), ((y,),) in zip(cases, batch, invoke_models(batch, interpreter)):
        np.testing.assert_array_equal(y, c.oracle(ex).ravel(), err_msg=repr(c))


# --- malformed operators -------------------------------------------------------------------


def _binary_graph(opcode, rows, shapes=((2, 3), (2, 3), (2, 3)), params=(-128, 127),
                  zps=(0, 0, 0)):
    g = Graph()
    a = g.add_activation("a", shapes[0], 0.1, zps[0])
    b = g.add_activation("b", shapes[1], 0.1, zps[1])
    q = g.add_const("q", np.asarray(rows, np.int32).reshape(-1, 3), "int32")
    y = g.add_activation("y", shapes[2], 0.1, zps[2])
    g.add_op(opcode, [a, b, q], [y], list(params))
    g.inputs, g.outputs = [a, b], [y]
    return writer.serialize(g)


def _quantize_graph(rows, shapes=((4,), (4,))):
    g = Graph()
    x = g.add_activation("x", shapes[0], 0.1, 0)
    q = g.add_const("q", np.asarray(rows, np.int32).reshape(-1, 3), "int32")
    y = g.add_activation("y", shapes[1], 0.1, 0)
    g.add_op(opcodes.QUANTIZE, [x, q], [y], [])
    g.inputs, g.outputs = [x], [y]
    return writer.serialize(g)


HALF = [1 << 15, 0, 0]  # M = 2^30, shift 0: 0.5
ADD_OK = [HALF, HALF, [1 << 15, 0, -3]]
BAD_MODELS = {
    "ADD shift > 0": _binary_graph(opcodes.ADD, [HALF, HALF, [1 << 15, 0, 1]]),
    "ADD two requant rows": _binary_graph(opcodes.ADD, [HALF, HALF]),
    "ADD shapes do not broadcast": _binary_graph(opcodes.ADD, ADD_OK,
                                                 shapes=((2, 3), (3, 2), (2, 3))),
    "ADD output shape": _binary_graph(opcodes.ADD, ADD_OK, shapes=((2, 3), (1, 3), (3, 3))),
    "ADD activation range": _binary_graph(opcodes.ADD, ADD_OK, params=(5, 4)),
    "ADD zero point not int8": _binary_graph(opcodes.ADD, ADD_OK, zps=(0, 300, 0)),
    "ADD multiplier out of range": _binary_graph(opcodes.ADD, [HALF, [1 << 16, 0, 0], HALF]),
    "MUL shift 15": _binary_graph(opcodes.MUL, [[1 << 15, 0, 15]]),
    "MUL missing params": _binary_graph(opcodes.MUL, [HALF], params=()),
    "MUL 5-D broadcast": _binary_graph(opcodes.MUL, [HALF], shapes=((2, 3), (1, 1), (2, 3, 1))),
    "QUANTIZE shift 22": _quantize_graph([[1 << 15, 0, 22]]),
    "QUANTIZE shapes": _quantize_graph([HALF], shapes=((4,), (2, 2))),
}

def test_good_params_load():
    tinyrt.load(_binary_graph(opcodes.ADD, ADD_OK))
    tinyrt.load(_binary_graph(opcodes.MUL, [[1 << 15, 0, 14]]))
    tinyrt.load(_quantize_graph([[1 << 15, 0, 21]]))


@pytest.mark.parametrize("what", sorted(BAD_MODELS))
def test_bad_op_is_model_error(what):
    with pytest.raises(tinyrt.ModelError):
        tinyrt.load(BAD_MODELS[what])


def test_bad_op_is_model_error_on_device(interpreter):
    models = [BAD_MODELS[k] for k in sorted(BAD_MODELS)]
    assert load_verdicts(models, interpreter) == ["ModelError"] * len(models)


def test_converter_refuses_what_tflm_refuses():
    g = Graph()
    a = g.add_activation("a", (4,), 0.5, 0)
    b = g.add_activation("b", (4,), 0.5, 0)
    with pytest.raises(ValueError, match="multiplier"):  # TFLM aborts: output multiplier >= 1
        add(g, a, b, 2.0**-21, 0)
    with pytest.raises(ValueError, match="shift"):  # products would leave 31-bit ints
        mul(g, a, b, 2.0**-20, 0)
    with pytest.raises(ValueError, match="broadcast"):
        add(g, a, g.add_activation("c", (3,), 0.5, 0), 0.5, 0)
