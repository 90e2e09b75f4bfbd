"""Streaming weights: a model whose file does not fit the heap runs with only its tables in RAM,
each layer's weights read from the open file into one scratch buffer during invoke() — with no
allocation inside invoke() and the same bits as the in-RAM mode."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import boards
import tinyrt
from converter import layers, writer
from converter.graph import Graph
from host_sim import run
from tests.conftest import SHARED_MODELS
from tests.models import mlp_model, patch_section
from tests.test_romfs import WHOLE_KWS_FITS
from tinyrt import fileformat as ff
from tinyrt.stream import plan_reads, scratch_bytes

# -X heapsize like an RP2040's free heap after boot (boards/rp2040.py: 209,936 B); the unix
# port's 64-bit objects make it a harder fit than the board
RP2040_HEAP = boards.get("rp2040").free_heap_bytes


def wide_mlp(layers_n: int = 10, width: int = 176, seed: int = 1) -> bytes:
    """layers_n FULLY_CONNECTED layers of width x width int8 weights: ~310 KB of weights."""
    rng = np.random.default_rng(seed)
    g = Graph()
    t = g.add_activation("x", (1, width), 0.05, 3)
    g.inputs.append(t)
    for i in range(layers_n):
        t = layers.fully_connected(g, t, rng.integers(-127, 128, (width, width)),
                                   rng.uniform(0.0005, 0.002, width),
                                   rng.integers(-2000, 2000, width), 0.05, 3, "RELU", f"fc{i}")
    g.outputs.append(t)
    return writer.serialize(g)


@given(st.lists(st.tuples(st.integers(0, 64), st.integers(1, 200)), min_size=0, max_size=8))
def test_plan_reads_covers_every_span_aligned(spans):
    spans = [(16 * a, n) for a, n in spans]  # constants start at ALIGN multiples in DATA
    runs, need = plan_reads(spans)
    ends = [at + n for _, n, at in runs]
    assert need == (max(ends) if runs else 0)
    for (off, n, at), (off2, _, at2) in zip(runs, runs[1:]):
        assert off + n <= off2 and at + n <= at2  # runs are disjoint in the file and scratch
    for at in (r[2] for r in runs):
        assert at % ff.ALIGN == 0
    for start, n in spans:  # each span inside one run, at its in-file alignment
        (off, length, at), = [r for r in runs if r[0] <= start < r[0] + r[1]]
        assert start + n <= off + length
        assert (at + start - off) % ff.ALIGN == start % ff.ALIGN
    assert need <= sum(n + ff.ALIGN for _, n in spans)


def test_meta_scratch_bytes_is_the_runtime_plan():
    kws = SHARED_MODELS / "kws_ref_model.tflite"
    models = [mlp_model(), wide_mlp(3, 40)]
    if kws.exists():
        from converter.tflite_import import import_tflite

        models.append(writer.serialize(import_tflite(kws.read_bytes())))
    for b in models:
        mf = ff.read_model(b)
        assert mf.scratch_bytes == scratch_bytes(mf) > 0


# Loads each model whole, then (the first freed: a board's heap does not hold kws twice)
# streamed, feeds both the same inputs, runs invoke() under heap_lock, prints one JSON line per
# model: [in-RAM outputs, streamed outputs, modes]. One function call per mode: a script's own
# frame keeps stale references in its value stack, which MicroPython's collector honours.
BOTH_MODES = r"""
import json, micropython, tinyrt

def outputs(name, stream, xs):
    m = tinyrt.load(name, stream=stream)
    outs = []
    for x in xs:
        m.input(0).set(x)
        micropython.heap_lock()
        try:
            m.invoke()
        finally:
            micropython.heap_unlock()
        outs.append(m.output(0).tolist())
    mode = m.stream is not None
    m.close()
    return outs, mode

for name, xs in json.loads(open("cases.json").read()):
    whole, streamed_whole = outputs(name, False, xs)
    streamed, streamed_streamed = outputs(name, True, xs)
    print(json.dumps([whole, streamed, not streamed_whole, streamed_streamed]))
"""


def test_streamed_equals_in_ram_under_heap_lock(interpreter):
    rng = np.random.default_rng(7)
    files, cases = {}, []
    models = {}
    kws = SHARED_MODELS / "kws_ref_model.tflite"
    if kws.exists() and interpreter in WHOLE_KWS_FITS:  # first, while a board's heap is in
        # one piece: it needs 42 KB whole
        from converter.tflite_import import import_tflite

        models["kws.trt"] = writer.serialize(import_tflite(kws.read_bytes()))
    models.update({"mlp.trt": mlp_model(), "wide.trt": wide_mlp(4, 96)})
    for name, b in models.items():
        n = ff.read_model(b)
        size = 1
        for d in n.tensors[n.inputs[0]].shape:
            size *= d
        files[name] = b
        cases.append([name, rng.integers(-128, 128, (2, size)).tolist()])
    if "kws.trt" in models:  # real inputs too: random ones saturate the softmax
        io = np.load(SHARED_MODELS / "kws_ref_model_io.npz")
        cases[0][1].append(io["x"][0].ravel().astype(int).tolist())
    files["cases.json"] = json.dumps(cases)
    lines = run(BOTH_MODES, interpreter, files=files, heap=8 << 20).stdout.splitlines()
    assert len(lines) == len(cases)
    for (name, _), line in zip(cases, lines):
        whole, streamed, was_whole, was_streamed = json.loads(line)
        assert was_whole and was_streamed, name
        assert whole == streamed, name


# The over-sized model under a board-sized heap: heap figures before/after load and inside two
# invoke()s run under heap_lock (stored into a list made beforehand: no allocation), then the
# outputs.
BOARD_SIZED = r"""
import gc, json, micropython, tinyrt
x = json.loads(open("x.json").read())
fig = [0, 0, 0, 0, 0, 0]
gc.collect()
fig[0] = gc.mem_alloc()
fig[1] = gc.mem_free()
m = tinyrt.load("big.trt")
gc.collect()
fig[2] = gc.mem_alloc()
fig[3] = gc.mem_free()
for k in (4, 5):
    m.input(0).set(x)  # the planner reuses the input's memory: set it before each invoke
    micropython.heap_lock()
    try:
        m.invoke()
        fig[k] = gc.mem_alloc()
    finally:
        micropython.heap_unlock()
