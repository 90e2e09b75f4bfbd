# ruff: noqa: F821
# (asm_thumb bodies name registers, labels and instructions that are not Python names)
# armv6m (Cortex-M0/M0+) rows kernel for a whole 1x1 CONV_2D whose weights stay where they are
# (in flash or in the file's buffer: tinyrt.fast.repack off, the board's default), eight output
# channels per pass instead of int8_rows4's four. Same results to the bit as
# kernels.fully_connected_asm.int8_rows4 / the reference.
#
# Loop order: groups of 8 output channels outside, the rows (pixels) inside, so a group's
# weights are repacked once per call into a K x 8 scratch, w' = w + 128 interleaved
# (scr[8 k + j] = w[8 g + j][k] ^ 0x80), and the loop is int8_rows' (ldrb with immediate
# offsets, 104 instructions per 32 MACs = 3.25, vs 3.56 for int8_rows4's ldrsb loop). The
# input block (ROWS rows of K bytes, contiguous) is XORed with 0x80 in place first (x' = x + 128
# in every byte), each row's SX = sum x' kept as -128 SX in a word per row, and XORed back at
# the end: the layer's input is unchanged when the call returns (it must not overlap y;
# prepare checks). As in int8_rows: sum x w = sum x' w' - 128 sum w - 128 SX, so
# acc = P + C_o - 128 SX with P = sum x' w' (< 2^32 while K <= 66051) and
# C_o = bias_o - (x_zp + 128) sum w_o. SX by packed bytes: per word S += W', O += (W' >> 8) &
# 0x00FF00FF; each 16-bit field sums <= 255 K / 4 < 2^16 (K <= 1024).
# Requantization as int8_rows' (exact, 32-bit), with the clamp bounds of
# kernels.requant_bounds first (acc <= LO: act_min, acc >= HI: act_max, no multiply).
# Cost per call besides the loop: ~2.5 instructions per input byte (XOR + SX), ~1.5 (XOR back),
# ~4 per weight byte (repack).
import micropython

from micropython import const

from .fully_connected_asm import address_of, wrap32
from .requant_bounds import clamp_bounds_into
from ..buffers import int32_zeros

# params block (array('i')), byte offsets
_X = const(0)  # the input block: ROWS rows of K bytes, contiguous, word-aligned
_ROWS = const(4)
_K = const(8)  # a multiple of 4, 4 .. 1024
_NOUT = const(12)  # a multiple of 8
_W = const(16)  # the weights (NOUT rows of K int8), where they are
_REC = const(20)  # records: 7 words per channel (C, mh, ml, left, right, LO, HI)
_Y = const(24)
_CORR = const(28)  # ROWS words of scratch: -128 SX per row
_SCR = const(32)  # 8 K bytes of scratch: the group's repacked weights
_YZP = const(36)
_AMIN = const(40)
_AMAX = const(44)
_MASK = const(48)  # 0x00FF00FF
_XORC = const(52)  # 0x80808080
_XEND = const(56)  # _X + ROWS K
_GLEFT = const(60)  # scratch from here on, written by the kernel
_WCUR = const(64)
_RG = const(68)
_YG = const(72)
_XCUR = const(76)
_CCUR = const(80)
_YCUR = const(84)
_RLEFT = const(88)
_ACC = const(92)  # 8 words
_ACCEND = const(124)
N_PARAMS = 32
MAX_K = 1024


