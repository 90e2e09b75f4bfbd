"""examples/: the board script classifies a buffer on a real MicroPython as TFLM does, and the
shell scripts are valid sh."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from host_sim import run
from host_sim.runner import convert

from .conftest import SHARED_MODELS

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.parametrize("interp", ["cpython", "unix", "m0"])
def test_board_script_classifies_a_buffer(tmp_path, interp):
    trt = convert(SHARED_MODELS / "digits_cnn_int8.tflite", tmp_path / "d.trt").output
    io = np.load(SHARED_MODELS / "digits_cnn_int8_io.npz")
    i = 1
    pixels = (io["x"][i].astype(np.int16) + 128).astype(np.uint8).tobytes()  # q = byte - 128
    r = run((EXAMPLES / "board" / "classify.py").read_text(), interp,
            files={"model.trt": trt.read_bytes(), "sample.bin": pixels})
    k = int(io["y"][i].argmax())
    score = (int(io["y"][i][k]) + 128) / 256
    assert r.stdout.strip().splitlines()[-1] == f"class {k} '{k}' score {score:.3f}"


@pytest.mark.parametrize("script", sorted(EXAMPLES.glob("*/run.sh")), ids=lambda p: p.parent.name)
def test_example_scripts_parse(script):
    sh = shutil.which("sh")
    assert subprocess.run([sh, "-n", str(script)]).returncode == 0
