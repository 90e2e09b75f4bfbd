# ruff: noqa: F821
# (asm_thumb bodies name registers, labels and instructions that are not Python names)
# armv7m (Thumb-2) twin of kernels.depthwise_conv_asm's dw_rows, for depth multiplier 1 and
# a channel count that is a multiple of 4 (the group's four channels are consecutive bytes of
# the padded image), or a depth multiplier that is a multiple of 4 (P_MODE: the four read one
# byte: LDM, LDRSB, 4 MLA = 6 instructions per 4 MACs); kernels.depthwise_conv_asm chooses
# it on armv7m firmware and keeps dw_rows otherwise. Same params block, group table and tap
# records (tap offset, four int8 weights as words) as dw_rows; the requantization's
# derivation is kernels.armv7m_rows_asm's, from 6-word records (record() below).
# Per tap one LDM takes the offset and the four weights, then per channel LDRSB (immediate
# offset from the tap's address) and MLA: 10 instructions per 4 MACs (M0: 17), three taps
# per iteration after taps % 3 single ones. Each Thumb-2 instruction is emitted with
# data(2, ...), its assembly text beside it (see kernels.armv7m_rows_asm).
import micropython

from .fully_connected_asm import store_multiplier

N_PARAMS = 31  # dw_rows' 24 words, the four accumulators, the group's y end, _MODE, _YROW
P_MODE = 29  # 1: depth multiplier a multiple of 4 (the group's channels read one byte)
P_YROW = 30  # added to the output cursor after each row (0, or -2 OW OC: rows bottom up)


REC_WORDS = 6  # per channel: C, M, half, right | left << 8, LO, HI


def record(rec, i, c, m_hi, m_lo, left, right):
    """Channel i's record but for LO, HI (the caller's: requant_bounds): C = bias - x_zp sum w,
    M = m_hi 2^15 + m_lo, half = 2^(right - 1) (0 for right = 0: RoundingDivideByPOT's mask
    is then 0 too), the shifts in one word (the shifts by register read the low byte). No heap
    object on the way: M >= 2^30 is a long on a 32-bit port, so it is written as two halves."""
    j = REC_WORDS * i
    rec[j] = c
    store_multiplier(rec, j + 1, m_hi, m_lo)
    rec[j + 2] = (1 << (right - 1)) if right > 0 else 0
    rec[j + 3] = right | left << 8


