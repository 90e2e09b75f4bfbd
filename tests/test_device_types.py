"""The device package type-checks against the boards' own APIs: mypy with the MicroPython
stubs of the rp2 and esp32 ports (micropython-stubs) as its typeshed, so a call the firmware
does not have (time.perf_counter_ns, a missing os function, a wrong signature) is an error.

The stubs are installed per port into a cache directory (two ports' stubs cannot share one
site-packages: both ship machine.pyi, micropython.pyi, ...). Skipped, saying why, when mypy
is not installed or the stubs cannot be fetched."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
STUBS = {  # port -> pinned stub packages (MicroPython 1.29)
    "rp2": ["micropython-rp2-stubs==1.29.0.post1", "micropython-stdlib-stubs==1.29.0.post2"],
    "esp32": ["micropython-esp32-stubs==1.29.0.post1", "micropython-stdlib-stubs==1.29.0.post2"],
}
# Inline-assembler modules (@micropython.asm_thumb) are written in Thumb mnemonics, not Python
# a type checker can read; the stubs' own private helpers are not ours to check.
MYPY_CONFIG = """\
[mypy]
exclude = _asm\\.py$
[mypy-_mpy_shed.*]
ignore_errors = True
"""


def stubs_dir(port: str) -> Path:
    d = Path(tempfile.gettempdir()) / "tinyrt-stubs" / "-".join(STUBS[port])
    if (d / "stdlib").is_dir():
        return d
    p = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                        "--target", str(d), *STUBS[port]], capture_output=True, text=True,
                       timeout=300)
    if p.returncode != 0 or not (d / "stdlib").is_dir():
        pytest.skip(f"could not install {' '.join(STUBS[port])}: "
                    f"{(p.stderr.strip().splitlines() or ['no output'])[-1]}")
    return d


@pytest.mark.parametrize("port", sorted(STUBS))
def test_device_package_type_checks_against_port_stubs(port, tmp_path):
    api = pytest.importorskip("mypy.api", reason="mypy is not installed (a dev dependency)")
    stubs = stubs_dir(port)
    cfg = tmp_path / "mypy.ini"
    cfg.write_text(MYPY_CONFIG)
    old = os.environ.get("MYPYPATH")
    os.environ["MYPYPATH"] = os.pathsep.join([str(REPO / "mp_runtime"), str(stubs)])
    try:
        out, err, code = api.run([
            "--config-file", str(cfg), "--custom-typeshed-dir", str(stubs),
            "--python-version", "3.10", "--no-site-packages", "--check-untyped-defs",
            # device code is unannotated by choice (annotations cost bytes on the board)
            "--disable-error-code", "var-annotated",
            "--cache-dir", str(tmp_path / "cache"), "-p", "tinyrt"])
    finally:
        if old is None:
            del os.environ["MYPYPATH"]
        else:
            os.environ["MYPYPATH"] = old
    assert code == 0, f"mypy against the {port} stubs:\n{out}{err}"
