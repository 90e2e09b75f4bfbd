# ruff: noqa: F821
# (asm_thumb bodies name registers, labels and instructions that are not Python names)
# Cortex-M (armv6m Thumb) twin of BFULLY_CONNECTED's kernel (kernels.bconv.bconv2d with a 1x1
# filter on 1x1 images, as kernels.bfully_connected calls it): same results to the bit.
# Only ARM firmware compiles @micropython.asm_thumb (tinyrt.fast selects this module there);
# the machine code is tested and counted on the host in Unicorn (tests/test_asm.py).
#
# Per row of x: one asm call (bxor_popcount_asm.xor_popcount_rows) computes
#   acc[c] = popcount(x_row XOR w_c) for all n_out weight rows (0.484 instructions per binary
# MAC in its 4-word loop), then the output transform of kernels.bconv runs here in Python over
# the n_out accumulators (thresholds -> packed bits, int8 steps by binary search, int8 table),
# exactly as the reference does it. Packed rows are whole 32-bit words; the asm loop needs x
# and w 4-byte aligned (the M0 faults on an unaligned ldr): prepare() returns None otherwise.
import micropython

from ..bitpack import BIT
from .bxor_popcount_asm import N_PARAMS, xor_popcount_rows
from ..buffers import int32_zeros


@micropython.asm_thumb
def address_of(r0):
    # the buffer's address (asm arguments that support the buffer protocol pass their data)
    nop()


class BFullyConnectedAsm:
    """Prepared once at load (params block, accumulators); bconv2d() has the reference
    function's signature (bfully_connected passes its prepared buffers again)."""

    def __init__(self, x, w, y, rows, wb, n_out, n_in, ot, xa, wa):
        self.y = y
        self.rows = rows
        self.wb = wb
        self.n_out = n_out
        self.ot = ot
        self.xa = xa
        self.wa = wa
        self.acc = int32_zeros(n_out)
        self.p = int32_zeros(N_PARAMS)
        self.acca = address_of(self.acc)

    def bconv2d(self, x, w, y, scratch, pads, wpop, batches, in_h, in_w, wb, out_h, out_w,
                cout, kh, kw, sh, sw, dh, dw, pt, pl, zero_pad, cin, ot):
        p = self.p
        acc = self.acc
        y = self.y
        ot = self.ot
        wb = self.wb
        n = self.n_out
        words = wb >> 2
        mode = ot.mode
        bit = BIT
        thr = ot.thr
        start = ot.start
        count = ot.count
        base = ot.base
        dirs = ot.dir
        steps = ot.steps
        table = ot.table
        t_row = ot.table_row
        ybytes = ((n + 31) >> 5) << 2
        xa = self.xa
        yo = 0
        for _ in range(self.rows):
            p[0] = xa
            p[1] = self.wa
            p[2] = words
            p[3] = n
            p[4] = self.acca
            xor_popcount_rows(p)
            xa += wb
            if mode == 0:  # OUT_BITS: bit c = acc > thr[c]; the last word's unused bits 0
                yend = yo + ybytes
                v = 0
                for c in range(n):
                    if acc[c] > thr[c]:
                        v += bit[c & 7]
                    if (c & 7) == 7:
                        y[yo] = v
                        yo += 1
                        v = 0
                if n & 7:
                    y[yo] = v
                    yo += 1
                while yo < yend:
                    y[yo] = 0
                    yo += 1
            elif mode == 1:  # OUT_STEPS: base + dir * #{steps of c <= acc}
                for c in range(n):
                    a = acc[c]
                    lo = start[c]
                    hi = lo + count[c]
                    while lo < hi:
                        mid = (lo + hi) >> 1
                        if steps[mid] <= a:
                            lo = mid + 1
                        else:
                            hi = mid
                    y[yo] = base[c] + dirs[c] * (lo - start[c])
                    yo += 1
            else:  # OUT_TABLE: y = table[c, acc]
                t = 0
                for c in range(n):  # acc <= a_max unless padding bits are set: clamp
                    a = acc[c]
                    y[yo] = table[t + (a if a < t_row else t_row - 1)]
                    t += t_row
                    yo += 1

    bfully_connected = bconv2d


def prepare(x, w, y, rows, wb, n_out, n_in, ot):
    """The asm twin for a BFULLY_CONNECTED layer (x: rows of wb packed bytes, w: n_out rows),
    or None when its buffers are not word-aligned or it is empty."""
    if rows < 1 or n_out < 1 or wb < 4 or wb & 3:
        return None
    xa = address_of(x)
    wa = address_of(w)
    if (xa | wa) & 3:
        return None
    return BFullyConnectedAsm(x, w, y, rows, wb, n_out, n_in, ot, xa, wa)
