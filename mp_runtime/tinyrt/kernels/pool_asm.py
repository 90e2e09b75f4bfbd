# ruff: noqa: F821
# (asm_thumb bodies name registers, labels and instructions that are not Python names)
# Cortex-M (armv6m Thumb; the M3/M33 run the same code) twin of kernels.pool.average_pool:
# same results to the bit. One asm call runs the whole layer (batches, output positions,
# channels); prepare builds the window tables, eval only calls.
#
# Four channels per pass, summed as packed bytes (SWAR): a tap is one word W = four int8
# channels (C % 4 == 0, the input word-aligned), W' = W ^ 0x80808080 holds x + 128 in each
# byte; per tap  S += W'  (mod 2^32) and  O += (W' >> 8) & 0x00FF00FF, so O holds the odd
# channels' sums in two 16-bit fields and E = S - (O << 8) the even ones' (mod 2^32 exact: E's
# fields are sums too). A field sums at most 255 per tap, so it holds exactly while the window
# has <= 257 taps (prepare checks fh * fw <= 257). 9 instructions per tap of four channels.
# A window that spans whole input rows (filter width = input width, kws' global pool) is one
# contiguous run of taps.
# Per channel: acc = s - 128 * count (the int8 sum), then TFLM's rounding division
#   acc > 0: (acc + count/2) / count, else -((count/2 - acc) / count)
# with n = |acc| + count/2 < 129 count: by a multiply and shift (magic() below) when the
# window has the full fh * fw taps and such a pair exists, else by restoring division (the
# quotient <= 128 has 8 bits: 8 unrolled shift-compare-subtract steps; armv6m has no divide).
# Then clamp to [act_min, act_max].
import micropython

from micropython import const

from .fully_connected_asm import address_of
from ..buffers import int32_zeros

# params block (array('i')), byte offsets
_X = const(0)  # address of batch 0's input
_Y = const(4)  # address of the output
_C = const(8)  # channels = bytes per pixel (a multiple of 4)
_ROW = const(12)  # bytes per input row (W * C)
_ROWTAB = const(16)  # address of OH pairs (byte offset of the first valid input row, rows)
_OH = const(20)
_COLTAB = const(24)  # address of OW pairs (byte offset of the first valid column, columns)
_OW = const(28)
_NB = const(32)  # batches
_XBATCH = const(36)  # bytes per batch of input
_AMIN = const(40)
_AMAX = const(44)
_MASK = const(48)  # 0x00FF00FF
_XORC = const(52)  # 0x80808080
_RCUR = const(56)  # scratch from here on, written by the kernel
_RLEFT = const(60)
_CCUR = const(64)
_CLEFT = const(68)
_BLEFT = const(72)
_XB = const(76)  # this batch's input
_P0 = const(80)  # the window's first tap (channel 0)
_NFY = const(84)  # runs of taps (window rows, or 1 for a whole-row window)
_SPAN = const(88)  # bytes of one run
_COUNT = const(92)
_HALF = const(96)
_OFF = const(100)  # 128 * count
_GOFF = const(104)  # byte offset of the current four channels
_FULL = const(108)  # fh * fw: the count of a window wholly inside the input
_MAGIC = const(112)  # q = (n * MAGIC) >> SHIFT for windows of FULL taps, or 0: no magic
_SHIFT = const(116)
_QM = const(120)  # MAGIC for this window, or 0
N_PARAMS = 31
MAX_TAPS = 257  # a 16-bit field sums up to 255 per tap


