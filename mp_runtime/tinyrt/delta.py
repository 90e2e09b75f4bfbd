# Delta updates of a model file on the board: tinyrt.update(model_path, update_path).
#
# An update file (written by `tinyrt diff OLD.trt NEW.trt`, converter/delta.py):
#   header 80 B "<4sHHII32s32s"  magic b"TRTU", version (1 or 2), flags (0), old_bytes,
#                                new_bytes, sha256 of the OLD file, sha256 of the NEW file
#   then one zlib stream (MicroPython's deflate.ZLIB) of records "<BII" kind, a, n:
#     COPY  a = offset in the OLD file, n bytes copied from it
#     DATA  n literal bytes follow the record
#     ADD   (format 2) n bytes d follow; the new bytes are (OLD[a + i] + d[i]) mod 256: a
#           fine-tuned weight on the old quantization grid moves by a few steps, a small d
#     END   last record (a = n = 0)
# Format 1 has no ADD record (a runtime that reads format 1 only refuses a format 2 update
# with UpdateError before it touches anything).
#
# Applying it never touches the model in place: OLD's hash is checked, the NEW file is written
# beside it (model_path + ".new"), read back and hashed, then renamed over model_path. A power
# loss before the rename leaves OLD untouched (and a partial .new that the next run rewrites);
# after it, NEW. FAT has no atomic replace: os.rename onto an existing file removes it, then
# renames (two C calls with no Python between); a cut exactly between them leaves no model_path
# but a verified .new, which update() (run again with the same file) or recover() renames.
import hashlib
import os
import struct

from .errors import UpdateError

MAGIC = b"TRTU"
VERSION = 2  # the newest format this runtime applies
VERSION_BYTES = 1  # COPY / DATA only: what make_update writes when it needs no ADD
VERSIONS = (1, 2)
HEADER_FMT = "<4sHHII32s32s"
HEADER_SIZE = 80
RECORD_FMT = "<BII"
RECORD_SIZE = 9
END = 0
COPY = 1
DATA = 2
ADD = 3
CHUNK = 512  # bytes copied per read/write: the buffer update() allocates (ADD: 2 x 256)
NEW_SUFFIX = ".new"


def _hex(h):
    return "".join("%02x" % b for b in h[:8])


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def _sha256(path, buf):
    """sha256 of a file's bytes, read through `buf`; None when there is no such file."""
    try:
        f = open(path, "rb")
    except OSError:
        return None
    h = hashlib.sha256()
    mv = memoryview(buf)
    try:
        while True:
            n = f.readinto(buf)
            if not n:
                break
            h.update(mv[:n])
    finally:
        f.close()
    return h.digest()


def read_header(f):
    """(old_bytes, new_bytes, old_sha256, new_sha256) of an open update file, or UpdateError."""
    b = f.read(HEADER_SIZE)
    if len(b) < HEADER_SIZE or b[:4] != MAGIC:
        raise UpdateError("not a tinyrt update file: expected magic %r, found %r"
                          % (MAGIC, bytes(b[:4])))
    magic, version, flags, old_n, new_n, old_h, new_h = struct.unpack(HEADER_FMT, b)
    if version not in VERSIONS or flags:
        raise UpdateError("update format %d (flags %d); this runtime applies formats 1 to %d"
                          % (version, flags, VERSION))
    return old_n, new_n, old_h, new_h


def recover(model_path):
    """Finish an update a power loss cut inside the final rename (model_path gone, its
    verified replacement beside it). True if it did."""
    tmp = model_path + NEW_SUFFIX
    if _exists(model_path) or not _exists(tmp):
        return False
    os.rename(tmp, model_path)
    return True


def update(model_path, update_path, progress=None):
    """Apply an update file to the model at model_path, atomically as far as the filesystem
    allows. True when the model was updated, False when it already was the update's result.
    progress(stage, nbytes), if given, is called at each step: "verified" (OLD's hash),
    "chunk" (after each chunk written), "written", "checked" (NEW's hash), "renamed"."""
    buf = bytearray(CHUNK)
    f = open(update_path, "rb")
    try:
        old_n, new_n, old_h, new_h = read_header(f)
        tmp = model_path + NEW_SUFFIX
        have = _sha256(model_path, buf)
        if have is None and _sha256(tmp, buf) == new_h:
            recover(model_path)
            have = new_h
        if have == new_h:
            if _exists(tmp):
                os.remove(tmp)
            return False
        if have != old_h:
            raise UpdateError(
                "%s is not the model this update was made for: expected sha256 %s..., found "
                "%s" % (model_path, _hex(old_h), _hex(have) + "..." if have else "no file"))
        if progress:
            progress("verified", old_n)
        _write(model_path, f, tmp, buf, progress)
    finally:
        f.close()
    got = _sha256(tmp, buf)
    if got != new_h:
        os.remove(tmp)
        raise UpdateError("the updated model's sha256 is %s..., the update promised %s...: "
                          "model left as it was" % (_hex(got), _hex(new_h)))
    if progress:
        progress("checked", new_n)
    os.rename(tmp, model_path)  # FAT: removes model_path, then renames (see the top)
    if progress:
        progress("renamed", new_n)
    return True


def _write(model_path, f, tmp, buf, progress):
    """Decode the update's records from `f` (positioned after the header) into file `tmp`."""
    import deflate

    mv = memoryview(buf)
    z = deflate.DeflateIO(f, deflate.ZLIB)
    old = open(model_path, "rb")
    out = open(tmp, "wb")
    written = 0
    try:
        while True:
            rec = z.read(RECORD_SIZE)
            if len(rec) != RECORD_SIZE:
                raise UpdateError("update file truncated: a record of %d bytes, found %d"
                                  % (RECORD_SIZE, len(rec)))
            kind, a, n = struct.unpack(RECORD_FMT, rec)
            if kind == END:
                break
            if kind == COPY:
                old.seek(a)
                src = old
            elif kind == DATA:
                src = z
            elif kind == ADD:
                old.seek(a)
                written = _add(old, z, out, n, buf, written, progress)
                continue
            else:
                raise UpdateError("update record kind %d; expected COPY, DATA, ADD or END"
                                  % kind)
            while n:
                k = src.readinto(mv[:min(n, CHUNK)])
                if not k:
                    raise UpdateError("update or model file ended %d bytes early" % n)
                out.write(mv[:k])
                n -= k
                written += k
                if progress:
                    progress("chunk", written)
    finally:
        out.close()
        old.close()
    if progress:
        progress("written", written)


def _fill(src, mv):
    """Read exactly len(mv) bytes of `src` into mv (UpdateError if it ends first)."""
    got = 0
    while got < len(mv):
        k = src.readinto(mv[got:])
        if not k:
            raise UpdateError("update or model file ended %d bytes early" % (len(mv) - got))
        got += k


def _add(old, z, out, n, buf, written, progress):
    """An ADD record: n bytes of `old` (positioned) plus n differences from `z`, mod 256,
    written to `out`, half a buffer at a time (the other half holds the differences)."""
    mv = memoryview(buf)
    half = CHUNK // 2
    while n:
        k = min(n, half)
        _fill(old, mv[:k])
        _fill(z, mv[half:half + k])
        for i in range(k):
            buf[i] = (buf[i] + buf[half + i]) & 0xFF
        out.write(mv[:k])
        n -= k
        written += k
        if progress:
            progress("chunk", written)
    return written
