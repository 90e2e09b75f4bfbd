# ruff: noqa: F821
# (asm_thumb bodies name registers, labels and instructions that are not Python names)
# Cortex-M (armv6m Thumb, so one build serves M0+ and M33) twin of
# kernels.fully_connected.fully_connected: same results to the bit. Only ARM firmware compiles
# @micropython.asm_thumb (tinyrt.fast selects this module there); the machine code is tested
# and counted on the host in Unicorn (host_sim/cortexm.py, tests/test_asm.py).
#
# int8_rows (the core, also used by kernels.conv_asm): for each of `rows` input rows x_r of K
# int8 values and each output channel o:
#   acc = sum_k x_r[k] * w_o[k] + bias_o - x_zp * sum_k w_o[k]
#   y   = clamp(MultiplyByQuantizedMultiplier(acc, M_o, left_o, right_o) + y_zp)
# which is TFLM's acc = bias + sum (x - x_zp) * w with the zero point folded out of the loop.
# Operands are unsigned bytes, so every load has an immediate offset (armv6m's ldrsb has
# none): x' = x + 128 (a per-row pass writes x ^ 0x80 into a scratch row and sums it: SX),
# w' = w + 128 (a packed copy built at prepare, eight channels interleaved: wq[g][k][j] =
# w[8g + j][k] + 128; NOUT is a multiple of 8, else int8_rows4 runs). Then
#   sum x w = sum x' w' - 128 sum w - 128 SX        (sum w' = sum w + 128 K)
# so acc = P + C_o - 128 SX with P = sum x' w' (the loop) and C_o = bias_o - (x_zp + 128)
# sum w_o (the record). P wraps mod 2^32 only past K > 66051 (x' w' <= 65025); the words wrap
# but the true accumulator fits (|acc| < 2^30 >> left, the converter's bound), so it comes
# out exact.
# Loop: eight output channels per pass (accumulators r5-r7, r8-r12), each x' byte loaded once
# for all eight, 4 k per iteration with immediate offsets (x' at [r0, 0..3], w' at
# [r1, 0..31]): 104 instructions per 32 MACs = 3.25; K % 4 single steps after.
# Requantization in the same call (exact, 32-bit only, derivation at label rq).
# The inline assembler lacks ldrb-register, hi-register add and cmp: they are emitted with
# data(2, ...) (armv6m encodings, commented on each line).
import micropython

from micropython import const
from struct import pack_into

from ..fast import arch
from .requant_bounds import clamp_bounds_into
from ..buffers import int32_zeros

# params block (array('i')), byte offsets
_X = const(0)  # address of x row 0
_XSTEP = const(4)  # bytes from one x row to the next
_WQ = const(8)  # address of the packed weights (wq above)
_K = const(12)  # values per row (>= 1)
_NOUT = const(16)  # output channels
_REC = const(20)  # address of the records: 5 words per channel (C, mh, ml, left, right)
_Y = const(24)  # address of y row 0 (rows of NOUT int8 values, consecutive)
_ROWS = const(28)
_YZP = const(32)
_AMIN = const(36)
_AMAX = const(40)
_XS = const(44)  # address of the scratch row (K bytes)
_K4 = const(48)  # K - K % 4
_XCUR = const(52)  # scratch from here on, written by the kernel
_ROWSLEFT = const(56)
_YCUR = const(60)
_WCUR = const(64)
_RCUR = const(68)
_NLEFT = const(72)
_CORR = const(76)  # -128 SX of the current row
_ACCEND = const(80)
_ACC = const(84)  # 8 words
N_PARAMS = 29
P_X = const(0)  # word indices of the fields other kernels set between calls
P_Y = const(6)
P_ROWS = const(7)
GROUP = const(8)  # output channels per pass


@micropython.asm_thumb
def address_of(r0):
    # the buffer's address (asm arguments that support the buffer protocol pass their data)
    nop()