@micropython.asm_thumb
def int8_groups(r0):
    mov(r1, r8)
    mov(r2, r9)
    mov(r3, r10)
    mov(r4, r11)
    push({r1, r2, r3, r4})  # r8-r11 are callee-saved (lr is restored by the epilogue)
    data(2, 0x4686)  # mov lr, r0: params
    mov(r7, r0)
    # x ^= 0x80 in place, CORR[r] = -128 * SX of row r
    ldr(r0, [r7, _X])
    ldr(r2, [r7, _CORR])
    ldr(r5, [r7, _MASK])
    ldr(r6, [r7, _XORC])
    ldr(r1, [r7, _ROWS])
    mov(r8, r1)
    label(sx_row)
    data(2, 0x4677)  # mov r7, lr
    ldr(r1, [r7, _K])
    add(r1, r1, r0)  # the row's end
    mov(r3, 0)
    mov(r4, 0)
    label(sx_word)
    ldr(r7, [r0, 0])
    eor(r7, r6)
    str(r7, [r0, 0])
    add(r3, r3, r7)
    lsr(r7, r7, 8)
    and_(r7, r5)
    add(r4, r4, r7)
    add(r0, 4)
    cmp(r0, r1)
    bne(sx_word)
    lsl(r7, r4, 8)
    sub(r3, r3, r7)  # even bytes' sums, two 16-bit fields (odd ones in r4)
    lsr(r7, r3, 16)
    lsl(r3, r3, 16)
    lsr(r3, r3, 16)
    add(r3, r3, r7)
    lsr(r7, r4, 16)
    add(r3, r3, r7)
    lsl(r4, r4, 16)
    lsr(r4, r4, 16)
    add(r3, r3, r4)  # SX
    lsl(r3, r3, 7)
    neg(r3, r3)
    str(r3, [r2, 0])
    add(r2, 4)
    mov(r1, r8)
    sub(r1, 1)
    mov(r8, r1)
    bne(sx_row)
    data(2, 0x4677)  # mov r7, lr
    ldr(r0, [r7, _W])
    str(r0, [r7, _WCUR])
    ldr(r0, [r7, _REC])
    str(r0, [r7, _RG])
    ldr(r0, [r7, _Y])
    str(r0, [r7, _YG])
    ldr(r0, [r7, _NOUT])
    str(r0, [r7, _GLEFT])
    label(group)
    # the group's weights: scr[8 k + j] = w[j][k] ^ 0x80 (rows j of K bytes are contiguous)
    data(2, 0x4677)  # mov r7, lr
    ldr(r0, [r7, _WCUR])
    ldr(r2, [r7, _SCR])
    ldr(r3, [r7, _K])
    mov(r6, 0x80)
    mov(r5, 8)
    mov(r9, r5)
    label(rp_row)
    add(r1, r0, r3)
    mov(r4, r2)
    label(rp_quad)
    ldrb(r5, [r0, 0])
    eor(r5, r6)
    strb(r5, [r4, 0])
    ldrb(r5, [r0, 1])
    eor(r5, r6)
    strb(r5, [r4, 8])
    ldrb(r5, [r0, 2])
    eor(r5, r6)
    strb(r5, [r4, 16])
    ldrb(r5, [r0, 3])
    eor(r5, r6)
    strb(r5, [r4, 24])
    add(r0, 4)
    add(r4, 32)
    cmp(r0, r1)
    bne(rp_quad)
    add(r2, 1)
    mov(r5, r9)
    sub(r5, 1)
    mov(r9, r5)
    bne(rp_row)
    str(r0, [r7, _WCUR])
    ldr(r0, [r7, _X])
    str(r0, [r7, _XCUR])
    ldr(r0, [r7, _CORR])
    str(r0, [r7, _CCUR])
    ldr(r0, [r7, _YG])
    str(r0, [r7, _YCUR])
    ldr(r0, [r7, _ROWS])
    str(r0, [r7, _RLEFT])
    label(row)
    # P for 8 channels: r0 x' walk, r1 w' walk, r2 x', r3 product, r4 end of x',
    # r5-r7 and r8-r12 accumulators
    data(2, 0x4673)  # mov r3, lr
    ldr(r0, [r3, _XCUR])
    ldr(r4, [r3, _K])
    add(r4, r4, r0)
    ldr(r1, [r3, _SCR])
    mov(r5, 0)
    mov(r6, 0)
    mov(r7, 0)
    mov(r8, r5)
    mov(r9, r5)
    mov(r10, r5)
    mov(r11, r5)
    mov(r12, r5)
    label(quad)  # 4 k, 8 channels
    ldrb(r2, [r0, 0])
    ldrb(r3, [r1, 0])
    mul(r3, r2)
    add(r5, r5, r3)
    ldrb(r3, [r1, 1])
    mul(r3, r2)
    add(r6, r6, r3)
    ldrb(r3, [r1, 2])
    mul(r3, r2)
    add(r7, r7, r3)
    ldrb(r3, [r1, 3])
    mul(r3, r2)
    data(2, 0x4498)  # add r8, r3
    ldrb(r3, [r1, 4])
    mul(r3, r2)
    data(2, 0x4499)  # add r9, r3
    ldrb(r3, [r1, 5])
    mul(r3, r2)
    data(2, 0x449A)  # add r10, r3
    ldrb(r3, [r1, 6])
    mul(r3, r2)
    data(2, 0x449B)  # add r11, r3
    ldrb(r3, [r1, 7])
    mul(r3, r2)
    data(2, 0x449C)  # add r12, r3
    ldrb(r2, [r0, 1])
    ldrb(r3, [r1, 8])
    mul(r3, r2)
    add(r5, r5, r3)
    ldrb(r3, [r1, 9])
    mul(r3, r2)
    add(r6, r6, r3)
    ldrb(r3, [r1, 10])
    mul(r3, r2)
    add(r7, r7, r3)
    ldrb(r3, [r1, 11])
    mul(r3, r2)
    data(2, 0x4498)  # add r8, r3
    ldrb(r3, [r1, 12])
    mul(r3, r2)
    data(2, 0x4499)  # add r9, r3
    ldrb(r3, [r1, 13])
    mul(r3, r2)
    data(2, 0x449A)  # add r10, r3
    ldrb(r3, [r1, 14])
    mul(r3, r2)
    data(2, 0x449B)  # add r11, r3
    ldrb(r3, [r1, 15])
    mul(r3, r2)
    data(2, 0x449C)  # add r12, r3
    ldrb(r2, [r0, 2])
    ldrb(r3, [r1, 16])
    mul(r3, r2)
    add(r5, r5, r3)
    ldrb(r3, [r1, 17])
    mul(r3, r2)
    add(r6, r6, r3)
    ldrb(r3, [r1, 18])
    mul(r3, r2)
    add(r7, r7, r3)
    ldrb(r3, [r1, 19])
    mul(r3, r2)
    data(2, 0x4498)  # add r8, r3
    ldrb(r3, [r1, 20])
    mul(r3, r2)
    data(2, 0x4499)  # add r9, r3
    ldrb(r3, [r1, 21])
    mul(r3, r2)
    data(2, 0x449A)  # add r10, r3
    ldrb(r3, [r1, 22])
    mul(r3, r2)
    data(2, 0x449B)  # add r11, r3
    ldrb(r3, [r1, 23])
    mul(r3, r2)
    data(2, 0x449C)  # add r12, r3
    ldrb(r2, [r0, 3])
    ldrb(r3, [r1, 24])
    mul(r3, r2)
    add(r5, r5, r3)
    ldrb(r3, [r1, 25])
    mul(r3, r2)
    add(r6, r6, r3)
    ldrb(r3, [r1, 26])
    mul(r3, r2)
    add(r7, r7, r3)
    ldrb(r3, [r1, 27])
    mul(r3, r2)
    data(2, 0x4498)  # add r8, r3
    ldrb(r3, [r1, 28])
    mul(r3, r2)
    data(2, 0x4499)  # add r9, r3
    ldrb(r3, [r1, 29])
    mul(r3, r2)
    data(2, 0x449A)  # add r10, r3
    ldrb(r3, [r1, 30])
    mul(r3, r2)
    data(2, 0x449B)  # add r11, r3
    ldrb(r3, [r1, 31])
    mul(r3, r2)
    data(2, 0x449C)  # add r12, r3
    add(r0, 4)
    add(r1, 32)
    cmp(r0, r4)
    bne(quad)
    data(2, 0x4673)  # mov r3, lr
    str(r0, [r3, _XCUR])  # the next row
    mov(r0, r3)
    add(r0, _ACC)
    str(r5, [r0, 0])
    str(r6, [r0, 4])
    str(r7, [r0, 8])
    mov(r2, r8)
    str(r2, [r0, 12])
    mov(r2, r9)
    str(r2, [r0, 16])
    mov(r2, r10)
    str(r2, [r0, 20])
    mov(r2, r11)
    str(r2, [r0, 24])
    mov(r2, r12)
    str(r2, [r0, 28])
    mov(r8, r0)  # r8: walk over the accumulators
    add(r0, 32)
    str(r0, [r3, _ACCEND])
    ldr(r2, [r3, _YZP])
    mov(r9, r2)
    ldr(r2, [r3, _AMIN])
    mov(r10, r2)
    ldr(r2, [r3, _AMAX])
    mov(r11, r2)
    ldr(r2, [r3, _CCUR])
    ldr(r4, [r2, 0])
    add(r2, 4)
    str(r2, [r3, _CCUR])
    mov(r12, r4)  # -128 SX
    ldr(r1, [r3, _RG])
    ldr(r7, [r3, _YCUR])
    label(rq)
    # r0 acc, r1 record (C, mh, ml, left, right, LO, HI), r7 y, r8 accumulator walk, r9 y_zp,
    # r10 act_min, r11 act_max, r12 -128 SX; r2-r6 scratch. The multiply is int8_rows' (see
    # fully_connected_asm for the derivation).
    mov(r2, r8)
    ldr(r0, [r2, 0])
    add(r2, 4)
    mov(r8, r2)
    ldr(r2, [r1, 0])
    add(r0, r0, r2)
    data(2, 0x4460)  # add r0, r12: acc
    ldr(r2, [r1, 20])
    cmp(r0, r2)
    ble(rq_min)  # acc <= LO: act_min
    ldr(r2, [r1, 24])
    cmp(r0, r2)
    bge(rq_max)  # acc >= HI: act_max
    ldr(r2, [r1, 12])
    lsl(r0, r2)  # a = acc << left
    asr(r4, r0, 15)  # a1
    lsl(r5, r0, 17)
    lsr(r5, r5, 17)  # a0
    ldr(r6, [r1, 4])  # mh
    ldr(r3, [r1, 8])  # ml
    mov(r2, r4)
    mul(r2, r6)  # h
    mul(r4, r3)  # p
    mul(r6, r5)  # q
    mul(r5, r3)  # r
    lsr(r5, r5, 15)
    asr(r3, r4, 15)
    lsl(r4, r4, 17)
    lsr(r4, r4, 17)
    add(r5, r5, r4)
    lsr(r4, r6, 15)
    add(r3, r3, r4)
    lsl(r6, r6, 17)
    lsr(r6, r6, 17)
    add(r5, r5, r6)
    lsr(r5, r5, 15)
    add(r3, r3, r5)
    add(r3, 1)  # f
    add(r2, r2, r3)
    asr(r2, r2, 1)  # s = SRDHM(a, M)
    ldr(r6, [r1, 16])  # right
    mov(r3, 1)
    lsl(r3, r6)
    asr(r4, r2, 31)
    add(r3, r3, r4)
    asr(r3, r3, 1)
    add(r2, r2, r3)
    asr(r2, r6)  # RoundingDivideByPOT(s, right)
    data(2, 0x444A)  # add r2, r9: + y_zp (LO < acc < HI: no clamp)
    label(rq_put)
    strb(r2, [r7, 0])
    add(r7, 1)
    add(r1, 28)
    data(2, 0x4673)  # mov r3, lr
    ldr(r3, [r3, _ACCEND])
    mov(r2, r8)
    cmp(r2, r3)
    bne(rq)
    b(rq_end)
    label(rq_min)
    mov(r2, r10)
    b(rq_put)
    label(rq_max)
    mov(r2, r11)
    b(rq_put)
    label(rq_end)
    data(2, 0x4673)  # mov r3, lr
    ldr(r0, [r3, _YCUR])
    ldr(r1, [r3, _NOUT])
    add(r0, r0, r1)
    str(r0, [r3, _YCUR])
    ldr(r0, [r3, _RLEFT])
    sub(r0, 1)
    str(r0, [r3, _RLEFT])
    beq(group_end)
    b(row)
    label(group_end)
    ldr(r0, [r3, _RG])
    add(r0, 224)  # 8 records of 28 bytes
    str(r0, [r3, _RG])
    ldr(r0, [r3, _YG])
    add(r0, 8)
    str(r0, [r3, _YG])
    ldr(r0, [r3, _GLEFT])
    sub(r0, 8)
    str(r0, [r3, _GLEFT])
    beq(restore)
    b(group)
    label(restore)  # x ^= 0x80 back: the input as it was
    ldr(r0, [r3, _X])
    ldr(r1, [r3, _XEND])
    ldr(r6, [r3, _XORC])
    label(rs_word)
    ldr(r2, [r0, 0])
    eor(r2, r6)
    str(r2, [r0, 0])
    add(r0, 4)
    cmp(r0, r1)
    bne(rs_word)
    pop({r1, r2, r3, r4})
    mov(r8, r1)
    mov(r9, r2)
    mov(r10, r3)
    mov(r11, r4)
    mov(r0, 0)


