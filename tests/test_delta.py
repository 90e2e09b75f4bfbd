"""Delta updates: `tinyrt diff` on the host (converter/delta.py), tinyrt.update on every
interpreter (format 1: COPY / DATA records; format 2: ADD records, bytewise differences), and
power cuts in the middle of an update of each format on the emulated m3 (its FAT RAM disk kept
as the firmware left it, then booted again)."""

from __future__ import annotations

import json
import shutil
import struct
import tempfile
import zlib
from pathlib import Path

import numpy as np
import pytest

from converter import layers, writer
from converter.delta import apply_update, make_update
from converter.graph import Graph
from host_sim import run
from host_sim.cli import main as cli_main

INTERPRETERS = ["cpython", "unix", "wasm", "m0", "m3"]


def head_model(head_seed: int, body_seed: int = 0, width: int = 64, nudge: int = 0) -> bytes:
    """Two FULLY_CONNECTED layers; the body's weights from body_seed, the head's (last
    layer's) from head_seed: a head-only retrain changes head_seed alone. nudge > 0: that many
    head weights moved by +-1..3 int8 steps (a fine-tune on the old quantization grid)."""
    body, head = np.random.default_rng(body_seed), np.random.default_rng(head_seed)
    g = Graph()
    x = g.add_activation("x", (1, width), 0.05, -3)
    g.inputs.append(x)
    h = layers.fully_connected(g, x, body.integers(-128, 128, (width, width)),
                               body.uniform(0.001, 0.01, width), body.integers(-999, 999, width),
                               0.1, 5, "RELU", "body")
    w = head.integers(-128, 128, (4, width))
    if nudge:
        r = np.random.default_rng(100 + nudge)
        at = r.choice(w.size, nudge, replace=False)
        w.flat[at] = np.clip(w.flat[at] + r.choice([-3, -2, -1, 1, 2, 3], nudge), -128, 127)
    y = layers.fully_connected(g, h, w, 0.02, None, 0.2, -1, "NONE", "head")
    g.outputs.append(y)
    return writer.serialize(g)


# The model at a writable path (the RAM disk on m0/m3, the run's folder elsewhere), updated;
# prints JSON lines: the output for a probe input (a ramp) before and after, and what a second
# update, a foreign update and a non-update file do.
UPDATE = r"""
import json, sys, tinyrt
P = "/m.trt" if sys.platform == "qemu" else "m.trt"
src = open("old.trt", "rb"); dst = open(P, "wb"); dst.write(src.read()); dst.close(); src.close()
def out():
    m = tinyrt.load(P)
    x = m.input(0)
    x.set([(i * 5) % 256 - 128 for i in range(x.size)])
    r = m.invoke().tolist()
    m.close()
    return r
def err(f):
    try:
        return tinyrt.update(P, f)
    except tinyrt.UpdateError as e:
        return type(e).__name__ + ": " + str(e)
print(json.dumps([out(), tinyrt.update(P, "u.bin"), out(), tinyrt.update(P, "u.bin"),
                  err("other.bin"), err("old.trt"), err("v3.bin"), err("u2.bin"), out()]))
"""

PROBE = r"""
import json, tinyrt
m = tinyrt.load("m.trt")
x = m.input(0)
x.set([(i * 5) % 256 - 128 for i in range(x.size)])
print(json.dumps(m.invoke().tolist()))
"""


def probe_output(model: bytes) -> list:
    return json.loads(run(PROBE, "cpython", files={"m.trt": model}).stdout)


def version(update: bytes) -> int:
    return struct.unpack_from("<H", update, 4)[0]


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


def test_arithmetic_records():
    """A head fine-tuned on the old grid (40 of 256 weights moved by 1-3 steps): ADD records
    (format 2) carry small differences, about half the bytes of format 1's DATA records; the
    encoding is chosen without being asked, a format-1 update is still written on request."""
    old, new = head_model(1), head_model(1, nudge=40)
    u, st = make_update(old, new)
    assert apply_update(old, u) == new
    assert st.encoding == "arithmetic" and version(u) == 2
    u1, st1 = make_update(old, new, arithmetic=False)
    assert apply_update(old, u1) == new and version(u1) == 1 and st1.encoding == "bytes"
    assert st.update_bytes < 0.75 * st1.update_bytes, (st, st1)
    assert st.update_bytes < 0.06 * len(new), st  # 80 B of header, 40 nudges
    recs = zlib.decompress(u[80:])
    kinds = [recs[i] for i in _record_starts(recs)]
    assert kinds.count(3) >= 1 and kinds[-1] == 0
    # a retrained head (random new weights): whichever encoding is smaller, both exact
    r, rst = make_update(old, head_model(2))
    assert apply_update(old, r) == head_model(2)
    assert rst.update_bytes <= make_update(old, head_model(2), arithmetic=False)[1].update_bytes
    bad = bytearray(u)
    bad[4] = 3  # format 3
    with pytest.raises(ValueError, match="update format 3"):
        apply_update(old, bytes(bad))


