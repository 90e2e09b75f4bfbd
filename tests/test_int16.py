"""16x8 models (int16 activations, int8 weights): TFLM's int16 reference arithmetic, to the bit.

- the two int16 models of ../shared/models (seanet_conv0: CONV_2D with an int64 bias;
  seanet_pad0: PAD) against TFLM's recorded outputs, on every interpreter;
- tinyrt.requant16 (the int64 requantization on 31-bit limbs) against exact integers.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import cache

import numpy as np
import pytest
from tinyrt.requant16 import SATURATED, multiply_by_quantized_multiplier_64

from converter.tflite_import import import_tflite
from converter.writer import serialize
from host_sim.device import invoke_models, invoke_models_with_kernels
from host_sim.emulated import EMULATED
from host_sim.oracle import tflm

from .conftest import SHARED_MODELS

SEANET = ("seanet_conv0", "seanet_pad0")
# seanet_conv0 is 250,880 MACs: ~1.3 s per inference on the emulated boards (reference
# kernel, no twin yet), so they run the first EMULATED_INPUTS reference inputs, the others all 20.
EMULATED_INPUTS = 3


def _seanet(name: str) -> tuple[bytes, np.ndarray, np.ndarray]:
    p = SHARED_MODELS / f"{name}.tflite"
    if not p.exists():
        pytest.skip(f"{p} not present")
    io = np.load(SHARED_MODELS / f"{name}_io.npz")
    return serialize(import_tflite(p.read_bytes())), io["x"], io["y"]


def test_seanet_models_bit_exact(interpreter):
    cases, want = [], []
    for name in SEANET:
        model, x, y = _seanet(name)
        n = EMULATED_INPUTS if interpreter in EMULATED else len(x)
        cases.append((model, [[a] for a in x[:n]]))
        want.append(y[:n])
    outs, kernels = invoke_models_with_kernels(cases, interpreter)
    assert kernels == [["reference"], ["reference"]]
    for name, got, ys in zip(SEANET, outs, want):
        assert len(got) == len(ys)
        for k, (g, y) in enumerate(zip(got, ys)):
            assert np.array_equal(g[0], y.ravel()), f"{name} input {k} on {interpreter}"


def _exact(a: int, rm: int, ts: int) -> int:
    """TFLM's int64 MultiplyByQuantizedMultiplier on Python ints, cast to int32 (wraps)."""
    r = ((a * rm + (1 << (ts - 1))) >> ts) & 0xFFFFFFFF
    return r - (1 << 32) if r >> 31 else r


def test_requant64_limbs_match_exact_integers():
    rnd = random.Random(13)
    edges = [0, 1, -1, 0x7FFF, -0x8000, (1 << 43) - 1, -(1 << 43), (1 << 30), -(1 << 30)]
    for k in range(50000):
        a = edges[k] if k < len(edges) else rnd.choice(
            [rnd.randint(-(1 << 44), 1 << 44), rnd.randint(-(1 << 30), 1 << 30),
             rnd.randint(-(1 << 20), 1 << 20)])
        rm = rnd.choice([0, 1, 0x4000, 0x7FFF, rnd.randint(0, 0x7FFF)])
        ts = rnd.randint(8, 46)
        got = multiply_by_quantized_multiplier_64(a >> 15, a & 0x7FFF, rm, ts)
        want = _exact(a, rm, ts)
        assert abs(got) < 1 << 30
        if abs(want) < SATURATED:
            assert got == want, (a, rm, ts)
        else:
            assert (got >= SATURATED) if want > 0 else (got <= -SATURATED), (a, rm, ts, got)


# --- differential cases against tflite-micro ------------------------------------------------
# Each case is one op in a .tflite built by host_sim/oracle/tflm.py, converted by
# `tinyrt convert`'s importer; TFLM's outputs on random int16 inputs (over the whole range) are
# the reference. Cases are drawn from a seeded generator; every interpreter runs them all in one
# process (the shapes are small: the emulated boards take well under a second per case).


@dataclass
class Diff:
    what: str
    tflite: bytes
    xs: list[list[np.ndarray]]  # examples: one array per model input


def _x16(rnd: np.random.Generator, shape) -> np.ndarray:
    return rnd.integers(-32768, 32768, size=shape, dtype=np.int64).astype(np.int16)


