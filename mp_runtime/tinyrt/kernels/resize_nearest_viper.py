# Viper twin of kernels.resize_nearest.resize_nearest (same signature, same results): byte
# copies; rows / cols are array('i') source indices (non-negative, < 2^16 * 2^16), read as two
# little-endian ptr16 halves.
import micropython


@micropython.viper
def resize_nearest(x: ptr8, y: ptr8, n: int, h: int, w: int, c: int, oh: int, ow: int,
                   rows: ptr16, cols: ptr16):
    q = 0
    wc = w * c
    for b in range(n):
        base = b * h * wc
        for oy in range(oh):
            row = base + ((rows[2 * oy + 1] << 16) + rows[2 * oy]) * wc
            for ox in range(ow):
                p = row + ((cols[2 * ox + 1] << 16) + cols[2 * ox]) * c
                e = p + c
                while p < e:
                    y[q] = x[p]
                    p += 1
                    q += 1
