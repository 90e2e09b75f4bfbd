# Viper twin of kernels.fully_connected.fully_connected (same signature and results).
# ptr8 loads are unsigned bytes: v ^ 0x80 maps an int8 to v + 128 in [0, 255].
# Bounds (int32-safe on boards): |x - zx| <= 255, |w| <= 128, |acc| < 2^30 (converter check).
import micropython

from ..requant_viper import multiply_by_quantized_multiplier as _mbqm


@micropython.viper
def fully_connected(x: ptr8, w: ptr8, bias, y: ptr8, batches: int, n_in: int, n_out: int,
                    x_zp: int, y_zp: int, m_hi: ptr32, m_lo: ptr32, left: ptr32, right: ptr32,
                    act_min: int, act_max: int):
    x_off = 128 + x_zp
    for b in range(batches):
        xb = b * n_in
        yb = b * n_out
        wo = 0
        for o in range(n_out):
            acc = int(bias[o])
            i = 0
            while i < n_in:
                acc += ((int(x[xb + i]) ^ 0x80) - x_off) * ((int(w[wo + i]) ^ 0x80) - 128)
                i += 1
            wo += n_in
            v = int(_mbqm(acc, m_hi[o], m_lo[o], left[o], right[o])) + y_zp
            if v < act_min:
                v = act_min
            if v > act_max:
                v = act_max
            y[yb + o] = v
