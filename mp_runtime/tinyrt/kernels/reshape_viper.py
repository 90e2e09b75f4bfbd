# Viper twin of kernels.reshape.reshape (same signature, same results): the copy of n int8
# values, by 32-bit words when both buffers are 4-byte aligned (ptr32 loads on unaligned
# addresses fault on Cortex-M0 and Xtensa), then by bytes. A word is copied as a bit pattern:
# the sign of a ptr32 load (zero-extended on the unix port, sign-extended on 32-bit boards)
# does not matter to a ptr32 store, which keeps the low 32 bits.
import micropython


@micropython.viper
def reshape(x: ptr8, y: ptr8, n: int):
    xa = int(x)
    ya = int(y)
    i = 0
    if ((xa | ya) & 3) == 0:
        xw = ptr32(xa)
        yw = ptr32(ya)
        nw = n >> 2
        k = 0
        while k < nw:
            yw[k] = xw[k]
            k += 1
        i = nw << 2
    while i < n:
        y[i] = x[i]
        i += 1