@micropython.asm_thumb
def dw_rows7(r0):
    data(2, 0xE92D, 0x0F00)  # push.w {r8, r9, r10, r11} (r8-r11 are callee-saved)
    data(2, 0x4686)  # mov lr, r0 (lr: params block)
    data(2, 0xF8DE, 0x1000)  # ldr.w r1, [lr, #_P]
    data(2, 0xF8CE, 0x103C)  # str.w r1, [lr, #_ROWCUR]
    data(2, 0xF8DE, 0x102C)  # ldr.w r1, [lr, #_Y]
    data(2, 0xF8CE, 0x105C)  # str.w r1, [lr, #_YCUR]
    data(2, 0xF8DE, 0x100C)  # ldr.w r1, [lr, #_OH]
    data(2, 0xF8CE, 0x1040)  # str.w r1, [lr, #_ROWSLEFT]
    label(row_loop)
    data(2, 0xF8DE, 0x1040)  # ldr.w r1, [lr, #_ROWSLEFT]
    data(2, 0x2900)  # cmp r1, #0
    bne(row_start)
    b(done)
    label(row_start)
    data(2, 0xF8DE, 0x103C)  # ldr.w r1, [lr, #_ROWCUR]
    data(2, 0xF8CE, 0x1044)  # str.w r1, [lr, #_XPIX]
    data(2, 0xF8DE, 0x1010)  # ldr.w r1, [lr, #_OW]
    data(2, 0xF8CE, 0x1048)  # str.w r1, [lr, #_COLSLEFT]
    label(pixel_loop)
    data(2, 0xF8DE, 0x1048)  # ldr.w r1, [lr, #_COLSLEFT]
    data(2, 0x2900)  # cmp r1, #0
    bne(pixel_start)
    b(row_next)
    label(pixel_start)
    data(2, 0xF8DE, 0x1014)  # ldr.w r1, [lr, #_GRP]
    data(2, 0xF8CE, 0x104C)  # str.w r1, [lr, #_GCUR]
    data(2, 0xF8DE, 0x1018)  # ldr.w r1, [lr, #_TAPREC]
    data(2, 0xF8CE, 0x1050)  # str.w r1, [lr, #_RECCUR]
    data(2, 0xF8DE, 0x1024)  # ldr.w r1, [lr, #_REQ]
    data(2, 0xF8CE, 0x1054)  # str.w r1, [lr, #_QCUR]
    data(2, 0xF8DE, 0x1028)  # ldr.w r1, [lr, #_OC]
    data(2, 0xF8CE, 0x1058)  # str.w r1, [lr, #_OCLEFT]
    label(group_loop)
    # r0 the group's first input channel at this pixel, r1 tap records, r2 x / tap offset,
    # r3-r6 weights, r7 tap address, r8-r11 accumulators, r12 end of this loop's records
    data(2, 0xF8DE, 0x004C)  # ldr.w r0, [lr, #_GCUR]
    data(2, 0xF850, 0x1B04)  # ldr r1, [r0], #4 (the group table: one word per group)
    data(2, 0xF8CE, 0x004C)  # str.w r0, [lr, #_GCUR]
    data(2, 0xF8DE, 0x0044)  # ldr.w r0, [lr, #_XPIX]
    data(2, 0x4408)  # add r0, r1
    data(2, 0xF8DE, 0x1050)  # ldr.w r1, [lr, #_RECCUR]
    data(2, 0xF8DE, 0xC01C)  # ldr.w r12, [lr, #_MIDBYTES]
    data(2, 0x448C)  # add r12, r1
    data(2, 0x2200)  # movs r2, #0
    data(2, 0x4690)  # mov r8, r2
    data(2, 0x4691)  # mov r9, r2
    data(2, 0x4692)  # mov r10, r2
    data(2, 0x4693)  # mov r11, r2
    data(2, 0xF8DE, 0x2074)  # ldr.w r2, [lr, #_MODE]
    data(2, 0x2A00)  # cmp r2, #0
    bne(s_single)
    label(single)
    data(2, 0x4561)  # cmp r1, r12
    beq(triples)
    data(2, 0xC97C)  # ldm r1!, {r2, r3, r4, r5, r6} (tap offset, four weights)
    data(2, 0xEB00, 0x0702)  # add.w r7, r0, r2
    data(2, 0xF997, 0x2000)  # ldrsb.w r2, [r7]
    data(2, 0xFB02, 0x8803)  # mla r8, r2, r3, r8
    data(2, 0xF997, 0x2001)  # ldrsb.w r2, [r7, #1]
    data(2, 0xFB02, 0x9904)  # mla r9, r2, r4, r9
    data(2, 0xF997, 0x2002)  # ldrsb.w r2, [r7, #2]
    data(2, 0xFB02, 0xAA05)  # mla r10, r2, r5, r10
    data(2, 0xF997, 0x2003)  # ldrsb.w r2, [r7, #3]
    data(2, 0xFB02, 0xBB06)  # mla r11, r2, r6, r11
    b(single)
    label(triples)
    data(2, 0xF8DE, 0xC020)  # ldr.w r12, [lr, #_TRIPBYTES]
    data(2, 0x448C)  # add r12, r1
    data(2, 0x4561)  # cmp r1, r12
    beq(group_done)
    label(triple)
    data(2, 0xC97C)  # ldm r1!, {r2, r3, r4, r5, r6} (tap offset, four weights)
    data(2, 0xEB00, 0x0702)  # add.w r7, r0, r2
    data(2, 0xF997, 0x2000)  # ldrsb.w r2, [r7]
    data(2, 0xFB02, 0x8803)  # mla r8, r2, r3, r8
    data(2, 0xF997, 0x2001)  # ldrsb.w r2, [r7, #1]
    data(2, 0xFB02, 0x9904)  # mla r9, r2, r4, r9
    data(2, 0xF997, 0x2002)  # ldrsb.w r2, [r7, #2]
    data(2, 0xFB02, 0xAA05)  # mla r10, r2, r5, r10
    data(2, 0xF997, 0x2003)  # ldrsb.w r2, [r7, #3]
    data(2, 0xFB02, 0xBB06)  # mla r11, r2, r6, r11
    data(2, 0xC97C)  # ldm r1!, {r2, r3, r4, r5, r6} (tap offset, four weights)
    data(2, 0xEB00, 0x0702)  # add.w r7, r0, r2
    data(2, 0xF997, 0x2000)  # ldrsb.w r2, [r7]
    data(2, 0xFB02, 0x8803)  # mla r8, r2, r3, r8
    data(2, 0xF997, 0x2001)  # ldrsb.w r2, [r7, #1]
    data(2, 0xFB02, 0x9904)  # mla r9, r2, r4, r9
    data(2, 0xF997, 0x2002)  # ldrsb.w r2, [r7, #2]
    data(2, 0xFB02, 0xAA05)  # mla r10, r2, r5, r10
    data(2, 0xF997, 0x2003)  # ldrsb.w r2, [r7, #3]
    data(2, 0xFB02, 0xBB06)  # mla r11, r2, r6, r11
    data(2, 0xC97C)  # ldm r1!, {r2, r3, r4, r5, r6} (tap offset, four weights)
    data(2, 0xEB00, 0x0702)  # add.w r7, r0, r2
    data(2, 0xF997, 0x2000)  # ldrsb.w r2, [r7]
    data(2, 0xFB02, 0x8803)  # mla r8, r2, r3, r8
    data(2, 0xF997, 0x2001)  # ldrsb.w r2, [r7, #1]
    data(2, 0xFB02, 0x9904)  # mla r9, r2, r4, r9
    data(2, 0xF997, 0x2002)  # ldrsb.w r2, [r7, #2]
    data(2, 0xFB02, 0xAA05)  # mla r10, r2, r5, r10
    data(2, 0xF997, 0x2003)  # ldrsb.w r2, [r7, #3]
    data(2, 0xFB02, 0xBB06)  # mla r11, r2, r6, r11
    data(2, 0x4561)  # cmp r1, r12
    bne(triple)
    b(group_done)
    # depth multiplier a multiple of 4 (_MODE 1): the group's four channels read one input byte
    label(s_single)
    data(2, 0x4561)  # cmp r1, r12
    beq(s_triples)
    data(2, 0xC97C)  # ldm r1!, {r2, r3, r4, r5, r6} (tap offset, four weights)
    data(2, 0x5687)  # ldrsb r7, [r0, r2] (the one input byte of the four channels)
    data(2, 0xFB07, 0x8803)  # mla r8, r7, r3, r8
    data(2, 0xFB07, 0x9904)  # mla r9, r7, r4, r9
    data(2, 0xFB07, 0xAA05)  # mla r10, r7, r5, r10
    data(2, 0xFB07, 0xBB06)  # mla r11, r7, r6, r11
    b(s_single)
    label(s_triples)
    data(2, 0xF8DE, 0xC020)  # ldr.w r12, [lr, #_TRIPBYTES]
    data(2, 0x448C)  # add r12, r1
    data(2, 0x4561)  # cmp r1, r12
    beq(group_done)
    label(s_triple)
    data(2, 0xC97C)  # ldm r1!, {r2, r3, r4, r5, r6} (tap offset, four weights)
    data(2, 0x5687)  # ldrsb r7, [r0, r2] (the one input byte of the four channels)
    data(2, 0xFB07, 0x8803)  # mla r8, r7, r3, r8
    data(2, 0xFB07, 0x9904)  # mla r9, r7, r4, r9
    data(2, 0xFB07, 0xAA05)  # mla r10, r7, r5, r10
    data(2, 0xFB07, 0xBB06)  # mla r11, r7, r6, r11
    data(2, 0xC97C)  # ldm r1!, {r2, r3, r4, r5, r6} (tap offset, four weights)
    data(2, 0x5687)  # ldrsb r7, [r0, r2] (the one input byte of the four channels)
    data(2, 0xFB07, 0x8803)  # mla r8, r7, r3, r8
    data(2, 0xFB07, 0x9904)  # mla r9, r7, r4, r9
    data(2, 0xFB07, 0xAA05)  # mla r10, r7, r5, r10
    data(2, 0xFB07, 0xBB06)  # mla r11, r7, r6, r11
    data(2, 0xC97C)  # ldm r1!, {r2, r3, r4, r5, r6} (tap offset, four weights)
    data(2, 0x5687)  # ldrsb r7, [r0, r2] (the one input byte of the four channels)
    data(2, 0xFB07, 0x8803)  # mla r8, r7, r3, r8
    data(2, 0xFB07, 0x9904)  # mla r9, r7, r4, r9
    data(2, 0xFB07, 0xAA05)  # mla r10, r7, r5, r10
    data(2, 0xFB07, 0xBB06)  # mla r11, r7, r6, r11
    data(2, 0x4561)  # cmp r1, r12
    bne(s_triple)
    label(group_done)
    data(2, 0xF8CE, 0x1050)  # str.w r1, [lr, #_RECCUR]
    data(2, 0xF10E, 0x0C60)  # add.w r12, lr, #_ACC
    data(2, 0xE88C, 0x0F00)  # stm.w r12, {r8, r9, r10, r11}
    # requantize min(OCLEFT, 4) channels: r1 y, r2 r3 r6-r9 record (C, M, half,
    # right | left << 8, LO, HI: record()), r4 left, r10 y_zp, r11 record walk, r12 accumulator
    # walk
    data(2, 0xF8DE, 0x0058)  # ldr.w r0, [lr, #_OCLEFT]
    data(2, 0x1F01)  # subs r1, r0, #4
    data(2, 0xF8CE, 0x1058)  # str.w r1, [lr, #_OCLEFT]
    data(2, 0x2804)  # cmp r0, #4
    data(2, 0xBFC8)  # it gt
    data(2, 0x2004)  # movgt r0, #4
    data(2, 0xF8DE, 0x105C)  # ldr.w r1, [lr, #_YCUR]
    data(2, 0x4408)  # add r0, r1
    data(2, 0xF8CE, 0x0070)  # str.w r0, [lr, #_QEND]
    data(2, 0xF8DE, 0xA030)  # ldr.w r10, [lr, #_YZP]
    data(2, 0xF8DE, 0xB054)  # ldr.w r11, [lr, #_QCUR]
    label(rq_loop)
    data(2, 0xE8BB, 0x03CC)  # ldm r11!, {r2, r3, r6, r7, r8, r9}
    data(2, 0xF85C, 0x0B04)  # ldr r0, [r12], #4
    data(2, 0x4410)  # add r0, r2 (acc)
    data(2, 0x4540)  # cmp r0, r8
    ble(rq_min)
    data(2, 0x4548)  # cmp r0, r9
    bge(rq_max)
    data(2, 0x0A3C)  # lsrs r4, r7, #8 (left)
    data(2, 0x40A0)  # lsls r0, r0, r4
    data(2, 0xFB80, 0x2403)  # smull r2, r4, r0, r3
    data(2, 0xF112, 0x4280)  # adds.w r2, r2, #0x40000000
    data(2, 0xF144, 0x0400)  # adc r4, r4, #0
    data(2, 0x0064)  # lsls r4, r4, #1
    data(2, 0xEA44, 0x70D2)  # orr.w r0, r4, r2, lsr #31 (s = SRDHM(acc << left, M))
    data(2, 0x2E00)  # cmp r6, #0 (half = 0 exactly when right = 0)
    data(2, 0xBF18)  # it ne
    data(2, 0xEB00, 0x70E0)  # addne.w r0, r0, r0, asr #31 (s - 1 for s < 0, right > 0)
    data(2, 0x4430)  # add r0, r6
    data(2, 0x4138)  # asrs r0, r0, r7 (RoundingDivideByPOT(s, right): r7's low byte)
    data(2, 0x4450)  # add r0, r10 (+ y_zp: LO < acc < HI, so act_min < y < act_max)
    b(rq_put)
    label(rq_min)
    data(2, 0xF8DE, 0x0034)  # ldr.w r0, [lr, #_AMIN]
    b(rq_put)
    label(rq_max)
    data(2, 0xF8DE, 0x0038)  # ldr.w r0, [lr, #_AMAX]
    label(rq_put)
    data(2, 0xF801, 0x0B01)  # strb r0, [r1], #1
    data(2, 0xF8DE, 0x2070)  # ldr.w r2, [lr, #_QEND]
    data(2, 0x4291)  # cmp r1, r2
    bne(rq_loop)
    data(2, 0xF8CE, 0xB054)  # str.w r11, [lr, #_QCUR]
    data(2, 0xF8CE, 0x105C)  # str.w r1, [lr, #_YCUR]
    data(2, 0xF8DE, 0x0058)  # ldr.w r0, [lr, #_OCLEFT]
    data(2, 0x2800)  # cmp r0, #0
    ble(pixel_next)
    b(group_loop)
    label(pixel_next)
    data(2, 0xF8DE, 0x0044)  # ldr.w r0, [lr, #_XPIX]
    data(2, 0xF8DE, 0x1008)  # ldr.w r1, [lr, #_COLSTEP]
    data(2, 0x4408)  # add r0, r1
    data(2, 0xF8CE, 0x0044)  # str.w r0, [lr, #_XPIX]
    data(2, 0xF8DE, 0x0048)  # ldr.w r0, [lr, #_COLSLEFT]
    data(2, 0x3801)  # subs r0, #1
    data(2, 0xF8CE, 0x0048)  # str.w r0, [lr, #_COLSLEFT]
    b(pixel_loop)
    label(row_next)
    data(2, 0xF8DE, 0x003C)  # ldr.w r0, [lr, #_ROWCUR]
    data(2, 0xF8DE, 0x1004)  # ldr.w r1, [lr, #_ROWSTEP]
    data(2, 0x4408)  # add r0, r1
    data(2, 0xF8CE, 0x003C)  # str.w r0, [lr, #_ROWCUR]
    data(2, 0xF8DE, 0x005C)  # ldr.w r0, [lr, #_YCUR]
    data(2, 0xF8DE, 0x1078)  # ldr.w r1, [lr, #_YROW]
    data(2, 0x4408)  # add r0, r1
    data(2, 0xF8CE, 0x005C)  # str.w r0, [lr, #_YCUR]
    data(2, 0xF8DE, 0x0040)  # ldr.w r0, [lr, #_ROWSLEFT]
    data(2, 0x3801)  # subs r0, #1
    data(2, 0xF8CE, 0x0040)  # str.w r0, [lr, #_ROWSLEFT]
    b(row_loop)
    label(done)
    data(2, 0xE8BD, 0x0F00)  # pop.w {r8, r9, r10, r11}
    data(2, 0x2000)  # movs r0, #0
