"""flash.sh against a simulated board (host_sim/serial_board.py: a pseudo-terminal speaking
MicroPython's raw REPL, backed by the unix port with an RP2040-sized heap), through the real
mpremote, and with no board at all.

flash.sh is tested on the emulated m3 (genuine firmware under QEMU) in test_flash_board.py.
The simulator stays only where the emulated board cannot serve: the m3 firmware reports
sys.platform 'qemu', so detecting a known board (an RP2040 here) from sys.platform and
sys.implementation._machine, with no --board, and the RP2040 profile's figures in the fit
check, can be seen only on the simulator, which reports them as a Pico does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from converter import writer
from host_sim import run
from tests.conftest import SHARED_MODELS
from tests.models import mlp_model

REPO = Path(__file__).resolve().parents[1]
FLASH = REPO / "flash.sh"


@pytest.fixture
def board(tmp_path):
    """(port, board directory) of a simulated RP2040 board; stopped after the test."""
    root = tmp_path / "board"
    proc = subprocess.Popen([sys.executable, "-m", "host_sim.serial_board", "--dir", str(root),
                             "--board", "rp2040"], stdout=subprocess.PIPE, text=True, cwd=REPO)
    line = proc.stdout.readline()
    assert line.startswith("PORT "), line
    yield line.split()[1], root
    proc.terminate()
    proc.wait(timeout=10)


def flash(*args: str, stdin=subprocess.DEVNULL) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHON=sys.executable)
    p = subprocess.run(["bash", str(FLASH), *args], capture_output=True, text=True, env=env,
                       stdin=stdin, timeout=300)
    print(f"$ flash.sh {' '.join(args)}\n{p.stdout}{p.stderr}(exit {p.returncode})")
    return p


def kws_or_mlp(tmp_path: Path) -> Path:
    src = SHARED_MODELS / "kws_ref_model.tflite"
    out = tmp_path / ("kws.trt" if src.exists() else "mlp.trt")
    if src.exists():
        from converter.tflite_import import import_tflite

        out.write_bytes(writer.serialize(import_tflite(src.read_bytes())))
    else:
        out.write_bytes(mlp_model())
    return out


ZERO_INPUT = r"""
import json, tinyrt
m = tinyrt.load("m.trt")
x = m.input(0)
x.set([x.zero_point] * x.size)
print(json.dumps(m.invoke().tolist()[:12]))
"""


def test_flash_detects_a_known_board(board, tmp_path):
    port, root = board
    model = kws_or_mlp(tmp_path)
    (root / "main.py").write_text("print('the user main.py')\n")
    (root / "lib" / "tinyrt").mkdir(parents=True)
    (root / "lib" / "tinyrt" / "old_module.py").write_text("# from an older tinyrt\n")
    p = flash("--port", port, str(model))  # no --board: detected from the board
    assert p.returncode == 0
    out = p.stdout
    assert f"board on {port}" in out
    assert "rp2040: Raspberry Pi Pico" in out
    assert "fit: flash needs" in out and "does not fit" not in out
    assert "sha256 hashes computed on the board match; switched into place" in out
    assert "removed stale /lib/tinyrt/old_module.py" in out
    assert "smoke inference: load" in out
    # the board holds the compiled runtime and the model, and nothing half-copied
    assert (root / "lib" / "tinyrt" / "model.mpy").exists()
    assert not list(root.rglob("*.tmp"))
    assert not (root / ".tinyrt-flash").exists() and not (root / ".tinyrt-old").exists()
    assert not list((root / "lib").rglob("*.py"))  # only .mpy: a stale .py would shadow them
    assert not (root / "lib" / "tinyrt" / "old_module.py").exists()
    assert (root / model.name).read_bytes() == model.read_bytes()
    assert (root / "main.py").read_text() == "print('the user main.py')\n"
    # the smoke inference on the board equals the host simulator, bit for bit
    want = json.loads(run(ZERO_INPUT, "cpython", files={"m.trt": model}).stdout)
    got = out.split("output[:")[1].split("= ", 1)[1].splitlines()[0]
    assert json.loads(got) == want


def test_no_board_attached(tmp_path):
    p = flash("--port", "/dev/ttyACM9-not-here", str(tmp_path / "missing.trt"))
    assert p.returncode == 2  # not a model file: checked first
    assert "give a model file MODEL.trt" in p.stderr
    model = tmp_path / "mlp.trt"
    model.write_bytes(mlp_model())
    p = flash("--port", "/dev/ttyACM9-not-here", str(model))
    assert p.returncode == 1
    assert ("no board at /dev/ttyACM9-not-here: that port does not exist. Is the board "
            "plugged in?") in p.stderr
    from serial.tools import list_ports

    if not any(port.vid is not None for port in list_ports.comports()):
        p = flash(str(model))
        assert p.returncode == 1
        assert "no MicroPython board found: no USB serial port is attached" in p.stderr


def test_simulated_board_speaks_raw_paste_and_plain_raw_repl(board):
    """mpremote uses raw-paste when offered; a plain raw-REPL exchange works too."""
    port, root = board
    out = subprocess.run([sys.executable, "-m", "mpremote", "connect", port, "exec",
                          "import sys, gc; print(sys.platform, gc.mem_free() > 150000)"],
                         capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["rp2", "True"], out
    import serial

    with serial.Serial(port, timeout=5) as s:
        s.write(b"\r\x03\x03\r\x01")
        assert s.read_until(b"raw REPL; CTRL-B to exit\r\n>").endswith(b">")
        s.write(b"print(6 * 7)\x04")
        assert s.read_until(b">") == b"OK42\r\n\x04\x04>"
        s.write(b"1/0\x04")
        reply = s.read_until(b"\x04>")
        assert reply.startswith(b"OK\x04Traceback (most recent call last):\r\n")
        assert b"ZeroDivisionError: divide by zero" in reply
