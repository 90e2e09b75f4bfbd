# A tensor of a loaded model: its description and a typed view of its bytes (no copy).
#
# Values through set() / tolist():
#   int8             one int per element, in [-128, 127].
#   int16            one int per element, in [-32768, 32767]. int16 tensors (16x8 models) live
#                    in the same int8 buffers as byte pairs: element i is the little-endian pair
#                    (d[2i] & 255) | d[2i + 1] << 8 (MicroPython's memoryview has no cast()).
#   int32, packed    one int per 32-bit little-endian word, signed int32 (set() also takes the
#                    unsigned form, [0, 2^32)). A packed tensor of logical shape (..., C) holds
#                    (C + 31) // 32 words per row of C channels, the bits past channel C - 1
#                    zero (the convention is tinyrt.bitpack's, as Larq Compute Engine's).
# set() and tolist() run outside invoke(): a word >= 2^30 is a heap long on 32-bit boards,
# which is fine here; kernels never form one (they read packed data byte by byte).
# Values of the wrong kind (floats, None, str; a scalar or a generator for a sequence) raise
# ShapeError saying what the tensor takes (tinyrt.explain words it, imported only then); the
# checks cost nothing on the success path.
from struct import unpack_from

from .errors import ShapeError
from .fileformat import DTYPES, FLOAT32, INT8, INT16, INT32, PACKED, tensor_name, tensor_shape

_INT8 = DTYPES[INT8][0]
_INT16 = DTYPES[INT16][0]
_FLOAT32 = DTYPES[FLOAT32][0]  # DEQUANTIZE's outputs: read (tolist, [i]) as floats, after invoke
_WORDS = (DTYPES[INT32][0], DTYPES[PACKED][0])  # dtypes set()/tolist() take as int32 words
_QUANTIZE_LIMIT = 512.0  # |r / scale| beyond this saturates whatever the zero point

# Model.state: whether the outputs hold the result of the last invoke()
NO_RESULT = 0  # no invoke() yet
RESULT = 1  # the last invoke() completed
FAILED = 2  # the last invoke() raised (or is running): the outputs are partial or stale
INPUT_SET = 3  # an input was written since: the planner may have put an output over it


def _length(t, values, what):
    """len(values), or a ShapeError saying that tensor t takes a sequence of `what`."""
    if not isinstance(values, str):
        try:
            return len(values)
        except TypeError:
            pass
    from . import explain

    raise explain.not_sequence(t, values, what)


def _word(d, i):
    """The signed int32 word at byte i of the int8 view d: the low three bytes unsigned, the
    top byte signed."""
    return (d[i] & 255) | (d[i + 1] & 255) << 8 | (d[i + 2] & 255) << 16 | d[i + 3] << 24


