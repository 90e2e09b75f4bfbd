"""The binary bit convention on the host: the one converter module that defines it (the device's
twin is mp_runtime/tinyrt/bitpack.py; tests bind the two).

Larq Compute Engine's convention: a row of C channels is packed into (C + 31) // 32 int32 words,
channel c -> word c // 32, bit c % 32 (LSB first); bit 1 means -1, bit 0 means +1; the bits past
channel C - 1 are 0. A little-endian `bitarray` holds exactly this layout: bit i of the array is
bit i % 8 of byte i // 8, and little-endian words put byte k of the row at word k // 4.
"""

from __future__ import annotations

import numpy as np
from bitarray import bitarray

WORD_BITS = 32


def words(channels: int) -> int:
    """int32 words of one packed row of `channels` channels."""
    return (int(channels) + WORD_BITS - 1) // WORD_BITS


def pack_bits(bits) -> np.ndarray:
    """Pack a boolean array (..., C) (True = 1-bit = -1) into int32 words (..., words(C))."""
    bits = np.asarray(bits, dtype=bool)
    if bits.ndim == 0:
        raise ValueError("pack_bits needs at least one dimension (the channels)")
    c = bits.shape[-1]
    n = words(c)
    rows = bits.reshape(-1, c)
    padded = np.zeros((rows.shape[0], n * WORD_BITS), dtype=np.uint8)
    padded[:, :c] = rows
    ba = bitarray(endian="little")
    ba.pack(padded.tobytes())
    out = np.frombuffer(ba.tobytes(), dtype="<i4").astype(np.int32)
    return out.reshape(bits.shape[:-1] + (n,))


def pack_signs(values) -> np.ndarray:
    """Pack real or integer values (..., C) by sign: bit 1 (-1) iff value < 0 (LCE's sign:
    0 and +0.0 / -0.0 map to +1)."""
    return pack_bits(np.asarray(values) < 0)


def unpack_bits(packed, channels: int) -> np.ndarray:
    """The boolean array (..., channels) held by int32 words (..., words(channels))."""
    packed = np.asarray(packed)
    n = words(channels)
    if packed.shape[-1] != n:
        raise ValueError(f"{packed.shape[-1]} words per row, {channels} channels need {n}")
    ba = bitarray(endian="little")
    ba.frombytes(np.ascontiguousarray(packed, dtype="<i4").tobytes())
    bits = np.frombuffer(ba.unpack(), dtype=np.uint8).reshape(-1, n * WORD_BITS)
    return bits[:, :channels].astype(bool).reshape(packed.shape[:-1] + (channels,))


def unpack_signs(packed, channels: int) -> np.ndarray:
    """The +1/-1 int8 values (..., channels) held by packed words."""
    return np.where(unpack_bits(packed, channels), -1, 1).astype(np.int8)


def xor_popcount(a, b) -> int:
    """popcount(a XOR b) of two packed word arrays of the same shape."""
    x = np.bitwise_xor(np.asarray(a, dtype=np.int32), np.asarray(b, dtype=np.int32))
    ba = bitarray(endian="little")
    ba.frombytes(np.ascontiguousarray(x, dtype="<i4").tobytes())
    return ba.count()


def unused_bits_clear(packed, channels: int) -> bool:
    """True when every bit past `channels` in each row's last word is 0."""
    rest = int(channels) % WORD_BITS
    if rest == 0:
        return True
    last = np.asarray(packed, dtype=np.int64)[..., -1] & 0xFFFFFFFF
    return bool(np.all(last >> rest == 0))
