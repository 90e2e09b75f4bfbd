"""Larq Compute Engine semantics in numpy: the oracle of tinyrt's binary operators.

Written from LCE's kernels (larq_compute_engine/core/bconv2d/{reference,output_transform}.h,
core/bitpacking/bitpack.h, core/bmaxpool.h, tflite/kernels/{bconv2d,quantization}.cc), not
from tinyrt: values are unpacked to +1/-1, convolved as plain integers with explicit padding
(+1 for pad_values=1, 0 for pad_values=0), and the float32 output transform is evaluated
element by element as LCE evaluates it on x86-64. Packing uses numpy's packbits, independent of
the converter's bitarray code.

- LceQuantize, int8 input: bit = 1 (-1) iff x < zero_point; bits past C are 0.
- LceDequantize, int8 output: +1 -> min(127, zp + round(1 / scale)), -1 -> max(-128, zp -
  round(1 / scale)), with 1 / scale and the rounding (half away from zero) in float32.
- LceBconv2d / binary dense: dot = sum of x * w over the window (K = kh * kw * Cin terms,
  padded taps count +1 * w with pad_values=1 and 0 with pad_values=0); accum = (K - dot) / 2.
  Bit-packed output: bit = accum > threshold[c] (thresholds int32, LCE's converter folds
  multiplier sign, bias and clamp into them). int8 output, with A = K - dot (= accum << 1):
      A' = clamp(A, K - min(act_max, K), K - max(act_min, -K))
      y  = float32(A') * m[c] + b[c]             (float32 multiply, then float32 add)
      m[c] = float32(-multiplier[c] / out_scale),  b[c] = float32((bias[c] + K *
      multiplier[c]) / out_scale + out_zp)     (both formed in double from the float32 inputs)
      out = saturate_int8(round_half_away(y))
  with (act_min, act_max) = CalculateActivationRange for int32: NONE (-inf, inf), RELU (0, inf),
  RELU6 (0, 6), RELU_N1_TO_1 (-1, 1), applied to the dot product.
- LceBMaxPool2d: AND of the words over the window's taps that fall inside the input (padding
  ignored): the max of +-1 values is +1 (bit 0) as soon as one is +1.
"""

from __future__ import annotations

import numpy as np

ACTIVATION_RANGES = {"NONE": (None, None), "RELU": (0, None), "RELU6": (0, 6),
                     "RELU_N1_TO_1": (-1, 1)}


# -- packing -----------------------------------------------------------------------------------

