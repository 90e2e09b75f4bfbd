"""A simulated MicroPython board on a pseudo-terminal: `mpremote connect PORT ...` and flash.sh
work against it with no hardware.

    python -m host_sim.serial_board --dir BOARD_DIR [--board rp2040] [--heap BYTES]

prints `PORT /dev/pts/N` and serves until interrupted. The board is the MicroPython unix port
(x86-64) run with a board-sized heap (-X heapsize: the profile's free heap after boot plus what
the simulator itself holds), the directory mounted at / as the board's filesystem (VfsPosix),
`/lib` on sys.path, and sys.platform / sys.implementation._machine / os.statvfs('/') reporting
the profile's values so that board detection and fit checks see a board. Its .mpy arch is the
unix port's (x64): sys.implementation._mpy says so, as on a real board.

Protocol spoken on the pty, as MicroPython 1.2x's pyexec does (what mpremote 1.29 uses):
- friendly REPL: echo, one line (or an indented block ended by an empty line) run per Enter,
  expression values printed; Ctrl-A raw REPL, Ctrl-B banner, Ctrl-C clears the line or
  interrupts running code, Ctrl-D soft reset.
- raw REPL: "raw REPL; CTRL-B to exit\\r\\n>"; code bytes until Ctrl-D, then "OK", the output,
  "\\x04", the error text, "\\x04", ">". Ctrl-D on an empty buffer: "OK\\r\\n", soft reset
  ("MPY: soft reboot\\r\\n", boot.py runs, main.py does not), raw REPL again.
- raw-paste: "\\x05A\\x01" answers "R\\x01" + the window size (uint16 LE); the host sends up to a
  window of bytes per "\\x01" the board sends; Ctrl-D ends the code, the board answers "\\x04"
  and runs it (output "\\x04" error "\\x04" ">", no "OK").
A soft reset restarts the interpreter process: a fresh heap, as on a board.
"""

from __future__ import annotations

import argparse
import os
import select
import signal
import struct
import subprocess
import sys
import tempfile
import tty
from pathlib import Path

from .interpreters import micropython_executable

# Runs inside the unix port. argv: root platform machine fs_bytes run_main. Reads frames
# "<kind> <n>\n" + n bytes of code from stdin (kind E: a file of code, S: one REPL entry) and
# writes the code's output, "\x04", the error text, "\x04". Startup (boot.py, main.py) is
# reported the same way.
DRIVER = r'''
import sys, os, gc, io
_sys = sys
_os = os
ROOT, PLATFORM, MACHINE, FS_BYTES, RUN_MAIN = sys.argv[1:6]
FS_BYTES = int(FS_BYTES)
BLOCK = 4096
_os.umount("/")
_os.mount(_os.VfsPosix(ROOT), "/")
_os.chdir("/")
while sys.path:
    sys.path.pop()
for _p in ("", ".frozen", "/lib"):
    sys.path.append(_p)


def _abs(p):
    if not p.startswith("/"):
        p = _os.getcwd().rstrip("/") + "/" + p
    return p


def _used(path):
    n = 0
    for e in _os.ilistdir(path):
        full = path.rstrip("/") + "/" + e[0]
        if e[1] == 0x4000:
            n += BLOCK + _used(full)
        else:
            n += (max(1, (_os.stat(full)[6] + BLOCK - 1) // BLOCK)) * BLOCK
    return n


class _Os:
    # os as on the board; rename goes through a root-less VfsPosix because the unix port's
    # VfsPosix(root) builds both rename paths in one buffer
    def __getattr__(self, name):
        return getattr(_os, name)

    def rename(self, a, b):
        _os.mount(_os.VfsPosix(), "/__host")
        try:
            _os.rename("/__host" + ROOT + _abs(a), "/__host" + ROOT + _abs(b))
        finally:
            _os.umount("/__host")

    def ilistdir(self, path=""):
        # littlefs and FAT give (name, type, inode, size); VfsPosix leaves out the size
        for e in _os.ilistdir(path):
            if len(e) > 3:
                yield e
            else:
                full = (path.rstrip("/") + "/" if path else "") + e[0]
                yield (e[0], e[1], e[2], 0 if e[1] == 0x4000 else _os.stat(full)[6])

    def statvfs(self, path):
        total = FS_BYTES // BLOCK
        free = max(0, total - _used("/") // BLOCK)
        return (BLOCK, BLOCK, total, free, free, 0, 0, 0, 0, 255)


class _Impl:
    def __init__(self, real):
        self.name = real.name
        self.version = real.version
        self._machine = MACHINE
        self._mpy = real._mpy
        self._build = getattr(real, "_build", "")

    def __repr__(self):
        return "(name=%r, version=%r, _machine=%r, _mpy=%d, _build=%r)" % (
            self.name, self.version, self._machine, self._mpy, self._build)


class _Sys:
    def __init__(self):
        self.platform = PLATFORM
        self.implementation = _Impl(_sys.implementation)

    def __getattr__(self, name):
        return getattr(_sys, name)


if FS_BYTES:
    _sys.modules["os"] = _Os()
if PLATFORM:
    _sys.modules["sys"] = _Sys()

_g = {"__name__": "__main__"}
_in = _sys.stdin.buffer
_out = _sys.stdout


def _error_text(e):
    s = io.StringIO()
    _sys.print_exception(e, s)
    keep = []
    for line in s.getvalue().split("\n"):
        if "<driver>" not in line:
            keep.append(line)
    return "\n".join(keep)


def _run(src, mode, name):
    try:
        exec(compile(src, name, mode), _g)
    except BaseException as e:
        return _error_text(e)
    return ""


def _report(err):
    _out.write("\x04")
    _out.write(err)
    _out.write("\x04")


err = ""
for _f in ("boot.py", "main.py") if RUN_MAIN == "1" else ("boot.py",):
    try:
        _src = open(_f).read()
    except OSError:
        continue
    err = _run(_src, "exec", _f)
    if err:
        break
_report(err)
while True:
    try:
        head = _in.readline()
        if not head:
            break
        kind, n = head.split()
        n = int(n)
        code = b""
        while len(code) < n:
            code += _in.read(n - len(code))
        gc.collect()
        _report(_run(code.decode(), "single" if kind == b"S" else "exec", "<stdin>"))
    except KeyboardInterrupt:
        _report("")
'''

