"""LEAKY_RELU, RELU, RELU6, HARD_SWISH, TANH, SUB, MAXIMUM and MINIMUM (int8), issue 13.

Each case is a one-op .tflite written with host_sim.oracle.tflm.build_tflite; tflite-micro runs
it, tinyrt converts it, and the converted model runs on every interpreter (all cases in one
process, invoke() under heap_lock): outputs must equal TFLM's to the bit. Unary cases feed all
256 int8 values (so the op's table is checked whole); scales, zero points, alpha and
broadcast shapes are drawn from a seeded generator."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pytest

from converter.layers import unary
from converter.tflite_import import UnsupportedModelError, import_tflite
from converter.writer import serialize
from host_sim.device import invoke_models
from host_sim.oracle.tflm import TOp, TTensor, build_tflite, run_tflm

UNARY = ("LEAKY_RELU", "RELU", "RELU6", "HARD_SWISH", "TANH")
BINARY = ("SUB", "MAXIMUM", "MINIMUM")
CASES_PER_OP = 10
ALL_INT8 = np.arange(-128, 128, dtype=np.int8)
BROADCASTS = (((2, 3, 4, 5), (2, 3, 4, 5)), ((1, 3, 4, 5), (5,)), ((3, 1, 5), (1, 4, 1)),
              ((2, 1, 4, 1), (1, 3, 1, 6)), ((7,), (1,)), ((4, 5), (4, 5)))


def _scale(rng: np.random.Generator, lo: float = 0.003, hi: float = 0.6) -> float:
    return float(np.float32(np.exp(rng.uniform(np.log(lo), np.log(hi)))))


def _unary_case(op: str, rng: np.random.Generator) -> tuple[bytes, list[list[np.ndarray]]]:
    xs, xz = _scale(rng), int(rng.integers(-128, 128))
    ys, yz = _scale(rng), int(rng.integers(-128, 128))
    opts = {}
    if op == "TANH":
        ys, yz = 1.0 / 128, 0
    if op == "LEAKY_RELU":
        opts["alpha"] = float(rng.choice([0.01, 0.1, 0.2, 0.3, 0.5, -0.25, 1.7, 0.0]))
    if op == "HARD_SWISH":
        ys = max(ys, xs / 100)  # TFLM refuses an output scale below input scale / 128
    shape = (2, 8, 16)
    t = [TTensor("x", shape, "int8", xs, xz), TTensor("y", shape, "int8", ys, yz)]
    tfl = build_tflite(t, [TOp(op, [0], [1], opts)], [0], [1])
    ex = [[ALL_INT8.reshape(shape)], [rng.permutation(ALL_INT8).reshape(shape)]]
    return tfl, ex


def _binary_case(op: str, rng: np.random.Generator) -> tuple[bytes, list[list[np.ndarray]]]:
    a, b = BROADCASTS[int(rng.integers(len(BROADCASTS)))]
    if rng.random() < 0.5:
        a, b = b, a
    out = tuple(int(d) for d in np.broadcast_shapes(a, b))
    s1, s2 = _scale(rng), _scale(rng)
    z1, z2 = int(rng.integers(-128, 128)), int(rng.integers(-128, 128))
    if op == "SUB":
        so, zo = _scale(rng, 0.01), int(rng.integers(-128, 128))
        opts = {"fused_activation_function": str(rng.choice(["NONE", "RELU", "RELU6"]))}
    else:  # the converter's usual case: one quantization for all three (TFLM ignores it)
        s2, z2, so, zo, opts = s1, z1, s1, z1, {}
    t = [TTensor("x1", a, "int8", s1, z1), TTensor("x2", b, "int8", s2, z2),
         TTensor("y", out, "int8", so, zo)]
    tfl = build_tflite(t, [TOp(op, [0, 1], [2], opts)], [0, 1], [2])
    ex = [[rng.integers(-128, 128, a, dtype=np.int8), rng.integers(-128, 128, b, dtype=np.int8)]
          for _ in range(3)]
    ex[0] = [np.full(a, -128, np.int8), np.full(b, 127, np.int8)]
    return tfl, ex


@lru_cache(maxsize=None)
def cases() -> tuple:
    """(op, model file, examples, TFLM outputs) for every op."""
    out = []
    for k, op in enumerate(UNARY + BINARY):
        rng = np.random.default_rng(1000 + k)
        for _ in range(CASES_PER_OP):
            tfl, ex = (_unary_case if op in UNARY else _binary_case)(op, rng)
            want = [run_tflm(tfl, e)[0].ravel().astype(np.int64) for e in ex]
            out.append((op, serialize(import_tflite(tfl)), ex, want))
    return tuple(out)


def test_ops_match_tflm(interpreter: str) -> None:
    cs = cases()
    got = invoke_models([(m, ex) for _, m, ex, _ in cs], interpreter)
    counts: dict[str, int] = {}
    for (op, _, _, want), rows in zip(cs, got):
        for w, (y,) in zip(want, rows):
            np.testing.assert_array_equal(y, w, err_msg=f"{op} on {interpreter}")
        counts[op] = counts.get(op, 0) + 1
    assert counts == {op: CASES_PER_OP for op in UNARY + BINARY}


def test_tables_match_tflm_widely() -> None:
    """More draws on the host: each op's table equals TFLM's outputs for all 256 inputs."""
    rng = np.random.default_rng(7)
    for _ in range(40):
        for op in UNARY:
            tfl, ex = _unary_case(op, rng)
            want = run_tflm(tfl, ex[0])[0].ravel()
            g = import_tflite(tfl)
            table = next(t.data for t in g.tensors if t.is_const)
            np.testing.assert_array_equal(table, want, err_msg=op)


def test_refusals() -> None:
    t = [TTensor("x", (4,), "int8", 0.1, 0), TTensor("y", (4,), "int8", 0.1, 0)]
    with pytest.raises(UnsupportedModelError, match="TANH needs scale 1/128"):
        import_tflite(build_tflite(t, [TOp("TANH", [0], [1])], [0], [1]))
    with pytest.raises(ValueError, match="output multiplier exponent"):
        unary.hard_swish_table(1.0, 0, 0.001, 0)


def test_convert_lists_every_problem_at_once() -> None:
    """An unsupported op, a refused TANH and an FC whose 40000-product sums exceed 31 bits:
    all three named."""
    w = np.full((1, 40000), 127, np.int8)
    t = [TTensor("x", (1, 40000), "int8", 1.0, 0),
         TTensor("a", (1, 40000), "int8", 1.0, 0),
         TTensor("b", (1, 40000), "int8", 0.1, 0),
         TTensor("w", (1, 40000), "int8", [2e-7], 0, 0, w),
         TTensor("bias", (1,), "int32", [2e-7], 0, 0, np.array([1 << 30])),
         TTensor("y", (1, 1), "int8", 1.0, -128)]
    ops = [TOp("SIN", [0], [1]), TOp("TANH", [1], [2]), TOp("FULLY_CONNECTED", [2, 3, 4], [5])]
    with pytest.raises(UnsupportedModelError) as e:
        import_tflite(build_tflite(t, ops, [0], [5]))
    msg = str(e.value)
    assert msg.startswith("op 0 (SIN) is not supported by tinyrt")
    assert "2 more problem(s) stop this model" in msg
    assert "op 1 (TANH): output scale" in msg
    assert "op 2 (FULLY_CONNECTED)" in msg and "40000 products per output" in msg


def test_sub_every_input_pair_matches_tflm() -> None:
    """All 65536 (x1, x2) pairs through SUB for a few quantizations (cpython): the multipliers
    are ADD's, formed in double (float32 ones differ, e.g. for scales 0.05, 0.03 -> 0.08)."""
    a = np.repeat(ALL_INT8, 256)
    b = np.tile(ALL_INT8, 256)
    rng = np.random.default_rng(11)
    qs = [(0.05, 3, 0.03, -5, 0.08, -10)] + [
        (_scale(rng), int(rng.integers(-128, 128)), _scale(rng), int(rng.integers(-128, 128)),
         _scale(rng, 0.01), int(rng.integers(-128, 128))) for _ in range(3)]
    models, wants = [], []
    for s1, z1, s2, z2, so, zo in qs:
        t = [TTensor("a", a.shape, "int8", s1, z1), TTensor("b", b.shape, "int8", s2, z2),
             TTensor("y", a.shape, "int8", so, zo)]
        tfl = build_tflite(t, [TOp("SUB", [0, 1], [2])], [0, 1], [2])
        wants.append(run_tflm(tfl, [a, b])[0])
        models.append((serialize(import_tflite(tfl)), [[a, b]]))
    for want, rows in zip(wants, invoke_models(models, "cpython")):
        np.testing.assert_array_equal(rows[0][0], want)
