# Viper twin of kernels.depthwise_conv.depthwise_conv2d (same signature, same results).
#
# Order of work: output channels, then output positions (the reference does positions, then
# channels; every output is computed the same way, so the results are identical). Per output
# channel the bias and requantization constants are loaded once, and where a 3x3 filter is
# used (the common depthwise layer) its nine weights sit in locals as signed values:
#   acc = (bias - cx * sum w) + sum xu * w      (xu = x + 128 = b ^ 0x80, cx = 128 + x_zp)
# over the window's valid taps: whole windows unrolled (nine products, no weight loads), and
# the border windows of SAME padding with two filter rows or columns unrolled too, each case
# with its own folded bias (sum w over its six taps). Corners and other filter sizes take
# the plain tap loops. With a depth multiplier > 1 and filters other than 3x3,
# _shared_windows gathers each window once for all its output channels (see there).
# Measurements: benchmarks/optimization_log.md.
#
# Bounds (int32 on 32-bit boards, where viper ints are wrapping machine words): the converter
# guarantees K * 255 * 128 + |bias| < 2^30 for K = KH*KW products. |w| <= 128, 0 <= xu <= 255,
# |xu - cx| <= 255: |sum xu * w| and |cx * sum w| are <= 32640 * K < 2^30, so
# |bias - cx * sum w| < 2^31 and acc, the true accumulator, has |acc| < 2^30 >> left.
# Requantization as in requant_viper.py (exact TFLM MultiplyByQuantizedMultiplier), inline.
# ptr32 loads only for non-negative values (their sign extension differs between the unix
# port and the boards); the int32 bias from two little-endian ptr16 halves.
import micropython

from .scratch_viper import SCRATCH  # 1 KiB, for _shared_windows


