"""AVERAGE_POOL_2D and MAX_POOL_2D: tinyrt on every interpreter == the numpy oracle, bit for
bit; a subset against TFLM itself; malformed pool operators fail at load with ModelError."""

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
from converter.layers.pool import average_pool2d, max_pool2d
from host_sim.device import invoke_models
from host_sim.oracle import int8_ref as R
from host_sim.oracle.tflm import TOp, TTensor, build_tflite, run_tflm
from tests.kernel_harness import load_verdicts, tinyrt_local

# Cases per interpreter run and examples per case; wasm is ~10x slower than unix.
BATCH = {"cpython": 80, "unix": 80, "wasm": 40, "m0": 40, "m3": 40}
EXAMPLES = {"cpython": 3, "unix": 3, "wasm": 1, "m0": 1, "m3": 1}
ACTS = ["NONE", "RELU", "RELU6", "RELU_N1_TO_1"]


@dataclass
class PoolCase:
    op: str  # "AVERAGE_POOL_2D" | "MAX_POOL_2D"
    shape: tuple[int, int, int, int]
    filt: tuple[int, int]
    strides: tuple[int, int]
    padding: str
    act: str
    scale: float
    zp: int
    seed: int

    def model(self) -> bytes:
        g = Graph()
        x = g.add_activation("x", self.shape, self.scale, self.zp)
        build = average_pool2d if self.op == "AVERAGE_POOL_2D" else max_pool2d
        y = build(g, x, self.filt, self.strides, self.padding, self.act)
        g.inputs, g.outputs = [x], [y]
        return writer.serialize(g)

    def inputs(self, k: int) -> list[np.ndarray]:
        rng = np.random.default_rng(self.seed + 7919 * k)
        return [rng.integers(-128, 128, self.shape, dtype=np.int8)]

    def oracle(self, x: np.ndarray) -> np.ndarray:
        fn = R.average_pool2d if self.op == "AVERAGE_POOL_2D" else R.max_pool2d
        return fn(x, self.filt, self.strides, self.padding, activation=self.act,
                  scale=self.scale, zero_point=self.zp)


@st.composite
def pool_cases(draw) -> PoolCase:
    hw = st.integers(1, 9)
    h, w = draw(hw), draw(hw)
    fh, fw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    padding = draw(st.sampled_from(["SAME", "VALID"]))
    if padding == "VALID":
        h, w = max(h, fh), max(w, fw)
    shape = (draw(st.integers(1, 2)), h, w, draw(st.integers(1, 5)))
    return PoolCase(
        op=draw(st.sampled_from(["AVERAGE_POOL_2D", "MAX_POOL_2D"])), shape=shape,
        filt=(fh, fw), strides=(draw(st.integers(1, 3)), draw(st.integers(1, 3))),
        padding=padding, act=draw(st.sampled_from(ACTS)),
        scale=float(np.float32(2.0 ** draw(st.floats(-10, 0)))),
        zp=draw(st.integers(-128, 127)), seed=draw(st.integers(0, 2**31)))


@settings(max_examples=5, deadline=None)
@given(data=st.data())
def test_pool_matches_oracle(interpreter, data):
    cases = data.draw(st.lists(pool_cases(),
                               min_size=BATCH[interpreter], max_size=BATCH[interpreter]))
    batch = [(c.model(), [c.inputs(k) for k in range(EXAMPLES[interpreter])]) for c in cases]
    results = invoke_models(batch, interpreter)
    for c, (_, examples), got in zip(cases, batch, results):
        for ex, (y,) in zip(examples, got):
            want = c.oracle(ex[0])
            np.testing.assert_array_equal(y, want.ravel(), err_msg=repr(c))


