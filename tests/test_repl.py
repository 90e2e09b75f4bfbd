"""The REPL experience, recorded: the MicroPython unix port's own interactive REPL on a
pseudo-terminal (as a maker types at a board's REPL), with summary(), profile() and the errors
a maker meets, each saying what to do. The transcript is printed (pytest -s shows it) and
written to repl_transcript.txt in the test's tmp directory."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import time
from pathlib import Path

import pytest

from converter import writer
from host_sim.interpreters import micropython_executable
from host_sim.mpy_runtime import runtime_dir
from tests.conftest import SHARED_MODELS
from tests.models import mlp_model
from tests.test_streaming import wide_mlp

HEAP = 209_936 + 9_728  # bytes: an RP2040's free heap after boot, plus the REPL's own


class Repl:
    """The unix port's REPL on a pty: type a line, read until the next prompt."""

    def __init__(self, cwd: Path, heap: int):
        self.master, slave = pty.openpty()
        # the runtime as flash.sh installs it: .mpy (importing .py would compile on the board)
        env = dict(os.environ, MICROPYPATH=f"{runtime_dir('x64')}:.frozen")
        self.proc = subprocess.Popen([micropython_executable(), "-X", f"heapsize={heap}"],
                                     stdin=slave, stdout=slave, stderr=slave, cwd=cwd, env=env)
        os.close(slave)
        self.log = self.read_prompt()

    def read_prompt(self, timeout: float = 120.0) -> str:
        buf = b""
        end = time.monotonic() + timeout
        while not buf.endswith(b">>> "):
            if time.monotonic() > end:
                raise TimeoutError(buf.decode(errors="replace"))
            r, _, _ = select.select([self.master], [], [], 0.5)
            if r:
                buf += os.read(self.master, 65536)
        return buf.decode(errors="replace").replace("\r\n", "\n")

    def type(self, line: str) -> str:
        os.write(self.master, line.encode() + b"\r")
        out = self.read_prompt()
        self.log += out
        return out

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()
        os.close(self.master)


@pytest.fixture
def models(tmp_path):
    kws = SHARED_MODELS / "kws_ref_model.tflite"
    if kws.exists():
        from converter.tflite_import import import_tflite

        (tmp_path / "kws.trt").write_bytes(writer.serialize(import_tflite(kws.read_bytes())))
    else:
        (tmp_path / "kws.trt").write_bytes(mlp_model())
    (tmp_path / "big.trt").write_bytes(wide_mlp())
    return tmp_path


def test_repl_transcript(models):
    repl = Repl(models, HEAP)
    try:
        out = repl.type("import tinyrt, gc")
        assert "Error" not in out
        out = repl.type('m = tinyrt.load("kws.trt")')
        assert "Error" not in out
        out = repl.type("m.summary()")
        assert re.search(r"tinyrt model: \d+ ops, \d+ tensors, \d+ MACs per invoke", out)
        assert ("weights in RAM: the whole file is loaded" in out
                or "weights streamed from 'kws.trt'" in out)  # 64-bit objects: a tight fit
        assert re.search(r"#\s+op\s+output\s+MACs\s+weights\s+kernel", out)
        assert "arena map (offset..end  tensor):" in out
        out = repl.type("rows = m.profile()")
        assert re.search(r"total \d+ us per invoke \(1 runs\)", out)
        out = repl.type("m.invoke([1, 2, 3])")
        assert re.search(r"ShapeError: tensor '.*' takes \d+ values \(shape \(.*\)\), got 3",
                         out)
        out = repl.type('tinyrt.load("kws.tflite")')
        assert "ModelError: cannot open model file 'kws.tflite'" in out
        assert "os.listdir()" in out
        out = repl.type('big = tinyrt.load("big.trt", stream=False)')
        assert "ArenaError: model file 'big.trt' needs " in out
        assert "load('big.trt', stream=True) keeps only its" in out
    finally:
        repl.close()
    log = repl.log
    repl = Repl(models, HEAP)  # a fresh heap, as after a soft reset (Ctrl-D) on a board
    try:
        out = repl.type('import tinyrt; big = tinyrt.load("big.trt")')
        assert "Error" not in out
        out = repl.type("big.summary()")
        assert "weights streamed from 'big.trt'" in out
        out = repl.type("rows = big.profile()")
        assert "weights streamed from the file" in out
    finally:
        repl.close()
    log += "\n# (soft reset: a fresh heap)\n" + repl.log
    (models / "repl_transcript.txt").write_text(log)
    print("\n" + log)
