"""SOFTMAX's viper twin (tinyrt.kernels.softmax_viper) == the reference kernel, bit for bit, on
the unix port (real viper) and on CPython (the twin runs as Python through the micropython
shim, pointers emulated).

Rows of every adversarial kind (random, all equal, one huge, only -128 / 127, near the maximum,
ties, all -128, all 127) and lengths 1..2047: the all-equal 2047-long row with a tiny input
scale gives the largest exponential sum (2047 * 2^19) and output shift (33); scales from 2^-26
to 2^6 move the exp table from one nonzero entry to all of them. Each model runs once with
the twins (fast=True) and once without (fast=False) through host_sim.device.invoke_models.
The twin's SRDHM helper is also compared with the reference's srdhm32 on extreme pairs.
"""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from converter.graph import Graph
from converter.layers.activations import MAX_SOFTMAX_DEPTH, softmax
from converter.writer import serialize
from host_sim import run
from host_sim.device import invoke_models
from tests.test_activations import PATTERNS, f32, row_values

TWIN_INTERPRETERS = ("cpython", "unix")
KINDS = (*PATTERNS, "all_min", "all_max")
NO_SHRINK = (Phase.explicit, Phase.reuse, Phase.generate)
# hypothesis examples (= two interpreter runs each) and cases per run: the shim is slow
RUNS = {"cpython": (4, 12), "unix": (12, 30)}
DEPTHS = [1, 2, 3, 9, 10, 16, 255, 256, 257, 511, 512, 1000, 2046, MAX_SOFTMAX_DEPTH]


def values(rng: np.random.Generator, kind: str, rows: int, depth: int) -> np.ndarray:
    if kind == "all_min":
        return np.full((rows, depth), -128, np.int8)
    if kind == "all_max":
        return np.full((rows, depth), 127, np.int8)
    return row_values(rng, kind, rows, depth)


@st.composite
def softmax_case(draw) -> dict:
    scale = f32(2.0 ** draw(st.one_of(st.floats(-26.0, 6.0), st.sampled_from([-26.0, -20.0]))))
    lo = max(0.05, 2.0**-25 / scale)  # beta * scale * 2^26 >= 2 (TFLM's condition)
    beta = f32(draw(st.one_of(st.just(max(1.0, lo)), st.floats(lo, 8.0))))
    depth = draw(st.one_of(st.integers(1, 40), st.sampled_from(DEPTHS),
                           st.integers(1, MAX_SOFTMAX_DEPTH)))
    lead = draw(st.sampled_from([(), (1,), (2,), (3,), (1, 2)])) if depth <= 300 else (1,)
    rows = int(np.prod(lead))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    xs = [values(rng, draw(st.sampled_from(KINDS)), rows, depth).reshape((*lead, depth))
          for _ in range(2)]
    return {"scale": scale, "zp": draw(st.integers(-128, 127)), "beta": beta, "xs": xs}


def model(c: dict) -> bytes:
    g = Graph()
    x = g.add_activation("x", c["xs"][0].shape, c["scale"], c["zp"])
    g.inputs, g.outputs = [x], [softmax(g, x, c["beta"])]
    return serialize(g)


def compare(cases: list[dict], interp: str) -> int:
    """Run the batch with and without the twin; assert equal outputs; return rows compared."""
    batch = [(model(c), [[x] for x in c["xs"]]) for c in cases]
    fast = invoke_models(batch, interp, fast=True)
    slow = invoke_models(batch, interp, fast=False)
    rows = 0
    for c, a, b in zip(cases, fast, slow, strict=True):
        for x, ya, yb in zip(c["xs"], a, b, strict=True):
            assert np.array_equal(ya[0], yb[0]), (
                f"{interp}: twin != reference, scale={c['scale']} beta={c['beta']} "
                f"shape={x.shape} x={x.ravel()[:20].tolist()}")
            rows += x.size // x.shape[-1]
    return rows


