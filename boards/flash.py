"""flash.sh: put tinyrt and a model on a board with mpremote, verified, and run it once.

    flash.sh [--board NAME] [--port PORT] [--main] [--yes] [--force] MODEL.trt

1. find the board (--port, or the one USB serial port) and ask it what it is (sys.platform,
   sys.implementation, free heap, filesystem, which of our files it already has);
2. check that the model fits (flash and RAM, with the board's own figures: converter/fit.py);
3. compile tinyrt to .mpy for the board's arch (as its sys.implementation._mpy reports);
4. copy every file to NAME.tmp with `mpremote fs cp`, hash each copy on the board (hashlib)
   against the host's sha256, and only when all match rename them into place (a rename
   replaces a file atomically: a board never runs a half-copied module); stale modules of an
   older tinyrt in /lib/tinyrt are removed;
5. load the model and run one inference on the board.
main.py and boot.py are the user's: they are written only with --main, and an existing
main.py is replaced only after a yes (--yes, or an answer at the terminal).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

try:
    import boards
except ImportError:  # run from elsewhere than the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import boards

from boards.runtime import CompileError, blocks, compile_runtime

MPREMOTE = [sys.executable, "-m", "mpremote"]
LIB = "/lib/tinyrt"
TIMEOUT = 120.0  # seconds for one mpremote run

# Prints one JSON line describing the board and what it already holds.
PROBE = r"""
import gc, os, sys, json
try:
    import hashlib, binascii
except ImportError:
    hashlib = None
def _h(p):
    try:
        f = open(p, "rb")
    except OSError:
        return None
    d = hashlib.sha256() if hashlib else None
    b = bytearray(512)
    n = 0
    while True:
        k = f.readinto(b)
        if not k:
            break
        n += k
        if d:
            d.update(memoryview(b)[:k])
    f.close()
    return [n, binascii.hexlify(d.digest()).decode() if d else ""]
def _walk(p, out):
    try:
        es = list(os.ilistdir(p))
    except OSError:
        return
    for e in es:
        q = p + "/" + e[0]
        if e[1] == 0x4000:
            _walk(q, out)
        else:
            out.append(q)
ours = []
_walk("/lib/tinyrt", ours)
s = os.statvfs("/")
gc.collect()
print(json.dumps({"platform": sys.platform,
                  "machine": getattr(sys.implementation, "_machine", ""),
                  "version": list(sys.implementation.version[:3]),
                  "mpy": getattr(sys.implementation, "_mpy", 0),
                  "free": gc.mem_free(), "fs_total": s[0] * s[2], "fs_free": s[0] * s[3],
                  "block": s[0], "ours": ours, "hashlib": hashlib is not None,
                  "files": {p: _h(p) for p in FILES}}))
"""

# Checks every copied NAME.tmp against the host's hash, then renames them into place and
# removes modules of the tinyrt package that the new runtime does not have.
COMMIT = r"""
import os, hashlib, binascii
def _h(p):
    d = hashlib.sha256()
    f = open(p, "rb")
    b = bytearray(512)
    while True:
        k = f.readinto(b)
        if not k:
            break
        d.update(memoryview(b)[:k])
    f.close()
    return binascii.hexlify(d.digest()).decode()
bad = []
for p, want in WANT:
    got = _h(p + ".tmp")
    print("sha256", got, p)
    if got != want:
        bad.append(p)
if bad:
    for p, want in WANT:
        try:
            os.remove(p + ".tmp")
        except OSError:
            pass
    raise OSError("copy corrupted on the board (hash differs): " + " ".join(bad))
for p, want in WANT:
    os.rename(p + ".tmp", p)
keep = [p for p, want in WANT]
for p in STALE:
    if p not in keep:
        os.remove(p)
        print("removed", p)
