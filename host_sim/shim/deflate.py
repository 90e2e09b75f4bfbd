"""Stand-in for MicroPython's `deflate` module under CPython (host simulator only): the
decompressing side of DeflateIO, over zlib."""

import zlib

AUTO = 0
RAW = 1
ZLIB = 2
GZIP = 3
_WBITS = {AUTO: 47, RAW: -15, ZLIB: 15, GZIP: 31}


class DeflateIO:
    def __init__(self, stream, format=AUTO, wbits=0, close=False):
        self._stream, self._close = stream, close
        self._z = zlib.decompressobj(_WBITS[format])
        self._out = b""

    def read(self, n=-1):
        while n < 0 or len(self._out) < n:
            if self._z.eof:
                break
            data = self._stream.read(512)
            try:  # MicroPython raises OSError(EINVAL) for a corrupt stream
                self._out += self._z.decompress(data) if data else self._z.flush()
            except zlib.error as e:
                raise OSError(22, f"corrupt deflate stream: {e}") from None
            if not data:
                break
        if n < 0:
            n = len(self._out)
        out, self._out = self._out[:n], self._out[n:]
        return out

    def readinto(self, buf):
        data = self.read(len(buf))
        memoryview(buf).cast("B")[:len(data)] = data  # any buffer, as MicroPython takes
        return len(data)

    def close(self):
        if self._close:
            self._stream.close()
