"""What a runtime installed on a board's filesystem costs in RAM beyond one in ROMFS.

boards.fit measures on m0 with tinyrt in ROMFS, where MicroPython runs .mpy bytecode in place
(only native code is copied to RAM). flash.sh installs tinyrt as .mpy files in /lib on the
board's filesystem (FAT or littlefs), from which an import reads the whole module into RAM:
bytecode, constants and all. The difference is measured on the emulated m3, whose 1 MiB FAT
RAM disk holds the runtime (m0's holds 14.5 KB): the same armv6m .mpy files (an M3 runs them)
imported once from ROMFS and once from FAT, gc.mem_free() before and after. Cached per module
set, runtime sources and firmware.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from functools import lru_cache
from pathlib import Path

from boards.runtime import compile_runtime

MEASURE_ON = "m3"
ARCH = "armv6m"

# Imports the modules from ROMFS (the run's runtime) or, FAT=True, from copies on the FAT disk.
_PROBE = r"""
import gc, json, os, sys
if FAT:
    for d in ("/lib", "/lib/tinyrt", "/lib/tinyrt/kernels"):
        try:
            os.mkdir(d)
        except OSError:
            pass
    buf = bytearray(4096)
    for d in ("lib/tinyrt", "lib/tinyrt/kernels"):
        for n in os.listdir(d):
            if not n.endswith(".mpy"):
                continue
            src = open(d + "/" + n, "rb")
            dst = open("/" + d + "/" + n, "wb")
            while True:
                k = src.readinto(buf)
                if not k:
                    break
                dst.write(memoryview(buf)[:k])
            src.close()
            dst.close()
    buf = None
    sys.path.insert(0, "/lib")
else:
    sys.path.insert(0, "/rom/w/lib")  # the same armv6m files, in ROMFS
gc.collect()
f0 = gc.mem_free()
import tinyrt
for name in MODULES:
    __import__(name)
gc.collect()
print(json.dumps([f0 - gc.mem_free(), tinyrt.__file__]))
"""


def _cache_file(modules: tuple[str, ...]) -> Path:
    from host_sim.emulated import BOARDS, emulator_dir

    h = hashlib.sha256(repr(modules).encode() + b"fs-surcharge v1")
    for f in compile_runtime(ARCH)[0]:
        h.update(f.local.name.encode())  # named by content hash
    h.update((emulator_dir() / BOARDS[MEASURE_ON].firmware).read_bytes())
    d = Path(tempfile.gettempdir()) / "tinyrt-fit-cache"
    d.mkdir(exist_ok=True)
    return d / f"fs-{h.hexdigest()[:32]}.json"


@lru_cache(maxsize=16)
def surcharge(modules: tuple[str, ...]) -> int:
    """Bytes of RAM that importing `modules` (and tinyrt) takes from the filesystem beyond what
    it takes from ROMFS."""
    from host_sim.interpreters import run

    cache = _cache_file(modules)
    if cache.exists():
        return json.loads(cache.read_text())
    files = {"lib/" + f.path: f.local for f in compile_runtime(ARCH)[0]}
    code = _PROBE.replace("MODULES", repr([m for m in modules if m != "tinyrt"]))
    costs = {}
    for fat in (False, True):
        out = run(code.replace("FAT", str(fat)), MEASURE_ON, files=files).stdout
        cost, where = json.loads(out.strip().splitlines()[-1])
        assert where.startswith("/lib/" if fat else "/rom/w/lib/"), where
        costs[fat] = cost
    extra = max(0, costs[True] - costs[False])
    part = cache.with_suffix(".part")
    part.write_text(json.dumps(extra))
    part.replace(cache)
    return extra