print("committed", len(WANT))
"""

# Loads the model and runs one inference; prints one JSON line.
SMOKE = r"""
import gc, json, time, tinyrt
gc.collect()
free0 = gc.mem_free()
t0 = time.ticks_ms()
m = tinyrt.load(MODEL)
t1 = time.ticks_ms()
gc.collect()
free1 = gc.mem_free()
x = m.input(0)
x.set([x.zero_point if x.dtype == "int8" else 0] * x.size)
t2 = time.ticks_us()
y = m.invoke()
t3 = time.ticks_us()
print(json.dumps({"load_ms": time.ticks_diff(t1, t0), "invoke_us": time.ticks_diff(t3, t2),
                  "streamed": m.stream is not None, "free_before": free0,
                  "free_after_load": free1, "output": y.tolist()[:12], "n": y.size}))
"""


class FlashError(Exception):
    """A user-facing failure: the message says what is wrong and what to do."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


def say(msg: str) -> None:
    print(f"flash.sh: {msg}", flush=True)


def mpremote(port: str, *args: str, timeout: float = TIMEOUT) -> str:
    """Run `mpremote connect PORT ARGS...`; its stdout, or FlashError with its last error."""
    try:
        p = subprocess.run(MPREMOTE + ["connect", port, *args], capture_output=True, text=True,
                           timeout=timeout)
    except subprocess.TimeoutExpired:
        raise FlashError(f"the board on {port} stopped answering (mpremote timed out after "
                         f"{timeout:.0f} s): reset it and try again") from None
    if p.returncode != 0:
        text = (p.stderr + p.stdout).strip().splitlines()
        last = [ln for ln in text if ln.strip()]
        raise MpremoteError(last[-1] if last else f"mpremote exited with {p.returncode}",
                            p.stdout + p.stderr)
    return p.stdout


class MpremoteError(FlashError):
    def __init__(self, last: str, output: str):
        super().__init__(last)
        self.output = output


