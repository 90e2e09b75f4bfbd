"""flash.sh end to end against the emulated m3 board (genuine MicroPython 1.29 firmware for a
Cortex-M3 under QEMU, host_sim/emulated.py) through the real mpremote on the board's UART
pseudo-terminal; and power cuts in the middle of a flash.

The m3 firmware reports sys.platform 'qemu', which no board profile matches, so flash.sh is
given --board rp2350 (the closest Arm profile); it compiles for the arch the board reports. Its
sys.path has no /lib: flash.sh says so and its smoke inference adds it.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import select
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
import tty
from pathlib import Path

import numpy as np
import pytest

from boards.flash import CUT_ENV, LIB, OLD, STAGE
from converter import layers, writer
from converter.graph import Graph
from host_sim import run
from host_sim.emulated import EmulatorError, qemu_command, romfs_image, runtime_tree
from host_sim.mpy_runtime import sources
from tests.models import mlp_model

REPO = Path(__file__).resolve().parents[1]
FLASH = REPO / "flash.sh"
RAM_DISK = (0x20000000, 0x100000)  # the m3's FAT RAM disk: address, bytes
MPREMOTE = [sys.executable, "-m", "mpremote"]

try:
    qemu_command("m3", None)
except EmulatorError as e:
    pytest.skip(str(e), allow_module_level=True)


class M3:
    """The emulated m3 with its UART on a pty and a QMP socket, so that its power can be cut:
    QMP `stop` freezes the CPU at whatever instruction it is on, `pmemsave` keeps the RAM disk
    exactly as the firmware left it (FatFs caches in the heap are lost, as on a power cut), and
    the next boot loads that image back at the RAM disk's address before the firmware starts."""

    def __init__(self, work: Path, romfs: Path | None = None, disk: Path | None = None):
        self.qmp_path = str(work / f"qmp{id(self)}")
        cmd = qemu_command("m3", romfs, serial="pty")
        cmd += ["-qmp", f"unix:{self.qmp_path},server=on,wait=off"]
        if disk is not None:
            cmd += ["-device", f"loader,file={disk},addr=0x{RAM_DISK[0]:x},force-raw=on"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        line = self.proc.stdout.readline().decode("latin1")
        m = re.search(r"/dev/pts/\d+", line)
        if not m:
            self.close()
            raise EmulatorError(f"QEMU gave no pty: {line!r}")
        self.port = m.group(0)

    def mp(self, *args: str, check: bool = True) -> str:
        p = subprocess.run(MPREMOTE + ["connect", self.port, *args], capture_output=True,
                           text=True, timeout=60)
        if check:
            assert p.returncode == 0, p.stdout + p.stderr
        return p.stdout

    def power_cut(self, disk: Path) -> None:
        """Freeze the board, save its RAM disk to `disk`, and end QEMU."""
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(self.qmp_path)
            f = s.makefile("rw")
            f.readline()  # greeting
            for cmd in ({"execute": "qmp_capabilities"}, {"execute": "stop"},
                        {"execute": "pmemsave", "arguments": {
                            "val": RAM_DISK[0], "size": RAM_DISK[1], "filename": str(disk)}}):
                f.write(json.dumps(cmd) + "\n")
                f.flush()
                while True:  # skip events up to the command's answer
                    answer = json.loads(f.readline())
                    if "return" in answer or "error" in answer:
                        break
                assert "return" in answer, answer
        self.close()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.proc.stdout.close()


def _queued(fd: int) -> int:
    """Bytes waiting to be read on a tty."""
    return struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]