@micropython.viper
def depthwise_conv2d(x: ptr8, w: ptr8, bias: ptr16, y: ptr8, batches: int, x_batch: int,
                     rows, cols, in_c: int, depth_mult: int, x_fy: int, w_fy: int, x_fx: int,
                     w_fx: int, x_zp: int, y_zp: int, m_hi: ptr32, m_lo: ptr32, left: ptr32,
                     right: ptr32, act_min: int, act_max: int):
    xa = int(x)
    wa = int(w)
    rp = ptr32(rows)
    cp = ptr32(cols)
    n_rows3 = int(len(rows)) // 3 * 3
    n_cols3 = int(len(cols)) // 3 * 3
    out_c = in_c * depth_mult
    y_pos = n_rows3 // 3 * (n_cols3 // 3) * out_c  # y values per batch
    cx = 128 + x_zp
    big = 0x3FFFFFFF
    cut = 0 - big - 2  # below every accumulator: no shortcut
    if y_zp <= act_min:
        cut = 0
    # does some window hold a whole 3x3 filter? (then KH >= 3 and KW >= 3)
    rows3 = False
    r = 0
    while r < n_rows3:
        if rp[r + 1] == 0 and rp[r + 2] == 3:
            rows3 = True
        r += 3
    cols3 = False
    c = 0
    while c < n_cols3:
        if cp[c + 1] == 0 and cp[c + 2] == 3:
            cols3 = True
        c += 3
    fast3 = rows3 and cols3 and w_fy == 3 * w_fx  # and KW == 3
    if not fast3 and depth_mult > 1:
        # several output channels per input channel: share each gathered window (below)
        kh = 0
        r = 0
        while r < n_rows3:
            t = rp[r + 1] // w_fy + rp[r + 2]
            if t > kh:
                kh = t
            r += 3
        k = kh * (w_fy // w_fx)
        if k <= 256 and out_c * k + k + 4 * out_c + 4 + n_cols3 // 3 <= 1024:
            _shared_windows(x, w, bias, y, batches, x_batch, rows, cols, in_c, depth_mult,
                            x_fy, w_fy, x_fx, w_fx, x_zp, y_zp, m_hi, m_lo, left, right,
                            act_min, act_max, kh)
            return
    dx = x_fx
    dx2 = x_fx + x_fx
    o = 0
    while o < out_c:
        b = (((bias[2 * o + 1] ^ 0x8000) - 0x8000) << 16) + bias[2 * o]
        lft = left[o]
        mh = m_hi[o]
        ml = m_lo[o]
        rs = right[o]
        p2 = 1 << rs
        w00 = 0
        w01 = 0
        w02 = 0
        w10 = 0
        w11 = 0
        w12 = 0
        w20 = 0
        w21 = 0
        w22 = 0
        kb = b
        kbl = b
        kbr = b
        kbt = b
        kbb = b
        if fast3:
            w = ptr8(wa + o)
            w00 = (w[0] ^ 0x80) - 128
            w01 = (w[w_fx] ^ 0x80) - 128
            w02 = (w[w_fx + w_fx] ^ 0x80) - 128
            w = ptr8(wa + o + w_fy)
            w10 = (w[0] ^ 0x80) - 128
            w11 = (w[w_fx] ^ 0x80) - 128
            w12 = (w[w_fx + w_fx] ^ 0x80) - 128
            w = ptr8(wa + o + w_fy + w_fy)
            w20 = (w[0] ^ 0x80) - 128
            w21 = (w[w_fx] ^ 0x80) - 128
            w22 = (w[w_fx + w_fx] ^ 0x80) - 128
            kb = b - cx * (w00 + w01 + w02 + w10 + w11 + w12 + w20 + w21 + w22)
            kbl = b - cx * (w01 + w02 + w11 + w12 + w21 + w22)  # columns 1, 2
            kbr = b - cx * (w00 + w01 + w10 + w11 + w20 + w21)  # columns 0, 1
            kbt = b - cx * (w10 + w11 + w12 + w20 + w21 + w22)  # rows 1, 2
            kbb = b - cx * (w00 + w01 + w02 + w10 + w11 + w12)  # rows 0, 1
        xo = o // depth_mult  # input channel
        yb = o
        xb = xa + xo
        for bt in range(batches):
            yo = yb
            r = 0
            while r < n_rows3:
                xr0 = xb + rp[r]
                wr0 = rp[r + 1]
                n_fy = rp[r + 2]
                row3 = fast3 and wr0 == 0 and n_fy == 3
                # two filter rows: 0, 1 (bottom border) or 1, 2 (top border)
                rows2 = fast3 and n_fy == 2 and (wr0 == 0 or wr0 == w_fy)
                c = 0
                while c < n_cols3:
                    if row3 and cp[c + 1] == 0 and cp[c + 2] == 3:
                        x = ptr8(xr0 + cp[c])
                        acc = kb + ((x[0] ^ 0x80) * w00 + (x[dx] ^ 0x80) * w01
                                    + (x[dx2] ^ 0x80) * w02)
                        x = ptr8(int(x) + x_fy)
                        acc += ((x[0] ^ 0x80) * w10 + (x[dx] ^ 0x80) * w11
                                + (x[dx2] ^ 0x80) * w12)
                        x = ptr8(int(x) + x_fy)
                        acc += ((x[0] ^ 0x80) * w20 + (x[dx] ^ 0x80) * w21
                                + (x[dx2] ^ 0x80) * w22)
                    elif row3 and cp[c + 2] == 2 and fast3:  # left or right border column
                        x = ptr8(xr0 + cp[c])
                        if cp[c + 1] == 0:  # filter columns 0, 1 (right border)
                            acc = kbr + ((x[0] ^ 0x80) * w00 + (x[dx] ^ 0x80) * w01)
                            x = ptr8(int(x) + x_fy)
                            acc += (x[0] ^ 0x80) * w10 + (x[dx] ^ 0x80) * w11
                            x = ptr8(int(x) + x_fy)
                            acc += (x[0] ^ 0x80) * w20 + (x[dx] ^ 0x80) * w21
                        else:  # filter columns 1, 2 (left border)
                            acc = kbl + ((x[0] ^ 0x80) * w01 + (x[dx] ^ 0x80) * w02)
                            x = ptr8(int(x) + x_fy)
                            acc += (x[0] ^ 0x80) * w11 + (x[dx] ^ 0x80) * w12
                            x = ptr8(int(x) + x_fy)
                            acc += (x[0] ^ 0x80) * w21 + (x[dx] ^ 0x80) * w22
                    elif rows2 and cp[c + 1] == 0 and cp[c + 2] == 3:  # top or bottom row
                        x = ptr8(xr0 + cp[c])
                        if wr0 == 0:  # filter rows 0, 1 (bottom border)
                            acc = kbb + ((x[0] ^ 0x80) * w00 + (x[dx] ^ 0x80) * w01
                                         + (x[dx2] ^ 0x80) * w02)
                            x = ptr8(int(x) + x_fy)
                            acc += ((x[0] ^ 0x80) * w10 + (x[dx] ^ 0x80) * w11
                                    + (x[dx2] ^ 0x80) * w12)
                        else:  # filter rows 1, 2 (top border)
                            acc = kbt + ((x[0] ^ 0x80) * w10 + (x[dx] ^ 0x80) * w11
                                         + (x[dx2] ^ 0x80) * w12)
                            x = ptr8(int(x) + x_fy)
                            acc += ((x[0] ^ 0x80) * w20 + (x[dx] ^ 0x80) * w21
                                    + (x[dx2] ^ 0x80) * w22)
                    else:
                        acc = b
                        n_fx = cp[c + 2]
                        xr = xr0 + cp[c]
                        wr = wa + o + wr0 + cp[c + 1]
                        fy = 0
                        while fy < n_fy:
                            x = ptr8(xr)
                            w = ptr8(wr)
                            fx = 0
                            while fx < n_fx:
                                acc += ((x[0] ^ 0x80) - cx) * ((w[0] ^ 0x80) - 128)
                                x = ptr8(int(x) + x_fx)
                                w = ptr8(int(w) + w_fx)
                                fx += 1
                            xr += x_fy
                            wr += w_fy
                            fy += 1
                    # requantize acc (requant_viper.py)
                    a = acc << lft
                    if a <= cut:
                        v = act_min
                    else:
                        a1 = a >> 15
                        a0 = a & 0x7FFF
                        h = a1 * mh
                        p = a1 * ml
                        q = a0 * mh
                        f = (p >> 15) + (q >> 15) + (((p & 0x7FFF) + (q & 0x7FFF)
                                                      + ((a0 * ml) >> 15) + 0x8000) >> 15)
                        s = (h >> 1) + (((h & 1) + f) >> 1)
                        v = ((s + ((p2 + (s >> 31)) >> 1)) >> rs) + y_zp
                        if v < act_min:
                            v = act_min
                        elif v > act_max:
                            v = act_max
                    y[yo] = v
                    yo += out_c
                    c += 3
                r += 3
            xb += x_batch
            yb += y_pos
        o += 1


@micropython.viper
def _shared_windows(x: ptr8, w: ptr8, bias: ptr16, y: ptr8, batches: int, x_batch: int,
                    rows, cols, in_c: int, depth_mult: int, x_fy: int, w_fy: int, x_fx: int,
                    w_fx: int, x_zp: int, y_zp: int, m_hi: ptr32, m_lo: ptr32, left: ptr32,
                    right: ptr32, act_min: int, act_max: int, kh: int):
    """depthwise_conv2d for depth_mult >= 2, as a conv: per position and input channel the
    window (kh x KW taps, kh = the filter rows any window uses) is gathered into SCRATCH as
    xu with the padding at xu = cx, and its depth_mult output channels run one contiguous
    loop each against their weights, transposed once per call to (OC, kh, KW) as wu:
      acc = bias + sum (xu - cx) * (wu - 128) = bias + D - 128 * Sx - cx * Sw + 128 * cx * K
    over all K = kh * KW taps (the padding adds nothing), D = sum xu * wu, Sx = sum xu (per
    window), Sw = sum wu (per channel). K <= 256 (the caller checks the scratch fits), so
    every term is below 65025 * K < 2^24."""
    xa = int(x)
    rp = ptr32(rows)
    cp = ptr32(cols)
    n_rows3 = int(len(rows)) // 3 * 3
    n_cols3 = int(len(cols)) // 3 * 3
    out_c = in_c * depth_mult
    kw = w_fy // w_fx
    k = kh * kw
    cx = 128 + x_zp
    big = 0x3FFFFFFF
    cut = 0 - big - 2  # below every accumulator: no shortcut
    if y_zp <= act_min:
        cut = 0
    sa = int(ptr8(SCRATCH))
    wt = ptr8(sa)  # (OC, kh, KW) weights as wu
    pa = sa + out_c * k  # the window, k bytes
    patch = ptr8(pa)
    wsum = ptr32((pa + k + 3) & -4)
    fx0s = ptr8(int(wsum) + 4 * out_c)  # per output column, its first filter column
    o = 0
    while o < out_c:
        t = 0
        fy = 0
        while fy < kh:
            fx = 0
            while fx < kw:
                v = w[fy * w_fy + fx * w_fx + o] ^ 0x80
                wt[o * k + fy * kw + fx] = v
                t += v
                fx += 1
            fy += 1
        wsum[o] = t
        o += 1
    c = 0
    n = 0
    while c < n_cols3:
        fx0s[n] = cp[c + 1] // w_fx
        c += 3
        n += 1
    kcorr = 128 * cx * k
    p_end = pa + k
    p_end8 = pa + (k & -8)
    yo = 0
    xb = xa
    for bt in range(batches):
        r = 0
        while r < n_rows3:
            xr0 = xb + rp[r]
            fy0 = rp[r + 1] // w_fy
            n_fy = rp[r + 2]
            c = 0
            n = 0
            while c < n_cols3:
                n_fx = cp[c + 2]
                full = n_fy * n_fx == k
                xc = xr0 + cp[c]
                ci = 0
                while ci < in_c:
                    # gather the window of input channel ci
                    if not full:
                        j = 0
                        while j < k:
                            patch[j] = cx
                            j += 1
                    sx = 0
                    xr = xc + ci
                    wr = pa + fy0 * kw + fx0s[n]
                    fy = 0
                    while fy < n_fy:
                        x = ptr8(xr)
                        w = ptr8(wr)
                        fx = 0
                        while fx < n_fx:
                            v = x[0] ^ 0x80
                            w[fx] = v
                            sx += v
                            x = ptr8(int(x) + x_fx)
                            fx += 1
                        xr += x_fy
                        wr += kw
                        fy += 1
                    corr = ((sx + cx * (k - n_fy * n_fx)) << 7) - kcorr
                    m = 0
                    o = ci * depth_mult
                    while m < depth_mult:
                        acc = 0
                        x = ptr8(pa)
                        w = ptr8(sa + o * k)
                        while int(x) < p_end8:
                            acc += (x[0] * w[0] + x[1] * w[1] + x[2] * w[2] + x[3] * w[3]
                                    + x[4] * w[4] + x[5] * w[5] + x[6] * w[6] + x[7] * w[7])
                            x = ptr8(int(x) + 8)
                            w = ptr8(int(w) + 8)
                        while int(x) < p_end:
                            acc += x[0] * w[0]
                            x = ptr8(int(x) + 1)
                            w = ptr8(int(w) + 1)
                        # acc = bias + D - 128 * Sx - cx * Sw + 128 * cx * K; requantize
                        a = ((acc - corr - cx * wsum[o] + (((bias[2 * o + 1] ^ 0x8000) - 0x8000)
                                                           << 16) + bias[2 * o]) << left[o])
                        if a <= cut:
                            v = act_min
                        else:
                            mh = m_hi[o]
                            ml = m_lo[o]
                            a1 = a >> 15
                            a0 = a & 0x7FFF
                            h = a1 * mh
                            p = a1 * ml
                            q = a0 * mh
                            f = (p >> 15) + (q >> 15) + (((p & 0x7FFF) + (q & 0x7FFF)
                                                          + ((a0 * ml) >> 15) + 0x8000) >> 15)
                            s = (h >> 1) + (((h & 1) + f) >> 1)
                            rs = right[o]
                            v = ((s + (((1 << rs) + (s >> 31)) >> 1)) >> rs) + y_zp
                            if v < act_min:
                                v = act_min
                            elif v > act_max:
                                v = act_max
                        y[yo] = v
                        yo += 1
                        o += 1
                        m += 1
                    ci += 1
                c += 3
                n += 1
            r += 3
        xb += x_batch
