"""tinyrt.requant (15-bit limbs, no intermediate beyond 2^30) == TFLM's int64 arithmetic."""

from __future__ import annotations

import json
import random

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from converter.quantization import quantize_multiplier, requant_rows
from host_sim import run
from host_sim.oracle import int8_ref
from tinyrt.requant import multiply_by_quantized_multiplier, srdhm

SMALL = (1 << 30) - 1


def _exact(x: int, m: int, shift: int) -> int:
    return int(int8_ref.multiply_by_quantized_multiplier(np.array([x], np.int64), m, shift)[0])


@given(st.integers(-SMALL, SMALL), st.floats(1e-9, 0.999, allow_nan=False))
def test_matches_tflm_arithmetic(x, real):
    m, shift = quantize_multiplier(real)
    (hi, lo, sh), = requant_rows([real])
    left, right = max(sh, 0), max(-sh, 0)
    if right > 30:
        return  # stored as multiplier 0 by the kernels' prepare (exact result 0)
    got = multiply_by_quantized_multiplier(x, int(hi), int(lo), left, right)
    assert got == _exact(x, m, shift)


def test_quantize_multiplier_agrees_with_oracle():
    rng = np.random.default_rng(3)
    for real in np.concatenate([rng.uniform(1e-6, 1, 500), rng.uniform(1, 100, 100)]):
        assert quantize_multiplier(float(real)) == int8_ref.quantize_multiplier(float(real))


def test_srdhm_extremes():
    for x in (0, 1, -1, SMALL, -SMALL, 12345, -12345):
        for m in (0, 1 << 30, (1 << 31) - 1, 1518500250):
            assert srdhm(x, m >> 15, m & 0x7FFF) == int(
                int8_ref.saturating_rounding_doubling_high_mul(np.int64(x), np.int64(m)))


PROBE = r"""
import json, micropython
from tinyrt.requant import multiply_by_quantized_multiplier as mbqm
f = open("cases.json")
cases = json.loads(f.read())
f.close()
out = []
for i in range(len(cases)):
    out.append(0)
def work(cases, out):
    for i in range(len(cases)):
        c = cases[i]
        out[i] = mbqm(c[0], c[1], c[2], c[3], c[4])
micropython.heap_lock()
work(cases, out)
micropython.heap_unlock()
print(json.dumps(out))
"""


def test_on_every_interpreter_without_allocating(interpreter):
    """On the 32-bit build a single intermediate beyond 2^30 would raise MemoryError here."""
    rng = random.Random(7)
    cases, want = [], []
    for _ in range(2000):
        x = rng.choice([rng.randint(-SMALL, SMALL), rng.randint(-40000, 40000)])
        real = rng.choice([rng.uniform(1e-5, 1.0), rng.uniform(0.5, 1.0)])
        m, shift = quantize_multiplier(real)
        if shift > 0 or -shift > 30:
            continue
        cases.append([x, m >> 15, m & 0x7FFF, 0, -shift])
        want.append(_exact(x, m, shift))
    got = json.loads(run(PROBE, interpreter, files={"cases.json": json.dumps(cases)}).stdout)
    assert got == want