_shared = [None, None]  # (repack scratch, SX words): one pair serves every layer (they run
# one at a time); grown when a layer needs more (the layers prepared before keep theirs)


class Groups:
    """int8_groups' params block, records and scratch for one layer (see rows_ok)."""

    def __init__(self, x, w, k, n_out, bias, x_zp, m_hi, m_lo, left, right, y, rows, y_zp,
                 act_min, act_max):
        rec = int32_zeros(7 * n_out)
        for o in range(n_out):
            s = 0
            for i in range(o * k, (o + 1) * k):
                s += w[i]
            rec[7 * o] = wrap32(bias[o] - (x_zp + 128) * s)
            rec[7 * o + 1] = m_hi[o]
            rec[7 * o + 2] = m_lo[o]
            rec[7 * o + 3] = left[o]
            rec[7 * o + 4] = right[o]
            clamp_bounds_into(rec, 7 * o + 5, m_hi[o], m_lo[o], left[o], right[o], y_zp,
                              act_min, act_max)
        scr, corr = _shared
        if scr is None or len(scr) < 8 * k:
            scr = _shared[0] = bytearray(8 * k)
        if corr is None or len(corr) < rows:
            corr = _shared[1] = int32_zeros(rows)
        p = int32_zeros(N_PARAMS)
        xa = address_of(x)
        p[_X >> 2] = xa
        p[_ROWS >> 2] = rows
        p[_K >> 2] = k
        p[_NOUT >> 2] = n_out
        p[_W >> 2] = address_of(w)
        p[_REC >> 2] = address_of(rec)
        p[_Y >> 2] = address_of(y)
        p[_CORR >> 2] = address_of(corr)
        p[_SCR >> 2] = address_of(scr)
        p[_YZP >> 2] = y_zp
        p[_AMIN >> 2] = act_min
        p[_AMAX >> 2] = act_max
        p[_MASK >> 2] = 0x00FF00FF
        p[_XORC >> 2] = -0x7F7F7F80  # 0x80808080 as an int32
        p[_XEND >> 2] = xa + rows * k
        self.rec, self.scr, self.corr, self.p = rec, scr, corr, p
        self.run = int8_groups
        self.wq = self.xs = None


def rows_ok(x, k, n_out, y, rows):
    """Whether int8_groups takes these rows: a multiple of 8 channels, K a multiple of 4 in
    4 .. MAX_K, at least 16 rows (the repack and XOR passes pay back), a word-aligned input
    that y does not overlap (the input is XORed in place during the call)."""
    if n_out % 8 or k % 4 or k < 4 or k > MAX_K or rows < 16:
        return False
    xa = address_of(x)
    ya = address_of(y)
    return not xa & 3 and (ya >= xa + rows * k or xa >= ya + rows * n_out)
