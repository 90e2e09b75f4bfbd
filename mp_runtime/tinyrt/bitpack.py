# The binary bit convention on the device: the one module that defines it (Larq Compute Engine's;
# the converter's twin is converter/bitpack.py and tests bind the two).
#
#   A packed tensor of logical shape (..., C) stores each row of C channels in (C + 31) // 32
#   int32 words: channel c -> word c // 32, bit c % 32 (LSB first). Words are little-endian, so
#   channel c is bit c % 8 of byte c // 8 of the row.  bit 1 = -1, bit 0 = +1; the bits past
#   channel C - 1 in the last word are 0.
#   accum = popcount(x XOR w) over K bits; the +-1 dot product is K - 2 * accum.
#
# Packed data lives in the int8 arena / file buffer (array('b')): a word is 4 signed bytes and
# kernels work byte by byte. No 32-bit word value is ever formed: values >= 2^30 would be heap
# longs on 32-bit boards (and a MemoryError under heap_lock).

# popcount of each byte value, indexed by a signed byte: POPCOUNT[v] for v in [-128, 127]
# (a negative index counts from the end, POPCOUNT[v] == POPCOUNT[v & 0xFF]). The XOR of two
# int8 values is again in [-128, 127], so POPCOUNT[a ^ b] needs no mask.
_pc = bytearray(256)
for _i in range(1, 256):
    _pc[_i] = _pc[_i >> 1] + (_i & 1)
POPCOUNT = bytes(_pc)
del _pc, _i

# The signed value that bit j of a byte contributes: a byte assembled by adding BIT[j] for its
# 1-bits is already the int8 the buffer stores (bit 7 is the sign).
BIT = (1, 2, 4, 8, 16, 32, 64, -128)


def words(channels):
    """int32 words of one packed row of `channels` channels."""
    return (channels + 31) >> 5


def row_bytes(channels):
    """Bytes of one packed row of `channels` channels (a whole number of words)."""
    return ((channels + 31) >> 5) << 2


def xor_popcount(a, a_off, b, b_off, n):
    """popcount(a XOR b) over n bytes of two int8 buffers (a from a_off, b from b_off)."""
    pc = POPCOUNT
    acc = 0
    d = b_off - a_off
    for i in range(a_off, a_off + n):
        acc += pc[a[i] ^ b[i + d]]
    return acc


def popcount(a, a_off, n):
    """Number of 1-bits (-1 values) in n bytes of an int8 buffer from a_off."""
    pc = POPCOUNT
    acc = 0
    for i in range(a_off, a_off + n):
        acc += pc[a[i]]
    return acc


def pack_row(x, x_off, channels, zero_point, y, y_off):
    """Pack `channels` int8 values x[x_off:] into one packed row at y[y_off:] (row_bytes
    bytes): bit = 1 (-1) iff x < zero_point (LceQuantize on int8 input)."""
    bit = BIT
    n_full = channels >> 3
    i = x_off
    o = y_off
    for _ in range(n_full):
        v = 0
        for j in range(8):
            if x[i + j] < zero_point:
                v += bit[j]
        y[o] = v
        o += 1
        i += 8
    rest = channels & 7
    end = y_off + (((channels + 31) >> 5) << 2)
    if rest:
        v = 0
        for j in range(rest):
            if x[i + j] < zero_point:
                v += bit[j]
        y[o] = v
        o += 1
    while o < end:  # unused bits of the last word are 0
        y[o] = 0
        o += 1


def unpack_row(x, x_off, channels, zero_value, one_value, y, y_off):
    """Unpack one packed row at x[x_off:] into `channels` int8 values at y[y_off:]: a 0-bit
    (+1) gives zero_value, a 1-bit (-1) gives one_value (LceDequantize)."""
    o = y_off
    i = x_off
    left = channels
    while left > 0:
        v = x[i]
        n = 8 if left > 8 else left
        for j in range(n):
            if (v >> j) & 1:
                y[o] = one_value
            else:
                y[o] = zero_value
            o += 1
        i += 1
        left -= n
