"""SVDF (int8, issue 13) against tflite-micro: its state is a variable tensor kept across
invoke()s, so each case is a sequence of examples run twice on every interpreter (one process,
one boot of an emulated board, invoke() under heap_lock): with the state carried from one
example to the next (== TFLM invoked on the same interpreter in order) and with Model.reset()
before each (== TFLM's Reset() before each). int16 state (TFLite's usual) and int8 state,
rank 1 and 2. (Without its optional bias the tflite-micro build we test against segfaults in
SVDF, so every case has one; tinyrt runs the bias-less op with zeros.)"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pytest
import tflite_micro

from converter.tflite_import import UnsupportedModelError, import_tflite
from converter.writer import serialize
from host_sim.device import invoke_models
from host_sim.oracle.tflm import TOp, TTensor, build_tflite

CASES = 8
STEPS = 4  # examples per sequence


def _scale(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.float32(np.exp(rng.uniform(np.log(lo), np.log(hi)))))


def svdf_model(rng: np.random.Generator, state: str) -> tuple[bytes, tuple]:
    b, n_in, rank, units, mem = (int(rng.integers(1, 3)), int(rng.integers(1, 9)),
                                 int(rng.integers(1, 3)), int(rng.integers(1, 4)),
                                 int(rng.integers(1, 7)))
    f = units * rank
    lim = 32767 if state == "int16" else 127
    s_st = _scale(rng, 1e-4, 0.1)
    s_wt = _scale(rng, 1e-5, 1e-3) if state == "int16" else _scale(rng, 1e-3, 0.1)
    t = [TTensor("x", (b, n_in), "int8", _scale(rng, 0.003, 0.6), int(rng.integers(-128, 128))),
         TTensor("weights_feature", (f, n_in), "int8", _scale(rng, 0.001, 0.05), 0, 0,
                 rng.integers(-127, 128, (f, n_in)).astype(np.int8)),
         TTensor("weights_time", (f, mem), state, s_wt, 0, 0,
                 rng.integers(-lim, lim + 1, (f, mem)).astype(state)),
         TTensor("bias", (units,), "int32", s_st * s_wt, 0, 0,
                 rng.integers(-200000, 200000, units).astype(np.int32)),
         TTensor("state", (b, f * mem), state, s_st,
                 0 if state == "int16" else int(rng.integers(-128, 128)), variable=True),
         TTensor("y", (b, units), "int8", _scale(rng, 0.01, 1.0), int(rng.integers(-128, 128)))]
    return build_tflite(t, [TOp("SVDF", [0, 1, 2, 3, 4], [5], {"rank": rank})], [0], [5]), \
        (b, n_in)


def tflm_sequence(tfl: bytes, xs: list[np.ndarray], reset: bool) -> list[np.ndarray]:
    it = tflite_micro.runtime.Interpreter.from_bytes(tfl)
    out = []
    for x in xs:
        if reset:
            it.reset()
        it.set_input(x, 0)
        it.invoke()
        out.append(it.get_output(0).ravel().astype(np.int64))
    return out


@lru_cache(maxsize=None)
def cases() -> tuple:
    """(model file, examples, TFLM carried outputs, TFLM reset outputs) per case."""
    rng = np.random.default_rng(2700)
    out = []
    for k in range(CASES):
        tfl, shape = svdf_model(rng, "int16" if k % 4 else "int8")
        xs = [rng.integers(-128, 128, shape, dtype=np.int8) for _ in range(STEPS)]
        out.append((serialize(import_tflite(tfl)), [[x] for x in xs],
                    tflm_sequence(tfl, xs, False), tflm_sequence(tfl, xs, True)))
    return tuple(out)


def test_svdf_matches_tflm(interpreter: str) -> None:
    cs = cases()
    runs = [(m, ex) for m, ex, _, _ in cs]
    carried = invoke_models(runs, interpreter, reset=False)
    fresh = invoke_models(runs, interpreter, reset=True)
    for (_, _, want_carried, want_fresh), got_c, got_f in zip(cs, carried, fresh):
        for w, (y,) in zip(want_carried, got_c):
            np.testing.assert_array_equal(y, w, err_msg=f"SVDF state carried on {interpreter}")
        for w, (y,) in zip(want_fresh, got_f):
            np.testing.assert_array_equal(y, w, err_msg=f"SVDF after reset on {interpreter}")
    # the state matters: carried and fresh outputs differ somewhere
    assert any(not np.array_equal(a, b) for _, _, c, f in cs for a, b in zip(c, f))


def test_svdf_refusals() -> None:
    rng = np.random.default_rng(1)
    tfl, _ = svdf_model(rng, "int16")
    import_tflite(tfl)  # the well-formed model converts
    t = [TTensor("x", (1, 4), "int8", 0.1, 0),
         TTensor("wf", (2, 4), "int8", 0.01, 0, 0, np.ones((2, 4), np.int8)),
         TTensor("wt", (2, 3), "int16", 0.001, 0, 0, np.ones((2, 3), np.int16)),
         TTensor("s", (1, 6), "int16", 0.01, 0),  # not variable
         TTensor("y", (1, 2), "int8", 0.1, 0)]
    with pytest.raises(UnsupportedModelError, match="not variable"):
        import_tflite(build_tflite(t, [TOp("SVDF", [0, 1, 2, -1, 3], [4], {"rank": 1})],
                                   [0], [4]))
