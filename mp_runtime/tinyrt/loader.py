# load(): a model file (a path or a buffer) -> a Model. Three places for the weights: in place
# from flash (a file on ROMFS), the whole file in one RAM buffer, or streamed per layer from the
# open file (tinyrt.stream) when the whole file does not fit the heap.
import gc
import os
import struct
from array import array

from .errors import ArenaError, ModelError
from .fileformat import DATA, HEADER_SIZE, MAX_SECTIONS, META, SECTION_SIZE, ZMAGIC, crc32, \
    read_layout, read_model
from .buffers import COLLECT as _COLLECT, allocate as _allocate, free_heap as _free_heap
from .model import Model, _import_kernels

# Beyond the file and the arena, load() keeps a Tensor object per tensor and each kernel's
# prepared tables (records and names are read from the file's bytes when asked for): about 4x
# the file's table bytes (those before DATA) for kws_ref_model on the 64-bit unix port, less on
# 32-bit boards, plus garbage while loading; 8x leaves room for both. Automatic mode loads the
# whole file when it fits with this much to spare, and streams the weights otherwise (or when
# loading it whole fails).
_RESERVE_PER_TABLE_BYTE = 8
_RESERVE_MIN = 8192  # bytes


_S_IFDIR = 0x4000  # os.stat()'s mode bit of a directory


def _file_size(path):
    try:
        st = os.stat(path)
    except OSError as e:
        raise ModelError("cannot open model file %r: %s (os.listdir() shows the files here; "
                         "flash.sh copies a model to the board)" % (path, e))
    if st[0] & _S_IFDIR:
        raise ModelError("%r is a directory, not a model file (os.listdir(%r) shows the files "
                         "in it)" % (path, path))
    return st[6]


def _read_into(path, buf):
    # The buffer is allocated before the file is opened: no collection runs while a file
    # object is live (see _COLLECT).
    try:
        f = open(path, "rb")
    except OSError as e:
        raise ModelError("cannot open model file %r: %s" % (path, e))
    got = f.readinto(buf)
    f.close()
    if got != len(buf):
        raise ModelError("model file %r: read %d of %d bytes" % (path, got, len(buf)))


class _Layout:
    """What load() decides with, read from a model file's first bytes before validation."""

    def __init__(self, path):
        self.size = _file_size(path)
        head = bytearray(min(self.size, HEADER_SIZE + SECTION_SIZE * MAX_SECTIONS))
        _read_into(path, head)
        self.file_bytes, spans = read_layout(head)
        self.arena = 0
        self.scratch = 0
        meta = spans.get(META)
        if meta and meta[0] + 8 <= self.size:
            word = bytearray(8)
            f = open(path, "rb")
            f.seek(meta[0])
            f.readinto(word)
            f.close()
            self.arena, self.scratch = struct.unpack("<II", word)
        # the tables are the bytes before DATA; streaming needs DATA to be last
        data = spans.get(DATA)
        self.tables = self.size
        if data and self.file_bytes == self.size and data[0] + data[1] == self.size:
            self.tables = data[0]
            for kind in spans:
                off, length = spans[kind]
                if kind != DATA and off + length > data[0]:
                    self.tables = self.size

    def streamable(self):
        return self.tables < self.size


def load(src, stream=None):
    """Load a model from a file path or a buffer (bytes, bytearray, array('b')). An
    array('b') is used in place (the weights are views of it); bytes and bytearray are copied.

    stream=None loads the whole file when it fits the free heap and otherwise streams the
    weights: only the file's tables stay in RAM and each layer's weights are read from the open
    file into one scratch buffer during invoke(). stream=True / False force either mode
    (streaming needs a path). Raises ModelError for a file that is not a valid model,
    ArenaError when its memory does not fit the heap and UnsupportedError when it uses an
    operator this runtime lacks.
    """
    try:
        return _load(src, stream)
    except MemoryError:
        raise ArenaError("loading the model ran out of heap (%d bytes free after it): the file "
                         "(or, streamed, its tables), the arena and the kernels' tables must "
                         "fit together; free other objects first or use a smaller model"
                         % _free_heap())


