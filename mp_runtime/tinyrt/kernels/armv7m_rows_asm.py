# ruff: noqa: F821
# (asm_thumb bodies name registers, labels and instructions that are not Python names)
# armv7m (Cortex-M3/M4/M7/M33: Thumb-2) twin of kernels.fully_connected_asm's int8 rows core,
# chosen there (rows()) when the firmware's arch (tinyrt.fast.arch, sys.implementation._mpy)
# is armv7m or later; the M0 keeps the armv6m kernels. Same results to the bit.
#
# Two input rows share each multiply: a pre-pass writes the pair row
#   xs[k] = xa[k] + xb[k] * 2^22        (a signed word, |xb 2^22| <= 2^29)
# and SMLAL (32x32 -> 64-bit multiply-accumulate, one instruction) adds w[k] * xs[k] into a
# 64-bit sum per output channel, so the sum is A + B * 2^22 with A = sum xa w (row a) and
# B = sum xb w (row b). |xa w| <= 2^14, so over at most 127 k |A| <= 127 * 2^14 < 2^21 and A
# is the low 22 bits sign-extended (SBFX); B = (sum - A) >> 22 exactly (64-bit). The k loop
# is cut into chunks of <= 127 (the K % 4 single steps plus 124), each drained into two int32
# sums per channel. Three channels per pass (six 64-bit sums in r5-r10), weights read from
# the original int8 rows with post-increment loads: per k 7 instructions for 6 MACs.
# One row left (or an FC with one batch): row b = row a, its outputs are not stored.
# acc = sum + C, C = bias - x_zp sum w (TFLM's acc = bias + sum (x - x_zp) w).
# Requantization, exact (TFLM's MultiplyByQuantizedMultiplier), with SMULL:
#   a = acc << left (wraps as TFLM's int32 product); SRDHM(a, M) = floor((a M + 2^30) / 2^31)
#   (gemmlowp's nudge with truncation toward zero is this floor for either sign; see
#   fully_connected_asm) = the 64-bit product + 2^30, shifted right 31: (hi << 1) | (lo >> 31);
#   RoundingDivideByPOT(s, right) = (s + half + (mask & (s >> 31))) >> right with
#   half = 2^(right-1), mask = -1 (right >= 1), or half = mask = 0 (right = 0): the M0's
#   (s + ((2^right + (s >> 31)) >> 1)) >> right without its shifts. Then + y_zp. Before all
#   that, acc <= LO or acc >= HI (kernels.requant_bounds) stores act_min / act_max at once,
#   and between them no clamp is needed: ~19 instructions per output, 8 for a clamped one
#   (the M0 needs ~55 for the 32x32 -> 64 product).
# The inline assembler has none of these Thumb-2 instructions (nor does it assemble them for
# armv6m, and the module must compile there too): each is emitted with data(2, ...), its
# assembly text beside it (encodings from an assembler for thumbv7m).
import micropython

from micropython import const

from .fully_connected_asm import address_of, store_multiplier, wrap32
from .requant_bounds import clamp_bounds_into
from ..buffers import int32_zeros

# params block (array('i')), byte offsets; _X, _Y and _ROWS sit where int8_rows has them
# (fully_connected_asm.P_X, P_Y, P_ROWS: kernels.conv_asm sets them between calls)
_X = const(0)  # address of x row 0
_XSTEP = const(4)  # bytes from one x row to the next
_TRI = const(8)  # address of the triple table: (valid channels, 3 weight row addresses)
_K = const(12)
_NOUT = const(16)
_REC = const(20)  # address of the records: 8 words per channel (record() below)
_Y = const(24)
_ROWS = const(28)
_YZP = const(32)
_AMIN = const(36)
_AMAX = const(40)
_XS = const(44)  # address of the pair row (K words)
_NTRI = const(48)
_K1B = const(52)  # 4 * (K % 4)
_XSEND = const(56)  # _XS + 4 K
N_PARAMS = 30  # 60 .. 116: the kernel's own fields (cursors, six int32 sums)
_CHUNK = const(124)  # k per chunk after the first's K % 4 single steps (<= 127 in all)
MAX_K = 1024  # the pair row costs 4 K bytes of RAM


