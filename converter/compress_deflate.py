"""A deflate encoder for small model files that spends time to save bytes (the way zopfli
does) within the 2^10-byte window the board decodes with: optimal parsing (shortest path over
the bytes, each literal and match priced in bits by the previous pass's Huffman codes,
iterated), one block per segment (dynamic Huffman codes, or the fixed ones when smaller), the
segments cut at the file's section and constant-tensor boundaries where that is smaller.
Output: a zlib stream any inflater (MicroPython's `deflate`) reads; zlib's own is kept when it
is smaller (converter/compress.py).

Huffman codes are length-limited by package-merge (15 bits; 7 for the code-length code). Bit
order is deflate's: fields LSB first, Huffman codes MSB first (RFC 1951).
"""

from __future__ import annotations

import random
import struct
import zlib

MAX_MATCH, MIN_MATCH = 258, 3
CANDIDATES = 48  # most recent earlier positions tried per position (as zlib's max_chain)
PASSES = 60  # parse / re-price rounds of each final block
SEARCH_PASSES = 12  # ... of each block tried while choosing the cuts

# length code (257..285): base length, extra bits; distance code (0..29): base, extra bits
_LEN = [(3, 0), (4, 0), (5, 0), (6, 0), (7, 0), (8, 0), (9, 0), (10, 0), (11, 1), (13, 1),
        (15, 1), (17, 1), (19, 2), (23, 2), (27, 2), (31, 2), (35, 3), (43, 3), (51, 3),
        (59, 3), (67, 4), (83, 4), (99, 4), (115, 4), (131, 5), (163, 5), (195, 5), (227, 5),
        (258, 0)]
_DIST = [(1, 0), (2, 0), (3, 0), (4, 0), (5, 1), (7, 1), (9, 2), (13, 2), (17, 3), (25, 3),
         (33, 4), (49, 4), (65, 5), (97, 5), (129, 6), (193, 6), (257, 7), (385, 7), (513, 8),
         (769, 8), (1025, 9), (1537, 9), (2049, 10), (3073, 10), (4097, 11), (6145, 11),
         (8193, 12), (12289, 12), (16385, 13), (24577, 13)]
_CL_ORDER = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15]


def _code_of(table, v: int) -> int:
    """The code whose base is the largest not above v (length 258 has its own, 285)."""
    return max(i for i, (base, _) in enumerate(table) if base <= v)


LEN_CODE = [0] * 3 + [_code_of(_LEN, n) for n in range(3, MAX_MATCH + 1)]
DIST_CODE = [0] + [_code_of(_DIST, d) for d in range(1, 32769)]


class _Bits:
    def __init__(self):
        self.out = bytearray()
        self.acc = 0
        self.n = 0

    def put(self, v: int, n: int) -> None:  # n bits of v, LSB first
        self.acc |= v << self.n
        self.n += n
        while self.n >= 8:
            self.out.append(self.acc & 0xFF)
            self.acc >>= 8
            self.n -= 8

    def code(self, c: int, n: int) -> None:  # a Huffman code, MSB first
        self.put(int(f"{c:0{n}b}"[::-1], 2) if n else 0, n)

    def bytes(self) -> bytes:
        return bytes(self.out) + (bytes([self.acc & 0xFF]) if self.n else b"")


def limited_lengths(freq: list[int], limit: int) -> list[int]:
    """Huffman code lengths of at most `limit` bits for symbol frequencies (package-merge);
    at least two symbols get a code (a lone one is paired with a zero-frequency one)."""
    used = [i for i, f in enumerate(freq) if f > 0]
    if len(used) < 2:
        extra = [i for i in range(len(freq)) if i not in used][: 2 - len(used)]
        used = sorted(used + extra)
    leaves = sorted((max(freq[i], 1), (i,)) for i in used)
    lengths = [0] * len(freq)
    packages = list(leaves)
    for _ in range(limit - 1):
        merged = [(packages[k][0] + packages[k + 1][0], packages[k][1] + packages[k + 1][1])
                  for k in range(0, len(packages) - 1, 2)]
        packages = sorted(leaves + merged, key=lambda p: p[0])
    for _, syms in packages[: 2 * len(leaves) - 2]:
        for s in syms:
            lengths[s] += 1
    return lengths


def canonical(lengths: list[int]) -> list[int]:
    """Canonical Huffman codes of the given lengths (RFC 1951 3.2.2)."""
    count = [0] * 16
    for n in lengths:
        count[n] += 1
    count[0] = 0
    nxt, code = [0] * 16, 0
    for b in range(1, 16):
        code = (code + count[b - 1]) << 1
        nxt[b] = code
    codes = [0] * len(lengths)
    for s, n in enumerate(lengths):
        if n:
            codes[s] = nxt[n]
            nxt[n] += 1
    return codes


