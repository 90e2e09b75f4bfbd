"""The emulated ARM boards: genuine MicroPython firmware for a Cortex-M0 ("m0", armv6m, the
RP2040's instruction set) and a Cortex-M3 ("m3", armv7m) under Debian's qemu-system-arm.

The firmware, its ROMFS layout and QEMU's machine options come from ../shared/emulator (or
$TINYRT_EMULATOR); nothing of it is copied here. A run packs one ROMFS image holding

    /rom/tinyrt/...   the device package compiled with mpy-cross for the board's arch
    /rom/w/...        the run's files, and its script compiled to /rom/w/main.mpy

boots the board with `-icount shift=0` (one guest instruction = 1 ns of virtual time, so
`time.ticks_us()` x 1000 counts instructions and every run is deterministic), and imports
`main` from /rom/w over the raw REPL. A ROMFS file is memory-mapped: bytecode runs in place and
model files are read from flash as on a board. The writable filesystem is the board's RAM disk
at `/` (1 MiB on m3, ~14.5 KB on m0).
"""

from __future__ import annotations

import os
import re
import select
import shutil
import subprocess
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

EMULATED = ("m0", "m3")
SCRIPT_DIR = "/rom/w"  # the run's working directory on the board
BOOT_TIMEOUT = 30.0  # seconds to the first prompt


@dataclass(frozen=True)
class EmulatedBoard:
    name: str
    arch: str  # mpy-cross -march
    machine: tuple[str, ...]  # QEMU's machine options
    firmware: str  # file name in the emulator folder
    romfs_address: int  # ROMFS partition 0
    romfs_bytes: int  # its size
    cpu: str


BOARDS = {
    "m0": EmulatedBoard("m0", "armv6m",
                        ("-machine", "microbit", "-global", "nrf51-soc.sram-size=262144",
                         "-global", "nrf51-soc.flash-size=1048576"),
                        "firmware-m0.elf", 0x00080000, 0x80000, "Cortex-M0"),
    "m3": EmulatedBoard("m3", "armv7m", ("-machine", "mps2-an385",), "firmware-m3.elf",
                        0x21000000, 0x400000, "Cortex-M3"),
}


class EmulatorError(RuntimeError):
    """The emulated board could not be started or did not answer (what is missing, and how to
    get it, is in the message)."""


def emulator_dir() -> Path:
    """../shared/emulator beside the checkout, or $TINYRT_EMULATOR."""
    env = os.environ.get("TINYRT_EMULATOR")
    d = Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "emulator"
    if not (d / "firmware-m0.elf").exists():
        raise EmulatorError(f"no emulator firmware in {d}: the emulated boards need "
                            "../shared/emulator beside the checkout (or TINYRT_EMULATOR=DIR)")
    return d


def qemu() -> str:
    exe = os.environ.get("QEMU") or shutil.which("qemu-system-arm")
    if not exe:
        raise EmulatorError("qemu-system-arm is not installed: the emulated boards m0 and m3 "
                            "need it (Debian: apt-get install qemu-system-arm)")
    return exe


def qemu_command(board: str, romfs: Path | None, serial: str = "stdio") -> list[str]:
    b = BOARDS[board]
    cmd = [qemu(), *b.machine, "-nographic", "-monitor", "none", "-semihosting",
           "-serial", serial, "-kernel", str(emulator_dir() / b.firmware),
           "-icount", "shift=0"]
    if romfs is not None:
        cmd += ["-device", f"loader,file={romfs},addr=0x{b.romfs_address:x},force-raw=on"]
    return cmd


# -- ROMFS images -----------------------------------------------------------------------------

ROMFS_ALIGN = 16  # bytes: data files start at multiples of this in the image (and in flash)
_PADDING = 1  # ROMFS record kinds (mpremote.romfs.VfsRomWriter)
_VERBATIM = 2
_DIRECTORY = 4
_FILE = 5


def romfs_image(tree: dict) -> bytes:
    """A ROMFS image of `tree`: {name: bytes | nested dict}, names sorted as a listing is.

    Every file but .mpy code starts at a multiple of ROMFS_ALIGN bytes from the image's start
    (a padding record before it where needed): tinyrt uses a model file on ROMFS in place only
    when it is aligned (tinyrt/romfs.py). mpremote's own `romfs build` does not align files."""
    pads: dict[tuple[str, ...], int] = {}
    for _ in range(2 * _count_files(tree) + 16):  # one file at a time, in image order
        img = _romfs_build(tree, pads)
        off = sorted((v, k) for k, v in _romfs_data_offsets(img).items()
                     if v % ROMFS_ALIGN and not k[-1].endswith(".mpy"))
        if not off:
            return img
        v, k = off[0]
        pads[k] = (pads.get(k, 0) + ROMFS_ALIGN - v % ROMFS_ALIGN) % ROMFS_ALIGN
    raise EmulatorError("could not align the files of a ROMFS image")