@micropython.asm_thumb
def avg_pool_rows(r0):
    # r11 params, r12 y walk; taps: r0 tap, r1 end of run, r2 C, r3 S, r4 O, r5 mask,
    # r6 0x80808080, r7 word; r8 run start, r9 runs left.
    mov(r1, r8)
    mov(r2, r9)
    mov(r3, r10)
    mov(r4, r11)
    push({r1, r2, r3, r4})  # r8-r11 are callee-saved (lr is restored by the epilogue)
    mov(r11, r0)
    mov(r7, r0)
    ldr(r1, [r7, _Y])
    mov(r12, r1)
    ldr(r1, [r7, _X])
    str(r1, [r7, _XB])
    ldr(r1, [r7, _NB])
    str(r1, [r7, _BLEFT])
    label(batch)
    ldr(r1, [r7, _ROWTAB])
    str(r1, [r7, _RCUR])
    ldr(r1, [r7, _OH])
    str(r1, [r7, _RLEFT])
    label(out_row)
    ldr(r1, [r7, _COLTAB])
    str(r1, [r7, _CCUR])
    ldr(r1, [r7, _OW])
    str(r1, [r7, _CLEFT])
    label(position)
    ldr(r0, [r7, _RCUR])
    ldr(r1, [r0, 0])  # row byte offset
    ldr(r2, [r0, 4])  # window rows
    ldr(r0, [r7, _CCUR])
    ldr(r3, [r0, 0])  # column byte offset
    ldr(r4, [r0, 4])  # window columns
    add(r0, 8)
    str(r0, [r7, _CCUR])
    ldr(r0, [r7, _XB])
    add(r0, r0, r1)
    add(r0, r0, r3)
    str(r0, [r7, _P0])
    mov(r0, r2)
    mul(r0, r4)  # count
    str(r0, [r7, _COUNT])
    mov(r1, 0)
    ldr(r3, [r7, _FULL])
    cmp(r0, r3)
    bne(no_magic)
    ldr(r1, [r7, _MAGIC])
    label(no_magic)
    str(r1, [r7, _QM])
    lsr(r1, r0, 1)
    str(r1, [r7, _HALF])
    lsl(r1, r0, 7)
    str(r1, [r7, _OFF])
    ldr(r5, [r7, _C])
    mul(r4, r5)  # span
    ldr(r1, [r7, _ROW])
    cmp(r4, r1)
    bne(runs_set)
    mul(r4, r2)  # whole rows: one run
    mov(r2, 1)
    label(runs_set)
    str(r4, [r7, _SPAN])
    str(r2, [r7, _NFY])
    mov(r0, 0)
    str(r0, [r7, _GOFF])
    label(group)
    ldr(r0, [r7, _P0])
    ldr(r1, [r7, _GOFF])
    add(r0, r0, r1)
    mov(r8, r0)
    ldr(r0, [r7, _NFY])
    mov(r9, r0)
    ldr(r2, [r7, _C])
    ldr(r5, [r7, _MASK])
    ldr(r6, [r7, _XORC])
    mov(r3, 0)
    mov(r4, 0)
    label(run)
    mov(r7, r11)
    ldr(r1, [r7, _SPAN])
    mov(r0, r8)
    add(r1, r1, r0)
    label(tap)
    ldr(r7, [r0, 0])
    eor(r7, r6)
    add(r3, r3, r7)
    lsr(r7, r7, 8)
    and_(r7, r5)
    add(r4, r4, r7)
    add(r0, r0, r2)
    cmp(r0, r1)
    bne(tap)
    mov(r7, r11)
    ldr(r1, [r7, _ROW])
    mov(r0, r8)
    add(r0, r0, r1)
    mov(r8, r0)
    mov(r0, r9)
    sub(r0, 1)
    mov(r9, r0)
    bne(run)
    lsl(r7, r4, 8)
    sub(r3, r3, r7)  # E: even channels
    lsl(r0, r3, 16)
    lsr(r0, r0, 16)
    bl(put)
    lsl(r0, r4, 16)
    lsr(r0, r0, 16)
    bl(put)
    lsr(r0, r3, 16)
    bl(put)
    lsr(r0, r4, 16)
    bl(put)
    mov(r7, r11)
    ldr(r0, [r7, _GOFF])
    add(r0, 4)
    str(r0, [r7, _GOFF])
    ldr(r1, [r7, _C])
    cmp(r0, r1)
    beq(groups_done)
    b(group)
    label(groups_done)
    ldr(r0, [r7, _CLEFT])
    sub(r0, 1)
    str(r0, [r7, _CLEFT])
    beq(row_done)
    b(position)
    label(row_done)
    ldr(r0, [r7, _RCUR])
    add(r0, 8)
    str(r0, [r7, _RCUR])
    ldr(r0, [r7, _RLEFT])
    sub(r0, 1)
    str(r0, [r7, _RLEFT])
    beq(batch_done)
    b(out_row)
    label(batch_done)
    ldr(r0, [r7, _XB])
    ldr(r1, [r7, _XBATCH])
    add(r0, r0, r1)
    str(r0, [r7, _XB])
    ldr(r0, [r7, _BLEFT])
    sub(r0, 1)
    str(r0, [r7, _BLEFT])
    beq(done)
    b(batch)
    label(put)
    # r0: one channel's sum of x + 128 -> y[0], y += 1 (r3, r4 kept; r0-r2, r5-r7 used)
    mov(r7, r11)
    ldr(r1, [r7, _OFF])
    sub(r0, r0, r1)  # acc
    mov(r6, r0)
    cmp(r0, 0)
    bgt(pos)
    neg(r0, r0)
    label(pos)
    ldr(r2, [r7, _HALF])
    add(r0, r0, r2)  # n = |acc| + count / 2
    ldr(r1, [r7, _QM])
    cmp(r1, 0)
    beq(restoring)
    mul(r1, r0)  # n * MAGIC < 2^32 (prepare's bound)
    ldr(r2, [r7, _SHIFT])
    lsr(r1, r2)
    mov(r2, r1)  # q
    b(q_done)
    label(restoring)
    ldr(r1, [r7, _COUNT])
    mov(r2, 0)  # q = n / count, 8 bits
    lsl(r5, r1, 7)
    cmp(r0, r5)
    bcc(q6)
    sub(r0, r0, r5)
    add(r2, 128)
    label(q6)
    lsl(r5, r1, 6)
    cmp(r0, r5)
    bcc(q5)
    sub(r0, r0, r5)
    add(r2, 64)
    label(q5)
    lsl(r5, r1, 5)
    cmp(r0, r5)
    bcc(q4)
    sub(r0, r0, r5)
    add(r2, 32)
    label(q4)
    lsl(r5, r1, 4)
    cmp(r0, r5)
    bcc(q3)
    sub(r0, r0, r5)
    add(r2, 16)
    label(q3)
    lsl(r5, r1, 3)
    cmp(r0, r5)
    bcc(q2)
    sub(r0, r0, r5)
    add(r2, 8)
    label(q2)
    lsl(r5, r1, 2)
    cmp(r0, r5)
    bcc(q1)
    sub(r0, r0, r5)
    add(r2, 4)
    label(q1)
    lsl(r5, r1, 1)
    cmp(r0, r5)
    bcc(q0)
    sub(r0, r0, r5)
    add(r2, 2)
    label(q0)
    cmp(r0, r1)
    bcc(q_done)
    add(r2, 1)
    label(q_done)
    cmp(r6, 0)
    bgt(signed)
    neg(r2, r2)
    label(signed)
    ldr(r1, [r7, _AMIN])
    cmp(r2, r1)
    bge(above_min)
    mov(r2, r1)
    label(above_min)
    ldr(r1, [r7, _AMAX])
    cmp(r2, r1)
    ble(below_max)
    mov(r2, r1)
    label(below_max)
    mov(r0, r12)
    strb(r2, [r0, 0])
    add(r0, 1)
    mov(r12, r0)
    bx(lr)
    label(done)
    pop({r1, r2, r3, r4})
    mov(r8, r1)
    mov(r9, r2)
    mov(r10, r3)
    mov(r11, r4)
    mov(r0, 0)


