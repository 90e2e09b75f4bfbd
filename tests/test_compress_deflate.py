"""The optimal-parse deflate encoder (converter/compress_deflate.py): its streams inflate to the
input with a 2^10-byte window (what the board allocates), its Huffman codes are complete and
length-limited, and it is smaller than zlib's level 9 on a small model file; files without
the optional sections still load. (Boards decode these streams in test_compress.py and
test_compress_prune.py: files up to OPTIMAL_MAX go through this encoder.)"""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from converter import compress_deflate as cd
from converter.compress import compress_file, decompress_file, drop_sections
from converter.inspect_model import describe
from tests.models import mlp_model


def inflate_1k(z: bytes) -> bytes:
    """zlib's inflater held to a 2^10-byte window: a distance beyond it is an error."""
    d = zlib.decompressobj(10)
    return d.decompress(z) + d.flush()


@pytest.mark.parametrize("kind", ["empty", "one", "zeros", "random", "small-alphabet",
                                  "repeats-far"])
def test_streams_inflate_within_the_window(kind):
    rng = np.random.default_rng(3)
    data = {"empty": b"", "one": b"x", "zeros": bytes(3000),
            "random": rng.integers(0, 256, 2000, dtype=np.uint8).tobytes(),
            "small-alphabet": rng.integers(0, 3, 2500, dtype=np.uint8).tobytes(),
            # a 600-byte block repeated 2,000 bytes later: beyond the window, not matched
            "repeats-far": (lambda b: b + bytes(1400) + b)(
                rng.integers(0, 256, 600, dtype=np.uint8).tobytes())}[kind]
    z = cd.deflate(data, 10, [len(data) // 3, len(data) // 2])
    assert z[0] == 0x28 and (z[0] * 256 + z[1]) % 31 == 0  # CINFO 2: a 1 KB window
    assert inflate_1k(z) == data
    if kind == "zeros":
        assert len(z) < 30
    if kind == "small-alphabet":  # log2(3) bits a byte: Huffman alone gets under 2 bits
        assert len(z) < 2500 * 2 / 8


def test_length_limited_codes_are_complete():
    fib = [1, 1]
    while len(fib) < 30:
        fib.append(fib[-1] + fib[-2])  # an unlimited Huffman code would need 29 bits
    for limit in (7, 15):
        n = cd.limited_lengths(fib, limit)
        assert max(n) == limit and min(n) >= 1
        assert sum(2.0 ** -k for k in n) == 1.0  # complete: Kraft equality
    assert sorted(cd.limited_lengths([0, 5, 0], 15)) == [0, 1, 1]  # a lone symbol: 2 codes
    codes = cd.canonical([2, 1, 3, 3])
    assert codes == [0b10, 0b0, 0b110, 0b111]  # RFC 1951's example ordering


def test_model_file_smaller_than_zlib_and_exact():
    plain = drop_sections(mlp_model())
    assert describe(plain)["metadata"] == {} and len(plain) < len(mlp_model())
    z_opt, z_zlib = compress_file(plain, optimal=True), compress_file(plain, optimal=False)
    assert decompress_file(z_opt) == plain == decompress_file(z_zlib)
    cuts = cd.cut_points(plain)
    ours = cd.deflate(plain, 10, cuts)  # random int8 weights: only the records compress
    c = zlib.compressobj(9, zlib.DEFLATED, 10, 9)
    assert len(ours) < len(c.compress(plain) + c.flush()) and inflate_1k(ours) == plain
    assert len(z_opt) == 20 + len(ours)
    assert cuts[0] > 0 and cuts == sorted(set(cuts)) and cuts[-1] <= len(plain)