def _count_files(tree: dict) -> int:
    return sum(_count_files(v) if isinstance(v, dict) else 1 for v in tree.values())


def _romfs_build(tree: dict, pads: dict) -> bytes:
    from mpremote.romfs import VfsRomWriter

    vfs = VfsRomWriter()

    def add(d: dict, at: tuple[str, ...]) -> None:
        for name in sorted(d):
            v = d[name]
            if isinstance(v, dict):
                vfs.opendir(name)
                add(v, at + (name,))
                vfs.closedir()
            else:
                n = pads.get(at + (name,), 0)
                if n:  # a padding record of n (mod 16) bytes: kind, length, n - 2 (or 15) zeros
                    k = n - 2 if n >= 2 else ROMFS_ALIGN - 1
                    vfs._dir_stack[-1][1].extend(vfs._pack(_PADDING, bytes(k)))
                vfs.mkfile(name, bytes(v))

    add(tree, ())
    # finalise() puts a byte before the image's length when the image would be odd, which
    # would shift every file: a 3-byte padding record at the end makes it even instead
    top = vfs._dir_stack[-1][1]
    if (3 + len(vfs._encode_uint(len(top))) + len(top)) % 2:
        top.extend(vfs._pack(_PADDING, bytes(1)))
    return vfs.finalise()


def _varint(b: bytes, i: int) -> tuple[int, int]:
    v = 0
    while True:
        v = (v << 7) | (b[i] & 0x7F)
        i += 1
        if not b[i - 1] & 0x80:
            return v, i


def _romfs_data_offsets(img: bytes) -> dict[tuple[str, ...], int]:
    """{path: offset of the file's first byte in the image} of a ROMFS image."""
    out: dict[tuple[str, ...], int] = {}
    size, i = _varint(img, 3)

    def records(i: int, end: int, at: tuple[str, ...]) -> None:
        while i < end:
            kind, i = _varint(img, i)
            n, i = _varint(img, i)
            if kind in (_DIRECTORY, _FILE):
                k, j = _varint(img, i)
                name = img[j:j + k].decode()
                if kind == _DIRECTORY:
                    records(j + k, i + n, at + (name,))
                else:
                    sub, j = _varint(img, j + k)
                    _, j = _varint(img, j)
                    if sub == _VERBATIM:
                        out[at + (name,)] = j
            i += n

    records(i, i + size, ())
    return out


@lru_cache(maxsize=4)
def runtime_tree(arch: str) -> dict:
    """tinyrt compiled for `arch` as a ROMFS subtree {"tinyrt": {...}}."""
    from .mpy_runtime import compile_runtime

    root: dict = {}
    files, _ = compile_runtime(arch)
    for f in files:
        *dirs, leaf = f.path.split("/")
        d = root
        for part in dirs:
            d = d.setdefault(part, {})
        d[leaf] = f.local.read_bytes()
    return root


def _file_tree(files: dict | None) -> dict:
    tree: dict = {}
    for name, content in (files or {}).items():
        *dirs, leaf = Path(name).as_posix().split("/")
        d = tree
        for part in dirs:
            d = d.setdefault(part, {})
        if isinstance(content, Path):
            content = content.read_bytes()
        elif isinstance(content, str):
            content = content.encode()
        d[leaf] = bytes(content)
    return tree


def run_image(board: str, code: str, files: dict | None) -> bytes:
    """The ROMFS image of one run: the runtime, the files, the script as /rom/w/main.mpy."""
    from .mpy_runtime import compile_source

    b = BOARDS[board]
    work = _file_tree(files)
    work["main.mpy"] = compile_source(code.encode(), "main.py", b.arch).read_bytes()
    img = romfs_image({**runtime_tree(b.arch), "w": work})
    if len(img) > b.romfs_bytes:
        raise EmulatorError(f"the run's ROMFS image is {len(img):,} bytes; board {board}'s "
                            f"ROMFS partition holds {b.romfs_bytes:,}")
    return img


# -- the board over its UART ------------------------------------------------------------------

