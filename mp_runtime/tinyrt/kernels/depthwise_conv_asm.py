# ruff: noqa: F821
# (asm_thumb bodies name registers, labels and instructions that are not Python names)
# Cortex-M (armv6m Thumb) twin of kernels.depthwise_conv.depthwise_conv2d: same results to the
# bit.
#
# pad_copy copies the batch's input image into a padded image as x' = x + 128 (unsigned bytes,
# XOR 0x80 per word; its border = x_zp + 128: a tap in the padding adds 0), so every output
# uses all KH*KW taps and no bound is tested. dw_rows then walks the output pixels (loops
# inside the asm), four output channels at a time (accumulators r8-r11), over tap records of
# five words (tap's byte offset in the padded image, the four channels' int8 weights as
# words). With depth multiplier 1 and C % 4 == 0 (_FAST) the group's four input channels are
# consecutive bytes: per tap one LDM takes offset and weights, then ldrb with immediate offsets
# (14 instructions per 4 MACs; three taps per iteration after taps % 3 single ones: 44 / 12).
# With dm % 4 == 0 the four channels read one input byte: LDM, one ldrb, 4 x (mul, add): 10 per
# 4 MACs. Otherwise x bases r2-r5 = pixel + each channel's input channel (any depth multiplier),
# ldrb register-offset: 54 instructions per 12 MACs. The zero point is folded into the
# per-channel bias (bias - (x_zp + 128) * sum of the channel's weights over all taps).
# Requantization per output as in kernels.fully_connected_asm (exact, 32-bit), a subroutine
# (bl/bx lr) called for each of the group's channels, state in registers; an accumulator at
# or beyond its channel's clamp bounds (kernels.requant_bounds) stores act_min / act_max
# without the multiply.
# armv7m firmware runs kernels.armv7m_depthwise_asm's dw_rows7 instead (signed x, XOR 0)
# where depth multiplier 1 and C % 4 == 0, or dm % 4 == 0.
# Channels past OC in the last group have weight 0 and are not stored.
# The padded image lives where Model.work_view puts it: in the arena (tinyrt.buffers.plan_work:
# it may overlap the layer's input and output, see depthwise_conv.padded_leads) or in the
# working memory the layers share. Other layers overwrite it, so each call copies the input
# from its last byte down (pad_copy) and then writes the border value around it (fill_runs:
# the rows above, the gaps between the copied rows, the rows below). Output rows are walked
# top down, or bottom up where the image starts below the output and reaches into it.
import micropython
from struct import pack_into

from micropython import const

from ..fast import arch
from .depthwise_conv import padded_bytes as work_bytes
from .fully_connected_asm import address_of, wrap32
from .requant_bounds import clamp_bounds_into
from ..buffers import int32_zeros

# dw_rows params block (array('i')), byte offsets
_P = const(0)  # address of the padded image
_ROWSTEP = const(4)  # bytes between output rows' first taps (sh * Wp * C)
_COLSTEP = const(8)  # bytes between output pixels' first taps (sw * C)
_OH = const(12)
_OW = const(16)
_GRP = const(20)  # address of the group table: input channel offsets, 1 or 4 words per group
_TAPREC = const(24)  # address of the tap records: per group, KH*KW records of 5 words
_MIDBYTES = const(28)  # 20 * (taps % 3)
_TRIPBYTES = const(32)  # 20 * (taps - taps % 3)
_REQ = const(36)  # address of the requant records: per channel 5 words (label rq)
_OC = const(40)
_Y = const(44)
_YZP = const(48)
_AMIN = const(52)
_AMAX = const(56)
_ROWCUR = const(60)  # scratch from here on, written by the kernel
_ROWSLEFT = const(64)
_XPIX = const(68)
_COLSLEFT = const(72)
_GCUR = const(76)
_RECCUR = const(80)
_QCUR = const(84)
_OCLEFT = const(88)
_YCUR = const(92)
_FAST = const(96)  # 1: depth multiplier 1 and C % 4 == 0 (one base), 2: dm % 4 == 0 (one byte)
_YROW = const(100)  # added to the output cursor after each row: 0, or -2 * OW * OC (bottom up)
N_PARAMS = 26
P_Y = const(11)  # word index of the field the glue sets per batch