@micropython.asm_thumb
def int8_rows(r0):
    # r0: params block, kept in lr. Dot loop: r0 x' walk, r1 w' walk, r2 x', r3 product,
    # r4 end of x', r5-r7 and r8-r12 accumulators.
    mov(r1, r8)
    mov(r2, r9)
    mov(r3, r10)
    mov(r4, r11)
    push({r1, r2, r3, r4})  # r8-r11 are callee-saved (lr is restored by the epilogue)
    data(2, 0x4686)  # mov lr, r0
    ldr(r1, [r0, _X])
    str(r1, [r0, _XCUR])
    ldr(r1, [r0, _Y])
    str(r1, [r0, _YCUR])
    ldr(r1, [r0, _ROWS])
    str(r1, [r0, _ROWSLEFT])
    label(row_loop)
    data(2, 0x4673)  # mov r3, lr
    ldr(r0, [r3, _ROWSLEFT])
    cmp(r0, 0)
    bne(row_start)
    b(done)
    label(row_start)
    # x' = x ^ 0x80 into the scratch row, SX = sum x'
    ldr(r0, [r3, _XCUR])
    sub(r0, 1)
    ldr(r1, [r3, _XS])
    sub(r1, 1)
    ldr(r2, [r3, _K])
    mov(r4, 0)
    mov(r5, 0x80)
    label(pre)
    data(2, 0x5C86)  # ldrb r6, [r0, r2]
    eor(r6, r5)
    data(2, 0x548E)  # strb r6, [r1, r2]
    add(r4, r4, r6)
    sub(r2, 1)
    bne(pre)
    lsl(r4, r4, 7)
    neg(r4, r4)
    str(r4, [r3, _CORR])
    ldr(r0, [r3, _WQ])
    str(r0, [r3, _WCUR])
    ldr(r0, [r3, _REC])
    str(r0, [r3, _RCUR])
    ldr(r0, [r3, _NOUT])
    str(r0, [r3, _NLEFT])
    label(group_loop)
    data(2, 0x4673)  # mov r3, lr
    ldr(r0, [r3, _XS])
    ldr(r4, [r3, _K4])
    add(r4, r4, r0)
    ldr(r1, [r3, _WCUR])
    mov(r5, 0)
    mov(r6, 0)
    mov(r7, 0)
    mov(r8, r5)
    mov(r9, r5)
    mov(r10, r5)
    mov(r11, r5)
    mov(r12, r5)
    cmp(r0, r4)
    beq(rem)
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
    label(rem)
    data(2, 0x4673)  # mov r3, lr
    ldr(r4, [r3, _XS])
    ldr(r3, [r3, _K])
    add(r4, r4, r3)
    cmp(r0, r4)
    beq(dot_done)
    label(single)  # K % 4 single steps
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
    add(r0, 1)
    add(r1, 8)
    cmp(r0, r4)
    bne(single)
    label(dot_done)
    data(2, 0x4673)  # mov r3, lr
    str(r1, [r3, _WCUR])
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
    ldr(r2, [r3, _NLEFT])
    mov(r4, r2)
    sub(r4, GROUP)
    str(r4, [r3, _NLEFT])  # <= 0 after the row's last group
    cmp(r2, GROUP)
    ble(count_ok)
    mov(r2, GROUP)
    label(count_ok)
    lsl(r2, r2, 2)
    add(r2, r2, r0)
    str(r2, [r3, _ACCEND])
    ldr(r2, [r3, _YZP])
    mov(r9, r2)
    ldr(r2, [r3, _AMIN])
    mov(r10, r2)
    ldr(r2, [r3, _AMAX])
    mov(r11, r2)
    ldr(r2, [r3, _CORR])
    mov(r12, r2)
    ldr(r1, [r3, _RCUR])
    ldr(r7, [r3, _YCUR])
    label(rq)
    # MultiplyByQuantizedMultiplier(acc, M, left, right), exact in 32-bit words:
    #   a = acc << left, |a| < 2^30 (converter bound); M = mh * 2^15 + ml (mh < 2^16, ml < 2^15)
    #   a1 = a >> 15 (|a1| <= 2^15), a0 = a & 0x7FFF; h = a1*mh (|h| < 2^31), p = a1*ml
    #   (|p| < 2^30), q = a0*mh (0 <= q < 2^31), r = a0*ml (< 2^30).
    #   SRDHM(a, M) = floor((a*M + 2^30) / 2^31) (gemmlowp's nudge with truncation toward 0
    #   is this floor for either sign) = floor((h + f) / 2) with
    #   f = floor((p + q + floor(r / 2^15) + 2^15) / 2^15)
    #     = (p >> 15) + (q >> 15) + ((p & 0x7FFF) + (q & 0x7FFF) + (r >> 15) >> 15) + 1
    #   (inner sum < 2^17); |h + f| < 2^31 because |SRDHM| < 2^30.
    #   RoundingDivideByPOT(s, right) = (s + ((2^right + (s >> 31)) >> 1)) >> right (ties away
    #   from zero; right <= 30, |s| + 2^29 < 2^31).
    # r0 acc, r1 record (C, mh, ml, left, right), r7 y, r8 accumulator walk, r9 y_zp,
    # r10 act_min, r11 act_max, r12 -128 SX; r2-r6 scratch.
    mov(r2, r8)
    ldr(r0, [r2, 0])
    add(r2, 4)
    mov(r8, r2)
    ldr(r2, [r1, 0])
    add(r0, r0, r2)
    data(2, 0x4460)  # add r0, r12: acc
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
    add(r1, 20)
    data(2, 0x444A)  # add r2, r9: + y_zp
    data(2, 0x4552)  # cmp r2, r10
    bge(above_min)
    mov(r2, r10)
    label(above_min)
    data(2, 0x455A)  # cmp r2, r11
    ble(below_max)
    mov(r2, r11)
    label(below_max)
    strb(r2, [r7, 0])
    add(r7, 1)
    data(2, 0x4673)  # mov r3, lr
    ldr(r3, [r3, _ACCEND])
    mov(r2, r8)
    cmp(r2, r3)
    bne(rq)
    data(2, 0x4673)  # mov r3, lr
    str(r1, [r3, _RCUR])
    str(r7, [r3, _YCUR])
    ldr(r0, [r3, _NLEFT])
    cmp(r0, 0)
    ble(row_next)
    b(group_loop)
    label(row_next)
    ldr(r0, [r3, _XCUR])
    ldr(r1, [r3, _XSTEP])
    add(r0, r0, r1)
    str(r0, [r3, _XCUR])
    ldr(r0, [r3, _ROWSLEFT])
    sub(r0, 1)
    str(r0, [r3, _ROWSLEFT])
    b(row_loop)
    label(done)
    pop({r1, r2, r3, r4})
    mov(r8, r1)
    mov(r9, r2)
    mov(r10, r3)
    mov(r11, r4)
    mov(r0, 0)


