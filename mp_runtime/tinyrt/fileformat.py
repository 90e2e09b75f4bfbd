# The tinyrt model file, read in place with struct.unpack_from.
#
# The schema is declared once, with construct, in converter/schema.py; this reader mirrors it
# field by field and tests bind the two. All integers are little-endian.
#
#   header   16 B  "<4sHHII"   magic b"TNRT", format_version, n_sections, file_bytes,
#                              table_crc32 (CRC32 of the section table)
#   table    16 B per section "<IIII"  kind, offset, length, crc32 (of the section's bytes)
#   sections each at a 16-byte-aligned offset, in any order, zero padding between them
#
#   META      "<IIHHHH" arena_bytes, scratch_bytes, n_tensors, n_ops, n_inputs, n_outputs,
#             then n_inputs + n_outputs tensor indices "<H", zero padding to 4 bytes
#   TENSORS   n_tensors records "<BBBBII4Ifi" (36 B): dtype, ndim, storage, flags, offset,
#             nbytes, dims[4] (unused dims 0), scale, zero_point
#   OPS       n_ops records: "<HBBHH" opcode, n_in, n_out, n_params, 0; then n_in + n_out
#             tensor indices "<H" (NO_TENSOR = absent optional input), zero padding to
#             4 bytes, then n_params int32 parameters "<i"
#   DATA      constant tensor bytes; each tensor at a 16-byte-aligned offset in the section
#   NAMES     optional: n_tensors strings, each "<H" length + UTF-8 bytes
#   METADATA  optional: UTF-8 JSON object (converter version, source hash, labels)
import struct
from array import array

from .errors import ModelError
from .opcodes import name as op_name

MAGIC = b"TNRT"
ZMAGIC = b"TNRZ"  # a compressed model file: header + zlib stream (tinyrt.decompress)
FORMAT_VERSION = 1
ALIGN = 16  # bytes; sections and constant tensors start at multiples of this

HEADER_FMT = "<4sHHII"
HEADER_SIZE = 16
SECTION_FMT = "<IIII"
SECTION_SIZE = 16
META_FMT = "<IIHHHH"
META_SIZE = 16
TENSOR_FMT = "<BBBBII4Ifi"
TENSOR_SIZE = 36
OP_HEAD_FMT = "<HBBHH"
OP_HEAD_SIZE = 8
MAX_SECTIONS = 16
MAX_DIMS = 4
NO_TENSOR = 0xFFFF

# Section kinds
META = 1
TENSORS = 2
OPS = 3
DATA = 4
NAMES = 5
METADATA = 6
SECTION_NAMES = {META: "META", TENSORS: "TENSORS", OPS: "OPS", DATA: "DATA", NAMES: "NAMES",
                 METADATA: "METADATA"}
REQUIRED_SECTIONS = (META, TENSORS, OPS, DATA)

# Tensor dtypes: code -> (name, bytes per stored item)
INT8 = 1
INT16 = 2
INT32 = 3
FLOAT32 = 4
PACKED = 5  # bit-packed binary activations/weights: last dim counts bits, stored in int32 words
DTYPES = {INT8: ("int8", 1), INT16: ("int16", 2), INT32: ("int32", 4), FLOAT32: ("float32", 4),
          PACKED: ("packed", 4)}

# Tensor storage
ARENA = 0
CONST = 1

# Tensor flags
PER_CHANNEL = 1  # the scale field is the first channel's; kernels use precomputed multipliers
VARIABLE = 2  # an arena tensor holding state across invoke()s (LSTM's hidden and cell state):
# the converter keeps it alive over the whole run (no other tensor overlaps its bytes); load()
# and Model.reset() set it to its zero point (int8) or 0 (int16)