class Tensor:
    # Few attributes per tensor (RAM: a model keeps one Tensor per tensor); shape, scale and
    # name are read from the model file's record when asked for.
    def __init__(self, index, rec, data):
        self.index = index
        self.file = rec.file  # the ModelFile holding the record
        self.dtype = DTYPES[rec.dtype][0]
        self.zero_point = rec.zero_point
        self.data = data  # memoryview: int8 items (int8 values, or the raw bytes of words)
        n = 1
        for d in rec.shape:
            n *= d
        self.size = n  # elements (channels, for a packed tensor)

    @property
    def shape(self):
        return tensor_shape(self.file, self.index)

    @property
    def scale(self):
        return self.file.tensors[self.index].scale

    @property
    def name(self):
        return tensor_name(self.file, self.index)

    def __len__(self):
        return self.size

    def __getitem__(self, i):
        if self.dtype == _INT16:
            d = self.data
            return (d[i + i] & 255) | d[i + i + 1] << 8
        if self.dtype == _FLOAT32:
            return unpack_from("<f", self.data, 4 * i)[0]
        return self.data[i]

    def __repr__(self):
        from .explain import shown

        return "<Tensor %d %r %s %r scale=%g zero_point=%d %s>" % (
            self.index, self.name, self.dtype, self.shape, self.scale, self.zero_point,
            shown(self))

    def _sized(self, values, what):
        n = _length(self, values, what)
        if n != self.size:
            from . import explain

            raise explain.wrong_length(self, n)
        return n

    def set(self, values):
        """Copy values (any sequence of ints, flattened) into the tensor: int8 values for an
        int8 tensor, int32 words for an int32 or packed one."""
        if self.dtype in _WORDS:
            self._set_words(values)
            return
        if self.dtype == _INT16:
            self._set_int16(values)
            return
        if self.dtype != _INT8:
            raise ShapeError("tensor %r is %s; set() takes int8, int16, int32 and packed "
                             "tensors" % (self.name, self.dtype))
        n = self._sized(values, "int8 values")
        d = self.data
        i = 0
        try:
            for i in range(n):
                v = values[i]
                if v < -128 or v > 127:
                    break
                d[i] = v
            else:
                return
        except (TypeError, KeyError):  # not an int: a float, None, a str...
            pass
        from . import explain

        raise explain.not_int8(self, values, i)

    def _set_int16(self, values):
        n = self._sized(values, "int16 values")
        d = self.data
        i = 0
        try:
            for i in range(n):
                v = values[i]
                if v < -32768 or v > 32767:
                    break
                d[i + i] = ((v & 255) ^ 128) - 128  # the low byte, as the int8 buffer stores it
                d[i + i + 1] = v >> 8
            else:
                return
        except (TypeError, KeyError):  # not an int
            pass
        raise ShapeError("tensor %r (int16, shape %r) takes int16 values in [-32768, 32767]; "
                         "item %d is %r" % (self.name, self.shape, i, values[i]))

    def _set_words(self, values):
        d = self.data
        n = len(d) >> 2
        got = _length(self, values, "int32 words")
        if got != n:
            raise ShapeError("tensor %r (%s, shape %r) takes %d int32 words, got %d"
                             % (self.name, self.dtype, self.shape, n, got))
        used = 32  # bits of a row's last word that hold channels
        per_row = 1
        if self.dtype == DTYPES[PACKED][0]:
            used = ((self.shape[-1] - 1) & 31) + 1
            per_row = (self.shape[-1] + 31) >> 5
        k = 0
        try:
            for k in range(n):
                v = values[k]
                if v < -2147483648 or v > 4294967295:
                    break
                if v < 0:
                    v += 4294967296  # the unsigned word: bits are bits
                if used < 32 and k % per_row == per_row - 1 and v >> used:
                    break  # bits past the row's last channel
                i = k << 2
                for j in range(4):
                    b = v & 255
                    d[i + j] = b - 256 if b > 127 else b  # the byte as the int8 buffer stores it
                    v >>= 8
            else:
                return
        except (TypeError, KeyError):  # not an int
            pass
        from . import explain

        raise explain.not_word(self, values, k)

    def tolist(self):
        """The tensor's values: int8 or int16 values, or signed int32 words (int32 and
        packed)."""
        d = self.data
        if self.dtype == _INT16:
            out = []
            for i in range(0, len(d), 2):
                out.append((d[i] & 255) | d[i + 1] << 8)
            return out
        if self.dtype == _FLOAT32:
            out = []
            for i in range(0, len(d), 4):
                out.append(unpack_from("<f", d, i)[0])
            return out
        if self.dtype not in _WORDS:
            return list(d)
        out = []
        for i in range(0, len(d), 4):
            out.append(_word(d, i))
        return out

    def quantize(self, reals):
        """Set the tensor from real numbers: q = round(r / scale) + zero_point, saturated."""
        if self.dtype != _INT8:
            raise ShapeError("tensor %r is %s; quantize() takes int8 tensors"
                             % (self.name, self.dtype))
        n = self._sized(reals, "real numbers")
        d = self.data
        scale = self.scale
        zp = self.zero_point
        i = 0
        try:
            for i in range(n):
                x = reals[i] / scale
                if x != x or x - x != 0:  # NaN, or +-inf (inf - inf is NaN)
                    break
                # saturated before rounding: int() of a huge float overflows on float32 boards
                if x < -_QUANTIZE_LIMIT:
                    x = -_QUANTIZE_LIMIT
                elif x > _QUANTIZE_LIMIT:
                    x = _QUANTIZE_LIMIT
                q = int(round(x)) + zp
                d[i] = -128 if q < -128 else (127 if q > 127 else q)
            else:
                return
        except (TypeError, KeyError):  # not a number
            pass
        from . import explain

        raise explain.not_real(self, reals, i)

    def dequantize(self):
        """The tensor's real values: (q - zero_point) * scale."""
        if self.dtype != _INT8:
            raise ShapeError("tensor %r is %s; dequantize() takes int8 tensors"
                             % (self.name, self.dtype))
        scale = self.scale
        return [(q - self.zero_point) * scale for q in self.data]


class Input(Tensor):
    """A model input: writing it (set, quantize) ends the validity of the outputs, whose
    memory the arena planner may share with it."""

    def __init__(self, index, rec, data, model):
        Tensor.__init__(self, index, rec, data)
        self.model = model

    def set(self, values):
        self.model.state = INPUT_SET
        Tensor.set(self, values)

    def quantize(self, reals):
        self.model.state = INPUT_SET
        Tensor.quantize(self, reals)


class Output(Tensor):
    """A model output: its values are read (tolist, dequantize, [i]) only while they are the
    result of the last invoke(), which completed; otherwise ModelError says why not."""

    def __init__(self, index, rec, data, model):
        Tensor.__init__(self, index, rec, data)
        self.model = model

    def _check(self):
        if self.model.state != RESULT:
            from . import explain

            raise explain.no_result(self)

    def __getitem__(self, i):
        self._check()
        return Tensor.__getitem__(self, i)

    def tolist(self):
        self._check()
        return Tensor.tolist(self)

    def dequantize(self):
        self._check()
        return Tensor.dequantize(self)
