"""CONV_2D and DEPTHWISE_CONV_2D, int8: tinyrt against the numpy oracle on every interpreter,
and against TensorFlow Lite Micro.

- test_conv_matches_oracle[interpreter]: hypothesis draws batches of cases (half CONV_2D, half
  DEPTHWISE_CONV_2D); each batch runs in one interpreter process (invoke() under heap_lock)
  and must equal host_sim.oracle.int8_ref bit for bit.
- test_conv_matches_tflm[op]: the same kind of cases written as .tflite and run through
  tflite-micro; tinyrt (CPython) must equal TFLM and the oracle. Ops checked against TFLM:
  TFLM_OPS (CONV_2D and DEPTHWISE_CONV_2D).
- test_bad_params_raise_model_error[interpreter]: malformed ops are refused at load.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st
from tinyrt import opcodes

from converter.graph import Graph
from converter.layers.conv import conv2d, depthwise_conv2d, out_size_and_pad
from converter.writer import serialize
from host_sim.device import invoke_models, invoke_models_with_kernels
from host_sim.interpreters import run
from host_sim.oracle import int8_ref as R
from tests.kernel_harness import fast_kernel

ACTS = ["NONE", "RELU", "RELU6", "RELU_N1_TO_1"]
TFLM_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D")

# Per interpreter: (hypothesis examples = interpreter runs, cases per run). A run of 20 cases
# takes ~0.05 s on cpython/unix and ~0.1 s on wasm (the 32-bit build, ~2.5x slower than the
# unix port on these kernels), so wasm gets the full ranges too, in fewer runs.
RUNS = {"cpython": (15, 20), "unix": (15, 20), "wasm": (10, 16), "m0": (10, 16),
        "m3": (6, 16)}
NO_SHRINK = (Phase.explicit, Phase.reuse, Phase.generate)


@dataclass
class Case:
    depthwise: bool
    x_shape: tuple[int, int, int, int]
    w: np.ndarray  # (OC, KH, KW, C) or (1, KH, KW, C * dm)
    w_scale: list[float]  # one per output channel, or one
    bias: np.ndarray | None
    x_scale: float
    x_zp: int
    out_scale: float
    out_zp: int
    stride: tuple[int, int]
    dilation: tuple[int, int]
    padding: str
    depth_multiplier: int
    activation: str
    xs: list[np.ndarray]  # examples, int8 (N, H, W, C)

    @property
    def op(self) -> str:
        return "DEPTHWISE_CONV_2D" if self.depthwise else "CONV_2D"

    @property
    def out_c(self) -> int:
        return self.w.shape[0 if not self.depthwise else 3]

    def describe(self) -> str:
        return (f"{self.op} x{self.x_shape} w{self.w.shape} dm={self.depth_multiplier} "
                f"stride={self.stride} dilation={self.dilation} {self.padding} "
                f"{self.activation} bias={self.bias is not None} scales={len(self.w_scale)} "
                f"x_zp={self.x_zp} out_zp={self.out_zp}")

    def oracle(self, x: np.ndarray) -> np.ndarray:
        kw = {"x_scale": self.x_scale, "x_zp": self.x_zp, "w_scale": self.w_scale,
              "out_scale": self.out_scale, "out_zp": self.out_zp, "stride": self.stride,
              "dilation": self.dilation, "padding": self.padding,
              "activation": self.activation}
        if self.depthwise:
            return R.depthwise_conv2d(x, self.w, self.bias,
                                      depth_multiplier=self.depth_multiplier, **kw)
        return R.conv2d(x, self.w, self.bias, **kw)

    def model(self) -> bytes:
        g = Graph()
        x = g.add_activation("x", self.x_shape, self.x_scale, self.x_zp)
        g.inputs = [x]
        common = {"stride": self.stride, "dilation": self.dilation, "padding": self.padding,
                  "activation": self.activation}
        if self.depthwise:
            y = depthwise_conv2d(g, x, self.w, self.w_scale, self.bias, self.out_scale,
                                 self.out_zp, self.depth_multiplier, **common)
        else:
            y = conv2d(g, x, self.w, self.w_scale, self.bias, self.out_scale, self.out_zp,
                       **common)
        g.outputs = [y]
        return serialize(g)


def log_uniform(lo: float, hi: float):
    return st.floats(np.log(lo), np.log(hi)).map(lambda v: float(np.float32(np.exp(v))))


@st.composite
def conv_cases(draw, depthwise: bool, with_bias: bool | None = None) -> Case:
    k = st.one_of(st.integers(1, 3), st.integers(1, 5))  # mostly 1-3, up to 5
    n = draw(st.integers(1, 2))
    h, w = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    c = draw(st.integers(1, 8))
    kh, kw = draw(k), draw(k)
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = draw(st.sampled_from(["SAME", "VALID"]))
    if padding == "VALID":  # the input must hold one dilated filter
        h = max(h, (kh - 1) * dilation[0] + 1)
        w = max(w, (kw - 1) * dilation[1] + 1)
    dm = draw(st.integers(1, 3)) if depthwise else 1
    out_c = c * dm if depthwise else draw(st.integers(1, 8))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    wq = rng.integers(-127, 128, (1, kh, kw, out_c) if depthwise else (out_c, kh, kw, c))
    x_scale = draw(log_uniform(1e-3, 1.0))
    ws = draw(log_uniform(1e-4, 0.1))
    per_channel = draw(st.booleans())
    w_scale = ([float(np.float32(ws * f)) for f in rng.uniform(0.2, 5.0, out_c)]
               if per_channel else [ws])
    # Output scale so that outputs spread over int8 (factor ~1), with some layers whose
    # effective scale exceeds 1/2 (requantization with a left shift, saturated outputs).
    hot = draw(st.integers(0, 4)) == 0
    factor = draw(log_uniform(0.002, 0.3) if hot else log_uniform(0.3, 10.0))
    k_sum = kh * kw * (1 if depthwise else c)
    out_scale = float(np.float32(x_scale * float(np.mean(w_scale)) * np.sqrt(k_sum) * 64
                                 * factor))
    if with_bias is None:
        with_bias = draw(st.booleans())
    bias = rng.integers(-(1 << 16), 1 << 16, out_c).astype(np.int32) if with_bias else None
    xs = [rng.integers(-128, 128, (n, h, w, c)).astype(np.int8)]
    if draw(st.booleans()):  # a second example of extreme inputs only
        xs.append(rng.choice(np.array([-128, 127], np.int8), (n, h, w, c)))
    return Case(depthwise, (n, h, w, c), wq.astype(np.int8), w_scale, bias, x_scale,
                draw(st.integers(-128, 127)), out_scale, draw(st.integers(-128, 127)), stride,
                dilation, padding, dm, draw(st.sampled_from(ACTS)), xs)


def case_batches(size: int):
    """`size` cases, alternately CONV_2D and DEPTHWISE_CONV_2D."""
    return st.tuples(*[conv_cases(i % 2 == 1) for i in range(size)])


def _check(got: np.ndarray, want: np.ndarray, what: str) -> None:
    got = np.asarray(got).ravel()
    want = np.asarray(want).ravel()
    assert got.shape == want.shape, f"{what}: {got.shape} values, expected {want.shape}"
    bad = np.flatnonzero(got != want)
    assert bad.size == 0, (f"{what}: {bad.size} of {want.size} differ, first at flat index "
                           f"{bad[0]}: got {got[bad[0]]}, expected {want[bad[0]]}")


def test_conv_matches_oracle(interpreter):
    n_runs, per_run = RUNS[interpreter]

    @settings(max_examples=n_runs, deadline=None, phases=NO_SHRINK)
    @given(cases=case_batches(per_run))
    def check(cases):
        outs, kernels = invoke_models_with_kernels(
            [(c.model(), [[x] for x in c.xs]) for c in cases], interpreter)
        assert kernels == [[fast_kernel(interpreter)]] * len(cases)  # the twin really ran
        for c, rows in zip(cases, outs, strict=True):
            for x, row in zip(c.xs, rows, strict=True):
                _check(row[0], c.oracle(x), f"{interpreter} {c.describe()}")

    check()


@pytest.mark.parametrize("op", TFLM_OPS)
def test_conv_matches_tflm(op):
    tflm = pytest.importorskip("host_sim.oracle.tflm")
    depthwise = op == "DEPTHWISE_CONV_2D"

    # TFLM's DEPTHWISE_CONV_2D crashes without a bias (test_tflm_oracle): always give one.
    @settings(max_examples=5, deadline=None, phases=NO_SHRINK)
    @given(cases=st.tuples(*[conv_cases(depthwise, with_bias=True if depthwise else None)
                             for _ in range(10)]))
    def check(cases):
        outs = invoke_models([(c.model(), [[x] for x in c.xs]) for c in cases], "cpython")
        for c, rows in zip(cases, outs, strict=True):
            model = _tflite(tflm, c)
            for x, row in zip(c.xs, rows, strict=True):
                ref = tflm.run_tflm(model, [x])[0]
                _check(row[0], ref, f"tinyrt vs TFLM {c.describe()}")
                _check(c.oracle(x), ref, f"oracle vs TFLM {c.describe()}")

    check()


def _tflite(tflm, c: Case) -> bytes:
    T = tflm.TTensor
    qdim = 3 if c.depthwise else 0
    tensors = [T("x", c.x_shape, "int8", c.x_scale, c.x_zp),
               T("w", c.w.shape, "int8", c.w_scale, 0, qdim, c.w)]
    ins = [0, 1, -1]
    if c.bias is not None:
        b_scale = [float(np.float32(c.x_scale) * np.float32(s)) for s in c.w_scale]
        tensors.append(T("b", (c.out_c,), "int32", b_scale, 0, 0, c.bias))
        ins[2] = 2
    y_shape = c.oracle(c.xs[0]).shape
    tensors.append(T("y", y_shape, "int8", c.out_scale, c.out_zp))
    opts = {"padding": c.padding, "stride_h": c.stride[0], "stride_w": c.stride[1],
            "dilation_h_factor": c.dilation[0], "dilation_w_factor": c.dilation[1],
            "fused_activation_function": c.activation}
    if c.depthwise:
        opts["depth_multiplier"] = c.depth_multiplier
    out = len(tensors) - 1
    return tflm.build_tflite(tensors, [tflm.TOp(c.op, ins, [out], opts)], [0], [out])


# --- malformed ops ---------------------------------------------------------------------------

def _raw_model(opcode: int, x_shape, w_shape, y_shape, params, bias_n=None) -> bytes:
    """One op built by hand (no builder checks), requantization rows for y's channels."""
    g = Graph()
    x = g.add_activation("x", x_shape, 0.05, 0)
    w = g.add_const("w", np.ones(w_shape, np.int8), "int8", 0.01)
    b = g.add_const("b", np.zeros(bias_n, np.int32), "int32") if bias_n else -1
    q = g.add_const("q", np.array([[32768, 0, -5]] * y_shape[-1], np.int32), "int32")
    y = g.add_activation("y", y_shape, 0.1, 0)
    g.add_op(opcode, [x, w, b, q], [y], params)
    g.inputs, g.outputs = [x], [y]
    return serialize(g)