def stored_bytes(dtype, shape):
    """Bytes a tensor of this dtype and logical shape occupies."""
    n = 1
    for d in shape[:-1]:
        n *= d
    last = shape[-1] if shape else 1
    if dtype == PACKED:
        return n * ((last + 31) // 32) * 4
    return n * last * DTYPES[dtype][1]


class TensorRecord:
    """One TENSORS record, parsed when asked for (mf.tensors[i]); nothing keeps it."""

    def __init__(self, mf, index, dtype, shape, storage, flags, offset, nbytes, scale,
                 zero_point):
        self.file = mf
        self.index = index
        self.dtype = dtype
        self.shape = shape
        self.storage = storage
        self.flags = flags
        self.offset = offset
        self.nbytes = nbytes
        self.scale = scale
        self.zero_point = zero_point

    @property
    def name(self):
        return tensor_name(self.file, self.index)


class OpRecord:
    def __init__(self, opcode, inputs, outputs, params):
        self.opcode = opcode
        self.inputs = inputs
        self.outputs = outputs
        self.params = params


class _Tensors:
    """mf.tensors: the TENSORS section read in place. Indexing parses one record into a
    TensorRecord, so a loaded model keeps no object per tensor record."""

    def __init__(self, mf, off, n):
        self.file = mf
        self.off = off
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if i < 0:
            i += self.n
        if i < 0 or i >= self.n:
            raise IndexError("tensor index out of range")
        return _tensor_record(self.file, self.file.buf, self.off + i * TENSOR_SIZE, i)

    def __iter__(self):
        for i in range(self.n):
            yield self[i]


class _Ops:
    """mf.ops: the OPS section read in place; `starts` holds each record's offset in buf."""

    def __init__(self, mf, starts):
        self.file = mf
        self.starts = starts  # array('I'): n_ops byte offsets into mf.buf

    def __len__(self):
        return len(self.starts)

    def __getitem__(self, i):
        return _op_record(self.file.buf, self.starts[i])

    def __iter__(self):
        for i in range(len(self.starts)):
            yield self[i]


class ModelFile:
    """The parsed tables of a model file; constant data stays in `buf` (not copied).
    Tensor and operator records are read from `buf` when asked for (mf.tensors[i], mf.ops[i]).

    When the weights are streamed, `buf` holds only the bytes before the DATA section."""

    def __init__(self, buf, file_bytes):
        self.buf = buf
        self.file_bytes = file_bytes  # of the whole file, DATA included
        self.version = 0
        self.sections = []  # (kind, offset, length, crc32)
        self.arena_bytes = 0
        self.scratch_bytes = 0
        self.inputs = ()
        self.outputs = ()
        self.tensors = _Tensors(self, 0, 0)
        self.ops = _Ops(self, array("I"))
        self.names = None  # array('I'): offset in buf of each tensor's NAMES entry, or None
        self.data_offset = 0
        self.data_length = 0
        self.data_crc = 0  # CRC32 of DATA from the section table
        self.metadata_span = None  # (offset, length) of the METADATA section


_DIMS_FMT = ("<", "<I", "<2I", "<3I", "<4I")  # struct formats of 0..MAX_DIMS dims


def tensor_shape(mf, i):
    """Tensor i's shape, read from its TENSORS record (one tuple allocated)."""
    pos = mf.tensors.off + i * TENSOR_SIZE
    return struct.unpack_from(_DIMS_FMT[mf.buf[pos + 1]], mf.buf, pos + 12)


def tensor_storage(mf, i):
    """Tensor i's storage code (ARENA or CONST), read from its TENSORS record."""
    return mf.buf[mf.tensors.off + i * TENSOR_SIZE + 2]


def tensor_name(mf, i):
    """Tensor i's name from the NAMES section ('' without one), decoded when asked for."""
    if mf.names is None:
        return ""
    pos = mf.names[i]
    (n,) = struct.unpack_from("<H", mf.buf, pos)
    return struct.unpack_from("%ds" % n, mf.buf, pos + 2)[0].decode("utf-8")


def _crc32(buf, off, length):
    return _crc_fn(memoryview(buf)[off : off + length]) & 0xFFFFFFFF


def crc32(data, crc=0):
    """CRC32 of `data` continuing from `crc` (as binascii.crc32), for checks in chunks."""
    return _crc_fn(data, crc) & 0xFFFFFFFF


def _crc32_bytecode(data, crc=0):
    # Fallback for firmware built without binascii.crc32. The register is kept as two 16-bit
    # halves so that no intermediate leaves a 31-bit small int.
    hi = ((crc >> 16) & 0xFFFF) ^ 0xFFFF
    lo = (crc & 0xFFFF) ^ 0xFFFF
    for b in data:
        lo ^= b & 0xFF
        for _ in range(8):
            carry = lo & 1
            lo = (lo >> 1) | ((hi & 1) << 15)
            hi >>= 1
            if carry:
                hi ^= 0xEDB8
                lo ^= 0x8320
    return ((hi ^ 0xFFFF) << 16) | (lo ^ 0xFFFF)


try:
    from binascii import crc32 as _crc_fn
except ImportError:  # pragma: no cover - firmware without binascii.crc32
    _crc_fn = _crc32_bytecode


def _not_a_model(buf, magic):
    hint = ""
    if bytes(buf[4:8]) == b"TFL3":  # a TensorFlow Lite flatbuffer's file identifier
        hint = (": this is a TensorFlow Lite model (.tflite); convert it on a computer with "
                "`tinyrt convert MODEL.tflite` and copy the .trt file to the board")
    return ModelError("not a tinyrt model: magic %r, expected %r%s" % (magic, MAGIC, hint))


def read_model(buf, file_bytes=None):
    """Parse and validate a model file held in `buf` (any buffer). Raises ModelError.

    With `file_bytes` (the weights are streamed), `buf` holds only the file's first len(buf)
    bytes: every section but DATA, which must lie after them. DATA's bounds are checked against
    `file_bytes`; its CRC (mf.data_crc) is checked by the caller, reading the file
    (tinyrt.stream.check_data).
    """
    held = len(buf)
    size = held if file_bytes is None else file_bytes
    if held < HEADER_SIZE:
        raise ModelError("truncated: %d bytes, a model file starts with a %d-byte header"
                         % (held, HEADER_SIZE))
    magic, version, n_sections, file_bytes, table_crc = struct.unpack_from(HEADER_FMT, buf, 0)
    if magic != MAGIC:
        raise _not_a_model(buf, magic)
    if version == 0 or version > FORMAT_VERSION:
        raise ModelError("format version %d: this tinyrt reads version %d%s"
                         % (version, FORMAT_VERSION,
                            "; update tinyrt" if version > FORMAT_VERSION else ""))
    if file_bytes != size:
        raise ModelError("%s: the header says %d bytes, the buffer holds %d"
                         % ("truncated" if size < file_bytes else "wrong length",
                            file_bytes, size))
    if n_sections < len(REQUIRED_SECTIONS) or n_sections > MAX_SECTIONS:
        raise ModelError("section count %d, expected %d to %d"
                         % (n_sections, len(REQUIRED_SECTIONS), MAX_SECTIONS))
    table_end = HEADER_SIZE + SECTION_SIZE * n_sections
    if table_end > held:
        raise ModelError("truncated: section table needs %d bytes, file has %d"
                         % (table_end, size))
    if _crc32(buf, HEADER_SIZE, table_end - HEADER_SIZE) != table_crc:
        raise ModelError("section table CRC mismatch: the file is corrupt")

    mf = ModelFile(buf, size)
    mf.version = version
    spans = {}
    for i in range(n_sections):
        entry = HEADER_SIZE + SECTION_SIZE * i
        kind, off, length, crc = struct.unpack_from(SECTION_FMT, buf, entry)
        name = SECTION_NAMES.get(kind)
        if name is None:
            raise ModelError("section %d has unknown kind %d (known: 1..%d)"
                             % (i, kind, len(SECTION_NAMES)))
        if kind in spans:
            raise ModelError("section %s appears twice" % name)
        if off % ALIGN or off < table_end or off > size or length > size - off:
            raise ModelError("section %s at offset %d length %d lies outside the file "
                             "(%d bytes, data from %d, %d-byte aligned)"
                             % (name, off, length, size, table_end, ALIGN))
        if off + length > held:
            if kind != DATA:
                raise ModelError("section %s lies after DATA: the weights of this file cannot "
                                 "be streamed" % name)
        elif _crc32(buf, off, length) != crc:
            raise ModelError("section %s CRC mismatch: the file is corrupt" % name)
        if kind == DATA:
            mf.data_crc = crc
        spans[kind] = (off, length)
        mf.sections.append((kind, off, length, crc))
    for kind in REQUIRED_SECTIONS:
        if kind not in spans:
            raise ModelError("section %s is missing" % SECTION_NAMES[kind])

    _read_meta(mf, buf, spans[META])
    mf.data_offset, mf.data_length = spans[DATA]
    _read_tensors(mf, buf, spans[TENSORS])
    for t in mf.inputs + mf.outputs:  # invoke() writes the inputs, kernels the outputs
        if tensor_storage(mf, t) != ARENA:
            raise ModelError("model input/output tensor %d is constant data, expected an arena "
                             "tensor" % t)
    _read_ops(mf, buf, spans[OPS], len(mf.tensors))
    if NAMES in spans:
        _read_names(mf, buf, spans[NAMES])
    mf.metadata_span = spans.get(METADATA)
    return mf


def read_layout(head):
    """(file_bytes, {kind: (offset, length)}) from the first bytes of a model file
    (the header and section table; `head` may be cut short anywhere after them). The fields are
    not validated (read_model does that): this only sizes what load() allocates.
    Raises ModelError when `head` is not the start of a model file."""
    if len(head) < HEADER_SIZE:
        raise ModelError("truncated: %d bytes, a model file starts with a %d-byte header"
                         % (len(head), HEADER_SIZE))
    magic, version, n_sections, file_bytes, _ = struct.unpack_from(HEADER_FMT, head, 0)
    if magic != MAGIC:
        raise _not_a_model(head, magic)
    spans = {}
    for i in range(min(n_sections, MAX_SECTIONS)):
        pos = HEADER_SIZE + SECTION_SIZE * i
        if pos + SECTION_SIZE > len(head):
            break
        kind, off, length, _ = struct.unpack_from(SECTION_FMT, head, pos)
        spans[kind] = (off, length)
    return file_bytes, spans


def _read_meta(mf, buf, span):
    off, length = span
    if length < META_SIZE:
        raise ModelError("section META has %d bytes, expected at least %d" % (length, META_SIZE))
    (mf.arena_bytes, mf.scratch_bytes, n_tensors, n_ops, n_in, n_out) = struct.unpack_from(
        META_FMT, buf, off)
    want = META_SIZE + ((2 * (n_in + n_out) + 3) & ~3)
    if length != want:
        raise ModelError("section META has %d bytes, expected %d for %d inputs and %d outputs"
                         % (length, want, n_in, n_out))
    if n_in == 0 or n_out == 0:
        raise ModelError("model has %d inputs and %d outputs, expected at least one of each"
                         % (n_in, n_out))
    idx = struct.unpack_from("<%dH" % (n_in + n_out), buf, off + META_SIZE)
    for t in idx:
        if t >= n_tensors:
            raise ModelError("input/output tensor %d out of range (model has %d tensors)"
                             % (t, n_tensors))
    mf.inputs = idx[:n_in]
    mf.outputs = idx[n_in:]
    mf.n_tensors = n_tensors
    mf.n_ops = n_ops


def _tensor_record(mf, buf, pos, i):
    (dtype, ndim, storage, flags, t_off, nbytes, d0, d1, d2, d3, scale,
     zp) = struct.unpack_from(TENSOR_FMT, buf, pos)
    shape = (d0, d1, d2, d3)[:ndim]
    return TensorRecord(mf, i, dtype, shape, storage, flags, t_off, nbytes, scale, zp)


def _read_tensors(mf, buf, span):
    off, length = span
    n = mf.n_tensors
    if length != n * TENSOR_SIZE:
        raise ModelError("section TENSORS has %d bytes, expected %d for %d tensors"
                         % (length, n * TENSOR_SIZE, n))
    for i in range(n):
        (dtype, ndim, storage, flags, t_off, nbytes, d0, d1, d2, d3, scale,
         zp) = struct.unpack_from(TENSOR_FMT, buf, off + i * TENSOR_SIZE)
        if dtype not in DTYPES:
            raise ModelError("tensor %d has unknown dtype code %d" % (i, dtype))
        if ndim > MAX_DIMS:
            raise ModelError("tensor %d has %d dims, at most %d supported" % (i, ndim, MAX_DIMS))
        shape = (d0, d1, d2, d3)[:ndim]
        for d in shape:
            if d == 0:
                raise ModelError("tensor %d has a zero dimension in shape %r" % (i, shape))
        if stored_bytes(dtype, shape) != nbytes:
            raise ModelError("tensor %d: shape %r of %s needs %d bytes, record says %d"
                             % (i, shape, DTYPES[dtype][0], stored_bytes(dtype, shape), nbytes))
        if storage == ARENA:
            limit = mf.arena_bytes
            where = "arena"
        elif storage == CONST:
            limit = mf.data_length
            where = "DATA section"
        else:
            raise ModelError("tensor %d has unknown storage code %d" % (i, storage))
        if t_off > limit or nbytes > limit - t_off:
            raise ModelError("tensor %d (%d bytes at offset %d) lies outside the %s (%d bytes)"
                             % (i, nbytes, t_off, where, limit))
        if t_off % DTYPES[dtype][1]:
            raise ModelError("tensor %d offset %d is not aligned to its %d-byte items"
                             % (i, t_off, DTYPES[dtype][1]))
        if scale != scale:
            raise ModelError("tensor %d has a NaN scale" % i)
    mf.tensors = _Tensors(mf, off, n)


def _op_record(buf, pos):
    opcode, n_in, n_out, n_params, _ = struct.unpack_from(OP_HEAD_FMT, buf, pos)
    pos += OP_HEAD_SIZE
    n_idx = n_in + n_out
    idx = struct.unpack_from("<%dH" % n_idx, buf, pos)
    params = struct.unpack_from("<%di" % n_params, buf, pos + ((2 * n_idx + 3) & ~3))
    return OpRecord(opcode, idx[:n_in], idx[n_in:], params)


def _read_ops(mf, buf, span, n_tensors):
    off, length = span
    end = off + length
    pos = off
    if mf.n_ops * OP_HEAD_SIZE > length:  # before the table of starts is allocated
        raise ModelError("section OPS ends inside operator %d of %d: its %d bytes hold at "
                         "most %d operators" % (length // OP_HEAD_SIZE, mf.n_ops, length,
                                                length // OP_HEAD_SIZE))
    starts = array("I", bytes(4 * mf.n_ops))
    for i in range(mf.n_ops):
        if pos + OP_HEAD_SIZE > end:
            raise ModelError("section OPS ends inside operator %d of %d" % (i, mf.n_ops))
        starts[i] = pos
        opcode, n_in, n_out, n_params, _ = struct.unpack_from(OP_HEAD_FMT, buf, pos)
        pos += OP_HEAD_SIZE
        n_idx = n_in + n_out
        rec_end = pos + ((2 * n_idx + 3) & ~3) + 4 * n_params
        if rec_end > end:
            raise ModelError("operator %d (opcode %d) needs %d bytes past the end of OPS"
                             % (i, opcode, rec_end - end))
        idx = struct.unpack_from("<%dH" % n_idx, buf, pos)
        for t in idx:
            if t >= n_tensors and t != NO_TENSOR:
                raise ModelError("operator %d (opcode %d) names tensor %d, model has %d"
                                 % (i, opcode, t, n_tensors))
        for t in idx[n_in:]:  # an operator writes only arena tensors that it does not read
            if t == NO_TENSOR or tensor_storage(mf, t) != ARENA or t in idx[:n_in]:
                raise ModelError("operator %d (%s) output tensor %d: expected an arena tensor "
                                 "that is not also its input, found %s"
                                 % (i, op_name(opcode), t, "none" if t == NO_TENSOR
                                    else "an input" if t in idx[:n_in] else "constant data"))
        pos = rec_end
    if pos != end:
        raise ModelError("section OPS has %d bytes after operator %d" % (end - pos, mf.n_ops))
    mf.ops = _Ops(mf, starts)


def _read_names(mf, buf, span):
    off, length = span
    end = off + length
    pos = off
    names = array("I", bytes(4 * mf.n_tensors))
    for i in range(mf.n_tensors):
        if pos + 2 > end:
            raise ModelError("section NAMES ends before the last tensor's name")
        (n,) = struct.unpack_from("<H", buf, pos)
        if pos + 2 + n > end:
            raise ModelError("section NAMES: a name runs past the end of the section")
        raw = struct.unpack_from("%ds" % n, buf, pos + 2)[0]
        try:
            raw.decode("utf-8")  # checked here, decoded again when asked for (tensor_name)
        except UnicodeError:
            raise ModelError("section NAMES holds a name that is not UTF-8")
        names[i] = pos
        pos += 2 + n
    if pos != end:
        raise ModelError("section NAMES has %d bytes after the last name" % (end - pos))
    mf.names = names


def read_metadata(mf):
    """The METADATA section's text ('' if absent)."""
    if mf.metadata_span is None:
        return ""
    off, length = mf.metadata_span
    raw = struct.unpack_from("%ds" % length, mf.buf, off)[0]
    try:
        return raw.decode("utf-8")
    except UnicodeError:
        raise ModelError("section METADATA is not UTF-8 text")
