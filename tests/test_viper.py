"""Viper twins (tinyrt.kernels.*_viper, tinyrt.requant_viper) == their reference kernels, bit
for bit, on the unix port (real viper) and on CPython (the twins run as Python through the
micropython shim, pointers emulated).

Each case is a one-op model. One interpreter run takes a batch of cases: it loads each model
twice, with tinyrt.fast enabled (the twin) and disabled (the reference), feeds both the same
inputs, invokes both under heap_lock and compares the outputs there; the host gets one line per
case (examples compared, first differing output, kernels chosen). The strategies aim at the
twins' own paths: zero points at the ends and x at its zero point (the ReLU-sparse lists),
windows in the padding (the gathered window's padding), all -128 / all 127 inputs and weights,
weights -128, lengths around the unroll widths (1..9, 255..257, 511..513) and the scratch
limits (windows of 256 and 512 taps), 3x3 depthwise interiors and borders, depth multipliers,
dilations, strides, batches, requantization with left shifts (saturating) and large biases.
Counts of examples compared are printed (pytest -s).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st

from converter import layers
from converter.graph import Graph
from converter.writer import serialize
from host_sim.interpreters import run
from tests.test_elementwise import binary_cases
from tests.test_pool import pool_cases

TWIN_INTERPRETERS = ("cpython", "unix")  # (conftest gives `interpreter` all three; not here)
ACTS = ["NONE", "RELU", "RELU6", "RELU_N1_TO_1"]
NO_SHRINK = (Phase.explicit, Phase.reuse, Phase.generate)
# hypothesis examples (= interpreter runs) and cases per run, per interpreter: the shim runs
# the twins as Python with struct-unpacked pointer loads, ~50x slower than the unix port
RUNS = {"cpython": (6, 15), "unix": (20, 40)}

# Loads each model with and without the twins; prints one JSON line per case:
# [examples compared, index of the first differing example or -1, twin impls, reference impls]
SCRIPT = r"""
import json, micropython, tinyrt, tinyrt.fast
f = open("cases.txt")
while True:
    head = f.readline()
    if not head:
        break
    name, n = head.split()
    tinyrt.fast.enable(True)
    a = tinyrt.load(name)
    tinyrt.fast.enable(False)
    b = tinyrt.load(name)
    tinyrt.fast.enable(True)
    bad = -1
    for e in range(int(n)):
        ex = json.loads(f.readline())
        for i in range(len(ex)):
            a.input(i).set(ex[i])
            b.input(i).set(ex[i])
        ex = None
        micropython.heap_lock()
        try:
            a.invoke()
            b.invoke()
        finally:
            micropython.heap_unlock()
        for j in range(a.n_outputs):
            if a.output(j).tolist() != b.output(j).tolist() and bad < 0:
                bad = e
    ia = []
    ib = []
    for k in a.kernels:
        ia.append(getattr(k, "impl", "reference"))
    for k in b.kernels:
        ib.append(getattr(k, "impl", "reference"))
    print(json.dumps([int(n), bad, ia, ib]))
    a = None
    b = None
