"""The device package as a board gets it (compiled by host_sim.mpy_runtime) and as mip gets it
(package.json)."""

from __future__ import annotations

import json
import sys

import tinyrt

from host_sim.mpy_runtime import (  # noqa: F401 - the runtime as a board gets it
    MPY_CROSS, OPTIONAL_SUFFIXES, PACKAGE_DIR, CompileError, RuntimeFile, compile_module,
    compile_runtime, sources)


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
