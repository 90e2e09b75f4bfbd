"""Weights in place from flash (issue 15): a model file on a ROMFS mount is used where it is —
memoryview(f) into flash, CRCs checked there, constant tensors as signed int8 views — with only
the arena and the kernels' tables in RAM. On the emulated boards every run's files are on
ROMFS (/rom/w); elsewhere the same load() falls back to the whole file or streaming."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from mpremote.romfs import VfsRomWriter

import tinyrt
from converter import writer
from host_sim import run
from host_sim.emulated import EMULATED, _romfs_data_offsets, romfs_image
from tests.conftest import SHARED_MODELS
from tests.models import binary_model, cnn_model, mlp_model
from tinyrt import fileformat as ff


def test_romfs_image_aligns_data_files():
    rng = np.random.default_rng(3)
    for _ in range(20):
        tree = {"tinyrt": {"a.mpy": bytes(int(rng.integers(1, 300))), "b.json": b"{}" * 7},
                "w": {"m.trt": bytes(int(rng.integers(1, 40000))), "main.mpy": b"q" * 5,
                      "x.json": b"1" * int(rng.integers(0, 999))}}
        offsets = _romfs_data_offsets(romfs_image(tree))
        assert len(offsets) == 5
        for path, off in offsets.items():
            assert path[-1].endswith(".mpy") or off % 16 == 0, (path, off)


# Each model loaded whole from its path, then automatically (after the whole load has imported
# its kernels, so that the heap held compares the files' memory); each invoke() under
# heap_lock. Prints per model one JSON line: [name, [mode, heap held by load(), outputs] auto,
# ... whole].
# One function call per load: a script's own frame keeps stale references (test_streaming).
SCRIPT = r"""
import json, sys, micropython, tinyrt
MEASURE = sys.implementation.name == "micropython" and getattr(
    sys.implementation, "_build", "") != "wasi"  # the WASI build must not collect

def free():
    if not MEASURE:
        return 0
    import gc
    gc.collect()
    return gc.mem_free()

def outputs(name, stream, xs, show):
    f0 = free()
    m = tinyrt.load(name, stream=stream)
    held = f0 - free()
    outs = []
    for x in xs:
        m.input(0).set(x)
        micropython.heap_lock()
        try:
            m.invoke()
        finally:
            micropython.heap_unlock()
        outs.append(m.output(0).tolist())
    if show:
        m.summary()
    mode = m.mode
    m.close()
    return [mode, held, outs]

for name, xs in json.loads(open("cases.json").read()):
    whole = outputs(name, False, xs, False)
    auto = outputs(name, None, xs, name == "mlp.trt")
    print("CASE " + json.dumps([name, auto, whole]))
"""


# kws whole fits every interpreter again since the depthwise padded images are planned into the
# arena (12,096 B shared buffer -> 4,416 B more arena): on m3 it holds 109 KB (before, its
# armv7m twins' larger tables took load's peak past m3's 192 KB heap split by the script's data).
WHOLE_KWS_FITS = ("cpython", "unix", "wasm", "m0", "m3")


def _cases(with_kws: bool = True) -> tuple[dict, list, dict]:
    rng = np.random.default_rng(15)
    models = {}
    kws = SHARED_MODELS / "kws_ref_model.tflite"
    if kws.exists() and with_kws:  # first, while a board's heap is in one piece
        from converter.tflite_import import import_tflite

        models["kws.trt"] = writer.serialize(import_tflite(kws.read_bytes()))
    models.update({"mlp.trt": mlp_model(), "cnn.trt": cnn_model(), "bin.trt": binary_model()})
    files, cases, host = {}, [], {}
    for name, b in models.items():
        n = ff.read_model(b)
        size = 1
        for d in n.tensors[n.inputs[0]].shape:
            size *= d
        xs = rng.integers(-128, 128, (2, size)).tolist()
        if name == "kws.trt":  # a real input too: random ones saturate the softmax
            io = np.load(SHARED_MODELS / "kws_ref_model_io.npz")
            xs.append(io["x"][0].ravel().astype(int).tolist())
        files[name] = b
        cases.append([name, xs])
        m = tinyrt.load(b)  # the host's outputs (CPython in this process)
        host[name] = [m.invoke(x).tolist() for x in xs]
    files["cases.json"] = json.dumps(cases)
    return files, cases, host


def test_romfs_in_place_on_boards_else_fallback(interpreter):
    files, cases, host = _cases(interpreter in WHOLE_KWS_FITS)
    out = run(SCRIPT, interpreter, files=files, heap=8 << 20).stdout
    lines = [json.loads(s[5:]) for s in out.splitlines() if s.startswith("CASE ")]
    assert [c[0] for c in lines] == [c[0] for c in cases]
    board = interpreter in EMULATED
    for name, (mode, held, outs), (wmode, wheld, wouts) in lines:
        assert outs == wouts == host[name], name  # bit-exact: in place, whole file, host
        assert wmode == "whole file", name
        if board:
            size = len(files[name])
            assert mode == "in place", name
            # the file is not copied: load() holds a file's worth less than loading it whole,
            # but for the views of its constants (a uctypes object each, ~100 B)
            n_const = sum(t.storage == ff.CONST for t in ff.read_model(files[name]).tensors)
            assert wheld - held >= size - 160 * n_const, (name, held, wheld, size, n_const)
        else:  # no ROMFS: the existing automatic mode (the whole file fits these heaps)
            assert mode == "whole file", name
    assert ("weights in place from flash" in out) == board
    assert ("weights in RAM: the whole file is loaded" in out) != board


# A ROMFS image written by mpremote's own writer (no alignment), mounted from a buffer: a file
# at an address that is not a multiple of 16 is still used in place (its int8 weights in flash,
# the word-read constants copied) and gives the host's outputs, for int8 and binary models.
MISALIGNED = r"""
import vfs, tinyrt
img = open("img.romfs", "rb")
vfs.mount(vfs.VfsRom(memoryview(img)), "/r2")
for name in {names}:
    m = tinyrt.load("/r2/" + name)
    print("MODE", name, m.mode)
    print("OUT", name, m.invoke([1] * m.input(0).size).tolist())