def find_port(port: str | None) -> str:
    if port:
        if "://" not in port and not os.path.exists(port):
            raise FlashError(f"no board at {port}: that port does not exist. Is the board "
                             "plugged in? `mpremote devs` lists attached boards")
        return port
    from serial.tools import list_ports

    usb = [p.device for p in list_ports.comports() if p.vid is not None]
    if not usb:
        raise FlashError("no MicroPython board found: no USB serial port is attached. Plug "
                         "the board in (a data cable, not a charge-only one), or pass "
                         "--port PORT")
    if len(usb) > 1:
        raise FlashError(f"several USB serial ports ({', '.join(usb)}): pass --port PORT")
    return usb[0]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def probe(port: str, files: list[str]) -> dict:
    try:
        out = mpremote(port, "exec", f"FILES = {files!r}\n" + PROBE)
    except MpremoteError as e:
        raise FlashError(f"{port} did not answer as a MicroPython board ({e})") from None
    for line in reversed(out.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise FlashError(f"{port} answered, but not as a MicroPython board: {out.strip()[:200]}")


def choose_board(name: str | None, info: dict) -> boards.BoardProfile:
    if name:
        try:
            return boards.get(name)
        except KeyError as e:
            raise FlashError(str(e.args[0]), 2) from None
    found = boards.identify(info["platform"], info["machine"])
    if found is None:
        raise FlashError(f"cannot tell which board this is (sys.platform {info['platform']!r}, "
                         f"{info['machine']!r}): pass --board NAME, one of "
                         f"{', '.join(boards.names())}", 2)
    return found


def check_fit(model: bytes, name: str, profile: boards.BoardProfile, info: dict,
              runtime_fs: int, force: bool) -> None:
    from converter.fit import FitError, fit

    board = dataclasses.replace(profile, free_heap_bytes=info["free"],
                                fs_bytes=info["fs_total"] or profile.fs_bytes)
    try:
        f = fit(model, board, name)
    except FitError as e:
        raise FlashError(f"{name}: {e}") from None
    # flash: what is free now plus what this install replaces
    block = info["block"] or profile.fs_block_bytes
    replaced = sum(blocks(v[0], block) for v in info["files"].values() if v)
    room = info["fs_free"] + replaced if info["fs_total"] else profile.fs_bytes
    need = runtime_fs + blocks(len(model), block)
    level, mode = f.verdict
    say(f"fit: flash needs {need:,} B, {room:,} B available; RAM needs "
        f"{f.ram_needed(mode == 'streaming', low=True):,}..{f.ram_needed(mode == 'streaming'):,}"
        f" B, the board has {info['free']:,} B free -> "
        + (f"{level} {mode}" if mode else "does not fit"))
    problems = f.problems() if level == "no" else []
    if need > room:
        problems.insert(0, f"flash: needs {need:,} B, the filesystem has {room:,} B free")
    if problems and not force:
        raise FlashError("the model does not fit this board; nothing was copied:\n  "
                         + "\n  ".join(problems) + "\n(tinyrt fit MODEL --board NAME shows "
                         "the details; --force copies anyway)")
    if level == "may fit":
        say("warning: it may not fit once loaded; the smoke test below will tell")


def confirm(question: str, yes: bool) -> bool:
    if yes:
        return True
    if not sys.stdin.isatty():
        return False
    return input(f"flash.sh: {question} [y/N] ").strip().lower() in ("y", "yes")


MAIN_PY = '''# Written by tinyrt's flash.sh: load the model at boot and run it once.
import tinyrt
m = tinyrt.load({model!r})
print("tinyrt:", {model!r}, "output", m.invoke().tolist())
'''


def flash(args: argparse.Namespace) -> None:
    t_start = time.monotonic()
    model_path = Path(args.model)
    if model_path.suffix != ".trt" or not model_path.is_file():
        raise FlashError(f"{args.model}: give a model file MODEL.trt (tinyrt convert makes "
                         "one)", 2)
    model = model_path.read_bytes()
    remote_model = "/" + model_path.name
    if model_path.name in ("main.py", "boot.py"):
        raise FlashError(f"refusing to write a model over {model_path.name}", 2)

    port = find_port(args.port)
    say(f"board on {port}")
    info = probe(port, [remote_model, "/main.py", "/boot.py"])
    profile = choose_board(args.board, info)
    mpy = info["mpy"]
    if mpy & 0xFF != 6:
        raise FlashError(f"the board's MicroPython {'.'.join(map(str, info['version']))} reads "
                         f".mpy version {mpy & 0xFF}; this mpy-cross writes version 6 "
                         "(MicroPython >= 1.22): update the firmware")
    arch = boards.arch_of_mpy(mpy)
    note = "" if arch == profile.mpy_arch else (
        f" (the board reports {arch or 'no native code'}; the {profile.name} profile expects "
        f"{profile.mpy_arch}: compiling for what the board runs)")
    say(f"{profile.name}: {profile.title}; MicroPython "
        f"{'.'.join(map(str, info['version']))}, {info['machine']}{note}")
    if not info["hashlib"]:
        raise FlashError("the board's firmware has no hashlib: copies cannot be verified")

    try:
        runtime, skipped = compile_runtime(arch)
    except CompileError as e:
        raise FlashError(str(e)) from None
    runtime_fs = sum(blocks(f.size, info["block"] or 4096) for f in runtime)
    say(f"compiled {len(runtime)} modules for {arch or 'bytecode'} "
        f"({sum(f.size for f in runtime):,} B)"
        + (f"; left out {', '.join(Path(s).stem for s in skipped)}" if skipped else ""))
    check_fit(model, model_path.name, profile, info, runtime_fs, args.force)

    uploads = [(f.local, f"/lib/{f.path}") for f in runtime] + [(model_path, remote_model)]
    if args.main:
        main_src = Path(os.environ.get("TMPDIR", "/tmp")) / f"tinyrt-main-{os.getpid()}.py"
        main_src.write_text(MAIN_PY.format(model=remote_model))
        existing = info["files"].get("/main.py")
        if existing and existing[1] != sha256(main_src):
            if not confirm(f"the board has its own main.py ({existing[0]:,} B); replace it?",
                           args.yes):
                raise FlashError("the board has its own main.py: not replaced, nothing was "
                                 "copied. Rerun with --yes to replace it, or without --main")
            say("replacing the board's main.py (--main)")
        uploads.append((main_src, "/main.py"))
    old = info["files"].get(remote_model)
    if old and old[1] != sha256(model_path):
        say(f"replacing {remote_model} on the board ({old[0]:,} B, a different model)")

    dirs = sorted({str(Path(r).parent) for _, r in uploads if str(Path(r).parent) != "/"})
    mkdirs = ("import os\nfor d in %r:\n    try:\n        os.mkdir(d)\n    except OSError:\n"
              "        pass\n" % (["/lib"] + [d for d in dirs if d != "/lib"]))
    want = [(r, sha256(Path(local))) for local, r in uploads]
    commit = f"WANT = {want!r}\nSTALE = {info['ours']!r}\n" + COMMIT
    cmd = ["exec", mkdirs]
    for local, remote in uploads:
        cmd += ["+", "fs", "cp", "-f", str(local), ":" + remote + ".tmp"]
    cmd += ["+", "exec", commit]
    size = sum(Path(local).stat().st_size for local, _ in uploads)
    t0 = time.monotonic()
    try:
        out = mpremote(port, *cmd, timeout=TIMEOUT + 2 * len(uploads))
    except MpremoteError as e:
        raise FlashError(f"copying failed ({e}); the files in place were left as they were")
    finally:
        if args.main:
            main_src.unlink(missing_ok=True)
    hashes = [ln.split() for ln in out.splitlines() if ln.startswith("sha256 ")]
    removed = [ln.split(None, 1)[1] for ln in out.splitlines() if ln.startswith("removed ")]
    say(f"copied {len(uploads)} files ({size:,} B) in {time.monotonic() - t0:.1f} s; "
        f"{len(hashes)} sha256 hashes computed on the board match; renamed into place")
    for path in removed:
        say(f"removed stale {path}")

    try:
        out = mpremote(port, "exec", f"MODEL = {remote_model!r}\n" + SMOKE)
    except MpremoteError as e:
        raise FlashError(f"the files are on the board but the smoke inference failed: {e}"
                         ) from None
    smoke = json.loads([ln for ln in out.splitlines() if ln.startswith("{")][-1])
    say(f"smoke inference: load {smoke['load_ms']} ms "
        f"({'weights streamed' if smoke['streamed'] else 'whole file in RAM'}), invoke "
        f"{smoke['invoke_us'] / 1000:.1f} ms, free heap {smoke['free_before']:,} B -> "
        f"{smoke['free_after_load']:,} B after load")
    say(f"output[:{min(12, smoke['n'])}] = {smoke['output']}")
    say(f"done in {time.monotonic() - t_start:.1f} s. At the board's REPL: import tinyrt; "
        f"m = tinyrt.load({remote_model!r}); m.summary()")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="flash.sh", description=__doc__.split("\n\n")[0])
    ap.add_argument("model", help="MODEL.trt")
    ap.add_argument("--board", help="board profile (default: detected): "
                    + ", ".join(boards.names()))
    ap.add_argument("--port", help="serial port (default: the one USB serial port)")
    ap.add_argument("--main", action="store_true",
                    help="also install a main.py that runs the model at boot")
    ap.add_argument("--yes", action="store_true", help="replace an existing main.py")
    ap.add_argument("--force", action="store_true", help="copy even if the model does not fit")
    args = ap.parse_args(argv)
    try:
        flash(args)
    except FlashError as e:
        print(f"flash.sh: error: {e}", file=sys.stderr)
        return e.code
    return 0


if __name__ == "__main__":
    sys.exit(main())