class Relay:
    """A pty between mpremote and the board that cuts the board's power at a chosen point:
    once `marker` has gone from the host to the board followed by `extra` more bytes, or once
    the board has printed `marker` (board=True). Nothing past the cut reaches the board."""

    def __init__(self, board: M3, disk: Path, marker: bytes, extra: int = 0,
                 from_board: bool = False):
        self.board, self.disk = board, disk
        self.marker, self.extra, self.from_board = marker, extra, from_board
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.port = os.ttyname(self.slave)
        self.uart = os.open(board.port, os.O_RDWR | os.O_NOCTTY)
        tty.setraw(self.uart)
        self.cut = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        sent = bytearray()  # host -> board
        heard = bytearray()  # board -> host
        cut_at = None
        try:
            while not self.cut:
                ready, _, _ = select.select([self.master, self.uart], [], [], 0.5)
                if self.uart in ready:
                    data = os.read(self.uart, 4096)
                    heard += data
                    os.write(self.master, data)
                    if self.from_board and self.marker in heard:
                        self._cut()
                if self.master in ready and not self.cut:
                    data = os.read(self.master, 4096)
                    if cut_at is None and not self.from_board:
                        i = (sent + data).find(self.marker, max(0, len(sent) - len(self.marker)))
                        if i >= 0:
                            cut_at = i + len(self.marker) + self.extra
                    if cut_at is not None and len(sent) + len(data) >= cut_at:
                        data = data[:cut_at - len(sent)]
                    sent += data
                    os.write(self.uart, data)
                    if cut_at is not None and len(sent) >= cut_at:
                        self._cut()
        except OSError:
            pass

    def _cut(self) -> None:
        self.cut = True
        self.board.power_cut(self.disk)
        # What the board sent before the cut reached the host: let mpremote read it all
        # (closing the master discards what is still queued for the slave), then its next
        # read fails: the board is gone.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _queued(self.slave):
            time.sleep(0.01)
        os.close(self.master)

    def close(self) -> None:
        self.thread.join(timeout=10)
        for fd in (self.slave, self.uart) + (() if self.cut else (self.master,)):
            os.close(fd)


def flash(port: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    p = subprocess.run(["bash", str(FLASH), "--port", port, "--board", "rp2350", *args],
                       capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, PYTHON=sys.executable, **(env or {})))
    print(f"$ flash.sh --port {port} --board rp2350 {' '.join(args)}\n{p.stdout}{p.stderr}"
          f"(exit {p.returncode})")
    return p


def huge_arena(work: Path) -> Path:
    """A model whose 2 x 256 KB of activations no board here holds."""
    rng = np.random.default_rng(0)
    g = Graph()
    x = g.add_activation("x", (16000, 16), 0.05, 0)
    g.inputs.append(x)
    g.outputs.append(layers.fully_connected(g, x, rng.integers(-127, 128, (16, 16)), 0.01,
                                            None, 0.1, 0))
    out = work / "huge_arena.trt"
    out.write_bytes(writer.serialize(g))
    return out


ZERO_INPUT = r"""
import json, tinyrt
m = tinyrt.load("m.trt")
x = m.input(0)
x.set([x.zero_point] * x.size)
print(json.dumps(m.invoke().tolist()[:12]))
"""

# On the board: which runtime is installed (the hash of a module with viper code,
# different in the old and the new one), whether staging leftovers exist, and the model's
# output for a zero-point input.
INSTALLED = r"""
import sys, os, json, hashlib, binascii
sys.path.append("/lib")
def _e(p):
    try:
        os.stat(p)
        return True
    except OSError:
        return False
K = "/lib/tinyrt/kernels/conv_viper.mpy"
f = open(K, "rb") if _e(K) else None
h = binascii.hexlify(hashlib.sha256(f.read()).digest()).decode() if f else None
print(json.dumps({"conv_viper": h, "stage": _e(S), "old": _e(O)}))
import tinyrt
m = tinyrt.load("/m.trt")
x = m.input(0)
x.set([x.zero_point] * x.size)
print(json.dumps(m.invoke().tolist()[:12]))
"""


def installed(board: M3) -> tuple[dict, list | None]:
    out = board.mp("exec", f"S = {STAGE!r}\nO = {OLD!r}\n" + INSTALLED, check=False)
    lines = [json.loads(ln) for ln in out.splitlines() if ln[:1] in "[{"]
    return lines[0], (lines[1] if len(lines) > 1 else None)


def host_output(model: Path) -> list:
    return json.loads(run(ZERO_INPUT, "cpython", files={"m.trt": model}).stdout)


