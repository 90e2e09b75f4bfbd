"""SOFTMAX and LOGISTIC (int8): tinyrt on every interpreter == numpy oracle == TFLM, bit for bit,
and softmax's int32 pair arithmetic == exact Python ints."""

from __future__ import annotations

import json
from array import array

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinyrt
from converter.graph import Graph
from converter.layers.activations import (MAX_SOFTMAX_DEPTH, logistic, logistic_table,
                                          softmax, softmax_exp_table)
from converter.writer import serialize
from host_sim import run
from host_sim.emulated import EMULATED
from host_sim.device import invoke_models
from host_sim.oracle import int8_ref as ref
from host_sim.oracle.tflm import TFLMError, TOp, TTensor, build_tflite, run_tflm
from tinyrt.kernels import softmax as sk

I32_MIN, I32_MAX = -(1 << 31), (1 << 31) - 1
PATTERNS = ("random", "equal", "one_huge", "extremes", "near_max", "ties")


# --- exact references (Python ints; the numpy oracle where it has the function) ---------------

def wrap(v: int) -> int:
    return ((v + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def exact_srdhm(a: int, b: int) -> int:
    return int(ref.saturating_rounding_doubling_high_mul(a, b))


def exact_shl_saturating(v: int, e: int) -> int:  # gemmlowp SaturatingRoundingMultiplyByPOT<e>
    t = (1 << (31 - e)) - 1
    return I32_MAX if v > t else I32_MIN if v < -t else v << e


def exact_mul_rdbp(s: int, e: int, k: int) -> int:  # RoundingDivideByPOT(SRDHM(s, e), k), s,e>=0
    return ((s * e + (1 << 30) >> 31) + (1 << (k - 1))) >> k


def pair(v: int) -> tuple[int, int]:
    return v >> 15, v & 0x7FFF


def joined(r) -> int:
    return (r[0] << 15) + r[1]


# --- int32 pair helpers of the softmax kernel, on CPython -------------------------------------

INT32 = st.one_of(st.integers(I32_MIN, I32_MAX),
                  st.sampled_from([I32_MIN, I32_MIN + 1, -(1 << 30), -(1 << 15), -1, 0, 1,
                                   (1 << 15) - 1, 1 << 15, (1 << 30) - 1, 1 << 30, I32_MAX]))
NONNEG = st.one_of(st.integers(0, I32_MAX), st.sampled_from([0, 1, 1 << 30, I32_MAX]))


@given(INT32, INT32, st.integers(1, 15))
def test_pair_arithmetic_matches_exact_ints(a: int, b: int, e: int) -> None:
    r = array("i", [0, 0])
    sk.srdhm32(r, *pair(a), *pair(b))
    assert joined(r) == exact_srdhm(a, b)
    sk.add32(r, *pair(a), *pair(b))
    assert joined(r) == wrap(a + b)
    sk.sub32(r, *pair(a), *pair(b))
    assert joined(r) == wrap(a - b)
    sk.shl_saturating32(r, *pair(a), e)
    assert joined(r) == exact_shl_saturating(a, e)


@given(NONNEG, NONNEG, st.integers(15, 44), st.integers(1, (1 << 30) - 1))
def test_reciprocal_and_output_product_match_exact_ints(a: int, b: int, k: int, x: int) -> None:
    r = array("i", [0, 0])
    sk.one_over_one_plus_x_for_x_in_0_1(r, *pair(a))
    assert joined(r) == int(ref._one_over_one_plus_x_for_x_in_0_1(a))
    n = sk.get_reciprocal(r, x, 12)
    want, want_n = ref._get_reciprocal(np.array([x]), 12)
    assert (joined(r), n) == (int(want[0]), int(want_n[0]))
    assert sk.mul_rdbp(*pair(a), *pair(b), k) == exact_mul_rdbp(a, b, k)


def _bulk_values(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Random operands for every helper (uniform, plus small and near-limit magnitudes)."""
    def ints(lo: int, hi: int) -> np.ndarray:
        v = rng.integers(lo, hi, n, dtype=np.int64, endpoint=True)
        shift = rng.integers(0, 32, n)
        return np.where(rng.random(n) < 0.3, v >> shift, v)  # many magnitudes
    return {"a": ints(I32_MIN, I32_MAX), "b": ints(I32_MIN, I32_MAX), "e": rng.integers(1, 16, n),
            "c": ints(0, I32_MAX), "d": ints(0, I32_MAX), "x": np.maximum(ints(1, 2**30 - 1), 1),
            "k": rng.integers(15, 45, n)}


def _bulk_expected(v: dict[str, np.ndarray]) -> list[int]:
    a, b, c, d = v["a"], v["b"], v["c"], v["d"]
    recip, nbou = ref._get_reciprocal(v["x"], 12)
    shl = [exact_shl_saturating(int(p), int(q)) for p, q in zip(a, v["e"], strict=True)]
    mul = [exact_mul_rdbp(int(p), int(q), int(k)) for p, q, k in zip(c, d, v["k"], strict=True)]
    cols = [ref.saturating_rounding_doubling_high_mul(a, b), ref._wrap32(a + b),
            ref._wrap32(a - b), shl, ref._one_over_one_plus_x_for_x_in_0_1(c), recip, nbou, mul]
    out = []
    for row in zip(*cols, strict=True):  # six int32s as pairs, num_bits_over_unit, mul_rdbp
        for j, val in enumerate(row):
            out.extend(pair(int(val)) if j < 6 else [int(val)])
    return out


def test_pair_arithmetic_bulk_random_on_cpython() -> None:
    v = _bulk_values(np.random.default_rng(7), 20000)
    r = array("i", [0, 0])
    got = []
    for i in range(len(v["a"])):
        a, b, c, d = (pair(int(v[k][i])) for k in "abcd")
        for f, args in ((sk.srdhm32, a + b), (sk.add32, a + b), (sk.sub32, a + b),
                        (sk.shl_saturating32, (*a, int(v["e"][i]))),
                        (sk.one_over_one_plus_x_for_x_in_0_1, c)):
            f(r, *args)
            got.extend(r)
        n = sk.get_reciprocal(r, int(v["x"][i]), 12)
        got.extend([r[0], r[1], n, sk.mul_rdbp(*c, *d, int(v["k"][i]))])
    assert got == _bulk_expected(v)


# All helpers over a batch, heap locked: a long int anywhere would be a MemoryError on wasm.
HELPERS_SCRIPT = r"""
import json, micropython
from array import array
from tinyrt.kernels import softmax as S


def work(v, out, r, n):
    for j in range(n):
        i = 11 * j
        o = 14 * j
        S.srdhm32(r, v[i], v[i + 1], v[i + 2], v[i + 3])
        out[o] = r[0]
        out[o + 1] = r[1]
        S.add32(r, v[i], v[i + 1], v[i + 2], v[i + 3])
        out[o + 2] = r[0]
        out[o + 3] = r[1]
        S.sub32(r, v[i], v[i + 1], v[i + 2], v[i + 3])
        out[o + 4] = r[0]
        out[o + 5] = r[1]
        S.shl_saturating32(r, v[i], v[i + 1], v[i + 4])
        out[o + 6] = r[0]
        out[o + 7] = r[1]
        S.one_over_one_plus_x_for_x_in_0_1(r, v[i + 5], v[i + 6])
        out[o + 8] = r[0]
        out[o + 9] = r[1]
        out[o + 12] = S.get_reciprocal(r, v[i + 9], 12)
        out[o + 10] = r[0]
        out[o + 11] = r[1]
        out[o + 13] = S.mul_rdbp(v[i + 5], v[i + 6], v[i + 7], v[i + 8], v[i + 10])


f = open("ops.json")
v = array("i", json.loads(f.read()))
f.close()
n = len(v) // 11
out = array("i", [0] * (14 * n))
r = array("i", [0, 0])
micropython.heap_lock()
try:
    work(v, out, r, n)
finally:
    micropython.heap_unlock()
print(json.dumps(list(out)))
"""


def test_pair_arithmetic_heap_locked(interpreter: str) -> None:
    # the boards' ~190 KB heap holds the JSON of 200 cases, not 4,000
    v = _bulk_values(np.random.default_rng(11), 200 if interpreter in EMULATED else 4000)
    ops = []
    for i in range(len(v["a"])):
        ops += [*pair(int(v["a"][i])), *pair(int(v["b"][i])), int(v["e"][i]),
                *pair(int(v["c"][i])), *pair(int(v["d"][i])), int(v["x"][i]), int(v["k"][i])]
    r = run(HELPERS_SCRIPT, interpreter, files={"ops.json": json.dumps(ops)})
    assert json.loads(r.stdout) == _bulk_expected(v)


# --- models -----------------------------------------------------------------------------------

def f32(x: float) -> float:
    return float(np.float32(x))


def row_values(rng: np.random.Generator, pattern: str, rows: int, depth: int) -> np.ndarray:
    """int8 (rows, depth) rows of one adversarial kind."""
    if pattern == "equal":
        return np.repeat(rng.integers(-128, 128, (rows, 1)), depth, axis=1).astype(np.int8)
    if pattern == "one_huge":  # one large value, the rest far below (at most 255 apart)
        x = rng.integers(-128, -100, (rows, depth))
        x[np.arange(rows), rng.integers(0, depth, rows)] = 127
        return x.astype(np.int8)
    if pattern == "extremes":  # only -128 and 127: every diff is 0 or -255
        return rng.choice(np.array([-128, 127]), (rows, depth)).astype(np.int8)
    if pattern == "near_max":  # small diffs, large sums
        top = rng.integers(-120, 128, (rows, 1))
        return (top - rng.integers(0, 8, (rows, depth))).astype(np.int8)
    if pattern == "ties":  # several entries share the maximum
        x = rng.integers(-128, 100, (rows, depth))
        x[rng.random((rows, depth)) < 0.4] = 100
        return x.astype(np.int8)
    return rng.integers(-128, 128, (rows, depth)).astype(np.int8)


@st.composite
def softmax_cases(draw) -> dict:
    """Input quantization, beta (beta * scale > 2^-26, as TFLM needs), shape and values."""
    scale = f32(2.0 ** draw(st.floats(-26.0, 6.0)))
    lo = max(0.05, 2.0**-25 / scale)  # beta * scale * 2^26 >= 2
    beta = f32(draw(st.one_of(st.just(max(1.0, lo)), st.floats(lo, 8.0))))
    lead = draw(st.sampled_from([(), (1,), (2,), (3,), (2, 2), (1, 3)]))
    rows, depth = int(np.prod(lead)), draw(st.integers(1, 40))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    xs = [row_values(rng, draw(st.sampled_from(PATTERNS)), rows, depth).reshape((*lead, depth))
          for _ in range(3)]
    return {"scale": scale, "zp": draw(st.integers(-128, 127)), "beta": beta, "xs": xs}


@st.composite
def logistic_cases(draw) -> dict:
    shape = tuple(draw(st.lists(st.integers(1, 12), min_size=1, max_size=3)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    xs = [rng.integers(-128, 128, shape).astype(np.int8) for _ in range(2)]
    size = int(np.prod(shape))  # then every int8 value, in chunks of the input's size
    sweep = np.roll(np.arange(-128, 128), int(rng.integers(256)))
    sweep = np.resize(sweep, -(-256 // size) * size).astype(np.int8)
    xs += [chunk.reshape(shape) for chunk in sweep.reshape(-1, size)]
    return {"scale": f32(2.0 ** draw(st.floats(-28.0, 4.0))), "zp": draw(st.integers(-128, 127)),
            "xs": xs}


def softmax_model(c: dict) -> bytes:
    g = Graph()
    x = g.add_activation("x", c["xs"][0].shape, c["scale"], c["zp"])
    g.inputs, g.outputs = [x], [softmax(g, x, c["beta"])]
    return serialize(g)


def logistic_model(c: dict) -> bytes:
    g = Graph()
    x = g.add_activation("x", c["xs"][0].shape, c["scale"], c["zp"])
    g.inputs, g.outputs = [x], [logistic(g, x)]
    return serialize(g)


def oracle_softmax(c: dict, x: np.ndarray) -> np.ndarray:
    return ref.softmax(x, x_scale=c["scale"], beta=c["beta"])


def oracle_logistic(c: dict, x: np.ndarray) -> np.ndarray:
    return ref.logistic(x, x_scale=c["scale"], x_zp=c["zp"])


def run_cases(cases: list[dict], model, interpreter: str) -> list[list[np.ndarray]]:
    res = invoke_models([(model(c), [[x] for x in c["xs"]]) for c in cases], interpreter)
    return [[outs[0] for outs in rows] for rows in res]


def tflm(c: dict, x: np.ndarray, opcode: str, options: dict) -> np.ndarray:
    tensors = [TTensor("x", x.shape, "int8", c["scale"], c["zp"]),
               TTensor("y", x.shape, "int8", 1 / 256, -128)]
    return run_tflm(build_tflite(tensors, [TOp(opcode, [0], [1], options)], [0], [1]), [x])[0]


@settings(max_examples=6)
@given(st.lists(softmax_cases(), min_size=60, max_size=60))
def test_softmax_matches_oracle(interpreter: str, cases: list[dict]) -> None:
    for c, got in zip(cases, run_cases(cases, softmax_model, interpreter), strict=True):
        for x, y in zip(c["xs"], got, strict=True):
            np.testing.assert_array_equal(y, oracle_softmax(c, x).ravel(), err_msg=str(c))


@settings(max_examples=4)
@given(st.lists(logistic_cases(), min_size=30, max_size=30))
def test_logistic_matches_oracle(interpreter: str, cases: list[dict]) -> None:
    for c, got in zip(cases, run_cases(cases, logistic_model, interpreter), strict=True):
        want = oracle_logistic(c, np.concatenate([x.ravel() for x in c["xs"]]))  # elementwise
        np.testing.assert_array_equal(np.concatenate(got), want, err_msg=str(c))


@settings(max_examples=4)
@given(st.lists(softmax_cases(), min_size=25, max_size=25),
       st.lists(logistic_cases(), min_size=10, max_size=10))
def test_tinyrt_matches_tflm(softmaxes: list[dict], logistics: list[dict]) -> None:
    """tinyrt (CPython) == TFLM on drawn inputs; every logistic table entry == TFLM."""
    got = run_cases(softmaxes, softmax_model, "cpython")
    for c, ys in zip(softmaxes, got, strict=True):
        for x, y in zip(c["xs"], ys, strict=True):
            want = tflm(c, x, "SOFTMAX", {"beta": c["beta"]})
            np.testing.assert_array_equal(y, want.ravel(), err_msg=str(c))
    got = run_cases(logistics, logistic_model, "cpython")
    for c, ys in zip(logistics, got, strict=True):
        for x, y in zip(c["xs"][:2], ys[:2], strict=True):
            np.testing.assert_array_equal(y, tflm(c, x, "LOGISTIC", {}).ravel(), err_msg=str(c))
        every = tflm(c, np.arange(-128, 128, dtype=np.int8), "LOGISTIC", {})
        np.testing.assert_array_equal(logistic_table(c["scale"], c["zp"]), every, err_msg=str(c))


# Rows of up to 2047 entries: the Q12.19 sum reaches 2047 * 2^19 (just below 2^30, the small-int
# limit) and GetReciprocal's num_bits_over_unit reaches 10 (output shift 33).
LONG_ROWS = [(d, p) for d in (511, 512, 1000, MAX_SOFTMAX_DEPTH) for p in ("equal", "near_max")]


def long_row_cases() -> list[dict]:
    rng = np.random.default_rng(3)
    return [{"scale": f32(s), "zp": 0, "beta": 1.0, "xs": [row_values(rng, p, 1, d)]}
            for d, p in LONG_ROWS for s in (2.0**-20, 0.05)]


def extended_softmax(c: dict, x: np.ndarray) -> np.ndarray:
    """TFLM's arithmetic for a row whose exponential sum reaches 2^28, where TFLM aborts (its
    RoundingDivideByPOT exponent passes 31) and the oracle raises: the same steps with the
    exact rounding division by 2^32 or 2^33, from the converter's exp table."""
    t = softmax_exp_table(c["scale"], c["beta"]).astype(np.int64)
    e = (t[0] << 15) + t[1]
    d = x.max(axis=-1, keepdims=True) - x.astype(np.int64)
    total = ref.rounding_divide_by_pot(e[d], 12).sum(axis=-1, keepdims=True)
    recip, nbou = ref._get_reciprocal(total, 12)
    prod = ref.saturating_rounding_doubling_high_mul(recip, e[d])
    return np.minimum(ref.rounding_divide_by_pot(prod, nbou + 23) - 128, 127)


def test_softmax_long_rows(interpreter: str) -> None:
    cases = long_row_cases()
    aborts = 0
    for c, got in zip(cases, run_cases(cases, softmax_model, interpreter), strict=True):
        x = c["xs"][0]
        try:
            want = oracle_softmax(c, x)
        except ValueError:  # TFLM aborts on this row
            want = extended_softmax(c, x)
            aborts += 1
        np.testing.assert_array_equal(got[0], want.ravel())
    assert 0 < aborts < len(cases)


def test_softmax_long_rows_against_tflm() -> None:
    """TFLM agrees while the row sum stays below 2^28; above it (512+ near-equal entries) its
    RoundingDivideByPOT exponent passes 31 and gemmlowp's assert aborts; tinyrt then gives the
    exact rounding the numpy oracle computes."""
    x = np.full((1, 1000), -128, np.int8)
    x[0, :40] = np.arange(88, 128)
    c = {"scale": f32(0.05), "zp": 3, "beta": 1.0, "xs": [x]}
    np.testing.assert_array_equal(run_cases([c], softmax_model, "cpython")[0][0],
                                  tflm(c, x, "SOFTMAX", {"beta": 1.0}).ravel())
    with pytest.raises(TFLMError):
        tflm(c, np.zeros((1, 512), np.int8), "SOFTMAX", {"beta": 1.0})


# --- converter and prepare checks -------------------------------------------------------------

def test_converter_rejects_what_tflm_rejects() -> None:
    g = Graph()
    x = g.add_activation("x", (1, 10), 2.0**-20, 0)
    with pytest.raises(ValueError, match="2\\^-26"):
        softmax(g, x, beta=2.0**-7)  # beta * scale * 2^26 = 0.5
    with pytest.raises(ValueError, match="row length"):
        softmax(g, g.add_activation("w", (1, MAX_SOFTMAX_DEPTH + 1), 0.1, 0))
    with pytest.raises(ValueError, match="2\\^-28"):
        logistic(g, g.add_activation("z", (4,), 2.0**-30, 0))


def test_converter_output_quantization_is_fixed() -> None:
    g = Graph()
    x = g.add_activation("x", (2, 5), 0.1, 4)
    for y in (softmax(g, x, 1.5), logistic(g, x)):
        t = g.tensors[y]
        assert (t.scale, t.zero_point, t.shape) == (1 / 256, -128, (2, 5))


def test_prepare_rejects_bad_tables() -> None:
    def model(edit) -> bytes:
        g = Graph()
        x = g.add_activation("x", (1, 6), 0.1, 0)
        y = softmax(g, x)
        edit(g.tensors[g.ops[-1].inputs[1]].data)
        g.inputs, g.outputs = [x], [y]
        return serialize(g)

    tinyrt.load(model(lambda t: None))
    for edit in (lambda t: t.__setitem__((0, 0), 5), lambda t: t.__setitem__((1, 9), 1 << 15),
                 lambda t: t.__setitem__((0, 9), -1)):
        with pytest.raises(tinyrt.ModelError, match="exp table"):
            tinyrt.load(model(edit))