def _matches(data: bytes, window: int) -> list[list[tuple[int, int]]]:
    """For each position: (length, distance) of the longest match at each distance tried
    (the CANDIDATES most recent positions with the same 3 bytes, within `window`)."""
    n = len(data)
    heads: dict[bytes, list[int]] = {}
    out: list[list[tuple[int, int]]] = []
    for i in range(n):
        found = []
        if i + MIN_MATCH <= n:
            key = data[i:i + MIN_MATCH]
            chain = heads.setdefault(key, [])
            limit = min(MAX_MATCH, n - i)
            best = 0
            for j in reversed(chain[-CANDIDATES:]):
                if i - j > window:
                    break
                m = MIN_MATCH
                while m < limit and data[j + m] == data[i + m]:
                    m += 1
                if m > best:
                    best = m
                    found.append((m, i - j))
                    if m == limit:
                        break
            chain.append(i)
        out.append(found)
    return out


def _parse(data: bytes, matches, lit_bits, dist_bits, start: int = 0,
           end: int | None = None) -> list[tuple[int, int]]:
    """Cheapest sequence of (literal byte, 0) / (length, distance) covering data[start:end]
    under the bit prices (matches may reach back before `start`)."""
    n = len(data) if end is None else end
    cost = [0.0] * (n + 1)
    step: list[tuple[int, int]] = [(0, 0)] * n
    for i in range(n - 1, start - 1, -1):
        c = lit_bits[data[i]] + cost[i + 1]
        s = (data[i], 0)
        shorter = MIN_MATCH
        for m, d in matches[i]:  # ascending lengths, each at its nearest distance
            dc = dist_bits[DIST_CODE[d]] + _DIST[DIST_CODE[d]][1]
            if shorter > n - i:
                break
            for L in range(shorter, min(m, n - i) + 1):
                lc = LEN_CODE[L]
                t = lit_bits[257 + lc] + _LEN[lc][1] + dc + cost[i + L]
                if t < c:
                    c, s = t, (L, d)
            shorter = m + 1
        cost[i] = c
        step[i] = s
    seq, i = [], start
    while i < n:
        a, d = step[i]
        seq.append((a, d))
        i += a if d else 1
    return seq


def _freqs(seq):
    lit, dist = [0] * 286, [0] * 30
    for a, d in seq:
        if d:
            lit[257 + LEN_CODE[a]] += 1
            dist[DIST_CODE[d]] += 1
        else:
            lit[a] += 1
    lit[256] += 1
    return lit, dist


def _rle_lengths(lengths: list[int]) -> list[tuple[int, int, int]]:
    """Code lengths as code-length symbols (symbol, extra value, extra bits)."""
    out, i = [], 0
    while i < len(lengths):
        v = lengths[i]
        run = 1
        while i + run < len(lengths) and lengths[i + run] == v:
            run += 1
        if v == 0 and run >= 3:
            k = min(run, 138)
            out.append((18, k - 11, 7) if k >= 11 else (17, k - 3, 3))
        elif v and run >= 4:
            out.append((v, 0, 0))
            k = min(run - 1, 6)
            out.append((16, k - 3, 2))
            k += 1
        else:
            out.append((v, 0, 0))
            k = 1
        i += k
    return out


FIXED_LIT = [8] * 144 + [9] * 112 + [7] * 24 + [8] * 8  # RFC 1951 3.2.6
FIXED_DIST = [5] * 30


def _block(w: _Bits, seq, final: bool, fixed: bool = False) -> None:
    """One block of `seq`: dynamic Huffman codes (at most 15 bits), or the fixed ones."""
    if fixed:
        w.put(1 if final else 0, 1)
        w.put(1, 2)
        _symbols(w, seq, FIXED_LIT, FIXED_DIST)
        return
    lit_f, dist_f = _freqs(seq)
    lit_len = limited_lengths(lit_f, 15)
    dist_len = limited_lengths(dist_f, 15)
    hlit = max(257, max(i for i, n in enumerate(lit_len) if n) + 1)
    hdist = max(1, max(i for i, n in enumerate(dist_len) if n) + 1)
    rle = _rle_lengths(lit_len[:hlit] + dist_len[:hdist])
    cl_f = [0] * 19
    for s, _, _ in rle:
        cl_f[s] += 1
    cl_len = limited_lengths(cl_f, 7)
    hclen = max(4, max(k + 1 for k, s in enumerate(_CL_ORDER) if cl_len[s]))
    w.put(1 if final else 0, 1)
    w.put(2, 2)
    w.put(hlit - 257, 5)
    w.put(hdist - 1, 5)
    w.put(hclen - 4, 4)
    for s in _CL_ORDER[:hclen]:
        w.put(cl_len[s], 3)
    cl_code = canonical(cl_len)
    for s, v, nb in rle:
        w.code(cl_code[s], cl_len[s])
        w.put(v, nb)
    _symbols(w, seq, lit_len, dist_len)