def smoke_output(stdout: str) -> list:
    return json.loads(stdout.split("output[:")[1].split("= ", 1)[1].splitlines()[0])


@pytest.fixture
def work():
    d = Path(tempfile.mkdtemp(prefix="tinyrt-m3-", dir="/tmp"))  # short: QMP socket path
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_flash_on_emulated_m3(work):
    """A fresh board: compiled for its arch, copied by mpremote, verified by sha256 on the
    board, switched into place; the smoke inference equals the host simulator's."""
    model = work / "m.trt"
    model.write_bytes(mlp_model())
    board = M3(work)
    try:
        p = flash(board.port, str(model))
        assert p.returncode == 0, p.stderr
        assert "mps2-an385 with Cortex-M3" in p.stdout
        n_modules = len(sources())
        assert f"compiled {n_modules} modules for armv7em" in p.stdout
        assert "sys.path has no /lib" in p.stdout
        assert "sha256 hashes computed on the board match; switched into place" in p.stdout
        assert smoke_output(p.stdout) == host_output(model)
        state, out = installed(board)
        assert not state["stage"] and not state["old"]
        assert out == host_output(model)
        # a second flash of the same files copies nothing over the UART
        p = flash(board.port, str(model))
        assert p.returncode == 0
        # every module and the model are already on the board
        assert re.search(rf"copied 0 files \(0 B\) in [\d.]+ s, {n_modules + 1} unchanged ones",
                         p.stdout)
    finally:
        board.close()


def test_flash_refusals_on_emulated_m3(work):
    """An unrecognised board asks for --board; an existing main.py is replaced only after a
    yes; a model that does not fit is not copied."""
    model = work / "m.trt"
    model.write_bytes(mlp_model())
    board = M3(work)
    try:
        p = subprocess.run(["bash", str(FLASH), "--port", board.port, str(model)],
                           capture_output=True, text=True, timeout=120,
                           env=dict(os.environ, PYTHON=sys.executable))
        assert p.returncode == 2
        assert "cannot tell which board this is (sys.platform 'qemu'" in p.stderr
        board.mp("exec", "f = open('/main.py', 'w'); f.write('print(1)\\n'); f.close()")
        p = flash(board.port, "--main", str(model))
        assert p.returncode == 1
        assert "the board has its own main.py: not replaced, nothing was copied" in p.stderr
        assert board.mp("exec", "import os; print(sorted(os.listdir('/')))").split() == [
            "['main.py']"]
        p = flash(board.port, str(huge_arena(work)))
        assert p.returncode == 1
        assert "the model does not fit this board; nothing was copied" in p.stderr
        assert "-> does not fit" in p.stdout
        assert board.mp("exec", "import os; print(sorted(os.listdir('/')))").split() == [
            "['main.py']"]
        p = flash(board.port, "--main", "--yes", str(model))
        assert p.returncode == 0
        assert "replacing the board's main.py (--main)" in p.stdout
        assert "tinyrt.load('/m.trt')" in board.mp("exec", "print(open('/main.py').read())")
    finally:
        board.close()


# Power cuts: (where, how the relay finds the moment, what the restarted board holds)
CUTS = {
    # mid-copy of a runtime module (viper code: differs from the old runtime's)
    "copying the runtime": dict(marker=b"open('/.tinyrt-flash/lib/tinyrt/kernels/conv_viper",
                                extra=4000),
    # mid-copy of the model file
    "copying the model": dict(marker=b"open('/.tinyrt-flash/m.trt'", extra=1500),
    # everything staged; the verify-and-switch script cut short before it ran
    "before the switch": dict(marker=b"WANT = [", extra=0),
    # the journal written, the old package moved aside, the new one not yet in place
    "inside the switch": dict(marker=b"cut\r\n", from_board=True, env={CUT_ENV: "1"}),
    # the new package in place, the model not yet renamed
    "late in the switch": dict(marker=b"cut\r\n", from_board=True, env={CUT_ENV: "2"}),
}