@micropython.asm_thumb
def int8_pairs(r0):
    data(2, 0xE92D, 0x0F00)  # push.w {r8, r9, r10, r11} (r8-r11 are callee-saved)
    data(2, 0x4686)  # mov lr, r0 (lr: params block)
    data(2, 0xF8DE, 0x1000)  # ldr.w r1, [lr, #_X]
    data(2, 0xF8CE, 0x103C)  # str.w r1, [lr, #_XCUR]
    data(2, 0xF8DE, 0x1018)  # ldr.w r1, [lr, #_Y]
    data(2, 0xF8CE, 0x1044)  # str.w r1, [lr, #_YCUR]
    data(2, 0xF8DE, 0x101C)  # ldr.w r1, [lr, #_ROWS]
    data(2, 0xF8CE, 0x1040)  # str.w r1, [lr, #_ROWSLEFT]
    label(pair_loop)
    data(2, 0xF8DE, 0x1040)  # ldr.w r1, [lr, #_ROWSLEFT]
    data(2, 0x2900)  # cmp r1, #0
    bne(pair_start)
    b(done)
    label(pair_start)
    # rows a and b (b = a when one row is left: computed, not stored)
    data(2, 0xF8DE, 0x203C)  # ldr.w r2, [lr, #_XCUR]
    data(2, 0x4613)  # mov r3, r2
    data(2, 0x2400)  # movs r4, #0
    data(2, 0x2902)  # cmp r1, #2
    blt(one_row)
    data(2, 0xF8DE, 0x3004)  # ldr.w r3, [lr, #_XSTEP]
    data(2, 0x4413)  # add r3, r2
    data(2, 0x2401)  # movs r4, #1
    label(one_row)
    data(2, 0xF8CE, 0x4048)  # str.w r4, [lr, #_BVALID]
    # the pair row: xs[k] = xa[k] + xb[k] * 2^22 (a signed word: |xb 2^22| <= 2^29)
    data(2, 0xF8DE, 0x002C)  # ldr.w r0, [lr, #_XS]
    data(2, 0xF8DE, 0x1038)  # ldr.w r1, [lr, #_XSEND]
    label(pre)
    data(2, 0xF912, 0x5B01)  # ldrsb r5, [r2], #1
    data(2, 0xF913, 0x6B01)  # ldrsb r6, [r3], #1
    data(2, 0xEB05, 0x5586)  # add.w r5, r5, r6, lsl #22
    data(2, 0xF840, 0x5B04)  # str r5, [r0], #4
    data(2, 0x4288)  # cmp r0, r1
    bne(pre)
    data(2, 0xF8DE, 0x1008)  # ldr.w r1, [lr, #_TRI]
    data(2, 0xF8CE, 0x104C)  # str.w r1, [lr, #_TCUR]
    data(2, 0xF8DE, 0x1030)  # ldr.w r1, [lr, #_NTRI]
    data(2, 0xF8CE, 0x1050)  # str.w r1, [lr, #_TLEFT]
    data(2, 0xF8DE, 0x1014)  # ldr.w r1, [lr, #_REC]
    data(2, 0xF8CE, 0x1054)  # str.w r1, [lr, #_RCUR]
    label(tri_loop)
    # a triple of channels: (valid count, three weight rows) from the table
    data(2, 0xF8DE, 0x404C)  # ldr.w r4, [lr, #_TCUR]
    data(2, 0xCC0F)  # ldm r4!, {r0, r1, r2, r3}
    data(2, 0xF8CE, 0x404C)  # str.w r4, [lr, #_TCUR]
    data(2, 0xF8CE, 0x0058)  # str.w r0, [lr, #_NVALID]
    data(2, 0x2400)  # movs r4, #0
    data(2, 0x2500)  # movs r5, #0
    data(2, 0xE9CE, 0x4518)  # strd r4, r5, [lr, #_S0]
    data(2, 0xE9CE, 0x451A)  # strd r4, r5, [lr, #_S2]
    data(2, 0xE9CE, 0x451C)  # strd r4, r5, [lr, #_S4]
    data(2, 0x2600)  # movs r6, #0
    data(2, 0x2700)  # movs r7, #0
    data(2, 0x46A0)  # mov r8, r4
    data(2, 0x46A1)  # mov r9, r4
    data(2, 0x46A2)  # mov r10, r4
    data(2, 0xF8DE, 0x002C)  # ldr.w r0, [lr, #_XS]
    data(2, 0xF8DE, 0x4034)  # ldr.w r4, [lr, #_K1B]
    data(2, 0x4404)  # add r4, r0
    # dot loop: r0 pair walk, r1-r3 weight rows, r4 end, (r5,r6) (r7,r8) (r9,r10) 64-bit sums,
    # r11 pair, r12 weight. K % 4 single steps first.
    label(single)
    data(2, 0x42A0)  # cmp r0, r4
    beq(chunk)
    data(2, 0xF850, 0xBB04)  # ldr r11, [r0], #4
    data(2, 0xF911, 0xCB01)  # ldrsb r12, [r1], #1
    data(2, 0xFBCC, 0x560B)  # smlal r5, r6, r12, r11
    data(2, 0xF912, 0xCB01)  # ldrsb r12, [r2], #1
    data(2, 0xFBCC, 0x780B)  # smlal r7, r8, r12, r11
    data(2, 0xF913, 0xCB01)  # ldrsb r12, [r3], #1
    data(2, 0xFBCC, 0x9A0B)  # smlal r9, r10, r12, r11
    b(single)
    label(chunk)
    # at most 124 more k per chunk: with the <= 3 singles, <= 127 products per field
    data(2, 0xF8DE, 0xC038)  # ldr.w r12, [lr, #_XSEND]
    data(2, 0xF500, 0x74F8)  # add.w r4, r0, #_CHUNK
    data(2, 0x4564)  # cmp r4, r12
    data(2, 0xBF88)  # it hi
    data(2, 0x4664)  # movhi r4, r12
    data(2, 0x42A0)  # cmp r0, r4
    beq(drain)
    label(quad)
    data(2, 0xF850, 0xBB04)  # ldr r11, [r0], #4
    data(2, 0xF911, 0xCB01)  # ldrsb r12, [r1], #1
    data(2, 0xFBCC, 0x560B)  # smlal r5, r6, r12, r11
    data(2, 0xF912, 0xCB01)  # ldrsb r12, [r2], #1
    data(2, 0xFBCC, 0x780B)  # smlal r7, r8, r12, r11
    data(2, 0xF913, 0xCB01)  # ldrsb r12, [r3], #1
    data(2, 0xFBCC, 0x9A0B)  # smlal r9, r10, r12, r11
    data(2, 0xF850, 0xBB04)  # ldr r11, [r0], #4
    data(2, 0xF911, 0xCB01)  # ldrsb r12, [r1], #1
    data(2, 0xFBCC, 0x560B)  # smlal r5, r6, r12, r11
    data(2, 0xF912, 0xCB01)  # ldrsb r12, [r2], #1
    data(2, 0xFBCC, 0x780B)  # smlal r7, r8, r12, r11
    data(2, 0xF913, 0xCB01)  # ldrsb r12, [r3], #1
    data(2, 0xFBCC, 0x9A0B)  # smlal r9, r10, r12, r11
    data(2, 0xF850, 0xBB04)  # ldr r11, [r0], #4
    data(2, 0xF911, 0xCB01)  # ldrsb r12, [r1], #1
    data(2, 0xFBCC, 0x560B)  # smlal r5, r6, r12, r11
    data(2, 0xF912, 0xCB01)  # ldrsb r12, [r2], #1
    data(2, 0xFBCC, 0x780B)  # smlal r7, r8, r12, r11
    data(2, 0xF913, 0xCB01)  # ldrsb r12, [r3], #1
    data(2, 0xFBCC, 0x9A0B)  # smlal r9, r10, r12, r11
    data(2, 0xF850, 0xBB04)  # ldr r11, [r0], #4
    data(2, 0xF911, 0xCB01)  # ldrsb r12, [r1], #1
    data(2, 0xFBCC, 0x560B)  # smlal r5, r6, r12, r11
    data(2, 0xF912, 0xCB01)  # ldrsb r12, [r2], #1
    data(2, 0xFBCC, 0x780B)  # smlal r7, r8, r12, r11
    data(2, 0xF913, 0xCB01)  # ldrsb r12, [r3], #1
    data(2, 0xFBCC, 0x9A0B)  # smlal r9, r10, r12, r11
    data(2, 0x42A0)  # cmp r0, r4
    bne(quad)
    label(drain)
    # sum = A + B 2^22 with |A| < 2^21: A = low 22 bits sign-extended, B = (sum - A) >> 22
    data(2, 0xF345, 0x0B15)  # sbfx r11, r5, #0, #22
    data(2, 0xEBB5, 0x050B)  # subs.w r5, r5, r11
    data(2, 0xEB66, 0x76EB)  # sbc.w r6, r6, r11, asr #31
    data(2, 0x0DAD)  # lsrs r5, r5, #22
    data(2, 0xEA45, 0x2686)  # orr.w r6, r5, r6, lsl #10
    data(2, 0xF8DE, 0xC060)  # ldr.w r12, [lr, #_S0]
    data(2, 0x44DC)  # add r12, r11
    data(2, 0xF8CE, 0xC060)  # str.w r12, [lr, #_S0]
    data(2, 0xF8DE, 0xC064)  # ldr.w r12, [lr, #_S1]
    data(2, 0x44B4)  # add r12, r6
    data(2, 0xF8CE, 0xC064)  # str.w r12, [lr, #_S1]
    data(2, 0xF347, 0x0B15)  # sbfx r11, r7, #0, #22
    data(2, 0xEBB7, 0x070B)  # subs.w r7, r7, r11
    data(2, 0xEB68, 0x78EB)  # sbc.w r8, r8, r11, asr #31
    data(2, 0x0DBF)  # lsrs r7, r7, #22
    data(2, 0xEA47, 0x2888)  # orr.w r8, r7, r8, lsl #10
    data(2, 0xF8DE, 0xC068)  # ldr.w r12, [lr, #_S2]
    data(2, 0x44DC)  # add r12, r11
    data(2, 0xF8CE, 0xC068)  # str.w r12, [lr, #_S2]
    data(2, 0xF8DE, 0xC06C)  # ldr.w r12, [lr, #_S3]
    data(2, 0x44C4)  # add r12, r8
    data(2, 0xF8CE, 0xC06C)  # str.w r12, [lr, #_S3]
    data(2, 0xF349, 0x0B15)  # sbfx r11, r9, #0, #22
    data(2, 0xEBB9, 0x090B)  # subs.w r9, r9, r11
    data(2, 0xEB6A, 0x7AEB)  # sbc.w r10, r10, r11, asr #31
    data(2, 0xEA4F, 0x5999)  # lsr.w r9, r9, #22
    data(2, 0xEA49, 0x2A8A)  # orr.w r10, r9, r10, lsl #10
    data(2, 0xF8DE, 0xC070)  # ldr.w r12, [lr, #_S4]
    data(2, 0x44DC)  # add r12, r11
    data(2, 0xF8CE, 0xC070)  # str.w r12, [lr, #_S4]
    data(2, 0xF8DE, 0xC074)  # ldr.w r12, [lr, #_S5]
    data(2, 0x44D4)  # add r12, r10
    data(2, 0xF8CE, 0xC074)  # str.w r12, [lr, #_S5]
    data(2, 0x2500)  # movs r5, #0
    data(2, 0x2600)  # movs r6, #0
    data(2, 0x2700)  # movs r7, #0
    data(2, 0x46A8)  # mov r8, r5
    data(2, 0x46A9)  # mov r9, r5
    data(2, 0x46AA)  # mov r10, r5
    data(2, 0xF8DE, 0xC038)  # ldr.w r12, [lr, #_XSEND]
    data(2, 0x4560)  # cmp r0, r12
    beq(requant)
    b(chunk)
    label(requant)
    # requantize the triple's valid channels, rows a and b: r1 y (row a), r2-r9 record
    # (C, M, left, mask, half, right, LO, HI), r10 y_zp, r11 record walk, r12 sums walk
    data(2, 0xF8DE, 0xA020)  # ldr.w r10, [lr, #_YZP]
    data(2, 0xF8DE, 0xB054)  # ldr.w r11, [lr, #_RCUR]
    data(2, 0xF10E, 0x0C60)  # add.w r12, lr, #_S0
    data(2, 0xF8DE, 0x1044)  # ldr.w r1, [lr, #_YCUR]
    data(2, 0xF8DE, 0x0058)  # ldr.w r0, [lr, #_NVALID]
    data(2, 0x4408)  # add r0, r1
    data(2, 0xF8CE, 0x005C)  # str.w r0, [lr, #_YEND]
    label(rq_loop)
    data(2, 0xE89B, 0x03FC)  # ldm.w r11, {r2, r3, r4, r5, r6, r7, r8, r9}
    data(2, 0xF85C, 0x0B04)  # ldr r0, [r12], #4
    data(2, 0x4410)  # add r0, r2 (acc)
    data(2, 0x4540)  # cmp r0, r8
    ble(rqa_min)
    data(2, 0x4548)  # cmp r0, r9
    bge(rqa_max)
    data(2, 0x40A0)  # lsls r0, r0, r4
    data(2, 0xFB80, 0x2403)  # smull r2, r4, r0, r3
    data(2, 0xF112, 0x4280)  # adds.w r2, r2, #0x40000000
    data(2, 0xF144, 0x0400)  # adc r4, r4, #0
    data(2, 0x0064)  # lsls r4, r4, #1
    data(2, 0xEA44, 0x70D2)  # orr.w r0, r4, r2, lsr #31 (s = SRDHM(acc << left, M))
    data(2, 0xEA05, 0x75E0)  # and.w r5, r5, r0, asr #31
    data(2, 0x4428)  # add r0, r5
    data(2, 0x4430)  # add r0, r6
    data(2, 0x4138)  # asrs r0, r0, r7 (RoundingDivideByPOT(s, right))
    data(2, 0x4450)  # add r0, r10 (+ y_zp: LO < acc < HI, so act_min < y < act_max)
    b(rqa_put)
    label(rqa_min)
    data(2, 0xF8DE, 0x0024)  # ldr.w r0, [lr, #_AMIN]
    b(rqa_put)
    label(rqa_max)
    data(2, 0xF8DE, 0x0028)  # ldr.w r0, [lr, #_AMAX]
    label(rqa_put)
    data(2, 0x7008)  # strb r0, [r1]
    data(2, 0xF8DE, 0x2048)  # ldr.w r2, [lr, #_BVALID]
    data(2, 0x2A00)  # cmp r2, #0
    beq(rq_b_done)
    data(2, 0xE89B, 0x03FC)  # ldm.w r11, {r2, r3, r4, r5, r6, r7, r8, r9}
    data(2, 0xF8DC, 0x0000)  # ldr.w r0, [r12]
    data(2, 0x4410)  # add r0, r2 (acc)
    data(2, 0x4540)  # cmp r0, r8
    ble(rqb_min)
    data(2, 0x4548)  # cmp r0, r9
    bge(rqb_max)
    data(2, 0x40A0)  # lsls r0, r0, r4
    data(2, 0xFB80, 0x2403)  # smull r2, r4, r0, r3
    data(2, 0xF112, 0x4280)  # adds.w r2, r2, #0x40000000
    data(2, 0xF144, 0x0400)  # adc r4, r4, #0
    data(2, 0x0064)  # lsls r4, r4, #1
    data(2, 0xEA44, 0x70D2)  # orr.w r0, r4, r2, lsr #31 (s = SRDHM(acc << left, M))
    data(2, 0xEA05, 0x75E0)  # and.w r5, r5, r0, asr #31
    data(2, 0x4428)  # add r0, r5
    data(2, 0x4430)  # add r0, r6
    data(2, 0x4138)  # asrs r0, r0, r7 (RoundingDivideByPOT(s, right))
    data(2, 0x4450)  # add r0, r10 (+ y_zp: LO < acc < HI, so act_min < y < act_max)
    b(rqb_put)
    label(rqb_min)
    data(2, 0xF8DE, 0x0024)  # ldr.w r0, [lr, #_AMIN]
    b(rqb_put)
    label(rqb_max)
    data(2, 0xF8DE, 0x0028)  # ldr.w r0, [lr, #_AMAX]
    label(rqb_put)
    data(2, 0xF8DE, 0x2010)  # ldr.w r2, [lr, #_NOUT]
    data(2, 0x5488)  # strb r0, [r1, r2]
    label(rq_b_done)
    data(2, 0xF10C, 0x0C04)  # add.w r12, r12, #4
    data(2, 0xF10B, 0x0B20)  # add.w r11, r11, #32
    data(2, 0x3101)  # adds r1, #1
    data(2, 0xF8DE, 0x205C)  # ldr.w r2, [lr, #_YEND]
    data(2, 0x4291)  # cmp r1, r2
    bne(rq_loop)
    data(2, 0xF8CE, 0xB054)  # str.w r11, [lr, #_RCUR]
    data(2, 0xF8CE, 0x1044)  # str.w r1, [lr, #_YCUR]
    data(2, 0xF8DE, 0x0050)  # ldr.w r0, [lr, #_TLEFT]
    data(2, 0x3801)  # subs r0, #1
    data(2, 0xF8CE, 0x0050)  # str.w r0, [lr, #_TLEFT]
    beq(pair_next)
    b(tri_loop)
    label(pair_next)
    # y of row a advanced by NOUT over the triples; skip row b's; x by one or two rows
    data(2, 0xF8DE, 0x0048)  # ldr.w r0, [lr, #_BVALID]
    data(2, 0xF8DE, 0x1010)  # ldr.w r1, [lr, #_NOUT]
    data(2, 0x4341)  # muls r1, r0, r1
    data(2, 0xF8DE, 0x2044)  # ldr.w r2, [lr, #_YCUR]
    data(2, 0x440A)  # add r2, r1
    data(2, 0xF8CE, 0x2044)  # str.w r2, [lr, #_YCUR]
    data(2, 0xF8DE, 0x1004)  # ldr.w r1, [lr, #_XSTEP]
    data(2, 0xF8DE, 0x203C)  # ldr.w r2, [lr, #_XCUR]
    data(2, 0x440A)  # add r2, r1
    data(2, 0x4341)  # muls r1, r0, r1
    data(2, 0x440A)  # add r2, r1
    data(2, 0xF8CE, 0x203C)  # str.w r2, [lr, #_XCUR]
    data(2, 0xF8DE, 0x1040)  # ldr.w r1, [lr, #_ROWSLEFT]
    data(2, 0x3901)  # subs r1, #1
    data(2, 0x1A09)  # subs r1, r1, r0
    data(2, 0xF8CE, 0x1040)  # str.w r1, [lr, #_ROWSLEFT]
    b(pair_loop)
    label(done)
    data(2, 0xE8BD, 0x0F00)  # pop.w {r8, r9, r10, r11}
    data(2, 0x2000)  # movs r0, #0


