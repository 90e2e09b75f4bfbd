"""What only the emulated ARM boards (genuine MicroPython firmware under QEMU) can show: the heap
a script is given, out-of-memory during load() on a 32-bit heap, and a fast twin that fails
where it should run."""

from __future__ import annotations

import json

import pytest

from converter import writer
from host_sim import run
from host_sim.emulated import EMULATED
from tests.conftest import SHARED_MODELS


def _kws() -> bytes:
    from converter.tflite_import import import_tflite

    p = SHARED_MODELS / "kws_ref_model.tflite"
    if not p.exists():
        pytest.skip(f"{p} not present")
    return writer.serialize(import_tflite(p.read_bytes(), source_name=p.name))


@pytest.mark.parametrize("board", EMULATED)
def test_heap_argument_leaves_that_much_free(board):
    out = run("import gc\ngc.collect()\nprint(gc.mem_free())", board, heap=50_000).stdout
    assert abs(int(out) - 50_000) <= 512  # the REPL's own code for the ballast is freed after
    full = int(run("import gc\ngc.collect()\nprint(gc.mem_free())", board).stdout)
    assert 180_000 < full < 200_000  # the firmware's 200,000-byte heap, less what boot keeps


# Loads kws whole in one heap size; prints "ok <kernels>" or the error's class and message.
LOAD_IN_HEAP = r"""
import tinyrt
try:
    m = tinyrt.load("kws.trt", stream=STREAM)
    m.invoke()
    print("ok")
except Exception as e:
    print(type(e).__name__ + ": " + str(e))
"""


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_out_of_memory_in_load_is_an_arena_error(stream):
    """From heaps where nothing fits to heaps where kws loads, every failure on m0 is an
    ArenaError that names the bytes (never a bare MemoryError), and the largest heap works."""
    kws = _kws()
    seen = []
    for heap in range(40_000, 200_001, 20_000):
        line = run(LOAD_IN_HEAP.replace("STREAM", str(stream)), "m0", heap=heap,
                   files={"kws.trt": kws}).stdout.strip()
        seen.append((heap, line))
        assert line == "ok" or line.startswith("ArenaError: "), (heap, line)
        if line != "ok":
            assert "bytes" in line and "free" in line, line
    assert seen[-1][1] == "ok", seen
    assert any(line != "ok" for _, line in seen), seen


# The conv asm twin made to fail: strict selection raises it, the default falls back to the
# viper twin and summary() says why.
BROKEN_TWIN = r"""
import json, tinyrt, tinyrt.fast as fast
from tinyrt.kernels import conv_asm

def broken(*args):
    raise TypeError("no bytearray * int here")

conv_asm.prepare = broken
fast.enable(True, strict=True)
try:
    tinyrt.load("kws.trt")
    print(json.dumps("loaded"))
except TypeError as e:
    print(json.dumps("strict: " + str(e)))
fast.enable(True)
m = tinyrt.load("kws.trt")
print(json.dumps([k.impl for k in m.kernels]))
m.summary()
"""


@pytest.mark.parametrize("board", EMULATED)
def test_a_failing_twin_raises_in_strict_mode_and_is_named_in_summary(board):
    out = run(BROKEN_TWIN, board, files={"kws.trt": _kws()}).stdout.splitlines()
    assert json.loads(out[0]) == "strict: no bytearray * int here"
    kernels = json.loads(out[1])
    assert kernels[0] == "viper"  # the first CONV_2D fell back
    assert "asm" in kernels  # the depthwise and FC layers kept theirs
    notes = [ln for ln in out if ln.strip().startswith("note:")]
    assert notes == ["  note: conv2d runs slower than it could: asm twin failed: TypeError: "
                     "no bytearray * int here"], out


# The same model with and without repacked weights (fast.repack): identical outputs, asm
# either way, and the repacked copy held in RAM.
REPACK = r"""
import gc, json, tinyrt, tinyrt.fast as fast
x = json.loads(open("x.json").read())

def once(flag):  # a function: the script's own frame would keep the first model alive
    fast.repack(flag)
    gc.collect()
    f0 = gc.mem_free()
    m = tinyrt.load("m.trt", stream=False)  # the whole file in RAM: repacking is allowed
    gc.collect()
    held = f0 - gc.mem_free()
    print(json.dumps([flag, held, [k.impl for k in m.kernels], m.invoke(x).tolist()]))

once(False)  # imports the kernel modules: the next two hold only the model
once(False)
once(True)
"""


@pytest.mark.parametrize("board", EMULATED)
def test_repacked_weights_give_the_same_outputs(board):
    """digits_cnn_int8 (its CONV_2D layers have 8 and 16 channels: the repacked kernel's
    groups of 8); kws would not hold its 22 KB of copies beside a second load on m0."""
    import numpy as np

    from converter.tflite_import import import_tflite

    name = "digits_cnn_int8"
    model = writer.serialize(import_tflite((SHARED_MODELS / f"{name}.tflite").read_bytes()))
    io = np.load(SHARED_MODELS / f"{name}_io.npz")
    x = io["x"][0].ravel().astype(int).tolist()
    out = run(REPACK, board, files={"m.trt": model, "x.json": json.dumps(x)}).stdout
    (_, plain, k0, y0), (_, packed, k1, y1) = [json.loads(ln) for ln in out.splitlines()[1:]]
    assert y0 == y1 == io["y"][0].ravel().astype(int).tolist()
    assert k0 == k1 and "asm" in k0
    if board == "m0":
        assert packed > plain  # the repacked copies are held in RAM
    else:  # armv7m: the Thumb-2 kernel (kernels.armv7m_rows_asm) reads the weights in place
        assert packed == plain
