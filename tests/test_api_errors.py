"""The public Python API on every interpreter: each documented form of each call works (load
from a path, bytes, bytearray or array('b') used in place, streamed or whole; invoke(x) with a
list, tuple, array('b') or bytes; set / quantize / tolist / dequantize / summary / profile /
close / the Tensor attributes), and each bad call raises a tinyrt error (a ValueError) whose
message says what was expected. One script per interpreter runs every case (an emulated board
boots once); it prints one tab-separated line per case: name, "ok" or the error's class, and the
JSON result or the message."""

from __future__ import annotations

import json
from functools import cache

import numpy as np
import pytest

import tinyrt

from converter import writer
from converter.graph import Graph
from converter.layers import binary
from host_sim import run
from tests.models import mlp_model

MLP = mlp_model()  # input (1, 16) int8 (scale 0.05, zero point -3), output (1, 4) int8
X = [int(v) for v in np.random.default_rng(3).integers(-128, 128, 16)]
SMALL = [abs(v) % 8 for v in X]  # the same as bytes (0..127)
REALS = [round(0.1 * (i - 8), 2) for i in range(16)]


def packed_model() -> bytes:
    g = Graph()
    x = g.add_activation("x", (1, 40), 1.0, 0, "packed")  # 2 words, 8 bits of the second used
    g.inputs.append(x)
    g.outputs.append(binary.unbinarize(g, x, 1.0, 0))
    return writer.serialize(g)