f.close()
"""


@dataclass
class Case:
    what: str
    model: bytes
    examples: list[list[np.ndarray]]


def run_twins(cases: list[Case], interpreter: str) -> int:
    """Run a batch; assert twin == reference on every example; return examples compared."""
    lines = []
    files = {}
    for i, c in enumerate(cases):
        files[f"m{i}.trt"] = c.model
        lines.append(f"m{i}.trt {len(c.examples)}")
        lines += [json.dumps([np.asarray(a).ravel().astype(int).tolist() for a in ex])
                  for ex in c.examples]
    files["cases.txt"] = "\n".join(lines) + "\n"
    out = run(SCRIPT, interpreter, files=files).stdout.strip().splitlines()
    assert len(out) == len(cases), out[-3:]
    compared = 0
    for c, line in zip(cases, out, strict=True):
        n, bad, twin, ref = json.loads(line)
        assert bad < 0, f"{interpreter}: twin != reference on example {bad} of {c.what}"
        assert "viper" in twin, f"{interpreter}: no twin chosen for {c.what}: {twin}"
        assert set(ref) == {"reference"}, ref
        compared += n
    return compared


# --- inputs -----------------------------------------------------------------------------------

def int8_values(draw, rng: np.random.Generator, shape, zp: int) -> np.ndarray:
    """Random, sparse at the zero point (ReLU outputs), or all at one extreme."""
    kind = draw(st.sampled_from(["random", "sparse", "sparse", "min", "max", "ends"]))
    if kind == "min":
        return np.full(shape, -128, np.int8)
    if kind == "max":
        return np.full(shape, 127, np.int8)
    if kind == "ends":
        return rng.choice(np.array([-128, 127], np.int8), shape)
    x = rng.integers(-128, 128, shape).astype(np.int8)
    if kind == "sparse":  # a fraction at the zero point, around the 7/8 list threshold too
        p = draw(st.sampled_from([0.1, 0.5, 0.9, 0.125, 0.13]))
        x = np.where(rng.random(shape) < p, np.int8(zp), x).astype(np.int8)
    return x


def weights(draw, rng: np.random.Generator, shape) -> np.ndarray:
    kind = draw(st.sampled_from(["random", "random", "ends", "min"]))
    if kind == "min":
        return np.full(shape, -128, np.int8)
    if kind == "ends":
        return rng.choice(np.array([-128, 127], np.int8), shape)
    return rng.integers(-128, 128, shape).astype(np.int8)


def zero_point(draw) -> int:
    return draw(st.one_of(st.sampled_from([-128, -128, 127, 0]), st.integers(-128, 127)))


def log_uniform(draw, lo: float, hi: float) -> float:
    return float(np.float32(np.exp(draw(st.floats(np.log(lo), np.log(hi))))))


def out_scale(draw, x_scale: float, w_scale: float, k: int) -> float:
    """Outputs spread over int8, some layers with an effective scale above 1/2 (left shift)."""
    hot = draw(st.integers(0, 4)) == 0
    factor = log_uniform(draw, 0.002, 0.3) if hot else log_uniform(draw, 0.3, 10.0)
    return float(np.float32(x_scale * w_scale * np.sqrt(k) * 64 * factor))


def bias_for(draw, rng: np.random.Generator, n: int) -> np.ndarray | None:
    kind = draw(st.sampled_from(["none", "small", "large"]))
    if kind == "none":
        return None
    lim = 1 << (8 if kind == "small" else 20)
    return rng.integers(-lim, lim, n).astype(np.int32)


# --- cases ------------------------------------------------------------------------------------

@st.composite
def conv_case(draw, depthwise: bool) -> Case:
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    n = draw(st.integers(1, 2))
    if depthwise:
        kh, kw = draw(st.sampled_from([(3, 3), (3, 3), (1, 1), (2, 3), (5, 4), (10, 8)]))
        c = draw(st.sampled_from([1, 2, 3, 4, 5, 8, 9]))
        dm = draw(st.integers(1, 3))
        out_c = c * dm
    else:
        kh, kw = draw(st.sampled_from([(1, 1), (1, 1), (3, 3), (2, 1), (10, 4), (5, 5)]))
        # C around the unroll widths; windows of <= 256 (lists), <= 512 (gather) and more
        c = draw(st.sampled_from([1, 2, 3, 4, 7, 8, 9, 16, 17, 28, 29, 57, 64, 65]))
        out_c = draw(st.integers(1, 9))
        dm = 1
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = draw(st.sampled_from(["SAME", "SAME", "VALID"]))
    h, w = draw(st.integers(1, 8)), draw(st.integers(1, 7))
    if padding == "VALID":
        h = max(h, (kh - 1) * dilation[0] + 1)
        w = max(w, (kw - 1) * dilation[1] + 1)
    wq = weights(draw, rng, (1, kh, kw, out_c) if depthwise else (out_c, kh, kw, c))
    x_scale = log_uniform(draw, 1e-3, 1.0)
    ws = log_uniform(draw, 1e-4, 0.1)
    w_scale = ([float(np.float32(ws * f)) for f in rng.uniform(0.2, 5.0, out_c)]
               if draw(st.booleans()) else [ws])
    k = kh * kw * (1 if depthwise else c)
    y_scale = out_scale(draw, x_scale, float(np.mean(w_scale)), k)
    bias = bias_for(draw, rng, out_c)
    x_zp, y_zp = zero_point(draw), zero_point(draw)
    g = Graph()
    x = g.add_activation("x", (n, h, w, c), x_scale, x_zp)
    g.inputs = [x]
    common = {"stride": stride, "dilation": dilation, "padding": padding,
              "activation": draw(st.sampled_from(ACTS))}
    try:
        if depthwise:
            y = layers.depthwise_conv2d(g, x, wq, w_scale, bias, y_scale, y_zp, dm, **common)
        else:
            y = layers.conv2d(g, x, wq, w_scale, bias, y_scale, y_zp, **common)
    except ValueError:  # e.g. the accumulator bound
        assume(False)
    g.outputs = [y]
    xs = [[int8_values(draw, rng, (n, h, w, c), x_zp)] for _ in range(draw(st.integers(1, 3)))]
    what = (f"{'DEPTHWISE_CONV_2D' if depthwise else 'CONV_2D'} x{(n, h, w, c)} "
            f"w{wq.shape} dm={dm} stride={stride} dilation={dilation} {padding} "
            f"x_zp={x_zp} y_zp={y_zp} seed={seed}")
    return Case(what, serialize(g), xs)


@st.composite
def fc_case(draw) -> Case:
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    n_in = draw(st.one_of(st.integers(1, 17),
                          st.sampled_from([63, 64, 65, 255, 256, 257, 511, 512, 513, 700])))
    n_out = draw(st.sampled_from([1, 2, 3, 4, 7, 12]))
    batches = draw(st.integers(1, 3))
    wq = weights(draw, rng, (n_out, n_in))
    x_scale = log_uniform(draw, 2e-3, 0.5)
    ws = log_uniform(draw, 5e-4, 0.02)
    w_scale = (rng.uniform(0.5, 2, n_out) * ws).astype(np.float32) if draw(st.booleans()) \
        else np.array([ws], np.float32)
    y_scale = out_scale(draw, x_scale, float(np.mean(w_scale)), n_in)
    bias = bias_for(draw, rng, n_out)
    x_zp, y_zp = zero_point(draw), zero_point(draw)
    g = Graph()
    x = g.add_activation("x", (batches, n_in), x_scale, x_zp)
    g.inputs = [x]
    try:
        y = layers.fully_connected(g, x, wq, w_scale, bias, y_scale, y_zp,
                                   draw(st.sampled_from(ACTS)))
    except ValueError:
        assume(False)
    g.outputs = [y]
    xs = [[int8_values(draw, rng, (batches, n_in), x_zp)] for _ in range(draw(st.integers(1, 3)))]
    return Case(f"FULLY_CONNECTED {batches}x{n_in} -> {n_out} x_zp={x_zp} seed={seed}",
                serialize(g), xs)


@st.composite
def pool_case(draw) -> Case:
    c = draw(pool_cases())
    rng = np.random.default_rng(c.seed)
    xs = [[int8_values(draw, rng, c.shape, c.zp)] for _ in range(2)]
    return Case(f"{c.op} {c.shape} filter={c.filt} strides={c.strides} {c.padding}",
                c.model(), xs)


@st.composite
def add_case(draw) -> Case:
    c = draw(binary_cases())
    c.op = "ADD"
    rng = np.random.default_rng(c.seed)
    xs = []
    for _ in range(2):
        ex = [int8_values(draw, rng, c.shape1, c.z1)]
        if not c.const2:
            ex.append(int8_values(draw, rng, c.shape2, c.z2))
        xs.append(ex)
    return Case(f"ADD {c.shape1} + {c.shape2} const2={c.const2}", c.model(), xs)


@st.composite
def reshape_case(draw) -> Case:
    """Lengths around the word copy (n & 3) and arena offsets that are or are not aligned."""
    n = draw(st.one_of(st.integers(1, 13), st.integers(14, 600)))
    lead = draw(st.integers(0, 3))  # a first tensor of `lead` bytes shifts the others
    g = Graph()
    x = g.add_activation("x", (1, n), 0.1, 3)
    g.inputs = [x]
    t = x
    if lead:
        t = layers.reshape(g, x, (n, 1), name="lead")
    y = layers.reshape(g, t, (n,))
    g.outputs = [y]
    rng = np.random.default_rng(n)
    return Case(f"RESHAPE {n} lead={lead}", serialize(g),
                [[int8_values(draw, rng, (1, n), 3)] for _ in range(2)])


FAMILIES = {
    "conv": lambda: conv_case(False),
    "depthwise": lambda: conv_case(True),
    "fully_connected": fc_case,
    "pool": pool_case,
    "add": add_case,
    "reshape": reshape_case,
}


@pytest.mark.parametrize("family", list(FAMILIES))
@pytest.mark.parametrize("interp", TWIN_INTERPRETERS)
def test_twin_matches_reference(interp, family):
    n_runs, per_run = RUNS[interp]
    total = [0]

    @settings(max_examples=n_runs, deadline=None, phases=NO_SHRINK,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                     HealthCheck.data_too_large])
    @given(cases=st.lists(FAMILIES[family](), min_size=per_run, max_size=per_run))
    def check(cases):
        total[0] += run_twins(cases, interp)

    check()
    print(f"\n{family} on {interp}: twin == reference on {total[0]} examples")
    assert total[0] >= n_runs * per_run


def test_twins_fall_back_on_wasm():
    """The 32-bit WASI build has no viper: every kernel keeps its reference."""
    rnd = random.Random(5)
    g = Graph()
    x = g.add_activation("x", (1, 4, 4, 8), 0.05, -128)
    g.inputs = [x]
    y = layers.conv2d(g, x, np.ones((4, 1, 1, 8), np.int8), 0.01, None, 0.1, 0)
    g.outputs = [y]
    case = Case("conv", serialize(g), [[np.array([rnd.randrange(-128, 128) for _ in range(128)],
                                                 np.int8)]])
    files = {"m0.trt": case.model,
             "cases.txt": "m0.trt 1\n" + json.dumps([case.examples[0][0].tolist()]) + "\n"}
    n, bad, twin, ref = json.loads(run(SCRIPT, "wasm", files=files).stdout.strip())
    assert (n, bad, twin, ref) == (1, -1, ["reference"], ["reference"])


UNALIGNED_COPY = r"""
from array import array
from tinyrt.kernels.reshape import reshape as ref
from tinyrt.kernels.reshape_viper import reshape as twin
src = array("b", range(-128, 128))
bad = 0
n_cases = 0
for a in range(4):
    for b in range(4):
        for n in (0, 1, 3, 4, 5, 7, 8, 9, 31, 100, 200):
            y1 = array("b", [0] * 220)
            y2 = array("b", [0] * 220)
            ref(memoryview(src)[a:], memoryview(y1)[b:], n)
            twin(memoryview(src)[a:], memoryview(y2)[b:], n)
            n_cases += 1
            if y1 != y2:
                bad += 1