# pad_copy params block, word indices
C_SRC = const(0)
C_SSTEP = const(1)
C_DST = const(2)
C_DSTEP = const(3)
C_ROWS = const(4)
C_BYTES = const(5)
C_WORDS = const(6)  # 1: src, dst, steps and bytes are multiples of 4 (copy words)
C_XOR = const(7)  # XORed into every word copied: 0x80808080 writes x + 128 (dw_rows), 0 x
N_COPY = 8

# fill_runs params block, word indices: the byte value, then 3 runs of 5 words
F_VALUE = const(0)
F_RUN = const(1)  # address, bytes, step between repeats, repeats, unit (4: words, 1: bytes)
N_FILL = 16


@micropython.asm_thumb
def fill_runs(r0):
    # r1 value (the byte in each of the word's bytes), r2 runs left, r3 run address,
    # r4 repeats left, r5 byte index (counting down), r6 unit
    ldr(r1, [r0, 0])
    mov(r3, 0xFF)
    and_(r1, r3)
    lsl(r3, r1, 8)
    orr(r1, r3)
    lsl(r3, r1, 16)
    orr(r1, r3)
    mov(r2, 3)
    add(r0, 4)
    label(run)
    ldr(r3, [r0, 0])
    ldr(r4, [r0, 12])
    ldr(r6, [r0, 16])
    label(repeat)
    cmp(r4, 0)
    beq(run_next)
    ldr(r5, [r0, 4])
    cmp(r6, 4)
    beq(words)
    label(fbytes)
    cmp(r5, 0)
    beq(repeat_next)
    sub(r5, 1)
    data(2, 0x5559)  # strb r1, [r3, r5]
    b(fbytes)
    label(words)
    cmp(r5, 0)
    beq(repeat_next)
    sub(r5, 4)
    data(2, 0x5159)  # str r1, [r3, r5]
    b(words)
    label(repeat_next)
    ldr(r5, [r0, 8])
    add(r3, r3, r5)
    sub(r4, 1)
    b(repeat)
    label(run_next)
    add(r0, 20)
    sub(r2, 1)
    bne(run)
    mov(r0, 0)


@micropython.asm_thumb
def pad_copy(r0):
    # r1 source row, r2 destination row, r3 rows left, r4 byte index (counting down)
    ldr(r1, [r0, 0])
    ldr(r2, [r0, 8])
    ldr(r3, [r0, 16])
    ldr(r6, [r0, 28])  # C_XOR
    cmp(r3, 0)
    beq(cdone)
    label(crow)
    ldr(r4, [r0, 20])
    ldr(r5, [r0, 24])
    cmp(r5, 0)
    beq(cbytes)
    label(cword)
    sub(r4, 4)
    data(2, 0x590D)  # ldr r5, [r1, r4]
    eor(r5, r6)
    data(2, 0x5115)  # str r5, [r2, r4]
    cmp(r4, 0)  # (eor set the flags)
    bne(cword)
    b(cnext)
    label(cbytes)
    sub(r4, 1)
    data(2, 0x5D0D)  # ldrb r5, [r1, r4]
    eor(r5, r6)
    data(2, 0x5515)  # strb r5, [r2, r4]
    cmp(r4, 0)  # (eor set the flags)
    bne(cbytes)
    label(cnext)
    ldr(r5, [r0, 4])
    add(r1, r1, r5)
    ldr(r5, [r0, 12])
    add(r2, r2, r5)
    sub(r3, 1)
    bne(crow)
    label(cdone)
    mov(r0, 0)