C, D = opcodes.CONV_2D, opcodes.DEPTHWISE_CONV_2D
GEO = [1, 1, 1, 1, 1, 1, 4, 4]  # strides, dilations, pads, out size of a 3x3 SAME layer
BAD = {
    "conv filter channels": (C, (1, 4, 4, 3), (2, 3, 3, 2), (1, 4, 4, 2), GEO + [-128, 127]),
    "conv param count": (C, (1, 4, 4, 3), (2, 3, 3, 3), (1, 4, 4, 2), GEO),
    "conv zero stride": (C, (1, 4, 4, 3), (2, 3, 3, 3), (1, 4, 4, 2),
                         [0] + GEO[1:] + [-128, 127]),
    "conv output size": (C, (1, 4, 4, 3), (2, 3, 3, 3), (1, 3, 4, 2), GEO + [-128, 127]),
    "conv activation range": (C, (1, 4, 4, 3), (2, 3, 3, 3), (1, 4, 4, 2), GEO + [5, -5]),
    "conv bias length": (C, (1, 4, 4, 3), (2, 3, 3, 3), (1, 4, 4, 2), GEO + [-128, 127], 3),
    "dw filter channels": (D, (1, 4, 4, 3), (1, 3, 3, 4), (1, 4, 4, 4), GEO + [1, -128, 127]),
    "dw depth multiplier": (D, (1, 4, 4, 2), (1, 3, 3, 4), (1, 4, 4, 4), GEO + [3, -128, 127]),
    "dw filter rank": (D, (1, 4, 4, 2), (2, 3, 3, 2), (1, 4, 4, 2), GEO + [1, -128, 127]),
}

