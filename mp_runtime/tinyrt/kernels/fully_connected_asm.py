# ruff: noqa: F821
# (asm_thumb bodies name registers, labels and instructions that are not Python names)
# Cortex-M (armv6m Thumb, so one build serves M0+ and M33) twin of
# kernels.fully_connected.fully_connected: same results to the bit. Only ARM firmware compiles
# @micropython.asm_thumb (tinyrt.fast selects this module there); the machine code is tested
# and counted on the host in Unicorn (host_sim/cortexm.py, tests/test_asm.py).
#
# int8_rows (the core, also used by kernels.conv_asm): for each of `rows` input rows x_r of K
# int8 values and each output channel o (weights w_o: K int8 values, rows of w consecutive):
#   acc = sum_k x_r[k] * w_o[k] + rec_o.bias       (rec_o.bias = bias_o - x_zp * sum_k w_o[k])
#   y   = clamp(MultiplyByQuantizedMultiplier(acc, rec_o.M, rec_o.left, rec_o.right) + y_zp)
# which is TFLM's acc = bias + sum (x - x_zp) * w with the zero point folded out of the loop:
# the loop multiplies raw int8 values, sign-extended by ldrsb. The words wrap mod 2^32 but the
# true accumulator fits (|acc| < 2^30 >> left, the converter's bound), so it comes out exact.
# Loop: four output channels at once (accumulators in r8-r11), x loaded once per k for all
# four, k counting down (ldrsb [base, k] addresses x and the four weight rows), 4x unrolled:
# 57 instructions per 16 MACs. The inline assembler lacks ldrsb-register and hi-register add:
# they are emitted with data(2, ...) (armv6m encodings, commented on each line).
# Requantization in the same call (exact, 32-bit only, derivation at _requant below).
import micropython
from array import array

from micropython import const

# params block (array('i')), byte offsets
_X = const(0)  # address of x row 0
_XSTEP = const(4)  # bytes from one x row to the next
_W = const(8)  # address of w row 0 (channel 0)
_K = const(12)  # values per row (>= 1)
_NOUT = const(16)  # output channels
_REC = const(20)  # address of the records: 4 words per channel (bias', M, left, right)
_Y = const(24)  # address of y row 0 (rows of NOUT int8 values, consecutive)
_ROWS = const(28)
_YZP = const(32)
_AMIN = const(36)
_AMAX = const(40)
_WCUR = const(44)  # scratch from here on, written by the kernel
_NLEFT = const(48)
_RCUR = const(52)
_YCUR = const(56)
_XCUR = const(60)
_ROWSLEFT = const(64)
_ACC = const(68)  # 4 words
_NACC = const(84)
_AIDX = const(88)
N_PARAMS = 23
P_X = const(0)  # word indices of the fields other kernels set between calls
P_Y = const(6)
P_ROWS = const(7)


@micropython.asm_thumb
def address_of(r0):
    # the buffer's address (asm arguments that support the buffer protocol pass their data)
    nop()