def tflm_pool(c: PoolCase, x: np.ndarray) -> np.ndarray:
    out = c.oracle(x).shape
    tensors = [TTensor("x", c.shape, "int8", c.scale, c.zp),
               TTensor("y", out, "int8", c.scale, c.zp)]
    opts = {"padding": c.padding, "stride_h": c.strides[0], "stride_w": c.strides[1],
            "filter_height": c.filt[0], "filter_width": c.filt[1],
            "fused_activation_function": c.act}
    return run_tflm(build_tflite(tensors, [TOp(c.op, [0], [1], opts)], [0], [1]), [x])[0]


@settings(max_examples=100, deadline=None)
@given(c=pool_cases())
def test_pool_matches_tflm(c):
    x = c.inputs(0)[0]
    (y,) = tinyrt_local(c.model(), [x])
    np.testing.assert_array_equal(y, tflm_pool(c, x).ravel())


def test_pool_rounding_half_away_from_zero():
    """Window sums at +-k/2 exercise TFLM's (acc +- count/2) / count rounding."""
    x = np.array([1, 2, -1, -2, 3, 0, -3, 0, 1, 0, -1, 0, 2, 3, -2, -3], np.int8)
    x = x.reshape(1, 4, 4, 1)
    x = np.tile(x, (1, 1, 1, 2))
    c = PoolCase("AVERAGE_POOL_2D", x.shape, (2, 2), (1, 1), "SAME", "NONE", 0.1, 0, 0)
    (y,) = tinyrt_local(c.model(), [x])
    np.testing.assert_array_equal(y, c.oracle(x).ravel())
    np.testing.assert_array_equal(y, tflm_pool(c, x).ravel())


def _pool_graph(params, out_shape=(1, 2, 2, 3), out_q=(0.1, 0), opcode=opcodes.AVERAGE_POOL_2D):
    g = Graph()
    x = g.add_activation("x", (1, 4, 4, 3), 0.1, 0)
    y = g.add_activation("y", out_shape, *out_q)
    g.add_op(opcode, [x], [y], params)
    g.inputs, g.outputs = [x], [y]
    return writer.serialize(g)


GOOD = [2, 2, 2, 2, 0, 0, -128, 127]
BAD_MODELS = {
    "stride 0": _pool_graph([2, 2, 0, 2, 0, 0, -128, 127]),
    "filter 0": _pool_graph([0, 2, 2, 2, 0, 0, -128, 127]),
    "padding >= filter": _pool_graph([2, 2, 2, 2, 2, 0, -128, 127]),
    "negative padding": _pool_graph([2, 2, 2, 2, -1, 0, -128, 127]),
    "window past the input": _pool_graph(GOOD, out_shape=(1, 3, 2, 3)),
    "channels differ": _pool_graph(GOOD, out_shape=(1, 2, 2, 4)),
    "zero point differs": _pool_graph(GOOD, out_q=(0.1, 3)),
    "scale differs": _pool_graph(GOOD, out_q=(0.2, 0), opcode=opcodes.MAX_POOL_2D),
    "too few params": _pool_graph(GOOD[:6]),
    "activation range": _pool_graph([2, 2, 2, 2, 0, 0, 10, -10]),
}

def test_good_params_load():
    tinyrt.load(_pool_graph(GOOD))
    tinyrt.load(_pool_graph(GOOD, opcode=opcodes.MAX_POOL_2D))


@pytest.mark.parametrize("what", sorted(BAD_MODELS))
def test_bad_pool_is_model_error(what):
    with pytest.raises(tinyrt.ModelError):
        tinyrt.load(BAD_MODELS[what])


def test_bad_pool_is_model_error_on_device(interpreter):
    models = [BAD_MODELS[k] for k in sorted(BAD_MODELS)]
    assert load_verdicts(models, interpreter) == ["ModelError"] * len(models)