def pack(bits) -> np.ndarray:
    """bool (..., C) (True = -1) -> int32 words (..., ceil(C / 32))."""
    bits = np.asarray(bits, dtype=bool)
    c = bits.shape[-1]
    n = -(-c // 32)
    padded = np.zeros(bits.shape[:-1] + (32 * n,), dtype=bool)
    padded[..., :c] = bits
    by = np.packbits(padded, axis=-1, bitorder="little")
    return np.ascontiguousarray(by).view("<i4").astype(np.int32).reshape(bits.shape[:-1] + (n,))


def unpack(words, channels: int) -> np.ndarray:
    """int32 words (..., n) -> +1/-1 int64 values (..., channels)."""
    w = np.ascontiguousarray(np.asarray(words, dtype="<i4"))
    by = w.view(np.uint8).reshape(w.shape[:-1] + (4 * w.shape[-1],))
    bits = np.unpackbits(by, axis=-1, bitorder="little")[..., :channels]
    return 1 - 2 * bits.astype(np.int64)


# -- geometry (TFLite's ComputePaddingHeightWidth) -----------------------------------------------

def out_and_pad(padding: str, size: int, k: int, stride: int, dilation: int = 1):
    eff = (k - 1) * dilation + 1
    if padding == "SAME":
        out = -(-size // stride)
    elif padding == "VALID":
        out = -(-(size - eff + 1) // stride)
    else:
        raise ValueError(padding)
    total = max((out - 1) * stride + eff - size, 0)
    return out, total // 2


# -- ops ---------------------------------------------------------------------------------------

def quantize(x, zero_point: int) -> np.ndarray:
    """LceQuantize of int8 values (..., C) with the input's zero point."""
    return pack(np.asarray(x, dtype=np.int64) < int(zero_point))


def _round_half_away(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)  # exact for float32 values
    return np.sign(v) * np.floor(np.abs(v) + 0.5)


def dequantize_values(scale: float, zero_point: int) -> tuple[int, int]:
    """(value of a 0-bit (+1), value of a 1-bit (-1)) of LceDequantize to int8."""
    offset = int(_round_half_away(np.float32(1.0) / np.float32(scale)))
    return min(127, zero_point + offset), max(-128, zero_point - offset)


def dequantize(words, channels: int, scale: float, zero_point: int) -> np.ndarray:
    plus, minus = dequantize_values(scale, zero_point)
    return np.where(unpack(words, channels) > 0, plus, minus).astype(np.int8)


def bmaxpool(words, filter_hw, stride_hw, padding: str) -> np.ndarray:
    """LceBMaxPool2d on packed words (N, H, W, n)."""
    x = np.asarray(words, dtype=np.int32)
    n, h, w, _ = x.shape
    (fh, fw), (sh, sw) = filter_hw, stride_hw
    oh, pt = out_and_pad(padding, h, fh, sh)
    ow, pl = out_and_pad(padding, w, fw, sw)
    out = np.zeros((n, oh, ow, x.shape[3]), dtype=np.int32)
    for oy in range(oh):
        for ox in range(ow):
            y0, x0 = oy * sh - pt, ox * sw - pl
            win = x[:, max(y0, 0):min(y0 + fh, h), max(x0, 0):min(x0 + fw, w), :]
            out[:, oy, ox, :] = np.bitwise_and.reduce(win.reshape(n, -1, x.shape[3]), axis=1)
    return out


def conv_dot(xs, ws, stride_hw, dilation_hw, padding: str, pad_values: int) -> np.ndarray:
    """The integer convolution of +-1 values: xs (N, H, W, Cin), ws (Cout, kh, kw, Cin) ->
    (N, OH, OW, Cout); padded taps are +1 (pad_values=1) or 0 (pad_values=0)."""
    xs = np.asarray(xs, dtype=np.int64)
    ws = np.asarray(ws, dtype=np.int64)
    n, h, w, cin = xs.shape
    cout, kh, kw, _ = ws.shape
    (sh, sw), (dh, dw) = stride_hw, dilation_hw
    oh, pt = out_and_pad(padding, h, kh, sh, dh)
    ow, pl = out_and_pad(padding, w, kw, sw, dw)
    big = 1 + (oh - 1) * sh + (kh - 1) * dh + pt, 1 + (ow - 1) * sw + (kw - 1) * dw + pl
    fill = 1 if pad_values else 0
    xp = np.full((n, max(big[0], h + pt), max(big[1], w + pl), cin), fill, dtype=np.int64)
    xp[:, pt:pt + h, pl:pl + w, :] = xs
    dot = np.zeros((n, oh, ow, cout), dtype=np.int64)
    for fy in range(kh):
        for fx in range(kw):
            ys = fy * dh + sh * np.arange(oh)
            xs_ = fx * dw + sw * np.arange(ow)
            patch = xp[:, ys][:, :, xs_]  # (N, OH, OW, Cin)
            dot += np.einsum("nhwc,oc->nhwo", patch, ws[:, fy, fx, :])
    return dot


def output_int8(dot, k: int, multiplier, bias, out_scale: float, out_zp: int,
                activation: str = "NONE") -> np.ndarray:
    """LCE's int8 output transform of dot products (..., Cout)."""
    lo, hi = ACTIVATION_RANGES[activation]
    lo = -k if lo is None else max(lo, -k)
    hi = k if hi is None else min(hi, k)
    a = k - np.asarray(dot, dtype=np.int64)  # accum << 1
    a = np.clip(a, k - hi, k - lo)
    mul = np.asarray(multiplier, dtype=np.float32).astype(np.float64)
    b = np.asarray(bias, dtype=np.float32).astype(np.float64)
    s = float(np.float32(out_scale))
    m32 = (-mul / s).astype(np.float32)
    b32 = ((b + k * mul) / s + out_zp).astype(np.float32)
    y = a.astype(np.float32) * m32  # float32 product
    y = (y + b32).astype(np.float32)  # float32 sum
    r = _round_half_away(y)
    if np.any(np.abs(r) >= 2.0**31) or np.any(~np.isfinite(r)):
        raise ValueError("output transform leaves int32: undefined in LCE")
    return np.clip(r, -128, 127).astype(np.int8)


def output_bits(dot, k: int, thresholds) -> np.ndarray:
    """LCE's bit-packed output: bit = accum > threshold, accum = (K - dot) / 2."""
    a2 = k - np.asarray(dot, dtype=np.int64)
    return pack(a2 > 2 * np.asarray(thresholds, dtype=np.int64))


def bconv2d(x_words, channels_in: int, w_words, stride_hw=(1, 1), dilation_hw=(1, 1),
            padding: str = "VALID", pad_values: int = 1, activation: str = "NONE",
            thresholds=None, multiplier=None, bias=None, out_scale=None, out_zp=0):
    """LceBconv2d on packed input (N, H, W, words) and packed OHWI filters (Cout, kh, kw,
    words): packed output with `thresholds`, else int8 output."""
    w_words = np.asarray(w_words)
    _, kh, kw, _ = w_words.shape
    dot = conv_dot(unpack(x_words, channels_in), unpack(w_words, channels_in), stride_hw,
                   dilation_hw, padding, pad_values)
    k = kh * kw * channels_in
    if thresholds is not None:
        return output_bits(dot, k, thresholds)
    return output_int8(dot, k, multiplier, bias, out_scale, out_zp, activation)


def bfully_connected(x_words, n_in: int, w_words, activation: str = "NONE", thresholds=None,
                     multiplier=None, bias=None, out_scale=None, out_zp=0):
    """A binary dense layer: LCE semantics of a 1x1 LceBconv2d over (batches, n_in) rows."""
    xs = unpack(x_words, n_in).reshape(-1, n_in)
    ws = unpack(w_words, n_in).reshape(-1, n_in)
    dot = xs @ ws.T
    if thresholds is not None:
        return output_bits(dot, n_in, thresholds)
    return output_int8(dot, n_in, multiplier, bias, out_scale, out_zp, activation)