# int8_rows4's scratch fields (its block shares _X .. _AMAX with int8_rows'; _X4W at _WQ)
_X4W = const(8)
_O_WCUR = const(44)
_O_NLEFT = const(48)
_O_RCUR = const(52)
_O_YCUR = const(56)
_O_XCUR = const(60)
_O_ROWSLEFT = const(64)


@micropython.asm_thumb
def int8_rows4(r0):
    # the four-channel kernel (fewer than GROUP channels: no padded channels, no weight copy):
    # original weights at _X4W, records (bias - x_zp sum w, M, left, right)
    # r0: params block. Register use in the loops: r0 k, r1 x-1, r2-r5 w rows -1, r6 x[k],
    # r7 product, r8-r11 accumulators, r12 params.
    mov(r1, r8)
    mov(r2, r9)
    mov(r3, r10)
    mov(r4, r11)
    push({r1, r2, r3, r4})  # r8-r11 are callee-saved
    mov(r12, r0)
    ldr(r1, [r0, _X])
    str(r1, [r0, _O_XCUR])
    ldr(r1, [r0, _Y])
    str(r1, [r0, _O_YCUR])
    ldr(r1, [r0, _ROWS])
    str(r1, [r0, _O_ROWSLEFT])
    label(row_loop)
    mov(r7, r12)
    ldr(r1, [r7, _O_ROWSLEFT])
    cmp(r1, 0)
    bne(row_start)
    b(done)
    label(row_start)
    ldr(r1, [r7, _X4W])
    str(r1, [r7, _O_WCUR])
    ldr(r1, [r7, _NOUT])
    str(r1, [r7, _O_NLEFT])
    ldr(r1, [r7, _REC])
    str(r1, [r7, _O_RCUR])
    label(group_loop)
    mov(r7, r12)
    ldr(r0, [r7, _K])
    ldr(r1, [r7, _O_XCUR])
    sub(r1, 1)
    ldr(r2, [r7, _O_WCUR])
    sub(r2, 1)
    mov(r6, 0)
    mov(r8, r6)
    ldr(r6, [r7, _O_NLEFT])
    cmp(r6, 4)
    blt(single)
    add(r3, r2, r0)
    add(r4, r3, r0)
    add(r5, r4, r0)
    mov(r6, 0)
    mov(r9, r6)
    mov(r10, r6)
    mov(r11, r6)
    mov(r6, r0)
    lsl(r6, r6, 30)
    beq(quad_check)
    label(quad_pre)  # K % 4 single steps
    data(2, 0x560E)  # ldrsb r6, [r1, r0]
    data(2, 0x5617)  # ldrsb r7, [r2, r0]
    mul(r7, r6)
    data(2, 0x44B8)  # add r8, r7
    data(2, 0x561F)  # ldrsb r7, [r3, r0]
    mul(r7, r6)
    data(2, 0x44B9)  # add r9, r7
    data(2, 0x5627)  # ldrsb r7, [r4, r0]
    mul(r7, r6)
    data(2, 0x44BA)  # add r10, r7
    data(2, 0x562F)  # ldrsb r7, [r5, r0]
    mul(r7, r6)
    data(2, 0x44BB)  # add r11, r7
    sub(r0, 1)
    mov(r6, r0)
    lsl(r6, r6, 30)
    bne(quad_pre)
    label(quad_check)
    cmp(r0, 0)
    beq(quad_done)
    label(quad_loop)  # 4 steps of k, 4 channels each
    data(2, 0x560E)  # ldrsb r6, [r1, r0]
    data(2, 0x5617)  # ldrsb r7, [r2, r0]
    mul(r7, r6)
    data(2, 0x44B8)  # add r8, r7
    data(2, 0x561F)  # ldrsb r7, [r3, r0]
    mul(r7, r6)
    data(2, 0x44B9)  # add r9, r7
    data(2, 0x5627)  # ldrsb r7, [r4, r0]
    mul(r7, r6)
    data(2, 0x44BA)  # add r10, r7
    data(2, 0x562F)  # ldrsb r7, [r5, r0]
    mul(r7, r6)
    data(2, 0x44BB)  # add r11, r7
    sub(r0, 1)
    data(2, 0x560E)  # ldrsb r6, [r1, r0]
    data(2, 0x5617)  # ldrsb r7, [r2, r0]
    mul(r7, r6)
    data(2, 0x44B8)  # add r8, r7
    data(2, 0x561F)  # ldrsb r7, [r3, r0]
    mul(r7, r6)
    data(2, 0x44B9)  # add r9, r7
    data(2, 0x5627)  # ldrsb r7, [r4, r0]
    mul(r7, r6)
    data(2, 0x44BA)  # add r10, r7
    data(2, 0x562F)  # ldrsb r7, [r5, r0]
    mul(r7, r6)
    data(2, 0x44BB)  # add r11, r7
    sub(r0, 1)
    data(2, 0x560E)  # ldrsb r6, [r1, r0]
    data(2, 0x5617)  # ldrsb r7, [r2, r0]
    mul(r7, r6)
    data(2, 0x44B8)  # add r8, r7
    data(2, 0x561F)  # ldrsb r7, [r3, r0]
    mul(r7, r6)
    data(2, 0x44B9)  # add r9, r7
    data(2, 0x5627)  # ldrsb r7, [r4, r0]
    mul(r7, r6)
    data(2, 0x44BA)  # add r10, r7
    data(2, 0x562F)  # ldrsb r7, [r5, r0]
    mul(r7, r6)
    data(2, 0x44BB)  # add r11, r7
    sub(r0, 1)
    data(2, 0x560E)  # ldrsb r6, [r1, r0]
    data(2, 0x5617)  # ldrsb r7, [r2, r0]
    mul(r7, r6)
    data(2, 0x44B8)  # add r8, r7
    data(2, 0x561F)  # ldrsb r7, [r3, r0]
    mul(r7, r6)
    data(2, 0x44B9)  # add r9, r7
    data(2, 0x5627)  # ldrsb r7, [r4, r0]
    mul(r7, r6)
    data(2, 0x44BA)  # add r10, r7
    data(2, 0x562F)  # ldrsb r7, [r5, r0]
    mul(r7, r6)
    data(2, 0x44BB)  # add r11, r7
    sub(r0, 1)
    bne(quad_loop)
    label(quad_done)
    mov(r6, r12)
    ldr(r1, [r6, _O_RCUR])
    ldr(r7, [r6, _O_YCUR])
    mov(r0, r8)
    bl(rq)
    mov(r0, r9)
    bl(rq)
    mov(r0, r10)
    bl(rq)
    mov(r0, r11)
    bl(rq)
    mov(r0, 4)
    b(advance)
    label(single)  # fewer than 4 channels left: one at a time
    data(2, 0x560E)  # ldrsb r6, [r1, r0]
    data(2, 0x5617)  # ldrsb r7, [r2, r0]
    mul(r7, r6)
    data(2, 0x44B8)  # add r8, r7
    sub(r0, 1)
    bne(single)
    mov(r6, r12)
    ldr(r1, [r6, _O_RCUR])
    ldr(r7, [r6, _O_YCUR])
    mov(r0, r8)
    bl(rq)
    mov(r0, 1)
    label(advance)  # r0 channels done: WCUR += r0 * K, NLEFT -= r0
    mov(r6, r12)
    str(r1, [r6, _O_RCUR])
    str(r7, [r6, _O_YCUR])
    ldr(r1, [r6, _K])
    mul(r1, r0)
    ldr(r2, [r6, _O_WCUR])
    add(r2, r2, r1)
    str(r2, [r6, _O_WCUR])
    ldr(r1, [r6, _O_NLEFT])
    sub(r1, r1, r0)
    str(r1, [r6, _O_NLEFT])
    cmp(r1, 0)
    beq(row_next)
    b(group_loop)
    label(row_next)
    mov(r7, r12)
    ldr(r0, [r7, _O_XCUR])
    ldr(r1, [r7, _XSTEP])
    add(r0, r0, r1)
    str(r0, [r7, _O_XCUR])
    ldr(r0, [r7, _O_ROWSLEFT])
    sub(r0, 1)
    str(r0, [r7, _O_ROWSLEFT])
    b(row_loop)
    label(rq)
    # one output: r0 the dot product, r1 its record (C, M, left, right, LO, HI), r7 y;
    # r1 += 24, r7 += 1; r2-r6 scratch (r8-r11, r12 kept). MultiplyByQuantizedMultiplier(acc,
    # M, left, right), exact in 32-bit words:
    #   a = acc << left, |a| < 2^30 (converter bound); M = mh * 2^15 + ml (mh < 2^16, ml < 2^15)
    #   a1 = a >> 15 (|a1| <= 2^15), a0 = a & 0x7FFF; h = a1*mh (|h| < 2^31), p = a1*ml
    #   (|p| < 2^30), q = a0*mh (0 <= q < 2^31), r = a0*ml (< 2^30).
    #   SRDHM(a, M) = floor((a*M + 2^30) / 2^31) (gemmlowp's nudge with truncation toward 0
    #   is this floor for either sign) = floor((h + f) / 2) with
    #   f = floor((p + q + floor(r / 2^15) + 2^15) / 2^15)
    #     = (p >> 15) + (q >> 15) + ((p & 0x7FFF) + (q & 0x7FFF) + (r >> 15) >> 15) + 1
    #   (inner sum < 2^17); |h + f| < 2^31 because |SRDHM| < 2^30.
    #   RoundingDivideByPOT(s, right) = (s + ((2^right + (s >> 31)) >> 1)) >> right (ties away
    #   from zero; right <= 30, |s| + 2^29 < 2^31).
    ldr(r2, [r1, 0])
    add(r0, r0, r2)  # acc
    ldr(r2, [r1, 16])
    cmp(r0, r2)
    ble(rq_min)  # acc <= LO: act_min without the multiply (see clamp_bounds)
    ldr(r2, [r1, 20])
    cmp(r0, r2)
    bge(rq_max)  # acc >= HI: act_max
    ldr(r2, [r1, 8])
    lsl(r0, r2)  # a = acc << left
    ldr(r3, [r1, 4])  # M
    asr(r4, r0, 15)  # a1
    lsl(r5, r0, 17)
    lsr(r5, r5, 17)  # a0
    lsr(r6, r3, 15)  # mh
    lsl(r3, r3, 17)
    lsr(r3, r3, 17)  # ml
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
    ldr(r6, [r1, 12])  # right
    mov(r3, 1)
    lsl(r3, r6)
    asr(r4, r2, 31)
    add(r3, r3, r4)
    asr(r3, r3, 1)
    add(r2, r2, r3)
    asr(r2, r6)  # RoundingDivideByPOT(s, right)
    mov(r3, r12)
    ldr(r3, [r3, _YZP])
    add(r2, r2, r3)  # LO < acc < HI: act_min < y < act_max, no clamp
    label(rq_put)
    strb(r2, [r7, 0])
    add(r7, 1)
    add(r1, 24)
    bx(lr)
    label(rq_min)
    mov(r2, r12)
    ldr(r2, [r2, _AMIN])
    b(rq_put)
    label(rq_max)
    mov(r2, r12)
    ldr(r2, [r2, _AMAX])
    b(rq_put)
    label(done)
    pop({r1, r2, r3, r4})
    mov(r8, r1)
    mov(r9, r2)
    mov(r10, r3)
    mov(r11, r4)
    mov(r0, 0)


