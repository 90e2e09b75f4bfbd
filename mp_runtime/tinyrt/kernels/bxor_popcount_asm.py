# ruff: noqa: F821
# (asm_thumb bodies name registers, labels and instructions that are not Python names)
# Cortex-M (armv6m Thumb) xor-popcount of bit-packed rows (tinyrt.bitpack's convention):
#   acc[c] = popcount(src XOR w_c) over nw 32-bit words, for n consecutive rows w_c,
# the accumulation of the binary layers (kernels.bconv / bfully_connected; the output
# transform stays in Python). Both rows must be 4-byte aligned (packed rows are whole words;
# prepare checks the buffers' addresses, the M0 faults on an unaligned ldr).
#
# Popcount of x = a XOR b without a popcount instruction (SWAR, masks built in registers):
#   x - ((x >> 1) & 0x55555555)            2-bit counts
#   (x & 0x33333333) + ((x >> 2) & 0x33333333)   4-bit counts (<= 4)
# two words' 4-bit counts are added (<= 8), folded to bytes ((v & 0x0F0F0F0F) +
# ((v >> 4) & 0x0F0F0F0F), <= 16) and summed by one multiply: (v * 0x01010101) >> 24 (<= 64).
# Four words (128 binary MACs) per loop iteration: 62 instructions, 0.484 per binary MAC.
import micropython

from micropython import const
from ..buffers import int32_zeros

_SRC = const(0)  # params block (array('i')), byte offsets: address of the source row
_WCUR = const(4)  # address of the next weight row (rows consecutive)
_NW = const(8)  # words per row
_N = const(12)  # rows left
_ACCP = const(16)  # where the next accumulator goes (int32)
N_PARAMS = 5


@micropython.asm_thumb
def xor_popcount_rows(r0):
    # r0 source walk, r1 weight walk, r2 r3 words, r4 scratch, r5 r6 r7 masks 0x55.., 0x33..,
    # 0x0F..; r8 0x01010101, r9 accumulator, r10 end of the source row, r11 params.
    mov(r1, r8)
    mov(r2, r9)
    mov(r3, r10)
    mov(r4, r11)
    push({r1, r2, r3, r4})
    mov(r11, r0)
    mov(r5, 0x55)
    lsl(r4, r5, 8)
    orr(r5, r4)
    lsl(r4, r5, 16)
    orr(r5, r4)
    mov(r6, 0x33)
    lsl(r4, r6, 8)
    orr(r6, r4)
    lsl(r4, r6, 16)
    orr(r6, r4)
    mov(r7, 0x0F)
    lsl(r4, r7, 8)
    orr(r7, r4)
    lsl(r4, r7, 16)
    orr(r7, r4)
    mov(r2, 0x01)
    lsl(r4, r2, 8)
    orr(r2, r4)
    lsl(r4, r2, 16)
    orr(r2, r4)
    mov(r8, r2)
    label(row)
    mov(r2, r11)
    ldr(r3, [r2, _N])
    cmp(r3, 0)
    bne(row_start)
    b(done)
    label(row_start)
    sub(r3, 1)
    str(r3, [r2, _N])
    ldr(r0, [r2, _SRC])
    ldr(r1, [r2, _WCUR])
    ldr(r3, [r2, _NW])
    mov(r4, 0)
    mov(r9, r4)
    lsl(r4, r3, 30)
    beq(quads)
    label(single)  # nw % 4 words one at a time
    ldr(r2, [r0, 0])
    ldr(r4, [r1, 0])
    eor(r2, r4)
    lsr(r4, r2, 1)
    and_(r4, r5)
    sub(r2, r2, r4)
    lsr(r4, r2, 2)
    and_(r4, r6)
    and_(r2, r6)
    add(r2, r2, r4)
    lsr(r4, r2, 4)
    add(r2, r2, r4)
    and_(r2, r7)
    mov(r4, r8)
    mul(r2, r4)
    lsr(r2, r2, 24)
    data(2, 0x4491)  # add r9, r2
    add(r0, 4)
    add(r1, 4)
    sub(r3, 1)
    lsl(r4, r3, 30)
    bne(single)
    label(quads)
    lsl(r3, r3, 2)
    add(r3, r3, r0)
    mov(r10, r3)
    cmp(r0, r3)
    beq(row_done)
    label(quad)
    ldr(r2, [r0, 0])
    ldr(r4, [r1, 0])
    eor(r2, r4)
    ldr(r3, [r0, 4])
    ldr(r4, [r1, 4])
    eor(r3, r4)
    lsr(r4, r2, 1)
    and_(r4, r5)
    sub(r2, r2, r4)
    lsr(r4, r3, 1)
    and_(r4, r5)
    sub(r3, r3, r4)
    lsr(r4, r2, 2)
    and_(r4, r6)
    and_(r2, r6)
    add(r2, r2, r4)
    lsr(r4, r3, 2)
    and_(r4, r6)
    and_(r3, r6)
    add(r3, r3, r4)
    add(r2, r2, r3)  # 4-bit counts of both words (each <= 8)
    lsr(r4, r2, 4)
    and_(r4, r7)
    and_(r2, r7)
    add(r2, r2, r4)  # byte counts (each <= 16)
    mov(r4, r8)
    mul(r2, r4)
    lsr(r2, r2, 24)  # popcount of the two words
    data(2, 0x4491)  # add r9, r2
    ldr(r2, [r0, 8])
    ldr(r4, [r1, 8])
    eor(r2, r4)
    ldr(r3, [r0, 12])
    ldr(r4, [r1, 12])
    eor(r3, r4)
    lsr(r4, r2, 1)
    and_(r4, r5)
    sub(r2, r2, r4)
    lsr(r4, r3, 1)
    and_(r4, r5)
    sub(r3, r3, r4)
    lsr(r4, r2, 2)
    and_(r4, r6)
    and_(r2, r6)
    add(r2, r2, r4)
    lsr(r4, r3, 2)
    and_(r4, r6)
    and_(r3, r6)
    add(r3, r3, r4)
    add(r2, r2, r3)  # 4-bit counts of both words (each <= 8)
    lsr(r4, r2, 4)
    and_(r4, r7)
    and_(r2, r7)
    add(r2, r2, r4)  # byte counts (each <= 16)
    mov(r4, r8)
    mul(r2, r4)
    lsr(r2, r2, 24)  # popcount of the two words
    data(2, 0x4491)  # add r9, r2
    add(r0, 16)
    add(r1, 16)
    data(2, 0x4550)  # cmp r0, r10
    bne(quad)
    label(row_done)
    mov(r2, r11)
    str(r1, [r2, _WCUR])
    ldr(r3, [r2, _ACCP])
    mov(r4, r9)
    str(r4, [r3, 0])
    add(r3, 4)
    str(r3, [r2, _ACCP])
    b(row)
    label(done)
    pop({r1, r2, r3, r4})
    mov(r8, r1)
    mov(r9, r2)
    mov(r10, r3)
    mov(r11, r4)
    mov(r0, 0)


def xor_popcount(src, w, words, rows, acc, p=None):
    """acc[c] = popcount(src XOR row c of w) for rows rows of `words` words (src, w: packed
    int8 buffers, 4-byte aligned; acc: array('i') of rows). p: a params block to reuse."""
    if p is None:
        p = int32_zeros(N_PARAMS)
    p[0] = address_of_words(src)
    p[1] = address_of_words(w)
    p[2] = words
    p[3] = rows
    p[4] = address_of_words(acc)
    xor_popcount_rows(p)


@micropython.asm_thumb
def address_of_words(r0):
    nop()