print(n_cases, bad)
"""


@pytest.mark.parametrize("interp", TWIN_INTERPRETERS)
def test_reshape_twin_any_alignment(interp):
    """Word copy when both buffers are 4-byte aligned, byte copy otherwise (unix: real
    addresses at every offset mod 4)."""
    n, bad = map(int, run(UNALIGNED_COPY, interp).stdout.split())
    assert (n, bad) == (176, 0)


# --- requantization -----------------------------------------------------------------------

REQUANT = r"""
import json
from tinyrt.requant import multiply_by_quantized_multiplier as ref
from tinyrt.requant_viper import multiply_by_quantized_multiplier as twin
f = open("cases.json")
cases = json.loads(f.read())
f.close()
bad = []
for c in cases:
    if ref(c[0], c[1], c[2], c[3], c[4]) != twin(c[0], c[1], c[2], c[3], c[4]):
        bad.append(c)
print(json.dumps([len(cases), bad[:3]]))
"""


@pytest.mark.parametrize("interp", TWIN_INTERPRETERS)
def test_requant_twin_matches_reference(interp):
    """Extremes of every argument: |x << left| up to 2^30 - 1, M in {0, 2^30, 2^31 - 1},
    shifts 0..30, plus random values."""
    rnd = random.Random(11)
    cases = []
    for _ in range(3000):
        m = rnd.choice([0, 1 << 30, (1 << 31) - 1, rnd.randrange(1 << 30, 1 << 31)])
        left = rnd.choice([0, 0, rnd.randrange(0, 12)])
        right = 0 if left else rnd.choice([0, 1, 30, rnd.randrange(0, 31)])
        lim = ((1 << 30) >> left) - 1
        x = rnd.choice([lim, -lim, 0, 1, -1, rnd.randrange(-lim, lim + 1),
                        rnd.randrange(-1000, 1001)])
        cases.append([x, m >> 15, m & 0x7FFF, left, right])
    n, bad = json.loads(run(REQUANT, interp,
                            files={"cases.json": json.dumps(cases)}).stdout.strip())
    assert bad == [] and n == len(cases)
