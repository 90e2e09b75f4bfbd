"""Memory: the arena planner, and load() refusing what does not fit a board-sized heap."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from converter import layers, writer
from converter.graph import Graph
from converter.inspect_model import describe
from converter.planner import Buffer, plan_arena
from host_sim import run
from host_sim.emulated import EMULATED
from tests.models import mlp_model


@given(st.lists(st.tuples(st.integers(1, 500), st.integers(-1, 12), st.integers(0, 8)),
                min_size=1, max_size=25))
def test_planner_never_overlaps_live_buffers(specs):
    bufs = [Buffer(size, first, first + length) for size, first, length in specs]
    offsets, total = plan_arena(bufs)
    assert total % 4 == 0
    for i, a in enumerate(bufs):
        assert offsets[i] % 4 == 0 and offsets[i] + a.size <= total
        for j in range(i):
            b = bufs[j]
            if a.first <= b.last and b.first <= a.last:  # alive together
                assert (offsets[i] + a.size <= offsets[j]
                        or offsets[j] + b.size <= offsets[i]), (a, b)
    assert total <= sum(b.size + 3 for b in bufs)


def deep_mlp(widths: list[int]) -> bytes:
    rng = np.random.default_rng(0)
    g = Graph()
    t = g.add_activation("x", (1, widths[0]), 0.05, 0)
    g.inputs.append(t)
    for i, (a, b) in enumerate(zip(widths, widths[1:])):
        t = layers.fully_connected(g, t, rng.integers(-127, 128, (b, a)), 0.01, None, 0.1, 0,
                                   "RELU", f"fc{i}")
    g.outputs.append(t)
    return writer.serialize(g)


def test_planning_reuses_memory():
    d = describe(deep_mlp([64, 256, 256, 256, 256, 10]))
    activations = sum(t["nbytes"] for t in d["tensors"] if t["storage"] == "arena")
    # a chain needs only its two largest neighbours alive at once
    assert d["arena_bytes"] == 512
    assert activations == 64 + 4 * 256 + 10
    print(f"chain MLP: arena {d['arena_bytes']} B vs {activations} B of activations")


ARENA_PROBE = r"""
import tinyrt
try:
    tinyrt.load("big.trt")
    print("loaded")
except tinyrt.ArenaError as e:
    print("ArenaError: " + str(e))
"""


def test_arena_larger_than_heap_is_refused(interpreter):
    if interpreter == "cpython":
        return  # no heap to exceed; covered by the absurd-arena case in test_bad_input
    # 960 KB of weights (2 x 480 KB layers); 320 KB on the emulated boards, whose ROMFS holds
    # 512 KB on m0 with the runtime (~190 KB of .mpy): in place, the kernels' tables of 10,000
    # channels (20 B each, and the arena) do not fit the ~190 KB heap
    hidden = 10000 if interpreter in EMULATED else 30000
    big = deep_mlp([16, hidden, 16])
    out = run(ARENA_PROBE, interpreter, heap=256 * 1024, files={"big.trt": big}).stdout
    if interpreter in EMULATED:  # on ROMFS the file is used in place: the kernels' tables of
        assert out.startswith("ArenaError: "), out  # its 10,016 channels do not fit
    else:
        assert out.startswith("ArenaError: model file 'big.trt' needs "), out
    assert "free" in out


def test_arena_larger_than_heap_names_both_sizes(interpreter):
    if interpreter == "cpython":
        return
    rng = np.random.default_rng(0)
    g = Graph()
    x = g.add_activation("x", (4000, 16), 0.05, 0)  # 4000 rows: 128 KB of activations
    g.inputs.append(x)
    g.outputs.append(layers.fully_connected(g, x, rng.integers(-127, 128, (16, 16)), 0.01,
                                            None, 0.1, 0))
    model = writer.serialize(g)
    assert len(model) < 2048
    heap = 112 * 1024  # the 64-bit unix port compiles tinyrt from source within it
    out = run(ARENA_PROBE.replace("big.trt", "m.trt"), interpreter, heap=heap,
              files={"m.trt": model}).stdout
    assert out.startswith("ArenaError: arena needs 128000 bytes, the heap has "), out
    assert int(out.split("has ")[1].split()[0]) < heap


SHAPE_PROBE = r"""
import tinyrt
m = tinyrt.load("m.trt")
for bad in ([1, 2, 3], [0] * 17, [300] * 16):
    try:
        m.invoke(bad)
        print("accepted")
    except tinyrt.ShapeError as e:
        print("ShapeError: " + str(e))
