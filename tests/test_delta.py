"""Delta updates: `tinyrt diff` on the host (converter/delta.py), tinyrt.update on every
interpreter, and power cuts in the middle of an update on the emulated m3 (its FAT RAM disk
kept as the firmware left it, then booted again)."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

from converter import layers, writer
from converter.delta import apply_update, make_update
from converter.graph import Graph
from host_sim import run
from host_sim.cli import main as cli_main

INTERPRETERS = ["cpython", "unix", "wasm", "m0", "m3"]


def head_model(head_seed: int, body_seed: int = 0, width: int = 64) -> bytes:
    """Two FULLY_CONNECTED layers; the body's weights from body_seed, the head's (last
    layer's) from head_seed: a head-only retrain changes head_seed alone."""
    body, head = np.random.default_rng(body_seed), np.random.default_rng(head_seed)
    g = Graph()
    x = g.add_activation("x", (1, width), 0.05, -3)
    g.inputs.append(x)
    h = layers.fully_connected(g, x, body.integers(-128, 128, (width, width)),
                               body.uniform(0.001, 0.01, width), body.integers(-999, 999, width),
                               0.1, 5, "RELU", "body")
    y = layers.fully_connected(g, h, head.integers(-128, 128, (4, width)), 0.02, None, 0.2, -1,
                               "NONE", "head")
    g.outputs.append(y)
    return writer.serialize(g)


# The model at a writable path (the RAM disk on m0/m3, the run's folder elsewhere), updated;
# prints JSON lines: the output for a zero-point input before and after, and what a second
# update, a foreign update and a non-update file do.
UPDATE = r"""
import json, sys, tinyrt
P = "/m.trt" if sys.platform == "qemu" else "m.trt"
src = open("old.trt", "rb"); dst = open(P, "wb"); dst.write(src.read()); dst.close(); src.close()
def out():
    m = tinyrt.load(P)
    x = m.input(0)
    x.set([x.zero_point] * x.size)
    r = m.invoke().tolist()
    m.close()
    return r
def err(f):
    try:
        return tinyrt.update(P, f)
    except tinyrt.UpdateError as e:
        return type(e).__name__ + ": " + str(e)
print(json.dumps([out(), tinyrt.update(P, "u.bin"), out(), tinyrt.update(P, "u.bin"),
                  err("other.bin"), err("old.trt")]))
"""

ZERO = r"""
import json, tinyrt
m = tinyrt.load("m.trt")
x = m.input(0)
x.set([x.zero_point] * x.size)
print(json.dumps(m.invoke().tolist()))
"""


def zero_output(model: bytes) -> list:
    return json.loads(run(ZERO, "cpython", files={"m.trt": model}).stdout)


def test_make_update_figures():
    """Only the changed bytes travel: a head-only retrain is a few % of the file."""
    old, new = head_model(1), head_model(2)
    u, st = make_update(old, new)
    assert apply_update(old, u) == new
    assert st.new_bytes == len(new) and st.update_bytes == len(u)
    assert st.update_bytes <= 0.08 * len(new), st  # 4x64 head bytes of a 4.9 KB file
    full, fst = make_update(old, head_model(2, body_seed=3))
    assert apply_update(old, full) == head_model(2, body_seed=3)
    assert fst.update_bytes > 0.8 * len(new)  # random int8 weights: nothing to share
    # a different layout (wider model): still exact, sections matched by kind
    wide = head_model(2, width=80)
    assert apply_update(old, make_update(old, wide)[0]) == wide
    with pytest.raises(ValueError, match="another model"):
        apply_update(new, u)


@pytest.mark.parametrize("interp", INTERPRETERS)
def test_update_on_interpreters(interp):
    old, new = head_model(1), head_model(2)
    u, _ = make_update(old, new)
    other, _ = make_update(head_model(5, body_seed=7), head_model(6, body_seed=7))
    r = run(UPDATE, interp, files={"old.trt": old, "u.bin": u, "other.bin": other})
    assert r.returncode == 0, r.stderr
    before, applied, after, again, foreign, junk = json.loads(r.stdout.splitlines()[-1])
    assert before == zero_output(old) and after == zero_output(new) and before != after
    assert applied is True and again is False
    assert foreign.startswith("UpdateError: ") and "not the model this update was made for" \
        in foreign
    assert junk.startswith("UpdateError: not a tinyrt update file")


def test_cli_diff(tmp_path, capsys):
    (tmp_path / "a.trt").write_bytes(head_model(1))
    (tmp_path / "b.trt").write_bytes(head_model(2))
    out = tmp_path / "u.bin"
    assert cli_main(["diff", str(tmp_path / "a.trt"), str(tmp_path / "b.trt"), "-o",
                     str(out)]) == 0
    assert apply_update(head_model(1), out.read_bytes()) == head_model(2)
    assert "update bytes" in capsys.readouterr().out
    assert cli_main(["diff", str(tmp_path / "a.trt"), str(out), "-o", str(out)]) == 2
    assert "not a tinyrt model file" in capsys.readouterr().err


# -- power cuts on the emulated m3 -------------------------------------------------------------

# Copies the old model onto the RAM disk, then updates it; the progress hook freezes the board
# at the chosen step (the host then cuts its power). REMOVE: first do what FAT's rename does
# first (remove the model), i.e. cut between the two halves of os.rename.
CUT_UPDATE = r"""
import os, sys, tinyrt
P = "/m.trt"
src = open("/rom/old.trt", "rb"); dst = open(P, "wb"); dst.write(src.read()); dst.close()
seen = [0]
def progress(stage, nbytes):
    if stage == {stage!r}:
        seen[0] += 1
        if seen[0] == {n}:
            if {remove}:
                os.remove(P)
            print("cut")
            while True:
                pass
tinyrt.update(P, "/rom/u.bin", progress)
print("not cut")
"""

# After the power came back: what is on the disk, the model's output, the update run again.
AFTER_CUT = r"""
import json, os, tinyrt
P = "/m.trt"
def out():
    try:
        m = tinyrt.load(P)
    except Exception as e:
        return type(e).__name__
    x = m.input(0)
    x.set([x.zero_point] * x.size)
    r = m.invoke().tolist()
    m.close()
    return r
def ls():
    return sorted(f for f in os.listdir("/") if f != "rom")
files = ls()
first = out()
again = tinyrt.update(P, "/rom/u.bin")
print(json.dumps([files, first, again, out(), ls()]))
"""

# (stage of the progress hook, its n-th call, remove the model first): after OLD's hash is
# checked, after chunks of the new file written (15 in all: the first, some, the last; every
# one passed too, in 68 s), after it is closed, after its hash is checked, between FAT's
# remove and rename, after the rename.
KILL_POINTS = ([("verified", 1, False)] + [("chunk", n, False) for n in (1, 2, 5, 9, 13, 15)]
               + [("written", 1, False), ("checked", 1, False), ("checked", 1, True),
                  ("renamed", 1, False)])


def test_power_cuts_during_update():
    """The board's power cut at each kill point (QMP stop + pmemsave of the FAT RAM disk, as
    tests/test_flash_board.py does), then booted again on that disk: the model at its path
    loads and gives the old or the new model's output (the one exception, a cut between
    FAT's remove and rename, leaves the verified new file beside it), and running the update
    again completes it."""
    from host_sim.emulated import EmulatorError, romfs_image, runtime_tree

    try:
        from tests.test_flash_board import M3, MPREMOTE, Relay
    except pytest.skip.Exception:  # no QEMU / firmware
        raise
    except EmulatorError as e:
        pytest.skip(str(e))
    import subprocess

    old, new = head_model(1), head_model(2)
    old_out, new_out = zero_output(old), zero_output(new)
    u, _ = make_update(old, new)
    work = Path(tempfile.mkdtemp(prefix="tinyrt-upd-", dir="/tmp"))  # short: QMP socket
    try:
        romfs = work / "rom.img"
        romfs.write_bytes(romfs_image({**runtime_tree("armv7m"), "old.trt": old, "u.bin": u}))
        outcomes = []
        for stage, n, remove in KILL_POINTS:
            disk = work / "disk.img"
            board = M3(work, romfs)
            try:
                relay = Relay(board, disk, b"cut\r\n", from_board=True)
                try:
                    code = CUT_UPDATE.format(stage=stage, n=n, remove=remove)
                    p = subprocess.run(MPREMOTE + ["connect", relay.port, "exec", code],
                                       capture_output=True, text=True, timeout=60)
                finally:
                    relay.close()
                assert relay.cut, (stage, n, p.stdout, p.stderr)
            finally:
                board.close()
            board = M3(work, romfs, disk=disk)  # power back on
            try:
                files, first, again, final, after = json.loads(
                    board.mp("exec", AFTER_CUT).splitlines()[-1])
            finally:
                board.close()
            outcomes.append((stage, n, remove, files, first == old_out, first == new_out))
            if remove:  # cut inside os.rename: the verified new file waits beside
                assert files == ["m.trt.new"] and first == "ModelError", (files, first)
            else:
                assert first in (old_out, new_out), (stage, n, first)
                assert (first == new_out) == (stage == "renamed")
            assert again is (stage != "renamed" and not remove) or (remove and again is False)
            assert final == new_out and after == ["m.trt"]
        print("\n".join(map(str, outcomes)))
    finally:
        shutil.rmtree(work, ignore_errors=True)