SCRIPT = r"""
import json, micropython, tinyrt
from array import array

def report(name, fn):
    try:
        print(name + "\tok\t" + json.dumps(fn()))
    except tinyrt.TinyrtError as e:
        print("%s\t%s\t%s\t%s" % (name, type(e).__name__, e, isinstance(e, ValueError)))
    except Exception as e:
        print(name + "\tUNEXPECTED " + type(e).__name__ + "\t" + str(e))

f = open("mlp.trt", "rb")
raw = f.read()
f.close()
case = json.loads(open("case.json").read())
X = case["x"]
SMALL = case["small"]
REALS = case["reals"]

def run_with(src, stream=None, x=X):
    m = tinyrt.load(src, stream=stream)
    out = m.invoke(x).tolist()
    mode = m.stream is not None
    m.close()
    return [out, mode]

# -- every documented form --------------------------------------------------------------------
report("load path", lambda: run_with("mlp.trt"))
report("load path stream=True", lambda: run_with("mlp.trt", True))
report("load path stream=False", lambda: run_with("mlp.trt", False))
report("load bytes", lambda: run_with(raw))
report("load bytearray", lambda: run_with(bytearray(raw)))
report("load array('b')", lambda: run_with(array("b", raw)))

def in_place():
    a = array("b", raw)
    m = tinyrt.load(a)
    return m.file.buf is a

report("load array('b') in place", in_place)
report("load array('B')", lambda: run_with(array("B", raw)))

m = tinyrt.load("mlp.trt")
report("invoke list", lambda: m.invoke(X).tolist())
report("invoke tuple", lambda: m.invoke(tuple(X)).tolist())
report("invoke array('b')", lambda: m.invoke(array("b", X)).tolist())
report("invoke bytes", lambda: m.invoke(bytes(SMALL)).tolist())
report("invoke list small", lambda: m.invoke(SMALL).tolist())

def set_then_invoke():
    m.input(0).set(X)
    back = m.input(0).tolist()
    y = m.invoke()
    return [back, y.tolist(), m.output(0).tolist(), m.output(0)[0], len(m.output(0))]

report("set, invoke()", set_then_invoke)

def quantize():
    m.input(0).quantize(REALS)
    q = m.input(0).tolist()
    m.invoke()
    return [q, m.output(0).tolist(), m.output(0).dequantize()]

report("quantize, invoke()", quantize)

def attributes():
    t = m.input(0)
    o = m.output(0)
    r = [t.index, t.name, t.dtype, list(t.shape), t.scale, t.zero_point, t.size, len(t),
         m.n_inputs, m.n_outputs, o.index, o.name, list(o.shape), repr(o), str(o)]
    return r + [repr(t)]

report("tensor attributes", attributes)
def saturate():
    m.input(0).quantize([1e30] * 8 + [-1e30] * 8)
    return m.input(0).tolist()

report("quantize saturates", saturate)
report("metadata, macs", lambda: [m.metadata(), m.macs(0), m.macs(1)])

def heap_locked():
    x = X  # made before the lock
    micropython.heap_lock()
    try:
        m.invoke(x)
    finally:
        micropython.heap_unlock()
    a = m.output(0).tolist()
    m.input(0).set(x)  # the arena reuses the input's memory: set it before each invoke
    micropython.heap_lock()
    try:
        m.invoke()
    finally:
        micropython.heap_unlock()
    return [a, m.output(0).tolist()]

report("invoke under heap_lock", heap_locked)
print("--- summary")
m.summary()
print("--- profile")
rows = m.profile(2)
report("profile rows", lambda: [[r[0], r[1] >= 0] for r in rows])
m.input(0).set(X)
m.profile()
report("output after profile", lambda: m.output(0).tolist())

pm = tinyrt.load("packed.trt")
def packed():
    pm.input(0).set([-1, 0xFF])
    return [pm.input(0).tolist(), pm.invoke().tolist()]

report("packed set words", packed)

# -- each bad call ----------------------------------------------------------------------------
m = tinyrt.load("mlp.trt")
report("output before invoke", lambda: m.output(0).tolist())
report("invoke float list", lambda: m.invoke([0.5] * 16))
report("invoke float out of range", lambda: m.invoke([300.0] * 16))
report("invoke str", lambda: m.invoke("abc"))
report("invoke str of 16", lambda: m.invoke("a" * 16))
report("invoke list of None", lambda: m.invoke([None] * 16))
report("invoke int scalar", lambda: m.invoke(5))
report("invoke generator", lambda: m.invoke(v for v in X))
report("invoke bytearray > 127", lambda: m.invoke(bytearray(range(120, 136))))
report("invoke wrong length", lambda: m.invoke([1, 2, 3]))
report("invoke int out of range", lambda: m.invoke([200] + X[1:]))
m.invoke(X)
report("invoke refuses x after a good one", lambda: m.invoke([0.5] * 16))
report("dequantize after refused x", lambda: m.output(0).dequantize())
m.invoke(X)
report("output after a good invoke again", lambda: m.output(0).tolist())
m.input(0).set(X)
report("output after input set", lambda: m.output(0).tolist())

class Boom:
    def eval(self):
        raise RuntimeError("boom")

good = m.kernels[1]
m.kernels[1] = Boom()  # a kernel failing mid-invoke: output 0 holds a stale value
report("invoke with a failing kernel", lambda: m.invoke(X))
report("dequantize after failed invoke", lambda: m.output(0).dequantize())
report("tolist after failed invoke", lambda: m.output(0).tolist())
report("index after failed invoke", lambda: m.output(0)[0])
report("repr after failed invoke", lambda: repr(m.output(0)))
m.kernels[1] = good
report("quantize str", lambda: m.input(0).quantize("abc"))
report("quantize list of str", lambda: m.input(0).quantize(["a"] * 16))
report("quantize NaN", lambda: m.input(0).quantize([float("nan")] * 16))
report("quantize inf", lambda: m.input(0).quantize([0.0] * 15 + [float("inf")]))
report("quantize -inf", lambda: m.input(0).quantize([float("-inf")] * 16))
report("input(5)", lambda: m.input(5))
report("output(2)", lambda: m.output(2))
report("packed invoke floats", lambda: pm.invoke([0.5, 1.5]))
report("packed set None", lambda: pm.input(0).set([None, 0]))
sm = tinyrt.load("mlp.trt", stream=True)
sm.invoke(X)
sm.close()
report("streamed invoke after close", lambda: sm.invoke(X))
report("streamed output after close", lambda: sm.output(0).tolist())
m.close()
report("whole invoke after close", lambda: m.invoke(X))
report("profile after close", lambda: m.profile())
report("load directory", lambda: tinyrt.load("sub"))
report("load int", lambda: tinyrt.load(123))
report("load list", lambda: tinyrt.load([1, 2, 3]))
print("--- end")
"""

