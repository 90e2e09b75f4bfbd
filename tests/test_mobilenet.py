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
from converter import patch
from host_sim.mobilenet import FAMILY, SHALLOW, MobileNetSpec, mobilenet_v1, sample_input
from host_sim.oracle.tflm import run_tflm, tflm_activation_arena_bytes


@lru_cache(maxsize=8)
def _member(spec: MobileNetSpec) -> tuple[bytes, bytes, bytes]:
    """(.tflite, .trt, .trt with its first stage patched) of one member."""
    tfl = mobilenet_v1(spec)
    g = import_tflite(tfl)
    pg, plan = patch.patch(g)
    assert plan is not None
    return tfl, writer.serialize(g), writer.serialize(pg)


def _tflm_outputs(spec: MobileNetSpec, n: int) -> list[list[int]]:
    tfl = _member(spec)[0]
    return [run_tflm(tfl, [sample_input(spec, k)])[0].ravel().tolist() for k in range(n)]


@pytest.mark.parametrize("spec", FAMILY, ids=lambda s: s.name)
def test_family_bit_exact_on_cpython(spec):
    _, trt, patched = _member(spec)
    want = _tflm_outputs(spec, 2)
    for b in (trt, patched):
        m = tinyrt.load(b)
        for k, w in enumerate(want):
            assert m.invoke(sample_input(spec, k).ravel().tolist()).tolist() == w
    assert len(set(map(tuple, want))) > 1 or len(set(want[0])) > 1  # not a constant output


# Loads each member and runs its inputs under heap_lock (invoke() allocates nothing); the
# inputs are read straight into the input tensor (a list of 27,648 ints would not fit m0).
SCRIPT = r"""
import json, micropython, tinyrt
for name, n in json.loads(open("cases.json").read()):
    m = tinyrt.load(name)
    f = open(name + ".x", "rb")
    for k in range(n):
        f.readinto(m.input(0).data)
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


def _board_files(specs, n, which=(1, 2)):
    files, cases = {}, []
    for spec in specs:
        for k in which:
            name = f"{spec.name}_{k}.trt"
            files[name] = _member(spec)[k]
            files[name + ".x"] = b"".join(sample_input(spec, j).tobytes() for j in range(n))
            cases.append([name, n])
    files["cases.json"] = json.dumps(cases)
    return files


def _check(out: str, specs, n, which=(1, 2)):
    got = {}
    for line in out.splitlines():
        if line.startswith("CASE "):
            name, k, y = json.loads(line[5:])
            got[name, k] = y
    for spec in specs:
        want = _tflm_outputs(spec, n)
        for j in which:
            for k in range(n):
                assert got[f"{spec.name}_{j}.trt", k] == want[k], (spec.name, j, k)


def test_family_bit_exact_on_unix():
    out = run(SCRIPT, "unix", files=_board_files(FAMILY, 1), heap=8 << 20).stdout
    _check(out, FAMILY, 1)


def test_patched_mobilenet_on_m0():
    # the shallow member, patched: the full-depth ones' per-channel tables and the unpatched
    # arena do not fit m0's heap together (benchmarks/memory.py prints the figures)
    out = run(SCRIPT, "m0", files=_board_files([SHALLOW], 1, (2,))).stdout
    _check(out, [SHALLOW], 1, (2,))


@pytest.mark.parametrize("spec", FAMILY, ids=lambda s: s.name)
def test_activation_arena_vs_tflm(spec):
    tfl, trt, patched = _member(spec)
    ours = tinyrt.load(trt).file.arena_bytes
    banded = tinyrt.load(patched).file.arena_bytes
    theirs = tflm_activation_arena_bytes(tfl)
    print(f"{spec.name}: arena {ours:,} B, patched {banded:,} B, TFLM non-persistent "
          f"{theirs:,} B: {ours / theirs:.2f}x, patched {banded / theirs:.2f}x")
    assert banded < ours <= theirs