def _windows(n_out, n_in, f, s, pad, unit):
    """array('i') of n_out pairs (byte offset of the first valid input index, valid taps)."""
    t = int32_zeros(2 * n_out)
    for o in range(n_out):
        i0 = o * s - pad
        lo = -i0 if i0 < 0 else 0
        hi = n_in - i0 if n_in - i0 < f else f
        t[2 * o] = (i0 + lo) * unit
        t[2 * o + 1] = hi - lo
    return t


def magic(d):
    """(m, s) with floor(n / d) == (n * m) >> s for every n in [0, 129 d) (the numerators
    |acc| + d/2 of a window of d taps), n * m < 2^32 (an unsigned MULS), or (0, 0) when no
    such pair is found. m = ceil(2^s / d), e = m d - 2^s < d: n m / 2^s = n / d + n e / (d 2^s)
    and frac(n / d) <= (d - 1) / d, so n e < 2^s for every n suffices; the largest s with
    n m < 2^32 is tried first."""
    top = 129 * d - 1
    for s in range(31, 0, -1):
        m = ((1 << s) + d - 1) // d
        if top * m >= 1 << 32:
            continue
        if top * (m * d - (1 << s)) < 1 << s:
            return m, s
        return 0, 0
    return 0, 0


class AvgPoolAsm:
    """Prepared at load (window tables, params block); average_pool() has the reference
    function's signature and runs the whole layer in one asm call."""

    def __init__(self, x, y, batches, h, w, c, oh, ow, fh, fw, sh, sw, ph, pw, act_min,
                 act_max, xa):
        self.rowtab = _windows(oh, h, fh, sh, ph, w * c)
        self.coltab = _windows(ow, w, fw, sw, pw, c)
        p = int32_zeros(N_PARAMS)
        p[_X >> 2] = xa
        p[_Y >> 2] = address_of(y)
        p[_C >> 2] = c
        p[_ROW >> 2] = w * c
        p[_ROWTAB >> 2] = address_of(self.rowtab)
        p[_OH >> 2] = oh
        p[_COLTAB >> 2] = address_of(self.coltab)
        p[_OW >> 2] = ow
        p[_NB >> 2] = batches
        p[_XBATCH >> 2] = h * w * c
        p[_AMIN >> 2] = act_min
        p[_AMAX >> 2] = act_max
        p[_MASK >> 2] = 0x00FF00FF
        p[_XORC >> 2] = -0x7F7F7F80  # 0x80808080 as an int32
        p[_FULL >> 2] = fh * fw
        p[_MAGIC >> 2], p[_SHIFT >> 2] = magic(fh * fw)
        self.p = p

    def average_pool(self, x, y, batches, h, w, c, oh, ow, fh, fw, sh, sw, ph, pw, act_min,
                     act_max):
        avg_pool_rows(self.p)


def prepare(x, y, batches, h, w, c, oh, ow, fh, fw, sh, sw, ph, pw, act_min, act_max):
    """The asm twin of an AVERAGE_POOL_2D layer, or None where it does not apply (channels not
    a multiple of 4, an input not word-aligned, more than MAX_TAPS taps per window, empty)."""
    if c % 4 or c < 4 or fh * fw > MAX_TAPS or batches < 1 or oh < 1 or ow < 1:
        return None
    xa = address_of(x)
    if xa & 3:
        return None
    return AvgPoolAsm(x, y, batches, h, w, c, oh, ow, fh, fw, sh, sw, ph, pw, act_min, act_max,
                      xa)