# bad call -> (error class, a phrase its message must contain)
BAD = {
    "output before invoke": ("ModelError", "has not run yet: m.invoke() computes it"),
    "invoke float list": ("ShapeError", "got float 0.5 at 0: m.input(i).quantize(reals)"),
    "invoke float out of range": ("ShapeError", "got float 300.0 at 0: m.input(i).quantize"),
    "invoke str": ("ShapeError", "takes a sequence of 16 int8 values (list, tuple or array), "
                                 "got str 'abc'"),
    "invoke str of 16": ("ShapeError", "takes a sequence of 16 int8 values"),
    "invoke list of None": ("ShapeError", "takes int8 values (ints in [-128, 127]), got "
                                          "NoneType None at 0"),
    "invoke int scalar": ("ShapeError", "sequence of 16 int8 values (list, tuple or array), "
                                        "got int 5"),
    "invoke generator": ("ShapeError", "got generator (list(...) it first"),
    "invoke bytearray > 127": ("ShapeError", "byte 128 at 8 of a bytearray is not one: bytes "
                                             "and bytearray hold 0..255, give int8 values as "
                                             "array('b', ...)"),
    "invoke wrong length": ("ShapeError", "takes 16 values (shape (1, 16)), got 3"),
    "invoke int out of range": ("ShapeError", "value 200 at 0 is outside int8 [-128, 127]"),
    "invoke refuses x after a good one": ("ShapeError", "quantize(reals)"),
    "dequantize after refused x": ("ModelError", "holds no result: an input was set after the "
                                                 "last invoke() (or invoke(x) refused its x)"),
    "output after input set": ("ModelError", "an input was set after the last invoke()"),
    "dequantize after failed invoke": ("ModelError", "holds no result: the last invoke() "
                                                     "failed (its error said why)"),
    "tolist after failed invoke": ("ModelError", "the last invoke() failed"),
    "index after failed invoke": ("ModelError", "the last invoke() failed"),
    "quantize str": ("ShapeError", "takes a sequence of 16 real numbers"),
    "quantize list of str": ("ShapeError", "quantize() takes real numbers (int or float), got "
                                           "str 'a' at 0"),
    "quantize NaN": ("ShapeError", "quantize() takes finite real numbers, got nan at 0"),
    "quantize inf": ("ShapeError", "quantize() takes finite real numbers, got inf at 15"),
    "quantize -inf": ("ShapeError", "finite real numbers, got -inf at 0"),
    "input(5)": ("ShapeError", "the model has 1 input: input(0); got input(5)"),
    "output(2)": ("ShapeError", "the model has 1 output: output(0); got output(2)"),
    "packed invoke floats": ("ShapeError", "(packed) takes int32 words (ints), got float 0.5 "
                                           "at 0: a packed tensor takes its channels' signs "
                                           "bit-packed into words (channel c -> bit c % 32"),
    "packed set None": ("ShapeError", "takes int32 words (ints), got NoneType None at 0"),
    "streamed invoke after close": ("ModelError", "the model is closed (close() was called)"),
    "whole invoke after close": ("ModelError", "the model is closed"),
    "profile after close": ("ModelError", "the model is closed"),
    "load directory": ("ModelError", "'sub' is a directory, not a model file"),
    "load int": ("ModelError", "load() takes a path (str) or a buffer (bytes, bytearray, "
                               "array('b')), got int"),
    "load list": ("ModelError", "got list"),
}


@cache
def _results(interpreter: str) -> tuple[dict[str, tuple[str, str, str]], str]:
    files = {"mlp.trt": MLP, "packed.trt": packed_model(), "sub/x.bin": b"not a model",
             "case.json": json.dumps({"x": X, "small": SMALL, "reals": REALS})}
    out = run(SCRIPT, interpreter, files=files).stdout
    assert out.rstrip().endswith("--- end"), out[-2000:]
    rows = {}
    for line in out.splitlines():
        parts = line.split("\t")
        if len(parts) >= 3:
            rows[parts[0]] = (parts[1], parts[2], parts[3] if len(parts) > 3 else "")
    return rows, out