def _record_starts(recs: bytes) -> list[int]:
    """Offsets of the records in an update's record stream."""
    out, i = [], 0
    while True:
        out.append(i)
        kind, _, n = struct.unpack_from("<BII", recs, i)
        i += 9 + (n if kind in (2, 3) else 0)
        if kind == 0:
            return out


@pytest.mark.parametrize("interp", INTERPRETERS)
def test_update_on_interpreters(interp):
    """A format-1 update, then a format-2 one (ADD records) on top; a foreign update, a model
    file and a format-3 update refused with UpdateError."""
    old, new, tuned = head_model(1), head_model(2), head_model(2, nudge=40)
    u, _ = make_update(old, new, arithmetic=False)
    u2, st2 = make_update(new, tuned)
    assert version(u) == 1 and version(u2) == 2 and st2.encoding == "arithmetic"
    v3 = bytearray(u2)
    v3[4] = 3
    other, _ = make_update(head_model(5, body_seed=7), head_model(6, body_seed=7))
    r = run(UPDATE, interp, files={"old.trt": old, "u.bin": u, "other.bin": other,
                                    "u2.bin": u2, "v3.bin": bytes(v3)})
    assert r.returncode == 0, r.stderr
    before, applied, after, again, foreign, junk, future, applied2, final = json.loads(
        r.stdout.splitlines()[-1])
    assert before == probe_output(old) and after == probe_output(new) and before != after
    assert applied is True and again is False
    assert foreign.startswith("UpdateError: ") and "not the model this update was made for" \
        in foreign
    assert junk.startswith("UpdateError: not a tinyrt update file")
    assert future == "UpdateError: update format 3 (flags 0); this runtime applies formats 1 " \
        "to 2"
    assert applied2 is True and final == probe_output(tuned) and final != after


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
    x.set([(i * 5) % 256 - 128 for i in range(x.size)])
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
    again completes it. A format-1 update (COPY / DATA records)."""
    old, new = head_model(1), head_model(2)
    u, _ = make_update(old, new, arithmetic=False)
    power_cuts(old, new, u, KILL_POINTS)


def chunk_calls(update: bytes) -> int:
    """How many times tinyrt.update's progress hook sees "chunk" for an update whose records
    are COPY and ADD only (files read whole: 512 B per COPY chunk, 256 B per ADD chunk)."""
    recs = zlib.decompress(update[80:])
    calls = 0
    for i in _record_starts(recs):
        kind, _, n = struct.unpack_from("<BII", recs, i)
        assert kind in (0, 1, 3), kind
        calls += -(-n // (512 if kind == 1 else 256))
    return calls


def test_power_cuts_during_arithmetic_update():
    """The same kill points for a format-2 update (ADD records: old bytes + differences,
    written half a buffer at a time): every cut leaves the old or the new model loadable."""
    old, new = head_model(1), head_model(1, nudge=40)
    u, st = make_update(old, new)
    assert st.encoding == "arithmetic"
    n = chunk_calls(u)
    points = ([("verified", 1, False)] + [("chunk", k, False) for k in sorted({1, n // 2, n})]
              + [("written", 1, False), ("checked", 1, True), ("renamed", 1, False)])
    power_cuts(old, new, u, points)


def power_cuts(old: bytes, new: bytes, u: bytes, kill_points) -> None:
    from host_sim.emulated import EmulatorError, romfs_image, runtime_tree

    try:
        from tests.test_flash_board import M3, MPREMOTE, Relay
    except pytest.skip.Exception:  # no QEMU / firmware
        raise
    except EmulatorError as e:
        pytest.skip(str(e))
    import subprocess

    old_out, new_out = probe_output(old), probe_output(new)
    work = Path(tempfile.mkdtemp(prefix="tinyrt-upd-", dir="/tmp"))  # short: QMP socket
    try:
        romfs = work / "rom.img"
        romfs.write_bytes(romfs_image({**runtime_tree("armv7m"), "old.trt": old, "u.bin": u}))
        outcomes = []
        for stage, n, remove in kill_points:
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