LOAD_ALL = r"""
import tinyrt
for i in range(%d):
    try:
        tinyrt.load("bad%%d.trt" %% i)
        print("loaded")
    except tinyrt.ModelError as e:
        print("ModelError", e)
"""


def test_bad_params_raise_model_error(interpreter):
    files = {f"bad{i}.trt": _raw_model(*args) for i, args in enumerate(BAD.values())}
    lines = run(LOAD_ALL % len(BAD), interpreter, files=files).stdout.splitlines()
    assert len(lines) == len(BAD)
    for name, line in zip(BAD, lines, strict=True):
        assert line.startswith("ModelError "), f"{name}: {line}"
    assert "does not match input" in lines[0]


def test_good_raw_model_loads():
    """The malformed models above differ from this one in one field only."""
    import tinyrt

    tinyrt.load(_raw_model(C, (1, 4, 4, 3), (2, 3, 3, 3), (1, 4, 4, 2), GEO + [-128, 127], 2))
    tinyrt.load(_raw_model(D, (1, 4, 4, 2), (1, 3, 3, 4), (1, 4, 4, 4), GEO + [2, -128, 127]))


# --- converter -------------------------------------------------------------------------------

def test_out_size_and_pad_match_tflite():
    for padding in ("SAME", "VALID"):
        for size in range(1, 12):
            for k in range(1, 6):
                for s in range(1, 4):
                    for d in range(1, 3):
                        out = R.compute_out_size(padding, size, k, s, d)
                        if out < 1:
                            continue
                        assert out_size_and_pad(padding, size, k, s, d) == (
                            out, R.compute_padding(s, d, size, k, out))