print(json.dumps({"figures": fig, "streamed": m.stream is not None,
                  "scratch": len(m.scratch) if m.scratch is not None else 0,
                  "tables": len(m.file.buf), "arena": m.file.arena_bytes,
                  "out": m.output(0).tolist()}))
"""

WHOLE = r"""
import json, tinyrt
m = tinyrt.load("big.trt", stream=False)
m.input(0).set(json.loads(open("x.json").read()))
print(json.dumps(m.invoke().tolist()))
"""


def test_300kb_model_streams_under_an_rp2040_sized_heap():
    big = wide_mlp()
    assert len(big) > 300_000
    x = np.random.default_rng(3).integers(-128, 128, 176).tolist()
    files = {"big.trt": big, "x.json": json.dumps(x)}
    r = run(BOARD_SIZED, "unix", heap=RP2040_HEAP, files=files).stdout
    d = json.loads(r.strip().splitlines()[-1])
    a0, free0, a1, free1, a_inv1, a_inv2 = d["figures"]
    assert d["streamed"], "load() should have chosen streaming"
    assert free0 < len(big), "the file must not fit the heap for this test to mean anything"
    assert a_inv1 == a_inv2 == a1, "invoke() allocated"
    assert d["scratch"] == scratch_bytes(ff.read_model(big)) < 40_000
    expected = json.loads(run(WHOLE, "unix", heap=8 << 20, files=files).stdout)
    assert d["out"] == expected  # bit-exact with the in-RAM mode
    print(f"\n{len(big):,} B model, -X heapsize={RP2040_HEAP}: free {free0:,} B before load, "
          f"{free1:,} B after (load kept {a1 - a0:,} B: tables {d['tables']:,} + scratch "
          f"{d['scratch']:,} + arena {d['arena']:,} + objects); mem_alloc {a1:,} B before "
          f"and {a_inv1:,} / {a_inv2:,} B inside two locked invokes")


SMALL_HEAP_WHOLE = r"""
import tinyrt
try:
    tinyrt.load("big.trt", stream=False)
except tinyrt.ArenaError as e:
    print("ArenaError: " + str(e))
"""


def test_whole_file_refusal_suggests_streaming():
    out = run(SMALL_HEAP_WHOLE, "unix", heap=RP2040_HEAP, files={"big.trt": wide_mlp()}).stdout
    assert out.startswith("ArenaError: model file 'big.trt' needs "), out
    assert "load('big.trt', stream=True)" in out


CORRUPT = r"""
import tinyrt
for name in ("bad.trt", "good.trt"):
    try:
        m = tinyrt.load(name, stream=True)
        print("ok", m.stream is not None)
    except tinyrt.ModelError as e:
        print("ModelError: " + str(e))
try:
    tinyrt.load(open("good.trt", "rb").read(), stream=True)
except tinyrt.ModelError as e:
    print("ModelError: " + str(e))
"""


def test_streaming_checks_the_data_crc(interpreter):
    good = mlp_model()
    bad = bytearray(good)
    bad[-3] ^= 0x40  # a weight byte: DATA is the last section
    lines = run(CORRUPT, interpreter, files={"bad.trt": bytes(bad), "good.trt": good}
                ).stdout.splitlines()
    assert lines[0] == "ModelError: section DATA CRC mismatch: the file is corrupt"
    assert lines[1] == "ok True"
    assert lines[2].startswith("ModelError: stream=True reads weights from a file")


def test_corrupt_tables_still_fail_before_streaming():
    # a TENSORS field pointing outside DATA is refused by the reader, as in the in-RAM mode
    bad = patch_section(mlp_model(), ff.TENSORS, 4, "<I", 2**31)
    with pytest.raises(tinyrt.ModelError, match="lies outside"):
        ff.read_model(bad[: ff.read_model(mlp_model()).data_offset], len(bad))


def test_convert_writes_scratch_bytes(tmp_path):
    kws = SHARED_MODELS / "kws_ref_model.tflite"
    if not kws.exists():
        pytest.skip(f"{kws} not present")
    out = tmp_path / "kws.trt"
    subprocess.run([sys.executable, "-m", "host_sim.cli", "convert", str(kws), "-o", str(out)],
                   check=True, capture_output=True)
    mf = ff.read_model(out.read_bytes())
    assert mf.scratch_bytes == scratch_bytes(mf)