class Board:
    """One booted board with its UART on pipes, driven through the raw REPL."""

    def __init__(self, board: str, romfs: Path | None = None):
        self.name = board
        self.proc = subprocess.Popen(qemu_command(board, romfs), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     bufsize=0)
        self.buf = b""
        try:
            self.read_until(b">>> ", BOOT_TIMEOUT)
            self.write(b"\r\x03\x03\x01")  # interrupt anything, then the raw REPL
            self.read_until(b"raw REPL; CTRL-B to exit\r\n>", BOOT_TIMEOUT)
        except BaseException:
            self.close()
            raise

    def _pump(self, timeout: float) -> None:
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if ready:
            data = os.read(self.proc.stdout.fileno(), 65536)
            if not data:
                raise EmulatorError(f"QEMU exited (code {self.proc.poll()}); the board's last "
                                    f"output: {self.buf[-300:]!r}")
            self.buf += data

    def read_until(self, token: bytes, timeout: float) -> bytes:
        end = time.monotonic() + timeout
        while token not in self.buf:
            left = end - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"board {self.name}: no {token!r} within {timeout:.0f} s")
            self._pump(min(left, 0.5))
        i = self.buf.index(token) + len(token)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def write(self, data: bytes, chunk: int = 256) -> None:
        # QEMU's UART takes bytes only as fast as the guest drains them: keep reading while
        # writing so that neither side blocks on a full pipe.
        for i in range(0, len(data), chunk):
            self.proc.stdin.write(data[i:i + chunk])
            self.proc.stdin.flush()
            self._pump(0)

    def exec(self, code: str, timeout: float) -> tuple[str, str]:
        """Run `code` in the raw REPL: (what it printed, its traceback or "")."""
        self.write(code.encode() + b"\x04")
        self.read_until(b"OK", 30)
        out = self.read_until(b"\x04", timeout)[:-1]
        err = self.read_until(b"\x04", 30)[:-1]
        self.read_until(b">", 30)
        return (out.decode("utf-8", "replace").replace("\r\n", "\n"),
                err.decode("utf-8", "replace").replace("\r\n", "\n"))

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout):
            f.close()


# Before the script: the run's ROMFS folder as the working directory (ROMFS has no chdir of
# its own, so a small VFS object mounted at /w forwards to /rom/w), and a ballast that leaves
# `heap` bytes free.
_PRELUDE = """\
import gc, os, vfs
class _Workdir:
    def mount(self, readonly, mkfs):
        pass
    def umount(self):
        pass
    def _path(self, p):
        p = p.strip("/")
        return {workdir!r} + ("/" + p if p else "")
    def open(self, p, mode):
        return open(self._path(p), mode)
    def ilistdir(self, p):
        return os.ilistdir(self._path(p))
    def stat(self, p):
        return os.stat(self._path(p))
    def statvfs(self, p):
        return os.statvfs({workdir!r})
    def chdir(self, p):
        pass
    def getcwd(self):
        return ""
vfs.mount(_Workdir(), "/w")
os.chdir("/w")
del _Workdir
gc.collect()
_ballast = []
while {heap} and gc.mem_free() - {heap} > 64:
    _ballast.append(bytearray(gc.mem_free() - {heap} - 48))
    gc.collect()
"""


def run_board(board: str, code: str, files: dict | None, heap: int | None,
              timeout: float) -> tuple[str, str, int]:
    """Run a script on an emulated board: (stdout, stderr, exit code 0 / 1 when it raised).

    heap=N leaves N bytes (within ~512) of the board's ~190 KB free heap to the script (a
    ballast takes the rest); a larger N, or None, leaves all of it."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="tinyrt-emu-") as tmp:
        img = Path(tmp) / "romfs.img"
        img.write_bytes(run_image(board, code, files))
        dev = Board(board, img)
        try:
            dev.exec(_PRELUDE.format(workdir=SCRIPT_DIR, heap=int(heap or 0)), 30)
            out, err = dev.exec("import main", timeout)
        finally:
            dev.close()
    return out, err, 1 if err else 0


_PTY = re.compile(r"(/dev/pts/\d+)")


def start_pty(board: str, romfs: Path | None = None) -> tuple[subprocess.Popen, str]:
    """Boot a board with its UART on a pseudo-terminal (for mpremote): (QEMU, pty path)."""
    p = subprocess.Popen(qemu_command(board, romfs, serial="pty"), stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT)
    line = p.stdout.readline().decode("latin1")  # "char device redirected to /dev/pts/N ..."
    m = _PTY.search(line)
    if not m:
        p.kill()
        p.wait()
        raise EmulatorError(f"QEMU gave no pty: {line.strip()!r}")
    return p, m.group(1)