"""


def _misaligned_image(models: dict) -> tuple[bytes, dict]:
    """An mpremote-written image holding `models`, each renamed until it sits at an address
    that is not a multiple of 16 (then of 4): {name in the image: model bytes}."""
    for k in range(40):
        names = {f"{n}{'x' * ((k + j) % 7)}.trt": b for j, (n, b) in enumerate(models.items())}
        vfs = VfsRomWriter()
        for name in sorted(names):
            vfs.mkfile(name, names[name])
        img = vfs.finalise()
        offs = _romfs_data_offsets(img)
        if all(offs[(n,)] % 4 for n in names):
            return img, names
    raise AssertionError("no misaligned layout found")


def test_misaligned_romfs_file_in_place(interpreter):
    if interpreter not in EMULATED:
        return  # vfs.VfsRom exists on the ROMFS firmware only
    img, names = _misaligned_image({"mlp": mlp_model(), "cnn": cnn_model(),
                                    "bin": binary_model()})
    out = run(MISALIGNED.replace("{names}", repr(sorted(names))), interpreter,
              files={"img.romfs": img}).stdout
    for name, b in names.items():
        assert f"MODE {name} in place" in out, out
        m = tinyrt.load(b)
        want = m.invoke([1] * m.input(0).size).tolist()
        assert f"OUT {name} {want}" in out


# The project's pre-stop smoke, exactly: the runtime and kws + micro_speech packed by
# ../shared/emulator/mkromfs.py (no alignment, .py compiled for armv6m), both models loaded
# from /rom on m0, one after the other. Before unaligned files were used in place, kws fell
# back to loading whole and micro_speech then failed with ArenaError (a fragmented heap).
SMOKE = r"""
import gc, json, tinyrt
for n in ("kws_ref_model", "micro_speech_quantized"):
    gc.collect()
    f0 = gc.mem_free()
    m = tinyrt.load("/rom/models/%s.trt" % n)
    gc.collect()
    print("CASE", json.dumps([n, m.mode, f0 - gc.mem_free(), m.invoke().tolist()]))
"""


def test_mkromfs_image_kws_and_micro_speech_on_m0(tmp_path):
    import shutil
    import subprocess
    import sys

    from converter.tflite_import import import_tflite
    from host_sim.emulated import Board, emulator_dir

    tree = tmp_path / "tree"
    shutil.copytree(Path(tinyrt.__file__).parent, tree / "tinyrt",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (tree / "models").mkdir()
    want = {}
    for n in ("kws_ref_model", "micro_speech_quantized"):
        b = writer.serialize(import_tflite((SHARED_MODELS / f"{n}.tflite").read_bytes()))
        (tree / "models" / f"{n}.trt").write_bytes(b)
        want[n] = tinyrt.load(b).invoke().tolist()  # the input tensor as load() leaves it
    img = tmp_path / "r.img"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    subprocess.run([sys.executable, str(emulator_dir() / "mkromfs.py"), str(tree), str(img),
                    "--mpy", "armv6m"], check=True, env=env, capture_output=True)
    offs = _romfs_data_offsets(img.read_bytes())
    assert offs[("models", "kws_ref_model.trt")] % 16, "the image must reproduce the hook's"
    dev = Board("m0", img)
    try:
        out, err = dev.exec(SMOKE, 300)
    finally:
        dev.close()
    assert not err, err
    got = {c[0]: c[1:] for c in (json.loads(s[5:]) for s in out.splitlines()
                                  if s.startswith("CASE "))}
    for n in want:
        mode, held, outs = got[n]
        assert mode == "in place", (n, mode)
        assert outs == want[n], n
    print("held after load on m0 from an mkromfs image:", {n: got[n][1] for n in got})
