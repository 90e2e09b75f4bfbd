"""The MobileNetV1 96x96 test family (issue 15, host_sim.mobilenet) against tflite-micro:
bit-exact outputs and the activation arena beside TFLM's non-persistent arena."""

from __future__ import annotations

import json
from functools import lru_cache

import pytest

import tinyrt
from converter import writer
from converter.tflite_import import import_tflite
from host_sim import run
from host_sim.mobilenet import FAMILY, MobileNetSpec, mobilenet_v1, sample_input
from host_sim.oracle.tflm import run_tflm, tflm_activation_arena_bytes


@lru_cache(maxsize=8)
def _member(spec: MobileNetSpec) -> tuple[bytes, bytes]:
    """(.tflite, .trt) of one member."""
    tfl = mobilenet_v1(spec)
    return tfl, writer.serialize(import_tflite(tfl))


def _tflm_outputs(spec: MobileNetSpec, n: int) -> list[list[int]]:
    tfl, _ = _member(spec)
    return [run_tflm(tfl, [sample_input(spec, k)])[0].ravel().tolist() for k in range(n)]


@pytest.mark.parametrize("spec", FAMILY, ids=lambda s: s.name)
def test_family_bit_exact_on_cpython(spec):
    _, trt = _member(spec)
    m = tinyrt.load(trt)
    want = _tflm_outputs(spec, 2)
    for k, w in enumerate(want):
        assert m.invoke(sample_input(spec, k).ravel().tolist()).tolist() == w
    assert len(set(map(tuple, want))) > 1 or len(set(want[0])) > 1  # not a constant output


# Loads each member and runs its inputs under heap_lock (invoke() allocates nothing).
SCRIPT = r"""
import json, micropython, tinyrt
for name, n in json.loads(open("cases.json").read()):
    m = tinyrt.load(name)
    f = open(name + ".x", "rb")
    for k in range(n):
        x = f.read(m.input(0).size)
        m.input(0).set([v - 256 if v > 127 else v for v in x])
        micropython.heap_lock()
        try:
            m.invoke()
        finally:
            micropython.heap_unlock()
        print("CASE " + json.dumps([name, k, m.output(0).tolist()]))
    f.close()
    m.close()
    del m
"""


def _board_files(specs, n):
    files, cases = {}, []
    for spec in specs:
        name = spec.name + ".trt"
        files[name] = _member(spec)[1]
        files[name + ".x"] = b"".join(sample_input(spec, k).tobytes() for k in range(n))
        cases.append([name, n])
    files["cases.json"] = json.dumps(cases)
    return files


def _check(out: str, specs, n):
    got = {}
    for line in out.splitlines():
        if line.startswith("CASE "):
            name, k, y = json.loads(line[5:])
            got[name, k] = y
    for spec in specs:
        want = _tflm_outputs(spec, n)
        for k in range(n):
            assert got[spec.name + ".trt", k] == want[k], (spec.name, k)


def test_family_bit_exact_on_unix():
    out = run(SCRIPT, "unix", files=_board_files(FAMILY, 2), heap=8 << 20).stdout
    _check(out, FAMILY, 2)


@pytest.mark.parametrize("spec", FAMILY, ids=lambda s: s.name)
def test_activation_arena_vs_tflm(spec):
    tfl, trt = _member(spec)
    ours = tinyrt.load(trt).file.arena_bytes
    theirs = tflm_activation_arena_bytes(tfl)
    print(f"{spec.name}: arena {ours:,} B, TFLM non-persistent {theirs:,} B, "
          f"{ours / theirs:.2f}x")
    assert ours <= theirs
