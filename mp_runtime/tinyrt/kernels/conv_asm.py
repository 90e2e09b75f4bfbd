# ruff: noqa: F821
# (asm_thumb bodies name registers, labels and instructions that are not Python names)
# Cortex-M (armv6m Thumb) twin of kernels.conv.conv2d: same results to the bit.
#
# A 1x1, stride-1, unpadded convolution is a matrix product over the N*H*W pixel rows: one
# int8_rows call (kernels.fully_connected_asm) for the whole layer. Otherwise, per output row,
# im2col_row gathers each output pixel's whole receptive field (KH*KW*C int8 values, filter
# order, a tap in the padding filled with x_zp so that it adds (x_zp - x_zp) * w = 0) into a
# scratch row, and int8_rows multiplies those rows by every filter (K = KH*KW*C contiguous
# weights per output channel) and requantizes: two asm calls per block of whole output rows
# (as many as fit _ROWS_SCRATCH) or per chunk of a row.
import micropython

from micropython import const

from .fully_connected_asm import P_ROWS, P_Y, address_of, rows
from ..buffers import int32_zeros

# im2col_row params block (array('i')), byte offsets
_X0 = const(0)  # address of the batch's input image
_ROWTAB = const(4)  # address of NROWS x KH words: byte offset of each filter row's input
# row, or -1, per output row
_COLTAB = const(8)  # address of OW*KW words: byte offset of each tap's column, or -1
_OW = const(12)  # pixels to gather
_KH = const(16)
_KW = const(20)
_C = const(24)
_ZX = const(28)
_DST = const(32)
_COLCUR = const(36)  # scratch
_OXLEFT = const(40)
_NROWS = const(44)  # output rows to gather (consecutive in the destination)
_ROWCUR = const(48)  # scratch
N_GATHER = 13
_MAX_SCRATCH = const(4096)  # bytes of gathered rows per int8_rows call
_ROWS_SCRATCH = const(1024)  # bytes of gathered rows when one call takes several output rows


@micropython.asm_thumb
def im2col_row(r0):
    # r7 params, r6 destination, r4 column-table walk, r1 row-table walk, r3 input row address,
    # r9 filter rows left, r10 filter columns left.
    mov(r1, r8)
    mov(r2, r9)
    mov(r3, r10)
    mov(r4, r11)
    push({r1, r2, r3, r4})
    mov(r7, r0)
    ldr(r6, [r7, _DST])
    ldr(r0, [r7, _ROWTAB])
    str(r0, [r7, _ROWCUR])
    label(out_row)
    ldr(r0, [r7, _COLTAB])
    str(r0, [r7, _COLCUR])
    ldr(r0, [r7, _OW])
    str(r0, [r7, _OXLEFT])
    label(pixel)
    ldr(r0, [r7, _OXLEFT])
    cmp(r0, 0)
    beq(row_done)
    sub(r0, 1)
    str(r0, [r7, _OXLEFT])
    ldr(r1, [r7, _ROWCUR])
    ldr(r0, [r7, _KH])
    mov(r9, r0)
    label(filter_row)
    ldr(r3, [r1, 0])
    add(r1, 4)
    ldr(r4, [r7, _COLCUR])
    ldr(r0, [r7, _KW])
    mov(r10, r0)
    cmp(r3, 0)
    blt(fill_row)  # the whole filter row is in the padding
    ldr(r5, [r7, _X0])
    add(r3, r3, r5)  # address of the input row
    ldr(r0, [r7, _C])
    cmp(r0, 1)
    bne(tap)
    label(tap1)  # C == 1: one byte per tap
    ldr(r2, [r4, 0])
    add(r4, 4)
    cmp(r2, 0)
    blt(fill1)
    data(2, 0x5C9D)  # ldrb r5, [r3, r2]
    label(put1)
    strb(r5, [r6, 0])
    add(r6, 1)
    mov(r0, r10)
    sub(r0, 1)
    mov(r10, r0)
    bne(tap1)
    b(row_end)
    label(fill1)
    ldr(r5, [r7, _ZX])
    b(put1)
    label(tap)
    ldr(r2, [r4, 0])
    add(r4, 4)
    cmp(r2, 0)
    blt(fill)
    add(r2, r2, r3)
    sub(r2, 1)
    sub(r6, 1)
    ldr(r0, [r7, _C])
    label(copy)  # C bytes, r0 = C .. 1
    data(2, 0x5C15)  # ldrb r5, [r2, r0]
    data(2, 0x5435)  # strb r5, [r6, r0]
    sub(r0, 1)
    bne(copy)
    add(r6, 1)
    ldr(r0, [r7, _C])
    add(r6, r6, r0)
    b(next_tap)
    label(fill)
    ldr(r5, [r7, _ZX])
    ldr(r0, [r7, _C])
    label(fill_byte)
    strb(r5, [r6, 0])
    add(r6, 1)
    sub(r0, 1)
    bne(fill_byte)
    label(next_tap)
    mov(r0, r10)
    sub(r0, 1)
    mov(r10, r0)
    bne(tap)
    b(row_end)
    label(fill_row)  # KW * C bytes of x_zp; the column walk skips the row's KW words
    ldr(r5, [r7, _ZX])
    ldr(r0, [r7, _KW])
    lsl(r2, r0, 2)
    add(r4, r4, r2)
    ldr(r2, [r7, _C])
    mul(r0, r2)
    label(fill_row_byte)
    strb(r5, [r6, 0])
    add(r6, 1)
    sub(r0, 1)
    bne(fill_row_byte)
    label(row_end)
    mov(r0, r9)
    sub(r0, 1)
    mov(r9, r0)
    bne(filter_row)
    mov(r0, r4)  # the next pixel's columns follow this one's
    str(r0, [r7, _COLCUR])
    b(pixel)
    label(row_done)  # the next output row's KH words follow this one's
    ldr(r0, [r7, _KH])
    lsl(r0, r0, 2)
    ldr(r1, [r7, _ROWCUR])
    add(r1, r1, r0)
    str(r1, [r7, _ROWCUR])
    ldr(r0, [r7, _NROWS])
    sub(r0, 1)
    str(r0, [r7, _NROWS])
    bne(out_row)
    pop({r1, r2, r3, r4})
    mov(r8, r1)
    mov(r9, r2)
    mov(r10, r3)
    mov(r11, r4)
    mov(r0, 0)