@micropython.asm_thumb
def int8_rows(r0):
    # r0: params block. Register use in the loops: r0 k, r1 x-1, r2-r5 w rows -1, r6 x[k],
    # r7 product, r8-r11 accumulators, r12 params.
    mov(r1, r8)
    mov(r2, r9)
    mov(r3, r10)
    mov(r4, r11)
    push({r1, r2, r3, r4})  # r8-r11 are callee-saved
    mov(r12, r0)
    ldr(r1, [r0, _X])
    str(r1, [r0, _XCUR])
    ldr(r1, [r0, _Y])
    str(r1, [r0, _YCUR])
    ldr(r1, [r0, _ROWS])
    str(r1, [r0, _ROWSLEFT])
    label(row_loop)
    mov(r7, r12)
    ldr(r1, [r7, _ROWSLEFT])
    cmp(r1, 0)
    bne(row_start)
    b(done)
    label(row_start)
    ldr(r1, [r7, _W])
    str(r1, [r7, _WCUR])
    ldr(r1, [r7, _NOUT])
    str(r1, [r7, _NLEFT])
    ldr(r1, [r7, _REC])
    str(r1, [r7, _RCUR])
    label(group_loop)
    mov(r7, r12)
    ldr(r0, [r7, _K])
    ldr(r1, [r7, _XCUR])
    sub(r1, 1)
    ldr(r2, [r7, _WCUR])
    sub(r2, 1)
    mov(r6, 0)
    str(r6, [r7, _AIDX])
    mov(r8, r6)
    ldr(r6, [r7, _NLEFT])
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
    mov(r7, r12)
    mov(r0, r8)
    str(r0, [r7, _ACC])
    mov(r0, r9)
    str(r0, [r7, _ACC + 4])
    mov(r0, r10)
    str(r0, [r7, _ACC + 8])
    mov(r0, r11)
    str(r0, [r7, _ACC + 12])
    mov(r0, 4)
    str(r0, [r7, _NACC])
    b(advance)
    label(single)  # fewer than 4 channels left: one at a time
    data(2, 0x560E)  # ldrsb r6, [r1, r0]
    data(2, 0x5617)  # ldrsb r7, [r2, r0]
    mul(r7, r6)
    data(2, 0x44B8)  # add r8, r7
    sub(r0, 1)
    bne(single)
    mov(r7, r12)
    mov(r0, r8)
    str(r0, [r7, _ACC])
    mov(r0, 1)
    str(r0, [r7, _NACC])
    label(advance)  # WCUR += NACC * K, NLEFT -= NACC
    ldr(r0, [r7, _NACC])
    ldr(r1, [r7, _K])
    mul(r1, r0)
    ldr(r2, [r7, _WCUR])
    add(r2, r2, r1)
    str(r2, [r7, _WCUR])
    ldr(r1, [r7, _NLEFT])
    sub(r1, r1, r0)
    str(r1, [r7, _NLEFT])
    label(requant)
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
    mov(r7, r12)
    ldr(r0, [r7, _NACC])
    cmp(r0, 0)
    bne(rq_one)
    b(rq_done)
    label(rq_one)
    sub(r0, 1)
    str(r0, [r7, _NACC])
    ldr(r1, [r7, _AIDX])
    add(r0, r1, 4)
    str(r0, [r7, _AIDX])
    add(r1, r1, r7)
    ldr(r0, [r1, _ACC])
    ldr(r1, [r7, _RCUR])
    ldr(r2, [r1, 0])
    add(r0, r0, r2)  # acc
    ldr(r2, [r1, 8])
    lsl(r0, r2)  # a = acc << left
    ldr(r3, [r1, 4])  # M
    asr(r4, r0, 15)  # a1
    lsl(r5, r0, 17)
    lsr(r5, r5, 17)  # a0
    lsr(r6, r3, 15)  # mh
    lsl(r3, r3, 17)
    lsr(r3, r3, 17)  # ml
    mov(r7, r4)
    mul(r7, r6)  # h
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
    add(r7, r7, r3)
    asr(r7, r7, 1)  # s = SRDHM(a, M)
    ldr(r2, [r1, 12])  # right
    mov(r3, 1)
    lsl(r3, r2)
    asr(r4, r7, 31)
    add(r3, r3, r4)
    asr(r3, r3, 1)
    add(r7, r7, r3)
    asr(r7, r2)  # RoundingDivideByPOT(s, right)
    add(r1, 16)
    mov(r6, r12)
    str(r1, [r6, _RCUR])
    ldr(r2, [r6, _YZP])
    add(r7, r7, r2)
    ldr(r2, [r6, _AMIN])
    cmp(r7, r2)
    bge(above_min)
    mov(r7, r2)
    label(above_min)
    ldr(r2, [r6, _AMAX])
    cmp(r7, r2)
    ble(below_max)
    mov(r7, r2)
    label(below_max)
    ldr(r2, [r6, _YCUR])
    strb(r7, [r2, 0])
    add(r2, 1)
    str(r2, [r6, _YCUR])
    b(requant)
    label(rq_done)
    ldr(r0, [r7, _NLEFT])
    cmp(r0, 0)
    beq(row_next)
    b(group_loop)
    label(row_next)
    ldr(r0, [r7, _XCUR])
    ldr(r1, [r7, _XSTEP])
    add(r0, r0, r1)
    str(r0, [r7, _XCUR])
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


def wrap32(v):
    """v as a signed 32-bit word (two's complement wrap)."""
    v &= 0xFFFFFFFF
    return v - 0x100000000 if v & 0x80000000 else v


def records(w, bias, n_in, n_out, x_zp, m_hi, m_lo, left, right):
    """The per-channel records int8_rows reads: (bias - x_zp * sum(w_o), M, left, right)."""
    rec = array("i", [0] * (4 * n_out))
    for o in range(n_out):
        s = 0
        for i in range(o * n_in, (o + 1) * n_in):
            s += w[i]
        rec[4 * o] = wrap32(bias[o] - x_zp * s)
        rec[4 * o + 1] = (m_hi[o] << 15) | m_lo[o]
        rec[4 * o + 2] = left[o]
        rec[4 * o + 3] = right[o]
    return rec


def params(x, x_step, w, k, n_out, rec, y, rows, y_zp, act_min, act_max):
    """The params block of one int8_rows call (addresses taken now: the buffers must stay
    alive, which the kernel objects holding them ensure)."""
    p = array("i", [0] * N_PARAMS)
    p[_X >> 2] = address_of(x)
    p[_XSTEP >> 2] = x_step
    p[_W >> 2] = address_of(w)
    p[_K >> 2] = k
    p[_NOUT >> 2] = n_out
    p[_REC >> 2] = address_of(rec)
    p[_Y >> 2] = address_of(y)
    p[_ROWS >> 2] = rows
    p[_YZP >> 2] = y_zp
    p[_AMIN >> 2] = act_min
    p[_AMAX >> 2] = act_max
    return p


class FullyConnectedAsm:
    """Prepared once at load (tables, params block); fully_connected() has the reference
    function's signature and runs the whole layer in one asm call."""

    def __init__(self, x, w, bias, y, batches, n_in, n_out, x_zp, y_zp, m_hi, m_lo, left,
                 right, act_min, act_max):
        self.rec = records(w, bias, n_in, n_out, x_zp, m_hi, m_lo, left, right)
        self.p = params(x, n_in, w, n_in, n_out, self.rec, y, batches, y_zp, act_min,
                        act_max)

    def fully_connected(self, x, w, bias, y, batches, n_in, n_out, x_zp, y_zp, m_hi, m_lo,
                        left, right, act_min, act_max):
        int8_rows(self.p)


def prepare(x, w, bias, y, batches, n_in, n_out, x_zp, y_zp, m_hi, m_lo, left, right,
            act_min, act_max):
    if n_in < 1:
        return None
    return FullyConnectedAsm(x, w, bias, y, batches, n_in, n_out, x_zp, y_zp, m_hi, m_lo,
                             left, right, act_min, act_max)