@pytest.mark.parametrize("interp", TWIN_INTERPRETERS)
def test_softmax_twin_matches_reference(interp):
    n_runs, per_run = RUNS[interp]
    total = [0]

    @settings(max_examples=n_runs, deadline=None, phases=NO_SHRINK,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(cases=st.lists(softmax_case(), min_size=per_run, max_size=per_run))
    def check(cases):
        total[0] += compare(cases, interp)

    check()
    print(f"\nsoftmax on {interp}: twin == reference on {total[0]} rows")
    assert total[0] >= n_runs * per_run


@pytest.mark.parametrize("interp", TWIN_INTERPRETERS)
def test_softmax_twin_extreme_rows(interp):
    """Fixed worst cases: the largest sum (2047 equal entries, tiny scale), a single entry,
    one huge entry over 2046 at -128, and only -128 / 127."""
    cases = []
    for scale in (2.0**-26, 2.0**-20, 0.05, 1.0, 64.0):
        s = f32(scale)
        lo = max(0.05, 2.0**-25 / s)
        one_huge = np.full((1, MAX_SOFTMAX_DEPTH), -128, np.int8)
        one_huge[0, 1234] = 127
        ends = np.tile(np.array([-128, 127], np.int8), (1, 1024))[:, :MAX_SOFTMAX_DEPTH]
        for xs in ([np.zeros((1, MAX_SOFTMAX_DEPTH), np.int8),
                    np.full((1, MAX_SOFTMAX_DEPTH), 127, np.int8)],
                   [np.full((1, 1), -128, np.int8), np.full((1, 1), 127, np.int8)],
                   [one_huge, ends]):
            cases.append({"scale": s, "zp": 0, "beta": f32(max(1.0, lo)), "xs": xs})
    assert compare(cases, interp) == 2 * len(cases)


CHOSEN = r"""
import tinyrt
m = tinyrt.load("m.trt")
print(m.kernels[0].impl)
"""

SRDHM = r"""
import json
from array import array
from tinyrt.kernels.softmax import srdhm32
from tinyrt.kernels.softmax_viper import _srdhm
f = open("cases.json")
cases = json.loads(f.read())
f.close()
r = array("i", [0, 0])
t = array("i", [0, 0])
bad = []
for c in cases:
    srdhm32(r, c[0], c[1], c[2], c[3])
    _srdhm(t, c[0], c[1], c[2], c[3])
    if r[0] != t[0] - 0x10000 or r[1] != t[1]:
        bad.append(c)
print(json.dumps([len(cases), bad[:3]]))
"""


@pytest.mark.parametrize("interp", TWIN_INTERPRETERS)
def test_srdhm_helper_matches_reference(interp):
    """int32 a, b at the extremes (INT32_MIN, INT32_MAX, 0, +-1, +-2^15, the reciprocal's
    constants) and random, as (h, l) pairs; the twin's helper stores h + 0x10000."""
    rnd = random.Random(7)
    special = [-(1 << 31), (1 << 31) - 1, 0, 1, -1, 1 << 15, -(1 << 15), (1 << 15) - 1,
               -1010580540, 1515870810, 1 << 29, 1 << 30, -(1 << 30), (1 << 31) - 2]
    cases = []
    for _ in range(3000):
        a = rnd.choice(special + [rnd.randrange(-(1 << 31), 1 << 31)] * 3)
        b = rnd.choice(special + [rnd.randrange(-(1 << 31), 1 << 31)] * 3)
        cases.append([a >> 15, a & 0x7FFF, b >> 15, b & 0x7FFF])
    n, bad = json.loads(run(SRDHM, interp, files={"cases.json": json.dumps(cases)}).stdout)
    assert bad == [] and n == len(cases)


@pytest.mark.parametrize("interp", [*TWIN_INTERPRETERS, "wasm"])
def test_softmax_twin_chosen(interp):
    """fast.select picks the twin where viper exists; the WASI build keeps the reference."""
    c = {"scale": f32(0.1), "zp": 0, "beta": 1.0, "xs": [np.zeros((1, 10), np.int8)]}
    impl = run(CHOSEN, interp, files={"m.trt": model(c)}).stdout.strip()
    assert impl == ("reference" if interp == "wasm" else "viper")