@micropython.asm_thumb
def dw_rows(r0):
    # Tap loops: r0 weight, r1 tap record, r2-r5 x bases, r6 tap offset, r7 x value,
    # r8-r11 accumulators, r12 params, lr end of the records of this loop.
    mov(r1, r8)
    mov(r2, r9)
    mov(r3, r10)
    mov(r4, r11)
    push({r1, r2, r3, r4})  # r8-r11 are callee-saved (lr is restored by the epilogue)
    b(entry)
    label(rq)
    # r0 acc, r1 requant record (bias', mh | ml << 16, left | right << 8, LO, HI; advanced by
    # 20: the shifts by register read a register's low byte), r7 y (advanced by 1); uses
    # r2-r6. MultiplyByQuantizedMultiplier(acc, M, left, right) + y_zp, clamped: acc <= LO
    # or >= HI store act_min / act_max at once (requant_bounds), else the derivation is
    # kernels.fully_connected_asm's (int8_rows, label requant), with M = mh * 2^15 + ml split
    # at prepare.
    ldr(r2, [r1, 0])
    add(r0, r0, r2)  # acc
    ldr(r2, [r1, 12])
    cmp(r0, r2)
    ble(rq_min)  # acc <= LO: act_min without the multiply (requant_bounds)
    ldr(r2, [r1, 16])
    cmp(r0, r2)
    bge(rq_max)  # acc >= HI: act_max
    ldr(r2, [r1, 8])
    lsl(r0, r2)  # a = acc << left (the low byte)
    asr(r4, r0, 15)  # a1
    lsl(r5, r0, 17)
    lsr(r5, r5, 17)  # a0
    ldr(r6, [r1, 4])
    lsr(r3, r6, 16)  # ml
    lsl(r6, r6, 16)
    lsr(r6, r6, 16)  # mh
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
    ldr(r6, [r1, 8])
    lsr(r6, r6, 8)  # right
    mov(r3, 1)
    lsl(r3, r6)
    asr(r4, r2, 31)
    add(r3, r3, r4)
    asr(r3, r3, 1)
    add(r2, r2, r3)
    asr(r2, r6)  # RoundingDivideByPOT(s, right)
    mov(r6, r12)
    ldr(r3, [r6, _YZP])
    add(r2, r2, r3)  # LO < acc < HI: act_min < y < act_max, no clamp
    label(rq_put)
    add(r1, 20)
    strb(r2, [r7, 0])
    add(r7, 1)
    bx(lr)
    label(rq_min)
    mov(r6, r12)
    ldr(r2, [r6, _AMIN])
    b(rq_put)
    label(rq_max)
    mov(r6, r12)
    ldr(r2, [r6, _AMAX])
    b(rq_put)
    label(entry)
    mov(r12, r0)
    ldr(r1, [r0, _P])
    str(r1, [r0, _ROWCUR])
    ldr(r1, [r0, _Y])
    str(r1, [r0, _YCUR])
    ldr(r1, [r0, _OH])
    str(r1, [r0, _ROWSLEFT])
    label(row_loop)
    mov(r7, r12)
    ldr(r1, [r7, _ROWSLEFT])
    cmp(r1, 0)
    bne(row_start)
    b(done)
    label(row_start)
    ldr(r1, [r7, _ROWCUR])
    str(r1, [r7, _XPIX])
    ldr(r1, [r7, _OW])
    str(r1, [r7, _COLSLEFT])
    label(pixel_loop)
    mov(r7, r12)
    ldr(r1, [r7, _COLSLEFT])
    cmp(r1, 0)
    bne(pixel_start)
    b(row_next)
    label(pixel_start)
    ldr(r1, [r7, _GRP])
    str(r1, [r7, _GCUR])
    ldr(r1, [r7, _TAPREC])
    str(r1, [r7, _RECCUR])
    ldr(r1, [r7, _REQ])
    str(r1, [r7, _QCUR])
    ldr(r1, [r7, _OC])
    str(r1, [r7, _OCLEFT])
    label(group_loop)
    mov(r7, r12)
    ldr(r6, [r7, _XPIX])
    ldr(r1, [r7, _GCUR])
    ldr(r0, [r7, _FAST])
    cmp(r0, 1)
    beq(f_start)
    cmp(r0, 2)
    beq(s_start)
    b(general)
    label(f_start)
    # depth multiplier 1, C % 4 == 0: the group's channels are 4 consecutive bytes, one
    # base r0; per tap one LDM (offset, weights) and immediate-offset loads: 14 per 4 MACs
    ldr(r0, [r1, 0])
    add(r0, r0, r6)
    add(r1, 4)  # the group table: one word per group here
    str(r1, [r7, _GCUR])
    ldr(r1, [r7, _RECCUR])
    ldr(r2, [r7, _MIDBYTES])
    add(r2, r2, r1)
    data(2, 0x4696)  # mov lr, r2
    mov(r2, 0)
    mov(r8, r2)
    mov(r9, r2)
    mov(r10, r2)
    mov(r11, r2)
    label(f_single)
    data(2, 0x4571)  # cmp r1, lr
    beq(f_triples)
    data(2, 0xC97C)  # ldmia r1!, {r2-r6}: tap offset, four weights
    add(r7, r0, r2)
    ldrb(r2, [r7, 0])
    mul(r3, r2)
    data(2, 0x4498)  # add r8, r3
    ldrb(r2, [r7, 1])
    mul(r4, r2)
    data(2, 0x44A1)  # add r9, r4
    ldrb(r2, [r7, 2])
    mul(r5, r2)
    data(2, 0x44AA)  # add r10, r5
    ldrb(r2, [r7, 3])
    mul(r6, r2)
    data(2, 0x44B3)  # add r11, r6
    b(f_single)
    label(f_triples)
    mov(r7, r12)
    ldr(r2, [r7, _TRIPBYTES])
    add(r2, r2, r1)
    data(2, 0x4696)  # mov lr, r2
    data(2, 0x4571)  # cmp r1, lr
    beq(f_done)
    label(f_triple)
    data(2, 0xC97C)  # ldmia r1!, {r2-r6}: tap offset, four weights
    add(r7, r0, r2)
    ldrb(r2, [r7, 0])
    mul(r3, r2)
    data(2, 0x4498)  # add r8, r3
    ldrb(r2, [r7, 1])
    mul(r4, r2)
    data(2, 0x44A1)  # add r9, r4
    ldrb(r2, [r7, 2])
    mul(r5, r2)
    data(2, 0x44AA)  # add r10, r5
    ldrb(r2, [r7, 3])
    mul(r6, r2)
    data(2, 0x44B3)  # add r11, r6
    data(2, 0xC97C)  # ldmia r1!, {r2-r6}: tap offset, four weights
    add(r7, r0, r2)
    ldrb(r2, [r7, 0])
    mul(r3, r2)
    data(2, 0x4498)  # add r8, r3
    ldrb(r2, [r7, 1])
    mul(r4, r2)
    data(2, 0x44A1)  # add r9, r4
    ldrb(r2, [r7, 2])
    mul(r5, r2)
    data(2, 0x44AA)  # add r10, r5
    ldrb(r2, [r7, 3])
    mul(r6, r2)
    data(2, 0x44B3)  # add r11, r6
    data(2, 0xC97C)  # ldmia r1!, {r2-r6}: tap offset, four weights
    add(r7, r0, r2)
    ldrb(r2, [r7, 0])
    mul(r3, r2)
    data(2, 0x4498)  # add r8, r3
    ldrb(r2, [r7, 1])
    mul(r4, r2)
    data(2, 0x44A1)  # add r9, r4
    ldrb(r2, [r7, 2])
    mul(r5, r2)
    data(2, 0x44AA)  # add r10, r5
    ldrb(r2, [r7, 3])
    mul(r6, r2)
    data(2, 0x44B3)  # add r11, r6
    data(2, 0x4571)  # cmp r1, lr
    bne(f_triple)
    label(f_done)
    b(group_done)
    label(s_start)
    # depth multiplier a multiple of 4: the group's four channels read one input byte:
    # 10 instructions per 4 MACs
    ldr(r0, [r1, 0])
    add(r0, r0, r6)
    add(r1, 4)  # the group table: one word per group here
    str(r1, [r7, _GCUR])
    ldr(r1, [r7, _RECCUR])
    ldr(r2, [r7, _MIDBYTES])
    add(r2, r2, r1)
    data(2, 0x4696)  # mov lr, r2
    mov(r2, 0)
    mov(r8, r2)
    mov(r9, r2)
    mov(r10, r2)
    mov(r11, r2)
    label(s_single)
    data(2, 0x4571)  # cmp r1, lr
    beq(s_triples)
    data(2, 0xC97C)  # ldmia r1!, {r2-r6}: tap offset, four weights
    data(2, 0x5C87)  # ldrb r7, [r0, r2]: the one input byte of the four channels
    mul(r3, r7)
    data(2, 0x4498)  # add r8, r3
    mul(r4, r7)
    data(2, 0x44A1)  # add r9, r4
    mul(r5, r7)
    data(2, 0x44AA)  # add r10, r5
    mul(r6, r7)
    data(2, 0x44B3)  # add r11, r6
    b(s_single)
    label(s_triples)
    mov(r7, r12)
    ldr(r2, [r7, _TRIPBYTES])
    add(r2, r2, r1)
    data(2, 0x4696)  # mov lr, r2
    data(2, 0x4571)  # cmp r1, lr
    beq(s_done)
    label(s_triple)
    data(2, 0xC97C)  # ldmia r1!, {r2-r6}: tap offset, four weights
    data(2, 0x5C87)  # ldrb r7, [r0, r2]: the one input byte of the four channels
    mul(r3, r7)
    data(2, 0x4498)  # add r8, r3
    mul(r4, r7)
    data(2, 0x44A1)  # add r9, r4
    mul(r5, r7)
    data(2, 0x44AA)  # add r10, r5
    mul(r6, r7)
    data(2, 0x44B3)  # add r11, r6
    data(2, 0xC97C)  # ldmia r1!, {r2-r6}: tap offset, four weights
    data(2, 0x5C87)  # ldrb r7, [r0, r2]: the one input byte of the four channels
    mul(r3, r7)
    data(2, 0x4498)  # add r8, r3
    mul(r4, r7)
    data(2, 0x44A1)  # add r9, r4
    mul(r5, r7)
    data(2, 0x44AA)  # add r10, r5
    mul(r6, r7)
    data(2, 0x44B3)  # add r11, r6
    data(2, 0xC97C)  # ldmia r1!, {r2-r6}: tap offset, four weights
    data(2, 0x5C87)  # ldrb r7, [r0, r2]: the one input byte of the four channels
    mul(r3, r7)
    data(2, 0x4498)  # add r8, r3
    mul(r4, r7)
    data(2, 0x44A1)  # add r9, r4
    mul(r5, r7)
    data(2, 0x44AA)  # add r10, r5
    mul(r6, r7)
    data(2, 0x44B3)  # add r11, r6
    data(2, 0x4571)  # cmp r1, lr
    bne(s_triple)
    label(s_done)
    b(group_done)
    label(general)
    ldr(r2, [r1, 0])
    add(r2, r2, r6)
    ldr(r3, [r1, 4])
    add(r3, r3, r6)
    ldr(r4, [r1, 8])
    add(r4, r4, r6)
    ldr(r5, [r1, 12])
    add(r5, r5, r6)
    add(r1, 16)
    str(r1, [r7, _GCUR])
    ldr(r1, [r7, _RECCUR])
    ldr(r0, [r7, _MIDBYTES])
    add(r0, r0, r1)
    data(2, 0x4686)  # mov lr, r0
    mov(r6, 0)
    mov(r8, r6)
    mov(r9, r6)
    mov(r10, r6)
    mov(r11, r6)
    label(single_check)  # taps % 3 single taps
    data(2, 0x4571)  # cmp r1, lr
    beq(triples)
    ldr(r6, [r1, 0])
    data(2, 0x5D97)  # ldrb r7, [r2, r6]
    ldr(r0, [r1, 4])
    mul(r0, r7)
    data(2, 0x4480)  # add r8, r0
    data(2, 0x5D9F)  # ldrb r7, [r3, r6]
    ldr(r0, [r1, 8])
    mul(r0, r7)
    data(2, 0x4481)  # add r9, r0
    data(2, 0x5DA7)  # ldrb r7, [r4, r6]
    ldr(r0, [r1, 12])
    mul(r0, r7)
    data(2, 0x4482)  # add r10, r0
    data(2, 0x5DAF)  # ldrb r7, [r5, r6]
    ldr(r0, [r1, 16])
    mul(r0, r7)
    data(2, 0x4483)  # add r11, r0
    add(r1, 20)
    b(single_check)
    label(triples)
    mov(r7, r12)
    ldr(r0, [r7, _TRIPBYTES])
    add(r0, r0, r1)
    data(2, 0x4686)  # mov lr, r0
    data(2, 0x4571)  # cmp r1, lr
    beq(group_done)
    label(triple)  # three taps, four channels each
    ldr(r6, [r1, 0])
    data(2, 0x5D97)  # ldrb r7, [r2, r6]
    ldr(r0, [r1, 4])
    mul(r0, r7)
    data(2, 0x4480)  # add r8, r0
    data(2, 0x5D9F)  # ldrb r7, [r3, r6]
    ldr(r0, [r1, 8])
    mul(r0, r7)
    data(2, 0x4481)  # add r9, r0
    data(2, 0x5DA7)  # ldrb r7, [r4, r6]
    ldr(r0, [r1, 12])
    mul(r0, r7)
    data(2, 0x4482)  # add r10, r0
    data(2, 0x5DAF)  # ldrb r7, [r5, r6]
    ldr(r0, [r1, 16])
    mul(r0, r7)
    data(2, 0x4483)  # add r11, r0
    ldr(r6, [r1, 20])
    data(2, 0x5D97)  # ldrb r7, [r2, r6]
    ldr(r0, [r1, 24])
    mul(r0, r7)
    data(2, 0x4480)  # add r8, r0
    data(2, 0x5D9F)  # ldrb r7, [r3, r6]
    ldr(r0, [r1, 28])
    mul(r0, r7)
    data(2, 0x4481)  # add r9, r0
    data(2, 0x5DA7)  # ldrb r7, [r4, r6]
    ldr(r0, [r1, 32])
    mul(r0, r7)
    data(2, 0x4482)  # add r10, r0
    data(2, 0x5DAF)  # ldrb r7, [r5, r6]
    ldr(r0, [r1, 36])
    mul(r0, r7)
    data(2, 0x4483)  # add r11, r0
    ldr(r6, [r1, 40])
    data(2, 0x5D97)  # ldrb r7, [r2, r6]
    ldr(r0, [r1, 44])
    mul(r0, r7)
    data(2, 0x4480)  # add r8, r0
    data(2, 0x5D9F)  # ldrb r7, [r3, r6]
    ldr(r0, [r1, 48])
    mul(r0, r7)
    data(2, 0x4481)  # add r9, r0
    data(2, 0x5DA7)  # ldrb r7, [r4, r6]
    ldr(r0, [r1, 52])
    mul(r0, r7)
    data(2, 0x4482)  # add r10, r0
    data(2, 0x5DAF)  # ldrb r7, [r5, r6]
    ldr(r0, [r1, 56])
    mul(r0, r7)
    data(2, 0x4483)  # add r11, r0
    add(r1, 60)
    data(2, 0x4571)  # cmp r1, lr
    bne(triple)
    label(group_done)  # requantize the group's channels (at most OCLEFT of them)
    mov(r7, r12)
    str(r1, [r7, _RECCUR])
    ldr(r2, [r7, _OCLEFT])
    mov(r0, r2)
    sub(r0, 4)
    str(r0, [r7, _OCLEFT])  # negative after a last, partial group
    ldr(r1, [r7, _QCUR])
    ldr(r7, [r7, _YCUR])
    mov(r0, r8)
    mov(r8, r2)  # channels left, this group's included
    bl(rq)
    mov(r0, r8)
    cmp(r0, 1)
    beq(rq_end)
    mov(r0, r9)
    bl(rq)
    mov(r0, r8)
    cmp(r0, 2)
    beq(rq_end)
    mov(r0, r10)
    bl(rq)
    mov(r0, r8)
    cmp(r0, 3)
    beq(rq_end)
    mov(r0, r11)
    bl(rq)
    label(rq_end)
    mov(r6, r12)
    str(r1, [r6, _QCUR])
    str(r7, [r6, _YCUR])
    mov(r7, r6)
    ldr(r0, [r6, _OCLEFT])
    cmp(r0, 0)
    ble(pixel_next)
    b(group_loop)
    label(pixel_next)
    ldr(r0, [r7, _XPIX])
    ldr(r1, [r7, _COLSTEP])
    add(r0, r0, r1)
    str(r0, [r7, _XPIX])
    ldr(r0, [r7, _COLSLEFT])
    sub(r0, 1)
    str(r0, [r7, _COLSLEFT])
    b(pixel_loop)
    label(row_next)
    ldr(r0, [r7, _ROWCUR])
    ldr(r1, [r7, _ROWSTEP])
    add(r0, r0, r1)
    str(r0, [r7, _ROWCUR])
    ldr(r0, [r7, _YCUR])
    ldr(r1, [r7, _YROW])
    add(r0, r0, r1)
    str(r0, [r7, _YCUR])
    ldr(r0, [r7, _ROWSLEFT])
    sub(r0, 1)
    str(r0, [r7, _ROWSLEFT])
    b(row_loop)
    label(done)
    pop({r1, r2, r3, r4})
    mov(r8, r1)
    mov(r9, r2)
    mov(r10, r3)
    mov(r11, r4)
    mov(r0, 0)