def wrap32(v):
    """v as a signed 32-bit word (two's complement wrap)."""
    v &= 0xFFFFFFFF
    return v - 0x100000000 if v & 0x80000000 else v


def store_multiplier(rec, j, m_hi, m_lo):
    """rec[j] = M = m_hi 2^15 + m_lo (2^30 <= M < 2^31), written as two 16-bit halves: M is a
    heap long on a 32-bit port, garbage between a layer's tables if it were made."""
    pack_into("<HH", rec, 4 * j, ((m_hi & 1) << 15) | m_lo, m_hi >> 1)


class Rows:
    """What one int8_rows call reads, built once at prepare: the packed weights (wq), the
    per-channel records, the scratch row and the params block p (addresses taken now: this
    object keeps the buffers alive); run is the kernel to call with p. Weight RAM: n_out * k
    bytes. Layers whose n_out is not a multiple of GROUP (padded channels would waste loop
    work and RAM, e.g. FC 4000 -> 4) run int8_rows4 on the original weights instead, and so
    do all layers when copy is False: a model whose weights are streamed or used in place from
    flash keeps them out of RAM (Model.mode)."""

    def __init__(self, x, x_step, w, k, n_out, bias, x_zp, m_hi, m_lo, left, right, y, rows,
                 y_zp, act_min, act_max, copy=True):
        p = int32_zeros(N_PARAMS)
        self.wq = self.xs = None
        if n_out % GROUP or not copy:
            self.run = int8_rows4
            rec = int32_zeros(6 * n_out)
            for o in range(n_out):
                s = 0
                for i in range(o * k, (o + 1) * k):
                    s += w[i]
                rec[6 * o] = wrap32(bias[o] - x_zp * s)
                store_multiplier(rec, 6 * o + 1, m_hi[o], m_lo[o])
                rec[6 * o + 2] = left[o]
                rec[6 * o + 3] = right[o]
                clamp_bounds_into(rec, 6 * o + 4, m_hi[o], m_lo[o], left[o], right[o], y_zp,
                                  act_min, act_max)
            p[_X4W >> 2] = address_of(w)
        else:
            self.run = int8_rows
            wq = bytearray(n_out * k)
            rec = int32_zeros(5 * n_out)
            for o in range(n_out):
                base = (o // GROUP) * GROUP * k + o % GROUP
                s = 0
                row = o * k
                for i in range(k):
                    v = w[row + i]
                    s += v
                    wq[base + GROUP * i] = v + 128
                rec[5 * o] = wrap32(bias[o] - (x_zp + 128) * s)
                rec[5 * o + 1] = m_hi[o]
                rec[5 * o + 2] = m_lo[o]
                rec[5 * o + 3] = left[o]
                rec[5 * o + 4] = right[o]
            xs = bytearray(k)
            p[_WQ >> 2] = address_of(wq)
            p[_XS >> 2] = address_of(xs)
            p[_K4 >> 2] = k - k % 4
            self.wq, self.xs = wq, xs
        p[_X >> 2] = address_of(x)
        p[_XSTEP >> 2] = x_step
        p[_K >> 2] = k
        p[_NOUT >> 2] = n_out
        p[_REC >> 2] = address_of(rec)
        p[_Y >> 2] = address_of(y)
        p[_ROWS >> 2] = rows
        p[_YZP >> 2] = y_zp
        p[_AMIN >> 2] = act_min
        p[_AMAX >> 2] = act_max
        self.rec, self.p = rec, p


def rows(x, x_step, w, k, n_out, bias, x_zp, m_hi, m_lo, left, right, y, rows_, y_zp,
         act_min, act_max, copy=True, whole=False):
    """The int8 rows kernel for this firmware and layer: on armv7m and later (Thumb-2) the
    two-rows-per-multiply kernel of kernels.armv7m_rows_asm (no weight copy; its pair row
    costs 4 K bytes, so K <= MAX_K), else Rows (armv6m). whole: the call takes all the layer's
    rows at once (a 1x1 conv), so with the weights left in place the armv6m eight-channel
    kernel of kernels.rows_group_asm may take them (its checks: rows_ok)."""
    if arch[0] >= 5 and k <= 1024:
        from .armv7m_rows_asm import Pairs

        return Pairs(x, x_step, w, k, n_out, bias, x_zp, m_hi, m_lo, left, right, y, rows_,
                     y_zp, act_min, act_max)
    if whole and not copy and x_step == k:
        from .rows_group_asm import Groups, rows_ok

        if rows_ok(x, k, n_out, y, rows_):
            return Groups(x, w, k, n_out, bias, x_zp, m_hi, m_lo, left, right, y, rows_, y_zp,
                          act_min, act_max)
    return Rows(x, x_step, w, k, n_out, bias, x_zp, m_hi, m_lo, left, right, y, rows_, y_zp,
                act_min, act_max, copy)


class FullyConnectedAsm:
    """Prepared once at load (packed weights, records, params block); fully_connected() has
    the reference function's signature and runs the whole layer in one asm call."""

    def __init__(self, x, w, bias, y, batches, n_in, n_out, x_zp, y_zp, m_hi, m_lo, left,
                 right, act_min, act_max, copy=True):
        self.rows = rows(x, n_in, w, n_in, n_out, bias, x_zp, m_hi, m_lo, left, right, y,
                         batches, y_zp, act_min, act_max, copy)
        self.p = self.rows.p
        self.run = self.rows.run

    def fully_connected(self, x, w, bias, y, batches, n_in, n_out, x_zp, y_zp, m_hi, m_lo,
                        left, right, act_min, act_max):
        self.run(self.p)


def prepare(x, w, bias, y, batches, n_in, n_out, x_zp, y_zp, m_hi, m_lo, left, right,
            act_min, act_max, copy=True):
    """copy: the weights may be copied into RAM (repacked for the faster kernel)."""
    if n_in < 1:
        return None
    return FullyConnectedAsm(x, w, bias, y, batches, n_in, n_out, x_zp, y_zp, m_hi, m_lo,
                             left, right, act_min, act_max, copy)


if arch[0] >= 5:  # imported with this module (tinyrt.fast.preload), not between big buffers
    from . import armv7m_rows_asm  # noqa: F401