def _symbols(w: _Bits, seq, lit_len, dist_len) -> None:
    lit_code, dist_code = canonical(lit_len), canonical(dist_len)
    for a, d in seq:
        if d:
            lc, dc = LEN_CODE[a], DIST_CODE[d]
            w.code(lit_code[257 + lc], lit_len[257 + lc])
            w.put(a - _LEN[lc][0], _LEN[lc][1])
            w.code(dist_code[dc], dist_len[dc])
            w.put(d - _DIST[dc][0], _DIST[dc][1])
        else:
            w.code(lit_code[a], lit_len[a])
    w.code(lit_code[256], lit_len[256])


def _prices_of(lit_f, dist_f):
    """Bit prices from the Huffman code lengths of the frequencies (unused symbols: 16)."""
    ll, dl = limited_lengths(lit_f, 15), limited_lengths(dist_f, 15)
    return [n or 16 for n in ll], [n or 16 for n in dl]


def _segment_bytes(seq, final: bool, fixed: bool = False) -> int:
    w = _Bits()
    _block(w, seq, final, fixed)
    return len(w.out) * 8 + w.n


def _optimal(data: bytes, matches, start: int, end: int, passes: int):
    """(bits, sequence, fixed) of data[start:end] as one block: the fixed codes' parse, or
    the dynamic codes' iterated `passes` times on the prices of the previous pass's
    statistics (shuffled when a pass gains nothing), whichever is smaller."""
    lit_bits = [8.0] * 256 + [7.0] * 30
    dist_bits = [5.0] * 30
    best, last = None, None
    rng = random.Random(0)  # the same bytes give the same stream
    for _ in range(passes):
        seq = _parse(data, matches, lit_bits, dist_bits, start, end)
        bits = _segment_bytes(seq, False)
        if best is None or bits < best[0]:
            best = (bits, seq)
        lit_f, dist_f = _freqs(seq)
        if last is not None and bits >= last:
            lit_f = [f if rng.random() < 0.5 else lit_f[rng.randrange(len(lit_f))]
                     for f in lit_f]
            dist_f = [f if rng.random() < 0.5 else dist_f[rng.randrange(len(dist_f))]
                      for f in dist_f]
        last = bits
        lit_bits, dist_bits = _prices_of(lit_f, dist_f)
    seq = _parse(data, matches, FIXED_LIT[:286], FIXED_DIST, start, end)
    bits = _segment_bytes(seq, False, True)
    return (bits, seq, True) if bits < best[0] else best + (False,)


def deflate(data: bytes, wbits: int = 10, cuts=()) -> bytes:
    """A zlib stream (window 2^wbits) of `data`, in blocks cut at some of the offsets `cuts`
    (greedily, where a cut makes the stream smaller; each block parsed on its own
    statistics)."""
    matches = _matches(data, 1 << wbits)
    n = len(data)
    memo: dict[tuple[int, int, int], tuple] = {}

    def block(a: int, b: int, passes: int = SEARCH_PASSES):
        if (a, b, passes) not in memo:
            memo[a, b, passes] = _optimal(data, matches, a, b, passes)
        return memo[a, b, passes]

    bounds = [0, n]
    points = sorted({c for c in cuts if 0 < c < n})
    while points:
        trials = []
        for c in points:
            k = next(i for i, b in enumerate(bounds) if b > c)
            a, b = bounds[k - 1], bounds[k]
            gain = block(a, b)[0] - block(a, c)[0] - block(c, b)[0]
            trials.append((gain, c))
        gain, c = max(trials)
        if gain <= 0:
            break
        bounds = sorted(bounds + [c])
        points.remove(c)
    w = _Bits()
    for k, (a, b) in enumerate(zip(bounds, bounds[1:])):
        _, seq, fixed = block(a, b, PASSES)
        _block(w, seq, k == len(bounds) - 2, fixed)
    cmf = (wbits - 8) << 4 | 8
    flg = 31 - (cmf * 256) % 31
    return bytes([cmf, flg]) + w.bytes() + zlib.adler32(data).to_bytes(4, "big")


def cut_points(model: bytes) -> list[int]:
    """Where a model file's statistics change: its sections' starts, and the start and end of
    each constant tensor's bytes in DATA (weights, biases and requantization rows differ)."""
    from tinyrt import fileformat as ff

    n = struct.unpack_from(ff.HEADER_FMT, model)[2]
    secs = [struct.unpack_from(ff.SECTION_FMT, model, ff.HEADER_SIZE + i * ff.SECTION_SIZE)
            for i in range(n)]
    cuts = [off for _, off, _, _ in secs]
    spans = {kind: (off, length) for kind, off, length, _ in secs}
    if ff.TENSORS in spans and ff.DATA in spans:
        (t_off, t_len), data = spans[ff.TENSORS], spans[ff.DATA][0]
        for i in range(t_len // ff.TENSOR_SIZE):
            rec = struct.unpack_from(ff.TENSOR_FMT, model, t_off + i * ff.TENSOR_SIZE)
            if rec[2] == ff.CONST:
                cuts += [data + rec[4], data + rec[4] + rec[5]]
    return sorted(set(cuts))