def record(rec, i, c, m_hi, m_lo, left, right, y_zp, act_min, act_max):
    """Write channel i's record (C, M, left, mask, half, right, LO, HI) the requantization
    reads: LO, HI of requant_bounds (acc <= LO gives act_min, acc >= HI act_max)."""
    rec[8 * i] = c
    store_multiplier(rec, 8 * i + 1, m_hi, m_lo)
    rec[8 * i + 2] = left
    rec[8 * i + 3] = -1 if right > 0 else 0
    rec[8 * i + 4] = (1 << (right - 1)) if right > 0 else 0
    rec[8 * i + 5] = right
    clamp_bounds_into(rec, 8 * i + 6, m_hi, m_lo, left, right, y_zp, act_min, act_max)


class Pairs:
    """What one int8_pairs call reads, built once at prepare (the records, the triple table,
    the pair row and the params block p; addresses taken now: this object keeps the buffers
    alive); run is the kernel to call with p. The weights stay where they are (no copy)."""

    def __init__(self, x, x_step, w, k, n_out, bias, x_zp, m_hi, m_lo, left, right, y, rows,
                 y_zp, act_min, act_max):
        rec = int32_zeros(8 * n_out)
        for o in range(n_out):
            s = 0
            for i in range(o * k, (o + 1) * k):
                s += w[i]
            record(rec, o, wrap32(bias[o] - x_zp * s), m_hi[o], m_lo[o], left[o], right[o],
                   y_zp, act_min, act_max)
        ntri = (n_out + 2) // 3
        tri = int32_zeros(4 * ntri)
        wa = address_of(w)
        for t in range(ntri):
            o = 3 * t
            tri[4 * t] = n_out - o if n_out - o < 3 else 3
            for j in range(3):  # a missing channel repeats the last one (not stored)
                tri[4 * t + 1 + j] = wa + k * (o + j if o + j < n_out else n_out - 1)
        xs = bytearray(4 * k)
        p = int32_zeros(N_PARAMS)
        p[_X >> 2] = address_of(x)
        p[_XSTEP >> 2] = x_step
        p[_TRI >> 2] = address_of(tri)
        p[_K >> 2] = k
        p[_NOUT >> 2] = n_out
        p[_REC >> 2] = address_of(rec)
        p[_Y >> 2] = address_of(y)
        p[_ROWS >> 2] = rows
        p[_YZP >> 2] = y_zp
        p[_AMIN >> 2] = act_min
        p[_AMAX >> 2] = act_max
        p[_XS >> 2] = address_of(xs)
        p[_NTRI >> 2] = ntri
        p[_K1B >> 2] = 4 * (k % 4)
        p[_XSEND >> 2] = address_of(xs) + 4 * k
        self.rec, self.tri, self.xs, self.p = rec, tri, xs, p
        self.run = int8_pairs
