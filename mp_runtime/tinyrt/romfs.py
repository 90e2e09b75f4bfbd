# Weights in place from flash. A file opened 'rb' on a ROMFS mount (MicroPython >= 1.25, /rom)
# has the buffer protocol: memoryview(f) points straight into flash, no copy. load() then keeps
# no copy of the model file at all: the tables are read and CRC-checked in flash (as a RAM
# buffer would be), and each constant tensor is a signed int8 view of its flash bytes.
#
# Why uctypes: the kernels index weights as int8 (array('b') semantics, tinyrt.buffers), but a
# file's memoryview indexes to unsigned 0..255 and MicroPython's memoryview has no cast().
# uctypes.struct(address, (ARRAY | 0, INT8 | n)) indexes to signed values in C (no allocation)
# and gives the fast twins (viper ptr8/ptr32, asm_thumb) the flash address through the buffer
# protocol, as a memoryview of an array('b') does.
#
# Alignment: a file at a multiple of ALIGN (16) in flash keeps DATA's in-file alignment, so
# every constant tensor is used in place. `mpremote romfs build` (and ../shared mkromfs.py) do
# not align files: then only the int8 tensors stay in flash (the kernels read int8 weights
# bytewise, or copy them into their own tables at prepare) and the constants read as words
# (int32 biases and requantization tables, int16, bit-packed weights: ptr32 and ldr fault on
# unaligned addresses on Cortex-M0 and Xtensa) are copied into RAM, a few hundred bytes per
# layer; prepare() copies most of them into its own tables anyway.
from array import array

from .fileformat import ALIGN, INT8

try:
    import uctypes
except ImportError:  # CPython (the host simulator), or firmware without uctypes: no in place
    uctypes = None  # type: ignore[assignment]


if uctypes is not None:
    # uctypes' own INT8 is a layout code: not fileformat's dtype INT8 that tensor_view tests
    ARRAY, U_INT8, addressof = uctypes.ARRAY, uctypes.INT8, uctypes.addressof

    class Int8View(uctypes.struct):
        """n signed int8 values at a flash address: indexes like a memoryview of an
        array('b') (no slices), len() and iteration for tolist()/repr()."""

        def __init__(self, address, n):
            super().__init__(address, (ARRAY | 0, U_INT8 | n))
            self.n = n

        def __len__(self):
            return self.n


class Flash:
    """A model file memory-mapped on ROMFS: its open file, a memoryview of all its bytes (in
    flash) and their address."""

    def __init__(self, f, mv):
        self.file = f
        self.buf = mv
        self.address = addressof(mv)

    def tensor_view(self, offset, rec):
        """Constant tensor `rec`'s bytes at file offset `offset`: signed int8 values in place,
        or (a word-read dtype in a file not at an ALIGN multiple) an aligned copy in RAM."""
        if rec.dtype == INT8 or self.address % ALIGN == 0:
            return Int8View(self.address + offset, rec.nbytes)
        return memoryview(array("b", self.buf[offset : offset + rec.nbytes]))

    def close(self):
        self.file.close()


def map_file(path):
    """The model file at `path` as a Flash, or None when its filesystem does not map files
    (every filesystem but ROMFS) or this firmware lacks uctypes."""
    if uctypes is None:
        return None
    try:
        f = open(path, "rb")
    except OSError:
        return None  # load() reports it, reading the file the ordinary way
    try:
        return Flash(f, memoryview(f))
    except (TypeError, ValueError, OSError):  # a file without the buffer protocol
        f.close()
        return None
