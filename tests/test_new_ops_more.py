"""DEQUANTIZE (int8 -> float32) against tflite-micro on every interpreter, tinyrt run on a
float32-output model, and the new ops' refusals (tests/test_new_ops.py has the int8 ops)."""

from __future__ import annotations

import json
from functools import lru_cache

import numpy as np
import pytest

from converter.tflite_import import UnsupportedModelError, import_tflite
from converter.writer import serialize
from host_sim import cli
from host_sim.interpreters import run
from host_sim.oracle.tflm import TOp, TTensor, build_tflite, run_tflm

from .test_new_ops import CASES_PER_OP, _i32, _scale


# DEQUANTIZE's output is float32: read back as its raw bytes (exact on every interpreter, no
# float formatting between) and through Output.tolist(), invoke() under heap_lock
DEQUANTIZE_SCRIPT = """
import json, micropython, tinyrt
for k in range(N):
    m = tinyrt.load("m%d.trt" % k)
    m.input(0).set(json.loads(open("x%d.json" % k).read()))
    o = m.output(0)
    micropython.heap_lock()
    try:
        m.invoke()
    finally:
        micropython.heap_unlock()
    print(json.dumps([list(o.data), o.tolist()]))
"""


@lru_cache(maxsize=None)
def dequantize_cases() -> tuple[dict, list[np.ndarray]]:
    rng = np.random.default_rng(1399)
    files, wants = {}, []
    for k in range(CASES_PER_OP):
        shape = [(256,), (2, 128), (4, 4, 16), (1, 2, 8, 16)][k % 4]
        t = [TTensor("x", shape, "int8", _scale(rng, 1e-4, 10.0), int(rng.integers(-128, 128))),
             TTensor("y", shape, "float32")]
        tfl = build_tflite(t, [TOp("DEQUANTIZE", [0], [1])], [0], [1])
        x = rng.permutation(np.arange(-128, 128)).astype(np.int8).reshape(shape)
        wants.append(run_tflm(tfl, [x])[0].ravel())
        files[f"m{k}.trt"] = serialize(import_tflite(tfl))
        files[f"x{k}.json"] = str(x.ravel().tolist())
    return files, wants


def test_dequantize_matches_tflm(interpreter: str) -> None:
    files, wants = dequantize_cases()
    r = run(DEQUANTIZE_SCRIPT.replace("N", str(len(wants))), interpreter, files=files)
    lines = r.stdout.strip().split("\n")
    assert len(lines) == len(wants), r.stdout[-2000:] + r.stderr[-2000:]
    for line, want in zip(lines, wants):
        raw, values = json.loads(line)
        got = np.array(raw, np.int64).astype(np.uint8).view("<f4")
        np.testing.assert_array_equal(got.view("<i4"), want.view("<i4"), err_msg=interpreter)
        # tolist() gives those floats; single-precision boards print them with 8 digits, which
        # can land one float32 step away when parsed back (the bytes above are the exact check)
        np.testing.assert_allclose(np.array(values, np.float64), want, rtol=2.0 ** -22)


def test_tinyrt_run_gives_dequantize_floats(tmp_path) -> None:
    """tinyrt convert + tinyrt run on an int8 -> float32 model: the saved output is float32,
    equal to TFLM's (unix port, invoke under heap_lock)."""
    t = [TTensor("x", (3, 4), "int8", 0.0371, -7), TTensor("y", (3, 4), "float32")]
    tfl = tmp_path / "deq.tflite"
    tfl.write_bytes(build_tflite(t, [TOp("DEQUANTIZE", [0], [1])], [0], [1]))
    x = np.random.default_rng(3).integers(-128, 128, (5, 3, 4)).astype(np.int8)
    np.save(tmp_path / "x.npy", x)
    trt, out = tmp_path / "deq.trt", tmp_path / "y.npy"
    assert cli.main(["convert", str(tfl), "-o", str(trt)]) == 0
    assert cli.main(["run", str(trt), "--input", str(tmp_path / "x.npy"), "--output",
                     str(out)]) == 0
    y = np.load(out)
    assert y.dtype == np.float32 and y.shape == (5, 3, 4)
    for i in range(5):
        np.testing.assert_array_equal(y[i], run_tflm(tfl.read_bytes(), [x[i]])[0])


def test_refusals() -> None:
    x = TTensor("x", (4, 5), "int8", 0.1, 0)
    idx = TTensor("i", (2,), "int32")
    y = TTensor("y", (2, 5), "int8", 0.1, 0)
    with pytest.raises(UnsupportedModelError, match=r"GATHER\): input tensor 1 'i' is int32"):
        import_tflite(build_tflite([x, idx, y], [TOp("GATHER", [0, 1], [2])], [0, 1], [2]))
    t = [x, _i32([0, 0]), _i32([2, 5]), _i32([1, 1]), y]
    with pytest.raises(UnsupportedModelError, match="ellipsis_mask"):
        import_tflite(build_tflite(t, [TOp("STRIDED_SLICE", [0, 1, 2, 3], [4],
                                           {"ellipsis_mask": 1})], [0], [4]))
