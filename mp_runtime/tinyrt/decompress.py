# Losslessly compressed model files (`tinyrt convert --compress`, `tinyrt compress --lossless`;
# written by converter/compress.py): a tinyrt model file in one zlib stream, decoded at load into
# the buffer the model then runs from. Flash and download shrink (0.37-0.89x the .tflite for the
# shared models); RAM holds the decoded file as for an uncompressed one, so a compressed file is
# never streamed or used in place.
#
#   header 20 B "<4sHHIII"  magic b"TNRZ", version, flags (0), decoded_bytes, crc32 of the
#                           decoded file, stream_bytes (the rest of the file)
#   then one zlib stream (MicroPython's deflate.ZLIB) of exactly decoded_bytes bytes: a model
#   file (b"TNRT"...). The converter writes a 2^10-byte window, so decoding takes a 1 KB window
#   beside the output buffer.
#
# A truncated or corrupt stream, a wrong length or CRC raise ModelError; the decoded file is then
# validated as any model file (read_model).
import struct

from .buffers import allocate
from .errors import ModelError
from .fileformat import ZMAGIC, crc32

ZVERSION = 1
ZHEADER_FMT = "<4sHHIII"
ZHEADER_SIZE = 20


def read_header(head, size):
    """(decoded_bytes, crc32) from a compressed file's first bytes; `size`: the file's bytes.
    Raises ModelError."""
    if len(head) < ZHEADER_SIZE:
        raise ModelError("truncated: %d bytes, a compressed model file starts with a %d-byte "
                         "header" % (len(head), ZHEADER_SIZE))
    magic, version, flags, n, crc, stream_bytes = struct.unpack_from(ZHEADER_FMT, head, 0)
    if magic != ZMAGIC:
        raise ModelError("not a compressed tinyrt model: magic %r, expected %r" % (magic, ZMAGIC))
    if version == 0 or version > ZVERSION:
        raise ModelError("compressed format version %d: this tinyrt reads version %d%s"
                         % (version, ZVERSION, "; update tinyrt" if version > ZVERSION else ""))
    if flags:
        raise ModelError("compressed model flags 0x%x, expected 0" % flags)
    if size != ZHEADER_SIZE + stream_bytes:
        raise ModelError("%s: the header says %d bytes, the file holds %d"
                         % ("truncated" if size < ZHEADER_SIZE + stream_bytes else "wrong length",
                            ZHEADER_SIZE + stream_bytes, size))
    return n, crc


def _decode(stream, n, want, buf, what):
    """Decode the zlib stream at `stream`'s position into buf (n bytes), checked."""
    import deflate

    z = deflate.DeflateIO(stream, deflate.ZLIB)
    mv = memoryview(buf)
    pos = 0
    try:
        while pos < n:
            k = z.readinto(mv[pos:])
            if not k:
                break
            pos += k
        extra = z.read(1) if pos == n else b""
    except (OSError, ValueError) as e:
        raise ModelError("%s: the compressed stream is corrupt (%s)" % (what, e))
    if pos < n:
        raise ModelError("%s: the compressed stream is corrupt or truncated: it ends after %d "
                         "of %d bytes" % (what, pos, n))
    if extra:
        raise ModelError("%s: the compressed stream is corrupt: it holds more than the %d "
                         "bytes its header promises" % (what, n))
    if crc32(mv) != want:
        raise ModelError("%s: CRC mismatch of the decoded file: the file is corrupt" % what)
    return buf


def _open(path):
    try:
        return open(path, "rb")
    except OSError as e:
        raise ModelError("cannot open model file %r: %s" % (path, e))


def inflate_path(path):
    """The decoded model file at `path`, an array('b'). The buffer is allocated while no file
    is open (loader._read_into says why)."""
    what = "model file %r" % path
    f = _open(path)
    head = f.read(ZHEADER_SIZE)
    f.seek(0, 2)
    size = f.tell()
    f.close()
    n, want = read_header(head, size)
    buf = allocate(n, "decoded " + what, zero=False)  # all overwritten
    f = _open(path)
    try:
        f.seek(ZHEADER_SIZE)
        _decode(f, n, want, buf, what)
    finally:
        f.close()
    return buf


def inflate_buffer(src):
    """The decoded model file held compressed in `src` (a buffer), an array('b')."""
    from io import BytesIO

    n, want = read_header(src, len(src))
    buf = allocate(n, "decoded compressed model buffer", zero=False)
    stream = BytesIO(bytes(src))
    stream.seek(ZHEADER_SIZE)
    _decode(stream, n, want, buf, "compressed model buffer")
    return buf