"""


def test_wrong_input_is_a_shape_error(interpreter):
    lines = run(SHAPE_PROBE, interpreter, files={"m.trt": mlp_model()}).stdout.splitlines()
    assert lines[0] == "ShapeError: tensor 'x' takes 16 values (shape (1, 16)), got 3"
    assert lines[1] == "ShapeError: tensor 'x' takes 16 values (shape (1, 16)), got 17"
    assert lines[2] == "ShapeError: value 300 at 0 is outside int8 [-128, 127]"


# load() of kws_ref_model on the unix port: the RAM the loaded model keeps beyond its buffers
# (file or tables + scratch, and the arena), from gc.mem_alloc() deltas after collection. The
# kernel modules (and tinyrt.stream) are imported first, so only the model's own objects count.
LOAD_RAM_PROBE = r"""
import gc, json
import tinyrt, tinyrt.stream
m = tinyrt.load("m.trt", stream=False)
m = None
out = {}
for stream in (False, True):
    gc.collect()
    a0 = gc.mem_alloc()
    m = tinyrt.load("m.trt", stream=stream)
    gc.collect()
    out["streamed" if stream else "whole"] = gc.mem_alloc() - a0
    m.close()
    m = None
print(json.dumps(out))
"""
# Measured after tinyrt stopped keeping an object per tensor/op record and its names (64-bit
# unix port): 33.6 KB whole, 36.1 KB streamed; before, 59.2 KB and 61.7 KB.
KWS_LOAD_OBJECTS_MAX = 40_000  # bytes
# Smallest free heap in which import + load + invoke work on the emulated Cortex-M0 (boards.fit's
# bisection with a ballast; 32-bit MicroPython firmware, the .mpy runtime from ROMFS, asm
# twins): whole must fit the ~190 KB a Pico has free after boot. Measured 127,904 streamed and
# 159,328 whole since the depthwise padded images live in the arena (before: a 12,096 B shared
# buffer, and the whole load ~12 KB past a Pico with the FAT bytecode).
KWS_NEED_STREAMED_MAX = 140_000  # bytes
KWS_NEED_WHOLE_MAX = 170_000  # bytes


def _kws_model() -> bytes:
    from converter.tflite_import import import_tflite
    from tests.conftest import SHARED_MODELS

    p = SHARED_MODELS / "kws_ref_model.tflite"
    if not p.exists():
        pytest.skip(f"{p} not present")
    return writer.serialize(import_tflite(p.read_bytes(), source_name=p.name))


def test_kws_load_keeps_few_objects():
    from tinyrt import fileformat as ff
    from tinyrt.stream import scratch_bytes

    model = _kws_model()
    mf = ff.read_model(model)
    tables = next(off for kind, off, _, _ in mf.sections if kind == ff.DATA)
    out = json.loads(run(LOAD_RAM_PROBE, "unix", files={"m.trt": model}).stdout)
    whole = out["whole"] - len(model) - mf.arena_bytes
    streamed = out["streamed"] - tables - scratch_bytes(mf) - mf.arena_bytes
    print(f"kws load() objects on the unix port: {whole} B whole, {streamed} B streamed")
    assert 0 < whole < KWS_LOAD_OBJECTS_MAX
    assert 0 < streamed < KWS_LOAD_OBJECTS_MAX


def test_kws_load_peak_heap():
    from boards import fit

    m = fit.measure(_kws_model(), asm=True)
    assert m.whole.basis == m.streamed.basis == "measured"
    need_streamed, need_whole = m.streamed.need, m.whole.need
    print(f"kws needs a free heap of {need_streamed} B streamed, {need_whole} B whole")
    assert need_streamed < KWS_NEED_STREAMED_MAX
    assert need_whole < KWS_NEED_WHOLE_MAX
