# A tensor of a loaded model: its description and a typed view of its bytes (no copy).
from .errors import ShapeError
from .fileformat import DTYPES, INT8


class Tensor:
    def __init__(self, index, rec, data):
        self.index = index
        self.name = rec.name
        self.dtype = DTYPES[rec.dtype][0]
        self.shape = rec.shape
        self.scale = rec.scale
        self.zero_point = rec.zero_point
        self.data = data  # memoryview: int8 items for int8 tensors, raw bytes otherwise
        n = 1
        for d in rec.shape:
            n *= d
        self.size = n  # elements

    def __len__(self):
        return self.size

    def __getitem__(self, i):
        return self.data[i]

    def __repr__(self):
        return "<Tensor %d %r %s %r scale=%g zero_point=%d>" % (
            self.index, self.name, self.dtype, self.shape, self.scale, self.zero_point)

    def set(self, values):
        """Copy raw int8 values (any sequence of ints, flattened) into the tensor."""
        if self.dtype != DTYPES[INT8][0]:
            raise ShapeError("tensor %r is %s; set() takes int8 tensors" % (self.name, self.dtype))
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

    def tolist(self):
        return list(self.data)

    def quantize(self, reals):
        """Set the tensor from real numbers: q = round(r / scale) + zero_point, saturated."""
        n = len(reals)
        if n != self.size:
            raise ShapeError("tensor %r takes %d values (shape %r), got %d"
                             % (self.name, self.size, self.shape, n))
        d = self.data
        for i in range(n):
            q = int(round(reals[i] / self.scale)) + self.zero_point
            d[i] = -128 if q < -128 else (127 if q > 127 else q)

    def dequantize(self):
        """The tensor's real values: (q - zero_point) * scale."""
        return [(q - self.zero_point) * self.scale for q in self.data]
