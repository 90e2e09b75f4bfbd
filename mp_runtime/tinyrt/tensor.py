# A tensor of a loaded model: its description and a typed view of its bytes (no copy).
#
# Values through set() / tolist():
#   int8             one int per element, in [-128, 127].
#   int32, packed    one int per 32-bit little-endian word, signed int32 (set() also takes the
#                    unsigned form, [0, 2^32)). A packed tensor of logical shape (..., C) holds
#                    (C + 31) // 32 words per row of C channels, the bits past channel C - 1
#                    zero (the convention is tinyrt.bitpack's, as Larq Compute Engine's).
# set() and tolist() run outside invoke(): a word >= 2^30 is a heap long on 32-bit boards,
# which is fine here; kernels never form one (they read packed data byte by byte).
from .errors import ShapeError
from .fileformat import DTYPES, INT8, INT32, PACKED, tensor_name, tensor_shape

_INT8 = DTYPES[INT8][0]
_WORDS = (DTYPES[INT32][0], DTYPES[PACKED][0])  # dtypes set()/tolist() take as int32 words


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
        return self.data[i]

    def __repr__(self):
        return "<Tensor %d %r %s %r scale=%g zero_point=%d>" % (
            self.index, self.name, self.dtype, self.shape, self.scale, self.zero_point)

    def set(self, values):
        """Copy values (any sequence of ints, flattened) into the tensor: int8 values for an
        int8 tensor, int32 words for an int32 or packed one."""
        if self.dtype in _WORDS:
            self._set_words(values)
            return
        if self.dtype != _INT8:
            raise ShapeError("tensor %r is %s; set() takes int8, int32 and packed tensors"
                             % (self.name, self.dtype))
        n = len(values)
        if n != self.size:
            raise ShapeError("tensor %r takes %d values (shape %r), got %d"
                             % (self.name, self.size, self.shape, n))
        d = self.data
        for i in range(n):
            v = values[i]
            if v < -128 or v > 127:
                raise ShapeError("value %r at %d is outside int8 [-128, 127]" % (v, i))
            d[i] = v

    def _set_words(self, values):
        d = self.data
        n = len(d) >> 2
        if len(values) != n:
            raise ShapeError("tensor %r (%s, shape %r) takes %d int32 words, got %d"
                             % (self.name, self.dtype, self.shape, n, len(values)))
        used = 32  # bits of a row's last word that hold channels
        per_row = 1
        if self.dtype == DTYPES[PACKED][0]:
            used = ((self.shape[-1] - 1) & 31) + 1
            per_row = (self.shape[-1] + 31) >> 5
        for k in range(n):
            v = values[k]
            if v < -2147483648 or v > 4294967295:
                raise ShapeError("word %r at %d is outside int32 [-2^31, 2^32)" % (v, k))
            if v < 0:
                v += 4294967296  # the unsigned word: bits are bits
            if used < 32 and k % per_row == per_row - 1 and v >> used:
                raise ShapeError("word %d of packed tensor %r sets bits past channel %d of "
                                 "its row (they must be 0)" % (k, self.name, self.shape[-1] - 1))
            i = k << 2
            for j in range(4):
                b = v & 255
                d[i + j] = b - 256 if b > 127 else b  # the byte as the int8 buffer stores it
                v >>= 8

    def tolist(self):
        """The tensor's values: int8 values, or signed int32 words (int32 and packed)."""
        if self.dtype not in _WORDS:
            return list(self.data)
        d = self.data
        out = []
        for i in range(0, len(d), 4):
            # low three bytes unsigned, the top byte signed: the signed int32 word
            out.append((d[i] & 255) | (d[i + 1] & 255) << 8 | (d[i + 2] & 255) << 16
                       | d[i + 3] << 24)
        return out

    def quantize(self, reals):
        """Set the tensor from real numbers: q = round(r / scale) + zero_point, saturated."""
        if self.dtype != _INT8:
            raise ShapeError("tensor %r is %s; quantize() takes int8 tensors"
                             % (self.name, self.dtype))
        n = len(reals)
        if n != self.size:
            raise ShapeError("tensor %r takes %d values (shape %r), got %d"
                             % (self.name, self.size, self.shape, n))
        d = self.data
        scale = self.scale
        for i in range(n):
            q = int(round(reals[i] / scale)) + self.zero_point
            d[i] = -128 if q < -128 else (127 if q > 127 else q)

    def dequantize(self):
        """The tensor's real values: (q - zero_point) * scale."""
        if self.dtype != _INT8:
            raise ShapeError("tensor %r is %s; dequantize() takes int8 tensors"
                             % (self.name, self.dtype))
        scale = self.scale
        return [(q - self.zero_point) * scale for q in self.data]
