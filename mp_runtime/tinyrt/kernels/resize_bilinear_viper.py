# Viper twin of kernels.resize_bilinear.resize_bilinear (same signature, same results).
# int8 values are read as unsigned bytes, (u ^ 0x80) - 128. rows / cols are array('i') triples
# (lo, hi, d) read as two little-endian ptr16 halves, d sign-corrected (it may be negative with
# half_pixel_centers). Bounds (int32 machine words on 32-bit boards): |s| and its partial sums
# <= 128 (|1024 - dy| + |dy|) (|1024 - dx| + |dx|) < 2^30, checked by the converter and prepare.
import micropython


@micropython.viper
def resize_bilinear(x: ptr8, y: ptr8, n: int, h: int, w: int, c: int, oh: int, ow: int,
                    rows: ptr16, cols: ptr16):
    q = 0
    wc = w * c
    for b in range(n):
        base = b * h * wc
        for oy in range(oh):
            r = 6 * oy  # ptr16 index of row oy's triple
            ly = base + ((rows[r + 1] << 16) + rows[r]) * wc
            hy = base + ((rows[r + 3] << 16) + rows[r + 2]) * wc
            dy = (((rows[r + 5] ^ 0x8000) - 0x8000) << 16) + rows[r + 4]
            ay = 1024 - dy
            for ox in range(ow):
                t = 6 * ox
                lx = ((cols[t + 1] << 16) + cols[t]) * c
                hx = ((cols[t + 3] << 16) + cols[t + 2]) * c
                dx = (((cols[t + 5] ^ 0x8000) - 0x8000) << 16) + cols[t + 4]
                ax = 1024 - dx
                p00 = ly + lx
                p10 = hy + lx
                p01 = ly + hx
                p11 = hy + hx
                for k in range(c):
                    s = ((((x[p00 + k] ^ 0x80) - 128) * ay + ((x[p10 + k] ^ 0x80) - 128) * dy)
                         * ax + (((x[p01 + k] ^ 0x80) - 128) * ay
                                 + ((x[p11 + k] ^ 0x80) - 128) * dy) * dx)
                    if s > 0:
                        y[q] = (s + 524288) >> 20
                    else:
                        y[q] = 0 - ((524288 - s) >> 20)
                    q += 1