def test_builders_reject_bad_arguments():
    g = Graph()
    x = g.add_activation("x", (1, 4, 4, 3), 0.05, 0)
    w = np.ones((2, 3, 3, 2), np.int8)
    with pytest.raises(ValueError, match="does not fit"):
        conv2d(g, x, w, 0.01, None, 0.1, 0)
    with pytest.raises(ValueError, match="VALID output"):
        conv2d(g, x, np.ones((2, 5, 5, 3), np.int8), 0.01, None, 0.1, 0, padding="VALID")
    with pytest.raises(ValueError, match="weight scales"):
        conv2d(g, x, np.ones((2, 3, 3, 3), np.int8), [0.1] * 3, None, 0.1, 0)
    with pytest.raises(ValueError, match="depth multiplier"):
        depthwise_conv2d(g, x, np.ones((1, 3, 3, 4), np.int8), 0.01, None, 0.1, 0, 1)
    # more products than 31-bit sums hold (a bias near 2^30 is not refused: see
    # tests/test_wide_bias.py)
    x_wide = g.add_activation("x_wide", (1, 4, 4, 4096), 0.05, 0)
    with pytest.raises(ValueError, match="36864 products per output"):
        conv2d(g, x_wide, np.full((1, 3, 3, 4096), 127, np.int8), 3e-7, None, 0.1, -100)