def conv_case(rnd: np.random.Generator, k: int) -> Diff:
    """CONV_2D 16x8: shapes, strides, dilations, padding, activation, per-channel scales and an
    int64 bias drawn (a few cases with biases near TFLM's limits, and without bias)."""
    c, oc = int(rnd.integers(1, 5)), int(rnd.integers(1, 5))
    kh, kw = int(rnd.integers(1, 4)), int(rnd.integers(1, 4))
    h, w = int(rnd.integers(kh, 7)), int(rnd.integers(kw, 7))
    stride = (int(rnd.integers(1, 3)), int(rnd.integers(1, 3)))
    dil = (1, 1) if k % 3 else (int(rnd.integers(1, 3)), int(rnd.integers(1, 3)))
    padding = "SAME" if k % 2 else "VALID"
    if padding == "VALID":
        h, w = max(h, (kh - 1) * dil[0] + 1), max(w, (kw - 1) * dil[1] + 1)
    act = ["NONE", "RELU", "RELU6", "RELU_N1_TO_1"][k % 4]
    x_scale = float(rnd.uniform(1e-4, 1e-2))
    w_scale = [float(s) for s in rnd.uniform(1e-3, 2e-2, size=oc)]
    y_scale = float(x_scale * max(w_scale) * np.sqrt(kh * kw * c) * rnd.uniform(2.0, 40.0))
    wts = rnd.integers(-127, 128, size=(oc, kh, kw, c), dtype=np.int64).astype(np.int8)
    bias_max = [1 << 20, 1 << 30, (1 << 40)][k % 3]
    bias = rnd.integers(-bias_max, bias_max, size=oc, dtype=np.int64)
    T = tflm.TTensor
    tensors = [T("x", (1, h, w, c), "int16", x_scale, 0),
               T("w", wts.shape, "int8", w_scale, 0, 0, wts),
               T("b", (oc,), "int64", [x_scale * s for s in w_scale], 0, 0, bias)]
    oh = -(-h // stride[0]) if padding == "SAME" else (h - (kh - 1) * dil[0] - 1) // stride[0] + 1
    ow = -(-w // stride[1]) if padding == "SAME" else (w - (kw - 1) * dil[1] - 1) // stride[1] + 1
    tensors.append(T("y", (1, oh, ow, oc), "int16", y_scale, 0))
    opts = {"padding": padding, "stride_h": stride[0], "stride_w": stride[1],
            "dilation_h_factor": dil[0], "dilation_w_factor": dil[1],
            "fused_activation_function": act}
    model = tflm.build_tflite(tensors, [tflm.TOp("CONV_2D", [0, 1, 2], [3], opts)], [0], [3])
    return Diff(f"conv {k}: x {tensors[0].shape} w {wts.shape} {padding} s{stride} d{dil} "
                f"{act} |b|<{bias_max}", model, [[_x16(rnd, (1, h, w, c))] for _ in range(2)])


def pad_case(rnd: np.random.Generator, k: int) -> Diff:
    r = int(rnd.integers(1, 5))
    shape = tuple(int(d) for d in rnd.integers(1, 4, size=r))
    pads = rnd.integers(0, 3, size=(r, 2)).astype(np.int32)
    T = tflm.TTensor
    out = tuple(int(d + a + b) for d, (a, b) in zip(shape, pads))
    tensors = [T("x", shape, "int16", 0.001, 0), T("p", pads.shape, "int32", None, 0, 0, pads),
               T("y", out, "int16", 0.001, 0)]
    model = tflm.build_tflite(tensors, [tflm.TOp("PAD", [0, 1], [2])], [0], [2])
    return Diff(f"pad {k}: {shape} {pads.tolist()}", model, [[_x16(rnd, shape)]])


def fc_case(rnd: np.random.Generator, k: int) -> Diff:
    """FULLY_CONNECTED 16x8, per-tensor weights, int64 bias (large in some cases)."""
    batches, n_in, n_out = int(rnd.integers(1, 4)), int(rnd.integers(1, 300)), \
        int(rnd.integers(1, 6))
    act = ["NONE", "RELU", "RELU6", "RELU_N1_TO_1"][k % 4]
    x_scale, w_scale = float(rnd.uniform(1e-4, 1e-2)), float(rnd.uniform(1e-3, 2e-2))
    y_scale = float(x_scale * w_scale * np.sqrt(n_in) * rnd.uniform(2.0, 40.0))
    wts = rnd.integers(-127, 128, size=(n_out, n_in), dtype=np.int64).astype(np.int8)
    bias_max = [1 << 20, 1 << 30, (1 << 40)][k % 3]
    bias = rnd.integers(-bias_max, bias_max, size=n_out, dtype=np.int64)
    T = tflm.TTensor
    tensors = [T("x", (batches, n_in), "int16", x_scale, 0),
               T("w", wts.shape, "int8", w_scale, 0, 0, wts),
               T("b", (n_out,), "int64", x_scale * w_scale, 0, 0, bias),
               T("y", (batches, n_out), "int16", y_scale, 0)]
    op = tflm.TOp("FULLY_CONNECTED", [0, 1, 2], [3], {"fused_activation_function": act})
    model = tflm.build_tflite(tensors, [op], [0], [3])
    return Diff(f"fc {k}: {batches}x{n_in} -> {n_out} {act} |b|<{bias_max}", model,
                [[_x16(rnd, (batches, n_in))] for _ in range(2)])


CASES = {"CONV_2D": (conv_case, 24), "FULLY_CONNECTED": (fc_case, 16), "PAD": (pad_case, 12)}


def make_cases(table: dict, seed: int) -> tuple[list[Diff], list[list[list[np.ndarray]]]]:
    """The cases of `table` (op -> (case maker, count)) and TFLM's outputs for them."""
    rnd = np.random.default_rng(seed)
    cases = [make(rnd, k) for make, n in table.values() for k in range(n)]
    refs = [[tflm.run_tflm(c.tflite, ex) for ex in c.xs] for c in cases]
    return cases, refs


def check_against_tflm(cases: list[Diff], refs: list, interpreter: str) -> dict[str, int]:
    """Convert and run every case on `interpreter`, assert each output equals TFLM's; the
    number of cases per op."""
    models = [(serialize(import_tflite(c.tflite)), c.xs) for c in cases]
    outs = invoke_models(models, interpreter)
    counts: dict[str, int] = {}
    for c, got, want in zip(cases, outs, refs, strict=True):
        for k, (g, r) in enumerate(zip(got, want, strict=True)):
            for gi, ri in zip(g, r, strict=True):
                assert np.array_equal(gi, np.asarray(ri).ravel()), f"{c.what} example {k}"
        op = c.what.split()[0]
        counts[op] = counts.get(op, 0) + 1
    print(interpreter, counts)
    return counts


@cache
def diff_cases() -> tuple[list[Diff], list[list[list[np.ndarray]]]]:
    """Every op's cases and TFLM's outputs for them."""
    return make_cases(CASES, 1613)


def test_16x8_ops_match_tflite_micro(interpreter):
    counts = check_against_tflm(*diff_cases(), interpreter)
    assert counts == {"conv": 24, "fc": 16, "pad": 12}