WINDOW = 128  # bytes per raw-paste flow-control window
# Heap the simulator's own interpreter state takes on top of the board's free heap (measured on
# the unix port: heap size minus gc.mem_free() in the first command after a soft reset).
DRIVER_HEAP = 9728

FRIENDLY, RAW, PASTE, BOOTING, RUNNING = range(5)


class SerialBoard:
    def __init__(self, root: Path, board: str | None = None, heap: int | None = None,
                 fs_bytes: int | None = None):
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.profile = None
        if board:
            import boards

            self.profile = boards.get(board)
        p = self.profile
        self.heap = heap or ((p.free_heap_bytes if p else 256 * 1024) + DRIVER_HEAP)
        self.fs_bytes = fs_bytes if fs_bytes is not None else (p.fs_bytes if p else 0)
        self.platform = p.platform if p else ""
        self.machine = (f"Simulated {p.title.split(',')[0]} {p.machine}" if p else "")
        self._tmp = tempfile.TemporaryDirectory(prefix="tinyrt-board-")
        self.driver = Path(self._tmp.name) / "<driver>"
        self.driver.write_text(DRIVER)
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.port = os.ttyname(self.slave)
        self.proc: subprocess.Popen | None = None
        self.mode = BOOTING
        self.after = FRIENDLY  # the REPL to show once the interpreter is ready
        self.line = bytearray()  # friendly: current line; raw/paste: code so far
        self.block: list[str] = []  # friendly: lines of an indented block
        self.eots = 0  # "\x04" seen in the running code's report
        self.paste_left = WINDOW
        self.reply_prompt = b">"
        self._spawn(run_main=True)

    # -- the interpreter ----------------------------------------------------------------------
    def _spawn(self, run_main: bool) -> None:
        if self.proc:
            self.proc.kill()
            self.proc.wait()
        argv = [micropython_executable(), "-X", f"heapsize={self.heap}", str(self.driver),
                str(self.root), self.platform, self.machine, str(self.fs_bytes),
                "1" if run_main else "0"]
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, cwd=self.root, bufsize=0)
        self.mode = BOOTING
        self.eots = 0

    def _send(self, kind: str, code: bytes) -> None:
        assert self.proc and self.proc.stdin
        self.proc.stdin.write(f"{kind} {len(code)}\n".encode() + code)
        self.proc.stdin.flush()
        self.eots = 0

    def _soft_reset(self, then: int) -> None:
        self._write(b"MPY: soft reboot\r\n")
        self.after = then
        self._spawn(run_main=then == FRIENDLY)

    # -- the pty ------------------------------------------------------------------------------
    def _write(self, b: bytes) -> None:
        while b:
            n = os.write(self.master, b)
            b = b[n:]

    def _banner(self) -> bytes:
        machine = self.machine or "unix port"
        return (f"MicroPython (tinyrt simulated board) ; {machine}\r\n"
                'Type "help()" for more information.\r\n').encode()

    def _ready(self) -> None:
        """The interpreter finished booting or running code: show the prompt."""
        if self.after == RAW:
            self.mode = RAW
            self._write(self.reply_prompt)
        else:
            self.mode = FRIENDLY
            self._write(b">>> " if not self.block else b"... ")
        self.reply_prompt = b">"

    def _from_interpreter(self, data: bytes) -> None:
        out = bytearray()
        for c in data:
            if c == 4 and self.mode in (BOOTING, RUNNING):
                self.eots += 1
                if self.after == RAW and self.mode == RUNNING:
                    out.append(4)
                if self.eots == 2:
                    self._write(bytes(out).replace(b"\n", b"\r\n"))
                    out.clear()
                    if self.mode == BOOTING and self.after == RAW:
                        self._write(b"raw REPL; CTRL-B to exit\r\n")
                    elif self.mode == BOOTING:
                        self._write(self._banner())
                    self._ready()
                continue
            out.append(c)
        if out:
            self._write(bytes(out).replace(b"\n", b"\r\n"))

    def _from_host(self, data: bytes) -> None:
        for c in data:
            if self.mode in (RUNNING, BOOTING):
                if c == 3 and self.proc:
                    self.proc.send_signal(signal.SIGINT)
                continue  # a board would queue it as stdin; nothing here reads stdin
            if self.mode == RAW:
                self._raw_char(c)
            elif self.mode == PASTE:
                self._paste_char(c)
            else:
                self._friendly_char(c)

    def _raw_char(self, c: int) -> None:
        if c == 1:  # Ctrl-A
            if self.line == b"\x05A":
                self.line.clear()
                self.mode = PASTE
                self.paste_left = WINDOW
                self._write(b"R\x01" + struct.pack("<H", WINDOW))
                return
            self.line.clear()
            self._write(b"raw REPL; CTRL-B to exit\r\n>")
        elif c == 2:  # Ctrl-B
            self.line.clear()
            self.after = FRIENDLY
            self.mode = FRIENDLY
            self._write(b"\r\n" + self._banner() + b">>> ")
        elif c == 3:  # Ctrl-C
            self.line.clear()
        elif c == 4:  # Ctrl-D
            self._write(b"OK")
            code = bytes(self.line)
            self.line.clear()
            if not code:
                self._write(b"\r\n")
                self._soft_reset(RAW)
                return
            self.after = RAW
            self.mode = RUNNING
            self._send("E", code)
        else:
            self.line.append(c)

    def _paste_char(self, c: int) -> None:
        if c == 4:
            self._write(b"\x04")
            code = bytes(self.line)
            self.line.clear()
            self.after = RAW
            self.mode = RUNNING
            self._send("E", code)
            return
        self.line.append(c)
        self.paste_left -= 1
        if self.paste_left == 0:
            self.paste_left = WINDOW
            self._write(b"\x01")

    def _friendly_char(self, c: int) -> None:
        if c == 1:
            self.line.clear()
            self.block.clear()
            self.after = RAW
            self.mode = RAW
            self._write(b"\r\nraw REPL; CTRL-B to exit\r\n>")
        elif c == 2:
            self.line.clear()
            self._write(b"\r\n" + self._banner() + b">>> ")
        elif c == 3:
            self.line.clear()
            self.block.clear()
            self._write(b"\r\n>>> ")
        elif c == 4:
            if self.line or self.block:
                return
            self._write(b"\r\n")
            self._soft_reset(FRIENDLY)
        elif c in (8, 127):
            if self.line:
                self.line.pop()
                self._write(b"\b \b")
        elif c == 13:
            self._write(b"\r\n")
            text = self.line.decode(errors="replace")
            self.line.clear()
            self._enter(text)
        elif c >= 32 or c == 9:
            self.line.append(c)
            self._write(bytes([c]))

    def _enter(self, text: str) -> None:
        if self.block:
            if text.strip():
                self.block.append(text)
                self._write(b"... ")
                return
            text, self.block = "\n".join(self.block) + "\n", []
        elif text.rstrip().endswith(":"):
            self.block = [text]
            self._write(b"... ")
            return
        if not text.strip():
            self._write(b">>> ")
            return
        self.after = FRIENDLY
        self.mode = RUNNING
        self._send("S", text.encode() + b"\n")

    # -- serving ------------------------------------------------------------------------------
    def serve(self, stop=lambda: False) -> None:
        assert self.proc and self.proc.stdout
        while not stop():
            fds = [self.master, self.proc.stdout.fileno()]
            ready, _, _ = select.select(fds, [], [], 0.2)
            if self.master in ready:
                try:
                    data = os.read(self.master, 4096)
                except OSError:
                    data = b""
                if data:
                    self._from_host(data)
            if self.proc.stdout.fileno() in ready:
                data = os.read(self.proc.stdout.fileno(), 65536)
                if data:
                    self._from_interpreter(data)
                elif self.proc.poll() is not None:  # the interpreter died: a hard fault
                    self._write(f"\r\n[simulated board: interpreter exited with "
                                f"{self.proc.returncode}; resetting]\r\n".encode())
                    self._spawn(run_main=False)

    def close(self) -> None:
        if self.proc:
            self.proc.kill()
            self.proc.wait()
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError:
                pass
        self._tmp.cleanup()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m host_sim.serial_board",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", required=True, help="directory holding the board's filesystem")
    ap.add_argument("--board", help="board profile to imitate (heap, filesystem, identity)")
    ap.add_argument("--heap", type=int, help="MicroPython heap bytes (default: the profile's "
                    "free heap + the simulator's own)")
    ap.add_argument("--fs-bytes", type=int, help="filesystem size os.statvfs reports")
    args = ap.parse_args(argv)
    board = SerialBoard(Path(args.dir), args.board, args.heap, args.fs_bytes)
    stopping = []
    signal.signal(signal.SIGTERM, lambda *a: stopping.append(1))
    print(f"PORT {board.port}", flush=True)
    try:
        board.serve(stop=lambda: bool(stopping))
    except KeyboardInterrupt:
        pass
    finally:
        board.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