def _expected() -> dict:
    """The documented forms' results, from tinyrt on this CPython process."""
    def y(x):
        return tinyrt.load(MLP).invoke(x).tolist()

    m = tinyrt.load(MLP)
    m.input(0).quantize(REALS)
    q = m.input(0).tolist()
    qy = m.invoke().tolist()
    return {"x": y(X), "small": y(SMALL), "q": q, "qy": qy,
            "deq": [(v - m.output(0).zero_point) * m.output(0).scale for v in qy]}


def test_every_documented_form_works(interpreter):
    rows, out = _results(interpreter)
    exp = _expected()
    ok = {name: json.loads(r[1]) for name, r in rows.items() if r[0] == "ok"}
    for name in ("load path", "load path stream=False", "load bytes", "load bytearray",
                 "load array('b')", "load array('B')"):
        assert ok.get(name) == [exp["x"], False], (name, rows.get(name))
    assert ok.get("load path stream=True") == [exp["x"], True], rows.get("load path stream=True")
    assert ok.get("load array('b') in place") is True, rows.get("load array('b') in place")
    for name in ("invoke list", "invoke tuple", "invoke array('b')", "output after profile"):
        assert ok.get(name) == exp["x"], (name, rows.get(name))
    assert ok.get("invoke under heap_lock") == [exp["x"]] * 2, rows.get("invoke under heap_lock")
    assert ok["invoke bytes"] == ok["invoke list small"] == exp["small"]
    back, y, y0, first, n = ok["set, invoke()"]
    assert back == X and y == y0 == exp["x"] and first == y[0] and n == 4
    q, qy, deq = ok["quantize, invoke()"]
    assert q == exp["q"] and qy == exp["qy"]
    assert deq == pytest.approx(exp["deq"], rel=1e-6)  # float32 on the boards
    assert ok["quantize saturates"] == [127] * 8 + [-128] * 8
    attrs = ok["tensor attributes"]
    assert attrs[:3] == [0, "x", "int8"] and attrs[3] == [1, 16]
    assert attrs[4] == pytest.approx(0.05) and attrs[5:10] == [-3, 16, 16, 1, 1]
    assert attrs[11] == "fc2/out" and attrs[12] == [1, 4]
    # print(tensor) / repr: shape, dtype and the first values (the output's: the last invoke)
    assert attrs[13] == attrs[14]
    assert attrs[13].endswith(" %s>" % json.dumps(exp["qy"])), attrs[13]
    assert attrs[13].startswith("<Tensor 7 'fc2/out' int8 (1, 4) scale=0.2 zero_point=-1 [")
    assert attrs[15].startswith("<Tensor 0 'x' int8 (1, 16) scale=0.05 zero_point=-3 [")
    assert attrs[15].endswith(", ...]>")
    assert ok["metadata, macs"] == [tinyrt.load(MLP).metadata(), 128, 32]
    assert ok["profile rows"] == [["FULLY_CONNECTED", True]] * 2
    assert ok["packed set words"] == [[-1, 255], [-1] * 40]
    assert "tinyrt model: 2 ops" in out and "arena map" in out
    assert "total " in out and "us per invoke (2 runs)" in out
    assert ok["repr after failed invoke"].endswith("(no result: invoke() first)>")
    assert ok["output after a good invoke again"] == exp["x"]
    assert rows["invoke with a failing kernel"][:2] == ("UNEXPECTED RuntimeError", "boom")


def test_each_bad_call_raises_a_tinyrt_error_saying_what_was_expected(interpreter):
    rows, _ = _results(interpreter)
    for name, (cls, phrase) in BAD.items():
        got = rows.get(name)
        assert got is not None, name
        assert got[0] == cls, (name, got)
        assert phrase in got[1], (name, got)
        assert got[2] == "True", (name, "a ValueError too")