class DepthwiseConv2DAsm:
    """Prepared at load: padded image (border = x_zp), group table, tap records, requant
    records, params blocks; depthwise_conv2d() has the reference function's signature."""

    def __init__(self, x, w, bias, y, n, h, wd, c, dm, kh, kw, sh, sw, dh, dw, pt, pl, oh,
                 ow, x_zp, y_zp, m_hi, m_lo, left, right, act_min, act_max, work):
        oc = c * dm
        hp = (oh - 1) * sh + (kh - 1) * dh + 1  # padded rows and columns the outputs read
        wp = (ow - 1) * sw + (kw - 1) * dw + 1
        row_b = wp * c
        nbytes = work_bytes(h, wd, c, kh, kw, sh, sw, dh, dw, oh, ow)
        if work is None or len(work) < nbytes:
            raise ValueError("the shared working memory has %d bytes, this layer needs %d"
                             % (0 if work is None else len(work), nbytes))
        # every attribute first: the instance's map grows now, not between the tables
        self.grp = self.rec = self.req = self.run = self.p = self.cp = self.fp = None
        self.x_last = 0
        self.geom = None
        self.pad = work
        v7 = arch[0] >= 5 and (dm == 1 and c % 4 == 0 or dm % 4 == 0)  # armv7m_depthwise_asm
        taps = kh * kw
        ngrp = (oc + 3) // 4
        one = dm == 1 and c % 4 == 0 or dm % 4 == 0  # the fast tap loops (dw_rows7, _FAST)
        if one:  # one input channel offset per group: its first channel's
            grp = int32_zeros(ngrp)
            for g in range(ngrp):
                grp[g] = 4 * g // dm
        else:  # each of the group's four channels' (the general tap loop)
            grp = int32_zeros(4 * ngrp)
            for s in range(oc):
                grp[s] = s // dm
        rec = int32_zeros(20 * ngrp * taps // 4)
        i = 0
        for g in range(ngrp):
            for fy in range(kh):
                for fx in range(kw):
                    t = fy * kw + fx
                    rec[i] = fy * dh * row_b + fx * dw * c
                    for j in range(4):
                        o = 4 * g + j
                        rec[i + 1 + j] = w[t * oc + o] if o < oc else 0
                    i += 5
        if v7:
            from .armv7m_depthwise_asm import N_PARAMS as n_params, P_MODE, P_YROW, \
                REC_WORDS, dw_rows7, record
        k = REC_WORDS if v7 else 5  # words per channel's requant record
        req = int32_zeros(k * oc)
        for o in range(oc):
            s = 0
            for t in range(taps):
                s += w[t * oc + o]
            if v7:  # sum (x - x_zp) w
                record(req, o, _bias(bias[o], x_zp * s), m_hi[o], m_lo[o], left[o], right[o])
            else:  # sum (x - x_zp) w, x' = x + 128
                req[5 * o] = _bias(bias[o], (x_zp + 128) * s)
                pack_into("<HH", req, 20 * o + 4, m_hi[o], m_lo[o])  # no long: ml < 2^15
                req[5 * o + 2] = left[o] | right[o] << 8
            clamp_bounds_into(req, k * o + k - 2, m_hi[o], m_lo[o], left[o], right[o], y_zp,
                              act_min, act_max)
        self.grp, self.rec, self.req = grp, rec, req
        self.run = dw_rows7 if v7 else dw_rows
        p = int32_zeros(n_params if v7 else N_PARAMS)
        # Output rows top down, or bottom up where the image lies below the output and
        # overlaps it (padded_leads: the rows written are above those still read)
        pa = address_of(self.pad)
        ya = address_of(y)
        up = pa < ya < pa + hp * wp * c
        p[_P >> 2] = pa + (oh - 1) * sh * row_b if up else pa
        p[_ROWSTEP >> 2] = -sh * row_b if up else sh * row_b
        y_first = (oh - 1) * ow * oc if up else 0
        p[P_YROW if v7 else _YROW >> 2] = -2 * ow * oc if up else 0
        p[_COLSTEP >> 2] = sw * c
        p[_OH >> 2] = oh
        p[_OW >> 2] = ow
        p[_GRP >> 2] = address_of(grp)
        p[_TAPREC >> 2] = address_of(rec)
        p[_MIDBYTES >> 2] = 20 * (taps % 3)
        p[_TRIPBYTES >> 2] = 20 * (taps - taps % 3)
        p[_REQ >> 2] = address_of(req)
        p[_OC >> 2] = oc
        p[_YZP >> 2] = y_zp
        p[_AMIN >> 2] = act_min
        p[_AMAX >> 2] = act_max
        if v7:
            p[P_MODE] = 0 if dm == 1 else 1
        else:
            p[_FAST >> 2] = 1 if dm == 1 and c % 4 == 0 else (2 if dm % 4 == 0 else 0)
        self.p = p
        # the input rows and columns that land inside the padded image, copied from the last
        # row's last byte down (the image may overlap the input above it: padded_leads)
        nr = h if h < hp - pt else hp - pt
        nc = wd if wd < wp - pl else wp - pl
        if nr < 1 or nc < 1:
            nr = nc = 0
        pa = address_of(self.pad)
        first = pa + (pt * wp + pl) * c  # the first copied row in the image
        cp = int32_zeros(N_COPY)
        cp[C_SSTEP] = -wd * c
        cp[C_DST] = first + (nr - 1) * row_b if nr else pa
        cp[C_DSTEP] = -row_b
        cp[C_ROWS] = nr
        cp[C_BYTES] = nc * c
        xa = address_of(x)
        cp[C_WORDS] = 1 if (xa | wd * c | first | row_b | cp[C_BYTES]
                            | (h * wd * c)) & 3 == 0 else 0
        cp[C_XOR] = 0 if v7 else -0x7F7F7F80  # 0x80808080
        self.cp = cp
        self.x_last = (nr - 1) * wd * c if nr else 0  # the last copied row in a batch's input
        # the border: bytes before the first copied row, the gaps between copied rows, the
        # bytes after the last; dw_rows reads x + 128 (unsigned bytes: ldrb has immediate
        # offsets), dw_rows7 x
        fp = int32_zeros(N_FILL)
        fp[F_VALUE] = x_zp if v7 else x_zp ^ 0x80
        end = pa + hp * wp * c
        if nr:
            gap = (wp - nc) * c
            _run(fp, 0, pa, first - pa, 0, 1)
            _run(fp, 1, first + nc * c, gap, row_b, nr - 1)
            after = first + (nr - 1) * row_b + nc * c
            _run(fp, 2, after, end - after, 0, 1)
        else:
            _run(fp, 0, pa, end - pa, 0, 1)
        self.fp = fp
        self.geom = (n, xa, h * wd * c, ya + y_first, oh * ow * oc)

    def depthwise_conv2d(self, x, w, bias, y, batches, x_batch, rows, cols, in_c, depth_mult,
                         x_fy, w_fy, x_fx, w_fx, x_zp, y_zp, m_hi, m_lo, left, right,
                         act_min, act_max):
        n, xa, x_batch, ya, y_batch = self.geom
        cp = self.cp
        p = self.p
        for b in range(n):
            cp[C_SRC] = xa + b * x_batch + self.x_last
            pad_copy(cp)
            fill_runs(self.fp)
            p[P_Y] = ya + b * y_batch
            self.run(p)


def _bias(b, z):
    """b - z as a signed 32-bit word; a long (heap garbage between the tables) only when the
    difference leaves the small ints (|b - z| >= 2^30, as wrap32 would take)."""
    v = b - z
    if -0x3FFFFFFF <= v <= 0x3FFFFFFF:
        return v
    return wrap32(v)


def _run(fp, i, address, nbytes, step, repeats):
    """Run i of fill_runs: `repeats` runs of `nbytes` from `address`, `step` apart; words
    where every address and length is a multiple of 4."""
    j = F_RUN + 5 * i
    fp[j] = address
    fp[j + 1] = nbytes if repeats and nbytes > 0 else 0
    fp[j + 2] = step
    fp[j + 3] = repeats if nbytes > 0 else 0
    fp[j + 4] = 4 if (address | nbytes | step) & 3 == 0 else 1


def prepare(x, w, bias, y, n, h, wd, c, dm, kh, kw, sh, sw, dh, dw, pt, pl, oh, ow, x_zp,
            y_zp, m_hi, m_lo, left, right, act_min, act_max, work):
    if kh * kw * c * dm < 1 or oh < 1 or ow < 1:
        return None
    return DepthwiseConv2DAsm(x, w, bias, y, n, h, wd, c, dm, kh, kw, sh, sw, dh, dw, pt, pl,
                              oh, ow, x_zp, y_zp, m_hi, m_lo, left, right, act_min, act_max,
                              work)


if arch[0] >= 5:  # imported with this module (tinyrt.fast.preload), not between big buffers
    from . import armv7m_depthwise_asm  # noqa: F401
