"""FULLY_CONNECTED: tinyrt on every interpreter == the numpy oracle == TFLM, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from converter import layers, writer
from converter.graph import Graph
from host_sim.device import invoke_models_with_kernels
from host_sim.oracle import int8_ref, tflm
from tests.kernel_harness import fast_kernel

ACTS = ["NONE", "RELU", "RELU6", "RELU_N1_TO_1"]


@st.composite
def fc_cases(draw, max_in: int = 48):
    n_in = draw(st.integers(1, max_in))
    n_out = draw(st.integers(1, 12))
    batches = draw(st.integers(1, 3))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    per_channel = draw(st.booleans())
    case = dict(
        n_in=n_in, n_out=n_out, batches=batches,
        x_scale=float(np.float32(draw(st.floats(0.002, 0.5)))),
        x_zp=draw(st.integers(-128, 127)),
        w=rng.integers(-127, 128, (n_out, n_in)).astype(np.int8),
        w_scale=(rng.uniform(0.0005, 0.02, n_out) if per_channel
                 else np.array([draw(st.floats(0.0005, 0.02))])).astype(np.float32),
        bias=(rng.integers(-5000, 5000, n_out).astype(np.int32)
              if draw(st.booleans()) else None),
        out_scale=float(np.float32(draw(st.floats(0.01, 2.0)))),
        out_zp=draw(st.integers(-128, 127)),
        act=draw(st.sampled_from(ACTS)),
        xs=[rng.integers(-128, 128, (batches, n_in)).astype(np.int8) for _ in range(3)],
    )
    return case


def build(c) -> bytes:
    g = Graph()
    x = g.add_activation("x", (c["batches"], c["n_in"]), c["x_scale"], c["x_zp"])
    g.inputs.append(x)
    y = layers.fully_connected(g, x, c["w"], c["w_scale"], c["bias"], c["out_scale"],
                               c["out_zp"], c["act"])
    g.outputs.append(y)
    return writer.serialize(g)


def oracle(c, x) -> np.ndarray:
    return int8_ref.fully_connected(
        x, c["w"], c["bias"], x_scale=c["x_scale"], x_zp=c["x_zp"], w_scale=c["w_scale"],
        out_scale=c["out_scale"], out_zp=c["out_zp"], activation=c["act"])


@pytest.mark.parametrize("fast", [True, False], ids=["viper", "reference"])
@settings(max_examples=4, phases=[Phase.explicit, Phase.generate])
@given(st.lists(fc_cases(), min_size=10, max_size=10))
def test_fc_matches_oracle(interpreter, fast, cases):
    """fast=True runs the asm twin on the ARM boards (m0, m3), the viper twin where the
    interpreter has viper (unix; emulated on CPython), the reference elsewhere (wasm)."""
    results, kernels = invoke_models_with_kernels(
        [(build(c), [[x] for x in c["xs"]]) for c in cases], interpreter, fast=fast)
    assert kernels == [[fast_kernel(interpreter) if fast else "reference"]] * len(cases)
    for c, rows in zip(cases, results):
        for x, (y,) in zip(c["xs"], rows):
            np.testing.assert_array_equal(y, oracle(c, x).ravel())


def to_tflite(c) -> bytes:
    T, Op = tflm.TTensor, tflm.TOp
    per_channel = c["w_scale"].size > 1
    tensors = [
        T("x", (c["batches"], c["n_in"]), "int8", c["x_scale"], c["x_zp"]),
        T("w", c["w"].shape, "int8", list(map(float, c["w_scale"])) if per_channel
          else float(c["w_scale"][0]), [0] * c["w_scale"].size, 0, c["w"]),
        T("y", (c["batches"], c["n_out"]), "int8", c["out_scale"], c["out_zp"]),
    ]
    inputs = [0, 1, -1]
    if c["bias"] is not None:
        bscale = [c["x_scale"] * float(s) for s in c["w_scale"]]
        tensors.append(T("b", (c["n_out"],), "int32", bscale if per_channel else bscale[0],
                         [0] * len(bscale), 0, c["bias"]))
        inputs[2] = 3
    op = Op("FULLY_CONNECTED", inputs, [2], {"fused_activation_function": c["act"]})
    return tflm.build_tflite(tensors, [op], [0], [2])


@settings(max_examples=40)
@given(fc_cases())
def test_fc_matches_tflm(c):
    """The same layers as .tflite files in tflite-micro: the runtime (CPython, in process)
    agrees with the real oracle."""
    import tinyrt

    m = tinyrt.load(build(c))
    model = to_tflite(c)
    for x in c["xs"]:
        want = tflm.run_tflm(model, [x])[0]
        got = np.array(m.invoke(x.ravel().tolist()).tolist())
        np.testing.assert_array_equal(got, want.ravel())


@pytest.mark.parametrize("xs,ws,os_,acc", [
    (0.33608782291412354, 0.0019243493443354964, 0.9729828834533691, -128627),
    (0.10401974618434906, 0.00018888333579525352, 0.0331849604845047, -63337),
])
def test_per_tensor_multiplier_is_formed_in_double(xs, ws, os_, acc):
    """Scales for which a float32 product of x_scale*w_scale would change the output."""
    import tinyrt

    c = dict(n_in=1, n_out=1, batches=1, x_scale=xs, x_zp=0, w=np.array([[1]], np.int8),
             w_scale=np.array([ws], np.float32), bias=np.array([acc - 1], np.int32),
             out_scale=os_, out_zp=0, act="NONE", xs=[np.array([[1]], np.int8)])
    want = tflm.run_tflm(to_tflite(c), c["xs"])[0]
    got = tinyrt.load(build(c)).invoke([1]).tolist()
    assert got == want.ravel().tolist()
