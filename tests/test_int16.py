"""16x8 models (int16 activations, int8 weights): TFLM's int16 reference arithmetic, to the bit.

- the two int16 models of ../shared/models (seanet_conv0: CONV_2D with an int64 bias;
  seanet_pad0: PAD) against TFLM's recorded outputs, on every interpreter;
- tinyrt.requant16 (the int64 requantization on 31-bit limbs) against exact integers.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
from tinyrt.requant16 import SATURATED, multiply_by_quantized_multiplier_64

from converter.tflite_import import import_tflite
from converter.writer import serialize
from host_sim.device import invoke_models_with_kernels
from host_sim.emulated import EMULATED

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
    """TFLM's int64 MultiplyByQuantizedMultiplier on Python ints."""
    return (a * rm + (1 << (ts - 1))) >> ts


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