@pytest.mark.parametrize("where", list(CUTS))
def test_power_cut_during_flash(work, where):
    """A flash interrupted by a power cut, then the board restarted and flashed again.

    How the emulator is made to lose power faithfully: the RAM disk is lost when QEMU exits, so
    the cut freezes the emulated CPU (QMP `stop`, at whatever instruction it is on), saves the
    RAM disk's memory as it is at that instant (QMP `pmemsave`: what the firmware had written
    to its block device, not a copy read out over the REPL), ends QEMU, and boots a new QEMU
    with that image loaded at the RAM disk's address: a cold boot on the same filesystem.
    The moment is chosen by a relay pty between mpremote and the board, from the bytes mpremote
    sends (a file's name in `fs cp`'s open, plus a count of bytes) or, inside the switch, from
    the board (flash.sh's fault injection, TINYRT_FLASH_CUT_AFTER=N, freezes after N renames).

    The board held an older installation: tinyrt compiled for armv6m (16 of 47 modules differ
    from the armv7em build) and model A; the flash brings the armv7em runtime and model B.
    Interrupted while copying or before the switch, the old installation loads and runs
    unchanged; interrupted inside the switch (the journal exists), the next flash finishes the
    switch first. Either way the next flash succeeds and leaves no temporaries."""
    cut = CUTS[where]
    old_model, new_model = work / "a.trt", work / "m.trt"
    old_model.write_bytes(mlp_model(seed=0))
    new_model.write_bytes(mlp_model(seed=1))
    old_out, new_out = host_output(old_model), host_output(new_model)
    assert old_out != new_out
    # the older installation, laid out as flash.sh lays it out, from a ROMFS image
    romfs = work / "seed.img"
    romfs.write_bytes(romfs_image({"seed": {
        "lib": {"tinyrt": runtime_tree("armv6m")["tinyrt"]}, "m.trt": old_model.read_bytes()}}))
    board = M3(work, romfs)
    disk = work / "disk.img"
    try:
        board.mp("exec", SEED)
        old_state, out = installed(board)
        assert out == old_out
        relay = Relay(board, disk, cut["marker"], cut.get("extra", 0),
                      cut.get("from_board", False))
        try:
            p = flash(relay.port, str(new_model), env=cut.get("env"))
        finally:
            relay.close()
        assert relay.cut, f"the flash never reached the cut point ({where})"
        assert p.returncode == 1
    finally:
        board.close()

    board = M3(work, disk=disk)  # power back on
    try:
        state, out = installed(board)
        assert state["stage"]  # the interrupted flash left its staging folder
        if where.endswith("the switch") and where != "before the switch":
            assert "run flash.sh again to finish the switch" in p.stderr
            if cut["env"][CUT_ENV] == "2":  # new runtime in place, old model
                assert state["conv_viper"] != old_state["conv_viper"]
                assert out == old_out
            else:
                assert state["old"] and out is None  # until the next flash finishes it
            done = "finished the switch to the new installation an interrupted flash had begun"
        else:
            assert "the installation in place was left as it was" in p.stderr
            assert state["conv_viper"] == old_state["conv_viper"] and out == old_out  # the old
            assert not state["old"]  # installation, whole and in place
            done = "temporary files an interrupted flash left"
        p = flash(board.port, str(new_model))
        assert p.returncode == 0, p.stderr
        assert done in p.stdout
        assert smoke_output(p.stdout) == new_out
        state, out = installed(board)
        assert not state["stage"] and not state["old"] and out == new_out
    finally:
        board.close()


# Copies /rom/seed onto the RAM disk: the installation an earlier flash.sh would have left.
SEED = f"""
import os
def cp(src, dst):
    for e in os.ilistdir(src):
        s, d = src + "/" + e[0], dst + "/" + e[0]
        if e[1] == 0x4000:
            os.mkdir(d)
            cp(s, d)
        else:
            f = open(s, "rb")
            data = f.read()
            f.close()
            f = open(d, "wb")
            f.write(data)
            f.close()
cp("/rom/seed", "")
assert sorted(os.listdir({LIB!r}))[0]
"""
