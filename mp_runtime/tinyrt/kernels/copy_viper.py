# Viper twin of kernels.copy.copy_moves (same signature, same results): the moves' 4-D boxes
# copied byte by byte with the strides prepare checked (every element inside its tensor).
# moves is an array('i') of 16 ints per move, read as two little-endian ptr16 halves (strides
# may be negative: the high half sign-corrected). Offsets and strides are < 2^24.
import micropython


@micropython.viper
def copy_moves(xs, ys, moves: ptr16, n: int):
    m = 0
    for _ in range(n):
        v = ptr16(int(moves) + 4 * m)
        x = ptr8(xs[(v[1] << 16) + v[0]])
        y = ptr8(ys[(v[3] << 16) + v[2]])
        xo = (((v[5] ^ 0x8000) - 0x8000) << 16) + v[4]
        yo = (((v[7] ^ 0x8000) - 0x8000) << 16) + v[6]
        d0 = (v[9] << 16) + v[8]
        d1 = (v[11] << 16) + v[10]
        d2 = (v[13] << 16) + v[12]
        d3 = (v[15] << 16) + v[14]
        s0 = (((v[17] ^ 0x8000) - 0x8000) << 16) + v[16]
        s1 = (((v[19] ^ 0x8000) - 0x8000) << 16) + v[18]
        s2 = (((v[21] ^ 0x8000) - 0x8000) << 16) + v[20]
        s3 = (((v[23] ^ 0x8000) - 0x8000) << 16) + v[22]
        t0 = (((v[25] ^ 0x8000) - 0x8000) << 16) + v[24]
        t1 = (((v[27] ^ 0x8000) - 0x8000) << 16) + v[26]
        t2 = (((v[29] ^ 0x8000) - 0x8000) << 16) + v[28]
        t3 = (((v[31] ^ 0x8000) - 0x8000) << 16) + v[30]
        for i0 in range(d0):
            for i1 in range(d1):
                for i2 in range(d2):
                    p = xo + i0 * s0 + i1 * s1 + i2 * s2
                    q = yo + i0 * t0 + i1 * t1 + i2 * t2
                    if s3 == 1 and t3 == 1:
                        e = q + d3
                        while q < e:
                            y[q] = x[p]
                            p += 1
                            q += 1
                    else:
                        for _ in range(d3):
                            y[q] = x[p]
                            p += s3
                            q += t3
        m += 16
