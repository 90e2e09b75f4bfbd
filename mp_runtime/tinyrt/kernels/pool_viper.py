# Viper twins of kernels.pool.average_pool and max_pool (same signatures, same results).
#
# The reference's loops (positions, channels, the window's rows and columns) with the window
# bounds computed once per position, the taps walked by a pointer (x = ptr8(int(x) + c)) and
# no int8 sign handling in the loop: ptr8 loads are unsigned bytes, xu = b ^ 0x80 is the int8
# value + 128 (order-preserving), so sum x = sum xu - 128 * count and max x = max xu - 128.
# Bounds (int32 on 32-bit boards, where viper ints are wrapping machine words): prepare checks
# count <= 2^22 taps, so sum xu <= 255 * 2^22 < 2^30 and |acc| <= 128 * count < 2^29; the
# rounding numerators |acc| + count / 2 stay below 2^30.
import micropython


@micropython.viper
def average_pool(x: ptr8, y: ptr8, batches: int, h: int, w: int, c: int, oh: int, ow: int,
                 fh: int, fw: int, sh: int, sw: int, ph: int, pw: int, act_min: int,
                 act_max: int):
    xa = int(x)
    row = w * c  # bytes per input row
    o = 0
    xb = xa
    for bt in range(batches):
        for oy in range(oh):
            y0 = oy * sh - ph  # input row of the window's first tap
            fy0 = 0
            if y0 < 0:
                fy0 = 0 - y0
            fy1 = h - y0
            if fy1 > fh:
                fy1 = fh
            n_fy = fy1 - fy0
            for ox in range(ow):
                x0 = ox * sw - pw
                fx0 = 0
                if x0 < 0:
                    fx0 = 0 - x0
                fx1 = w - x0
                if fx1 > fw:
                    fx1 = fw
                n_fx = fx1 - fx0
                count = n_fy * n_fx  # >= 1: prepare checked every window
                half = count >> 1
                off = 128 * count
                p0 = xb + ((y0 + fy0) * w + x0 + fx0) * c
                span = n_fx * c
                for ch in range(c):
                    acc = 0
                    p = p0 + ch
                    fy = 0
                    while fy < n_fy:
                        x = ptr8(p)
                        end = p + span
                        while int(x) < end:
                            acc += x[0] ^ 0x80
                            x = ptr8(int(x) + c)
                        p += row
                        fy += 1
                    acc -= off
                    if acc > 0:
                        v = (acc + half) // count
                    else:
                        v = 0 - ((half - acc) // count)  # C division truncates toward zero
                    if v < act_min:
                        v = act_min
                    elif v > act_max:
                        v = act_max
                    y[o] = v
                    o += 1
        xb += h * row


@micropython.viper
def max_pool(x: ptr8, y: ptr8, batches: int, h: int, w: int, c: int, oh: int, ow: int,
             fh: int, fw: int, sh: int, sw: int, ph: int, pw: int, act_min: int, act_max: int):
    xa = int(x)
    row = w * c
    o = 0
    xb = xa
    for bt in range(batches):
        for oy in range(oh):
            y0 = oy * sh - ph
            fy0 = 0
            if y0 < 0:
                fy0 = 0 - y0
            fy1 = h - y0
            if fy1 > fh:
                fy1 = fh
            n_fy = fy1 - fy0
            for ox in range(ow):
                x0 = ox * sw - pw
                fx0 = 0
                if x0 < 0:
                    fx0 = 0 - x0
                fx1 = w - x0
                if fx1 > fw:
                    fx1 = fw
                p0 = xb + ((y0 + fy0) * w + x0 + fx0) * c
                span = (fx1 - fx0) * c
                for ch in range(c):
                    m = 0  # xu of -128
                    p = p0 + ch
                    fy = 0
                    while fy < n_fy:
                        x = ptr8(p)
                        end = p + span
                        while int(x) < end:
                            v = x[0] ^ 0x80
                            if v > m:
                                m = v
                            x = ptr8(int(x) + c)
                        p += row
                        fy += 1
                    m -= 128
                    if m < act_min:
                        m = act_min
                    elif m > act_max:
                        m = act_max
                    y[o] = m
                    o += 1
        xb += h * row