def _load(src, stream):
    if isinstance(src, str):
        return _load_path(src, stream)
    if stream:
        raise ModelError("stream=True reads weights from a file: pass the model's path, "
                         "not a buffer")
    if isinstance(src, (bytes, bytearray, memoryview, array)) and bytes(src[:4]) == ZMAGIC:
        from .decompress import inflate_buffer

        return Model(read_model(inflate_buffer(src)))
    if isinstance(src, array):
        if _typecode(src) == "b":
            buf = src  # used in place: the weights are memoryview slices of it
        else:
            buf = array("b", bytes(src))  # the same bytes, as int8
    elif isinstance(src, (bytes, bytearray, memoryview)):
        buf = array("b", src)  # a copy: bytes index to 0..255, the kernels read int8
    else:
        raise ModelError("load() takes a path (str) or a buffer (bytes, bytearray, "
                         "array('b')), got %s" % type(src).__name__)
    return Model(read_model(buf))


def _typecode(a):
    """An array's typecode. MicroPython's arrays have no .typecode; the repr of an empty
    slice names it on every interpreter: array('b')."""
    code = getattr(a, "typecode", None)
    if code is None:
        code = repr(a[:0])[7:-2]
    return code


def _load_path(path, stream):
    if _compressed(path):  # decoded into RAM: neither streamed nor in place
        if stream:
            raise ModelError("model file %r is compressed: it is decoded into RAM whole and "
                             "cannot be streamed (convert it without --compress)" % path)
        from .decompress import inflate_path

        return Model(read_model(inflate_path(path)))
    if not stream:  # in place when the file is on ROMFS (stream=False asks for the whole file)
        from .romfs import map_file

        flash = map_file(path)
        if flash is not None:
            if stream is None:
                return _load_in_place(path, flash)
            flash.close()
    return _load_file(path, stream)


def _compressed(path):
    """Whether the file at `path` starts with the compressed magic (tinyrt.decompress)."""
    _file_size(path)  # a missing file or a directory: its own ModelError
    head = bytearray(4)
    f = open(path, "rb")
    f.readinto(head)
    f.close()
    return bytes(head) == ZMAGIC


def _load_in_place(path, flash):
    """The file's bytes used where they are, in flash (tinyrt.romfs): every section's CRC is
    checked there, constant tensors are int8 views of flash, only the arena and the kernels'
    tables take RAM."""
    try:
        return Model(read_model(flash.buf), path=path, flash=flash)
    except BaseException:
        flash.close()
        raise


def _load_file(path, stream):
    lay = _Layout(path)
    if not lay.streamable():
        if stream:
            raise ModelError("model file %r cannot be streamed: its DATA section is not last "
                             "(convert it again with this tinyrt)" % path)
        buf = _allocate(lay.size, "model file %r" % path)
        _read_into(path, buf)
        return Model(read_model(buf))
    # The tables first (validated, and the kernel modules imported) so that the big buffers
    # are sized against what is really left, and a failed whole-file attempt leaves no
    # imported module in the middle of the heap.
    mf = read_model(_read_tables(path, lay), lay.size)  # mf.buf: the only reference to them
    if _COLLECT:
        gc.collect()  # validation's garbage, before the kernel modules are imported
    _import_kernels(mf)
    auto = stream is None
    if auto:
        reserve = _RESERVE_PER_TABLE_BYTE * lay.tables
        if reserve < _RESERVE_MIN:
            reserve = _RESERVE_MIN
        stream = lay.size + lay.arena + reserve > _free_heap()
    if not stream:
        try:
            return _load_whole(path, lay, mf)
        except (ArenaError, MemoryError):
            if not auto:
                raise
            # the estimate was short: stream after all, the tables read again (the whole
            # file's buffer, which held them during prepare, is garbage now)
            mf.buf = None
            mf.buf = _read_tables(path, lay)
    return Model(mf, open(path, "rb"), path)


def _read_tables(path, lay):
    tables = _allocate(lay.tables, "tables of model file %r" % path)
    _read_into(path, tables)
    return tables


def _load_whole(path, lay, mf):
    """The whole file in one buffer: the tables already read, then DATA, CRC-checked."""
    hint = ("; load(%r, stream=True) keeps only its %d bytes of tables in RAM and streams the "
            "weights" % (path, lay.tables))
    buf = _allocate(lay.size, "model file %r" % path, hint)
    mv = memoryview(buf)
    mv[: lay.tables] = mf.buf
    f = open(path, "rb")
    f.seek(lay.tables)
    got = f.readinto(mv[lay.tables :])
    f.close()
    if got != lay.size - lay.tables:
        raise ModelError("model file %r: read %d of %d bytes" % (path, lay.tables + got,
                                                                 lay.size))
    if crc32(mv[mf.data_offset : mf.data_offset + mf.data_length]) != mf.data_crc:
        raise ModelError("section DATA CRC mismatch: the file is corrupt")
    mf.buf = buf
    return Model(mf)