class Conv2DAsm:
    """Prepared at load: packed weights and records (fully_connected_asm.Rows), gather
    tables and params blocks; conv2d() has the reference function's signature."""

    def __init__(self, x, w, bias, y, n, h, wd, c, out_c, kh, kw, sh, sw, dh, dw, pt, pl, oh,
                 ow, x_zp, y_zp, m_hi, m_lo, left, right, act_min, act_max, copy=True):
        k = kh * kw * c
        self.direct = kh == 1 and kw == 1 and sh == 1 and sw == 1 and pt == 0 and pl == 0 \
            and oh == h and ow == wd
        if self.direct:
            self.rows = rows(x, c, w, k, out_c, bias, x_zp, m_hi, m_lo, left, right, y,
                             n * h * wd, y_zp, act_min, act_max, copy, True)
            self.pd = self.rows.p
            self.run = self.rows.run
            return
        chunk = _MAX_SCRATCH // k
        chunk = 1 if chunk < 1 else (ow if chunk > ow else chunk)
        # whole output rows per int8_rows call while they fit _ROWS_SCRATCH bytes (fewer
        # calls; an even pixel count, so the armv7m kernel pairs every row)
        nrow = _ROWS_SCRATCH // (ow * k)
        nrow = oh if nrow > oh else nrow
        if nrow > 1 and nrow * ow % 2:
            nrow -= 1
        self.nrow = nrow if chunk == ow and nrow > 1 else 1
        self.chunk = chunk
        self.k = k
        self.scratch = bytearray(self.nrow * chunk * k)
        rowtab = int32_zeros(oh * kh)
        for oy in range(oh):
            for fy in range(kh):
                iy = oy * sh - pt + fy * dh
                rowtab[oy * kh + fy] = iy * wd * c if 0 <= iy < h else -1
        coltab = int32_zeros(ow * kw)
        for ox in range(ow):
            for fx in range(kw):
                ix = ox * sw - pl + fx * dw
                coltab[ox * kw + fx] = ix * c if 0 <= ix < wd else -1
        self.rowtab = rowtab
        self.coltab = coltab
        self.pg = int32_zeros(N_GATHER)
        pg = self.pg
        pg[3] = chunk
        pg[4] = kh
        pg[5] = kw
        pg[6] = c
        pg[7] = x_zp
        pg[8] = address_of(self.scratch)
        self.rows = rows(self.scratch, k, w, k, out_c, bias, x_zp, m_hi, m_lo, left, right, y,
                         chunk, y_zp, act_min, act_max, copy)
        self.pd = self.rows.p
        self.run = self.rows.run
        self.geom = (n, h * wd * c, oh, ow, kh, kw, out_c, address_of(x), address_of(y),
                     address_of(rowtab), address_of(coltab))

    def conv2d(self, x, w, bias, y, batches, x_batch, rows, cols, out_c, w_oc, x_fy, w_fy,
               x_fx, w_fx, x_zp, y_zp, m_hi, m_lo, left, right, act_min, act_max):
        pd = self.pd
        if self.direct:
            self.run(pd)
            return
        pg = self.pg
        n, x_batch, oh, ow, kh, kw, out_c, xa, ya, rowtab, coltab = self.geom
        chunk = self.chunk
        run = self.run
        yo = ya
        nrow = self.nrow
        if nrow > 1:  # several whole output rows per call
            pg[2] = coltab
            for b in range(n):
                pg[0] = xa + b * x_batch
                oy = 0
                while oy < oh:
                    m = oh - oy
                    if m > nrow:
                        m = nrow
                    pg[1] = rowtab + 4 * kh * oy
                    pg[11] = m  # _NROWS: one call gathers the m rows
                    im2col_row(pg)
                    pd[P_Y] = yo
                    pd[P_ROWS] = m * ow
                    run(pd)
                    yo += m * ow * out_c
                    oy += m
            return
        for b in range(n):
            pg[0] = xa + b * x_batch
            for oy in range(oh):
                pg[1] = rowtab + 4 * kh * oy
                ox = 0
                while ox < ow:
                    m = ow - ox
                    if m > chunk:
                        m = chunk
                    pg[2] = coltab + 4 * kw * ox
                    pg[3] = m
                    pg[11] = 1  # _NROWS
                    im2col_row(pg)
                    pd[P_Y] = yo
                    pd[P_ROWS] = m
                    run(pd)
                    yo += m * out_c
                    ox += m


def prepare(x, w, bias, y, n, h, wd, c, out_c, kh, kw, sh, sw, dh, dw, pt, pl, oh, ow, x_zp,
            y_zp, m_hi, m_lo, left, right, act_min, act_max, copy=True):
    """copy: the weights may be copied into RAM (repacked for the faster kernel)."""
    if kh * kw * c < 1:
        return None
    return Conv2DAsm(x, w, bias, y, n, h, wd, c, out_c, kh, kw, sh, sw, dh, dw, pt, pl, oh, ow,
                     x_zp, y_zp, m_hi, m_lo, left, right, act_min, act_max, copy)