@st.composite
def asm_pool_cases(draw):
    """Average pools the asm twin takes (C % 4 == 0): padded windows, batches, windows up to
    its 257-tap limit, extreme inputs."""
    c = 4 * draw(st.integers(1, 4))
    fh, fw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    if draw(st.integers(0, 4)) == 0:  # a global pool over whole rows (kws), up to 257 taps
        fh, fw = draw(st.sampled_from([(25, 5), (16, 16), (257, 1), (1, 257), (7, 3)]))
        sh, sw = 1, 1
    h, w = fh + draw(st.integers(0, 4)), fw + draw(st.integers(0, 4))
    ph, pw = draw(st.integers(0, fh - 1)), draw(st.integers(0, fw - 1))
    oh = (h + ph - fh) // sh + 1  # the last window still starts inside the input
    ow = (w + pw - fw) // sw + 1
    n = draw(st.integers(1, 2))
    fill = draw(st.sampled_from(["random", "-128", "127"]))
    rnd = np.random.default_rng(draw(st.integers(0, 2**31)))
    if fill == "random":
        x = rnd.integers(-128, 128, n * h * w * c, dtype=np.int8)
    else:
        x = np.full(n * h * w * c, int(fill), np.int8)
    lo = draw(st.integers(-128, 127))
    act = (lo, draw(st.integers(lo, 127))) if draw(st.booleans()) else (-128, 127)
    return x, (n, h, w, c, oh, ow, fh, fw, sh, sw, ph, pw) + act


@pytest.mark.parametrize("cpu", ["m0", "m3"])
@settings(max_examples=120, deadline=None)
@given(case=asm_pool_cases())
def test_average_pool_asm_bit_exact(cpu, case):
    """kernels/pool_asm.py (armv6m machine code from mpy-cross, in Unicorn as a Cortex-M0 and
    an M3) == kernels.pool.average_pool, bit for bit."""
    pytest.importorskip("unicorn")
    from array import array

    from host_sim import cortexm
    from tinyrt.kernels.pool import average_pool

    x, geom = case
    xa = array("b", x.tolist())
    n, h, w, c, oh, ow = geom[:6]
    want = array("b", [0] * (n * oh * ow * c))
    average_pool(xa, want, *geom)
    got = array("b", [0] * len(want))
    with cortexm.emulated_asm(cpu, "armv6m"):
        from tinyrt.kernels import pool_asm
        k = pool_asm.prepare(xa, got, *geom)
        assert k is not None
        k.average_pool(*([None] * 16))
    assert list(got) == list(want)


def test_average_pool_asm_declines_what_it_cannot_do():
    """Channels not a multiple of 4 and windows past 257 taps stay on the viper twin."""
    pytest.importorskip("unicorn")
    from array import array

    from host_sim import cortexm

    with cortexm.emulated_asm("m0"):
        from tinyrt.kernels import pool_asm
        x, y = array("b", [0] * 1024), array("b", [0] * 64)
        assert pool_asm.prepare(x, y, 1, 4, 4, 3, 1, 1, 4, 4, 1, 1, 0, 0, -128, 127) is None
        assert pool_asm.prepare(x, y, 1, 16, 17, 4, 1, 1, 16, 17, 1, 1, 0, 0, -128,
                                127) is None
        assert pool_asm.prepare(x, y, 1, 16, 16, 4, 1, 1, 16, 16, 1, 1, 0, 0, -128,
                                127) is not None


def test_average_pool_asm_magic_division_is_exact():
    """pool_asm.magic(d): (n * m) >> s == n // d with n * m < 2^32 for every numerator a
    window of d taps gives (0 <= n < 129 d), checked exhaustively for the counts pools have."""
    pytest.importorskip("unicorn")
    from host_sim import cortexm

    with cortexm.emulated_asm("m0"):  # the module imports micropython's asm decorator
        from tinyrt.kernels import pool_asm

        for d in list(range(1, 65)) + [100, 125, 196, 255, 256, 257]:
            m, s = pool_asm.magic(d)
            assert m > 0, d
            n = np.arange(129 * d, dtype=np.uint64)
            assert int((n * np.uint64(m)).max()) < 1 << 32
            np.testing.assert_array_equal((n * np.uint64(m)) >> np.uint64(s),
                                          n // np.uint64(d))
