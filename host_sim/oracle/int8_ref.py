"""Independent numpy oracle of TensorFlow Lite Micro's int8 reference kernels.

Written from the TFLite quantization spec and the semantics of TFLM's reference
kernels (``tensorflow/lite/micro/kernels/*`` and
``tensorflow/lite/micro/kernels/internal/reference/**``, formerly
``tensorflow/lite/kernels/internal/reference/**``), plus gemmlowp's
``fixedpoint/fixedpoint.h``.  TFLM is built with double rounding
(``TFLITE_SINGLE_ROUNDING`` off): every requantization is
SaturatingRoundingDoublingHighMul followed by RoundingDivideByPOT.

Conventions
-----------
* All integer work is done in numpy ``int64`` holding values that C++ keeps in
  ``int32``; wherever TFLM's int32 arithmetic could wrap we wrap explicitly
  (``_wrap32``).
* Scales are the float32 values stored in the flatbuffer.  Every function
  rounds the scales it is given to float32 first (``_f32``) and then widens to
  double exactly where TFLM's Prepare does, so Python floats can be passed in.
* Shapes are NHWC; weights are laid out as TFLite stores them:
  FULLY_CONNECTED ``[out, in]``, CONV_2D ``[out_c, kh, kw, in_c]``,
  DEPTHWISE_CONV_2D ``[1, kh, kw, in_c * depth_multiplier]``; bias is int32.
* Fused activations are ``'NONE' | 'RELU' | 'RELU6' | 'RELU_N1_TO_1'`` and are
  turned into integer clamps exactly like CalculateActivationRangeQuantized.
* Every function returns int8 arrays (except the helpers documented otherwise).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

__all__ = [
    "activation_range",
    "add",
    "average_pool2d",
    "compute_out_size",
    "compute_padding",
    "concatenation",
    "conv2d",
    "depthwise_conv2d",
    "fully_connected",
    "logistic",
    "max_pool2d",
    "mean",
    "mul",
    "multiply_by_quantized_multiplier",
    "pad",
    "quantize",
    "quantize_multiplier",
    "reshape",
    "rounding_divide_by_pot",
    "saturating_rounding_doubling_high_mul",
    "softmax",
]

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1
INT8_MIN = -128
INT8_MAX = 127


# ----------------------------------------------------------------------------
# scalar helpers
# ----------------------------------------------------------------------------

def _f32(x) -> float:
    """Round a Python/numpy scalar to float32 (as stored in the flatbuffer)."""
    return float(np.float32(x))


def _round_half_away(x):
    """std::round / TfLiteRound: round half away from zero (exact for doubles)."""
    x = np.asarray(x, dtype=np.float64)
    t = np.trunc(x)
    frac = x - t  # exact
    return t + np.where(np.abs(frac) >= 0.5, np.sign(x), 0.0)


def _round_half_away_scalar(x: float) -> int:
    return int(_round_half_away(x))


def _wrap32(x):
    """Two's-complement wrap of int64 values to the int32 range."""
    x = np.asarray(x, dtype=np.int64)
    return ((x + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def _i64(x):
    return np.asarray(x, dtype=np.int64)


# ----------------------------------------------------------------------------
# quantization_util.cc / common.cc / gemmlowp fixedpoint.h
# ----------------------------------------------------------------------------

def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite ``QuantizeMultiplier`` (kernels/internal/quantization_util.cc).

    ``q, shift = frexp(real)``; ``q_fixed = round(q * 2^31)`` (half away from
    zero); if ``q_fixed == 2^31`` halve it and increment ``shift``; a shift
    below -31 flushes to ``(0, 0)``.  Returns ``(multiplier, shift)`` with the
    multiplier in ``[2^30, 2^31)`` (or 0); positive shift means left shift.
    """
    real = float(real)
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    q_fixed = _round_half_away_scalar(q * float(1 << 31))
    if q_fixed > (1 << 31):
        raise ValueError("QuantizeMultiplier: q_fixed > 2^31")
    if q_fixed == (1 << 31):
        q_fixed //= 2
        shift += 1
    if q_fixed > INT32_MAX:
        raise ValueError("QuantizeMultiplier: q_fixed > INT32_MAX")
    if shift < -31:
        shift = 0
        q_fixed = 0
    return int(q_fixed), int(shift)


def saturating_rounding_doubling_high_mul(a, b):
    """gemmlowp ``SaturatingRoundingDoublingHighMul`` for int32 (VQRDMULH)."""
    a = _i64(a)
    b = _i64(b)
    overflow = (a == b) & (a == INT32_MIN)
    ab = a * b  # |a*b| <= 2^62: exact in int64
    nudge = np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    s = ab + nudge
    # C++ integer division truncates toward zero
    q = np.where(s >= 0, s >> 31, -((-s) >> 31))
    return np.where(overflow, INT32_MAX, _wrap32(q))


def rounding_divide_by_pot(x, exponent):
    """gemmlowp ``RoundingDivideByPOT``: rounding arithmetic right shift
    (round half away from zero).  ``exponent`` may be an array (broadcast)."""
    x = _i64(x)
    exponent = _i64(exponent)
    mask = (np.int64(1) << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0).astype(np.int64)
    return (x >> exponent) + (remainder > threshold).astype(np.int64)


def _saturating_left_shift(x, exponent: int):
    """gemmlowp ``SaturatingRoundingMultiplyByPOT<exponent>`` for exponent > 0."""
    x = _i64(x)
    if exponent == 0:
        return x
    if exponent < 0:
        return rounding_divide_by_pot(x, -exponent)
    threshold = (1 << (31 - exponent)) - 1
    r = _wrap32(x << exponent)
    r = np.where(x > threshold, INT32_MAX, r)
    r = np.where(x < -threshold, INT32_MIN, r)
    return r


def multiply_by_quantized_multiplier(x, multiplier, shift):
    """TFLM ``MultiplyByQuantizedMultiplier(int32_t x, ...)``, double rounding
    (tensorflow/lite/micro/kernels/internal/common.cc)::

        left  = max(shift, 0); right = max(-shift, 0)
        RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(x * (1 << left), m), right)

    ``x`` is treated as int32 (wrapped, as the C++ argument conversion does);
    ``x * (1 << left)`` wraps in int32 like the C++ code.  ``multiplier`` and
    ``shift`` may be scalars or per-channel arrays broadcast against the last
    axis of ``x``.  Returns int64 values in the int32 range.
    """
    x = _wrap32(x)
    m = _i64(multiplier)
    s = _i64(shift)
    left = np.maximum(s, 0)
    right = np.maximum(-s, 0)
    xs = _wrap32(x * (np.int64(1) << left))
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(xs, m), right)


def _mbqm_greater_than_one(x, multiplier: int, left_shift: int):
    """``MultiplyByQuantizedMultiplierGreaterThanOne`` (double-rounding build)."""
    xs = _wrap32(_wrap32(x) * (1 << left_shift))
    return saturating_rounding_doubling_high_mul(xs, multiplier)


def _mbqm_smaller_than_one_exp(x, multiplier: int, left_shift: int):
    """``MultiplyByQuantizedMultiplierSmallerThanOneExp`` (left_shift <= 0)."""
    return rounding_divide_by_pot(
        saturating_rounding_doubling_high_mul(_wrap32(x), multiplier), -left_shift)


def _quantize_multiplier_smaller_than_one_exp(real: float) -> tuple[int, int]:
    if not (0.0 < real < 1.0):
        raise ValueError(f"QuantizeMultiplierSmallerThanOneExp needs 0 < m < 1, got {real}")
    m, s = quantize_multiplier(real)
    if s > 0:
        raise ValueError("QuantizeMultiplierSmallerThanOneExp: shift > 0")
    return m, s


def _quantize_multiplier_greater_than_one(real: float) -> tuple[int, int]:
    if not real > 1.0:
        raise ValueError(f"QuantizeMultiplierGreaterThanOne needs m > 1, got {real}")
    m, s = quantize_multiplier(real)
    if s < 0:
        raise ValueError("QuantizeMultiplierGreaterThanOne: shift < 0")
    return m, s


def _calculate_input_radius(input_integer_bits: int, input_left_shift: int,
                            total_signed_bits: int = 31) -> int:
    """``CalculateInputRadius`` (quantization_util.cc, non-emulated-float)."""
    max_input_rescaled = (1.0 * ((1 << input_integer_bits) - 1)
                          * float(1 << (total_signed_bits - input_integer_bits))
                          / float(1 << input_left_shift))
    return math.floor(max_input_rescaled)


def _clz32(x):
    """Count leading zeros of uint32 values (32 for zero)."""
    x = _i64(x) & 0xFFFFFFFF
    n = np.full(x.shape, 32, dtype=np.int64)
    nz = x != 0
    # floor(log2) via frexp is exact for integers < 2^53
    _, e = np.frexp(np.where(nz, x, 1).astype(np.float64))
    return np.where(nz, 32 - e.astype(np.int64), n)


# --- gemmlowp fixed-point transcendental functions (raw int32 values) -------

def _exp_on_interval_between_negative_one_quarter_and_0_excl(a):
    """gemmlowp ``exp_on_interval_between_negative_one_quarter_and_0_excl``
    (F0 in, F0 out)."""
    srdhm = saturating_rounding_doubling_high_mul
    constant_term = 1895147668  # exp(-1/8)
    constant_1_over_3 = 715827883
    x = _wrap32(_i64(a) + (1 << 28))
    x2 = srdhm(x, x)
    x3 = srdhm(x2, x)
    x4 = srdhm(x2, x2)
    x4_over_4 = rounding_divide_by_pot(x4, 2)
    t = rounding_divide_by_pot(
        _wrap32(srdhm(_wrap32(x4_over_4 + x3), constant_1_over_3) + x2), 1)
    return _wrap32(constant_term + srdhm(constant_term, _wrap32(x + t)))


_EXP_BARREL = [(-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308),
               (2, 39332535), (3, 720401), (4, 242)]


def _exp_on_negative_values(a, integer_bits: int):
    """gemmlowp ``exp_on_negative_values`` for FixedPoint<int32, integer_bits>
    input; returns the raw Q0.31 result."""
    a = _i64(a)
    frac_bits = 31 - integer_bits
    one_quarter = 1 << (frac_bits - 2)
    mask = one_quarter - 1
    a_mod_q_minus_q = _wrap32((a & mask) - one_quarter)
    result = _exp_on_interval_between_negative_one_quarter_and_0_excl(
        _saturating_left_shift(a_mod_q_minus_q, integer_bits))  # Rescale<0>
    remainder = _wrap32(a_mod_q_minus_q - a)
    for exponent, mult in _EXP_BARREL:
        if integer_bits > exponent:
            bit = np.int64(1) << (frac_bits + exponent)
            result = np.where((remainder & bit) != 0,
                              saturating_rounding_doubling_high_mul(result, mult), result)
    if integer_bits > 5:
        clamp = -(1 << (36 - integer_bits))  # -32.0
        result = np.where(a < clamp, 0, result)
    return np.where(a == 0, INT32_MAX, result)


def _rounding_half_sum(a, b):
    s = _i64(a) + _i64(b)
    sign = np.where(s >= 0, 1, -1)
    t = s + sign
    return np.where(t >= 0, t // 2, -((-t) // 2))  # truncating division


def _one_over_one_plus_x_for_x_in_0_1(a):
    """gemmlowp ``one_over_one_plus_x_for_x_in_0_1`` (F0 in, F0 out),
    Newton-Raphson with 48/17 and -32/17 in F2."""
    srdhm = saturating_rounding_doubling_high_mul
    half_denominator = _rounding_half_sum(a, INT32_MAX)
    c48_17 = 1515870810
    cneg32_17 = -1010580540
    f2_one = 1 << 29
    x = _wrap32(c48_17 + srdhm(half_denominator, cneg32_17))
    for _ in range(3):
        hdx = srdhm(half_denominator, x)
        one_minus = _wrap32(f2_one - hdx)
        x = _wrap32(x + _saturating_left_shift(srdhm(x, one_minus), 2))
    return _saturating_left_shift(x, 1)  # Rescale<0>(ExactMulByPot<-1>(x))


def _gemmlowp_logistic(a, integer_bits: int):
    """gemmlowp ``logistic`` for FixedPoint<int32, integer_bits>; raw Q0.31 out."""
    a = _i64(a)
    pos = a > 0
    neg_abs = np.where(pos, _wrap32(-a), a)  # -|a|
    r_pos = _one_over_one_plus_x_for_x_in_0_1(_exp_on_negative_values(neg_abs, integer_bits))
    r_neg = _wrap32(INT32_MAX - r_pos)
    return np.where(a == 0, 1 << 30, np.where(pos, r_pos, r_neg))


def _get_reciprocal(x, x_integer_digits: int):
    """TFLite ``GetReciprocal`` (kernels/internal/common.h)."""
    x = _i64(x)
    headroom_plus_one = _clz32(x)
    num_bits_over_unit = x_integer_digits - headroom_plus_one
    shifted = ((x & 0xFFFFFFFF) << headroom_plus_one) & 0xFFFFFFFF
    shifted_sum_minus_one = _wrap32(shifted - (1 << 31))
    return _one_over_one_plus_x_for_x_in_0_1(shifted_sum_minus_one), num_bits_over_unit


# ----------------------------------------------------------------------------
# kernel_util.cc
# ----------------------------------------------------------------------------

_ACTIVATIONS = ("NONE", "RELU", "RELU6", "RELU_N1_TO_1")


def activation_range(activation: str, scale: float, zero_point: int,
                     qmin: int = INT8_MIN, qmax: int = INT8_MAX) -> tuple[int, int]:
    """``CalculateActivationRangeQuantized`` (micro/kernels/kernel_util.cc).

    ``Quantize(f) = zero_point + (int)TfLiteRound(f / scale)`` with the division
    and the rounding done in float32.
    """
    act = (activation or "NONE").upper()
    if act not in _ACTIVATIONS:
        raise ValueError(f"unknown fused activation {activation!r}")
    sc = np.float32(scale)

    def q(f: float) -> int:
        tmp = np.float32(np.float32(f) / sc)
        return int(zero_point) + _round_half_away_scalar(float(tmp))

    if act == "RELU":
        return max(qmin, q(0.0)), qmax
    if act == "RELU6":
        return max(qmin, q(0.0)), min(qmax, q(6.0))
    if act == "RELU_N1_TO_1":
        return max(qmin, q(-1.0)), min(qmax, q(1.0))
    return qmin, qmax


def compute_out_size(padding: str, image_size: int, filter_size: int, stride: int,
                     dilation: int = 1) -> int:
    """TFLite ``ComputeOutSize`` (kernels/padding.h)."""
    eff = (filter_size - 1) * dilation + 1
    if stride == 0:
        return 0
    if padding.upper() == "SAME":
        return (image_size + stride - 1) // stride
    if padding.upper() == "VALID":
        return (image_size + stride - eff) // stride
    return 0


def compute_padding(stride: int, dilation: int, in_size: int, filter_size: int,
                    out_size: int) -> int:
    """TFLite ``ComputePaddingWithOffset`` (leading/top-left padding)."""
    eff = (filter_size - 1) * dilation + 1
    total = (out_size - 1) * stride + eff - in_size
    total = max(0, total)
    return total // 2


def _pair(v) -> tuple[int, int]:
    if isinstance(v, (int, np.integer)):
        return int(v), int(v)
    a, b = v
    return int(a), int(b)


def _spatial_geometry(h, w, kh, kw, stride, dilation, padding):
    sh, sw = _pair(stride)
    dh, dw = _pair(dilation)
    oh = compute_out_size(padding, h, kh, sh, dh)
    ow = compute_out_size(padding, w, kw, sw, dw)
    ph = compute_padding(sh, dh, h, kh, oh)
    pw = compute_padding(sw, dw, w, kw, ow)
    return sh, sw, dh, dw, oh, ow, ph, pw


def _padded(xo, ph, pw, oh, ow, kh, kw, sh, sw, dh, dw, fill=0):
    """Pad NHWC ``xo`` so that every window tap is addressable."""
    _, h, w, _ = xo.shape
    need_h = (oh - 1) * sh + (kh - 1) * dh + 1
    need_w = (ow - 1) * sw + (kw - 1) * dw + 1
    pb = max(0, need_h - h - ph)
    pr = max(0, need_w - w - pw)
    return np.pad(xo, ((0, 0), (ph, pb), (pw, pr), (0, 0)), constant_values=fill)


def _tap(xp, ky, kx, oh, ow, sh, sw, dh, dw):
    y0 = ky * dh
    x0 = kx * dw
    return xp[:, y0:y0 + (oh - 1) * sh + 1:sh, x0:x0 + (ow - 1) * sw + 1:sw, :]


def _per_channel_multipliers(x_scale, w_scale, out_scale, n_channels: int):
    """``PopulateConvolutionQuantizationParams``: per channel
    ``double(in_scale) * double(filter_scale[c]) / double(out_scale)``; a single
    (per-tensor) filter scale is broadcast over the channels."""
    ws = np.atleast_1d(np.asarray(w_scale, dtype=np.float32))
    if ws.size not in (1, n_channels):
        raise ValueError("filter scale count does not match the output channels")
    xs = _f32(x_scale)
    os_ = _f32(out_scale)
    mults = np.zeros(n_channels, dtype=np.int64)
    shifts = np.zeros(n_channels, dtype=np.int64)
    for c in range(n_channels):
        s = float(ws[c] if ws.size > 1 else ws[0])
        mults[c], shifts[c] = quantize_multiplier(xs * s / os_)
    return mults, shifts


def _finish(acc, mult, shift, out_zp, activation, out_scale):
    lo, hi = activation_range(activation, _f32(out_scale), int(out_zp))
    out = multiply_by_quantized_multiplier(acc, mult, shift) + int(out_zp)
    return np.clip(out, lo, hi).astype(np.int8)


# ----------------------------------------------------------------------------
# kernels
# ----------------------------------------------------------------------------

def fully_connected(x, w, bias=None, *, x_scale: float, x_zp: int, w_scale,
                    out_scale: float, out_zp: int, activation: str = "NONE",
                    w_zp: int = 0, bias_scale: float | None = None) -> np.ndarray:
    """FULLY_CONNECTED int8.

    Mirrors micro/kernels/fully_connected_common.cc ``CalculateOpDataFullyConnected``
    and reference/integer_ops/fully_connected.h (``FullyConnected`` /
    ``FullyConnectedPerChannel``).

    * ``x``: int8, any shape whose size is a multiple of ``K``; flattened to
      ``[batches, K]`` like TFLM.  ``w``: int8 ``[N, K]``.  ``bias``: int32 ``[N]``
      or None.  Returns int8 ``[batches, N]``.
    * Per-channel (``w_scale`` with more than one entry): multiplier[c] =
      QuantizeMultiplier(double(x_scale) * double(w_scale[c]) / double(out_scale)).
    * Per-tensor: ``GetQuantizedConvolutionMultipler``:
      QuantizeMultiplier(double(x_scale) * double(w_scale) / double(out_scale)).
      (The product is taken in double: verified against TFLM on scales where a
      float32 product gives a different multiplier and output.)  If
      ``bias_scale`` is given the TFLM bias-scale sanity check
      (|x_s*w_s - b_s| / out_s <= 0.02) is applied.
    * ``acc = sum((x - x_zp) * (w - w_zp)) + bias`` (int32), then
      MultiplyByQuantizedMultiplier, ``+ out_zp``, activation clamp.
    """
    w = _i64(w)
    n_out, k = w.shape
    xf = _i64(x).reshape(-1, k)
    ws = np.atleast_1d(np.asarray(w_scale, dtype=np.float32))
    acc = (xf - int(x_zp)) @ (w - int(w_zp)).T
    if bias is not None:
        acc = acc + _i64(bias).reshape(1, n_out)
    acc = _wrap32(acc)
    if ws.size > 1:
        if ws.size != n_out:
            raise ValueError("per-channel FC needs one scale per output row")
        mult, shift = _per_channel_multipliers(x_scale, ws, out_scale, n_out)
    else:
        xs, fs, os_ = np.float32(x_scale), np.float32(ws[0]), np.float32(out_scale)
        if bias is not None and bias_scale is not None:
            diff = abs(float(xs) * float(fs) - _f32(bias_scale))
            if diff / float(os_) > 0.02:
                raise ValueError("bias scale incompatible with input*filter scale (TFLM check)")
        mult, shift = quantize_multiplier(float(xs) * float(fs) / float(os_))
    return _finish(acc, mult, shift, out_zp, activation, out_scale)


def conv2d(x, w, bias=None, *, x_scale: float, x_zp: int, w_scale, out_scale: float,
           out_zp: int, stride=(1, 1), dilation=(1, 1), padding: str = "VALID",
           activation: str = "NONE") -> np.ndarray:
    """CONV_2D int8 (per-channel or per-tensor filter scales).

    Mirrors micro/kernels/conv_common.cc (``CalculateOpDataConv`` ->
    ``PopulateConvolutionQuantizationParams``, padding via
    ``ComputePaddingHeightWidth``) and reference/integer_ops/conv.h
    ``ConvPerChannel``: taps that fall in the padding are skipped (identical
    to padding with ``x_zp``), ``acc = sum(w * (x - x_zp)) + bias[c]``, then
    per-channel MultiplyByQuantizedMultiplier, ``+ out_zp`` and clamp.
    Grouped convolution (``in_c = groups * w.shape[3]``) is supported as in TFLM.

    ``x``: int8 ``[N, H, W, Cin]``; ``w``: int8 ``[Cout, KH, KW, Cin/groups]``;
    ``bias``: int32 ``[Cout]`` or None; ``stride``/``dilation`` are ``(h, w)``.
    """
    x = _i64(x)
    w = _i64(w)
    n, h, wd, cin = x.shape
    cout, kh, kw, fin = w.shape
    if cin % fin:
        raise ValueError("input channels must be a multiple of filter input channels")
    groups = cin // fin
    if cout % groups:
        raise ValueError("output channels must be a multiple of groups")
    per_group = cout // groups
    sh, sw, dh, dw, oh, ow, ph, pw = _spatial_geometry(h, wd, kh, kw, stride, dilation, padding)
    xp = _padded(x - int(x_zp), ph, pw, oh, ow, kh, kw, sh, sw, dh, dw)
    acc = np.zeros((n, oh, ow, cout), dtype=np.int64)
    for ky in range(kh):
        for kx in range(kw):
            tap = _tap(xp, ky, kx, oh, ow, sh, sw, dh, dw)
            for g in range(groups):
                wt = w[g * per_group:(g + 1) * per_group, ky, kx, :]  # [pg, fin]
                acc[..., g * per_group:(g + 1) * per_group] += (
                    tap[..., g * fin:(g + 1) * fin] @ wt.T)
    if bias is not None:
        acc = acc + _i64(bias)
    acc = _wrap32(acc)
    mult, shift = _per_channel_multipliers(x_scale, w_scale, out_scale, cout)
    return _finish(acc, mult, shift, out_zp, activation, out_scale)


def depthwise_conv2d(x, w, bias=None, *, x_scale: float, x_zp: int, w_scale,
                     out_scale: float, out_zp: int, stride=(1, 1), dilation=(1, 1),
                     padding: str = "VALID", depth_multiplier: int | None = None,
                     activation: str = "NONE") -> np.ndarray:
    """DEPTHWISE_CONV_2D int8, per-channel scales on axis 3.

    Mirrors micro/kernels/depthwise_conv_common.cc and
    reference/integer_ops/depthwise_conv.h ``DepthwiseConvPerChannel``: output
    channel ``oc = ic * depth_multiplier + m`` reads input channel ``ic`` and
    filter ``w[0, ky, kx, oc]``; padded taps are skipped.

    ``x``: int8 ``[N, H, W, Cin]``; ``w``: int8 ``[1, KH, KW, Cin*dm]``.
    """
    x = _i64(x)
    w = _i64(w)
    n, h, wd, cin = x.shape
    _, kh, kw, cout = w.shape
    dm = depth_multiplier if depth_multiplier is not None else cout // cin
    if cin * dm != cout:
        raise ValueError("filter channels must equal in_channels * depth_multiplier")
    sh, sw, dh, dw, oh, ow, ph, pw = _spatial_geometry(h, wd, kh, kw, stride, dilation, padding)
    xp = _padded(x - int(x_zp), ph, pw, oh, ow, kh, kw, sh, sw, dh, dw)
    acc = np.zeros((n, oh, ow, cout), dtype=np.int64)
    for ky in range(kh):
        for kx in range(kw):
            tap = _tap(xp, ky, kx, oh, ow, sh, sw, dh, dw)
            if dm != 1:
                tap = np.repeat(tap, dm, axis=-1)
            acc += tap * w[0, ky, kx, :]
    if bias is not None:
        acc = acc + _i64(bias)
    acc = _wrap32(acc)
    mult, shift = _per_channel_multipliers(x_scale, w_scale, out_scale, cout)
    return _finish(acc, mult, shift, out_zp, activation, out_scale)


def _pool_geometry(x, filter_size, stride, padding):
    _, h, w, _ = x.shape
    kh, kw = _pair(filter_size)
    return (kh, kw) + _spatial_geometry(h, w, kh, kw, stride, 1, padding)


def average_pool2d(x, filter_size, stride=(1, 1), padding: str = "VALID", *,
                   activation: str = "NONE", scale: float = 1.0,
                   zero_point: int = 0) -> np.ndarray:
    """AVERAGE_POOL_2D int8.

    Mirrors micro/kernels/pooling_common.cc and
    reference/integer_ops/pooling.h ``AveragePool``: the raw int8 values of the
    window taps that lie inside the input are summed (no zero-point
    subtraction; TFLM requires input and output quantization to match) and
    divided by the number of those taps, rounding half away from zero:
    ``acc > 0 ? (acc + n/2) / n : (acc - n/2) / n`` with C division.
    ``scale``/``zero_point`` (of the output) only feed the activation clamp.
    """
    x = _i64(x)
    kh, kw, sh, sw, _, _, oh, ow, ph, pw = _pool_geometry(x, filter_size, stride, padding)
    xp = _padded(x, ph, pw, oh, ow, kh, kw, sh, sw, 1, 1)
    ones = _padded(np.ones_like(x), ph, pw, oh, ow, kh, kw, sh, sw, 1, 1)
    acc = np.zeros(xp[:, :oh, :ow, :].shape[:3] + (x.shape[3],), dtype=np.int64)
    cnt = np.zeros_like(acc)
    for ky in range(kh):
        for kx in range(kw):
            acc += _tap(xp, ky, kx, oh, ow, sh, sw, 1, 1)
            cnt += _tap(ones, ky, kx, oh, ow, sh, sw, 1, 1)
    if np.any(cnt == 0):
        raise ValueError("AveragePool window with no valid input (TFLM returns an error)")
    half = cnt // 2
    res = np.where(acc > 0, (acc + half) // cnt, -((half - acc) // cnt))
    lo, hi = activation_range(activation, _f32(scale), int(zero_point))
    return np.clip(res, lo, hi).astype(np.int8)


def max_pool2d(x, filter_size, stride=(1, 1), padding: str = "VALID", *,
               activation: str = "NONE", scale: float = 1.0,
               zero_point: int = 0) -> np.ndarray:
    """MAX_POOL_2D int8 (reference/integer_ops/pooling.h ``MaxPool``): max over
    the in-bounds taps (initialised to -128), then the activation clamp."""
    x = _i64(x)
    kh, kw, sh, sw, _, _, oh, ow, ph, pw = _pool_geometry(x, filter_size, stride, padding)
    xp = _padded(x, ph, pw, oh, ow, kh, kw, sh, sw, 1, 1, fill=INT8_MIN)
    res = np.full((x.shape[0], oh, ow, x.shape[3]), INT8_MIN, dtype=np.int64)
    for ky in range(kh):
        for kx in range(kw):
            res = np.maximum(res, _tap(xp, ky, kx, oh, ow, sh, sw, 1, 1))
    lo, hi = activation_range(activation, _f32(scale), int(zero_point))
    return np.clip(res, lo, hi).astype(np.int8)


def add(x1, x2, *, x1_scale: float, x1_zp: int, x2_scale: float, x2_zp: int,
        out_scale: float, out_zp: int, activation: str = "NONE") -> np.ndarray:
    """ADD int8 with numpy broadcasting (TFLM broadcasts up to 6-D the same way).

    Mirrors micro/kernels/add_common.cc ``CalculateOpDataAdd`` and
    reference/integer_ops/add.h ``AddFunc``::

        left_shift = 20
        twice_max = 2 * double(max(s1, s2))
        m1 = s1 / twice_max; m2 = s2 / twice_max
        mo = twice_max / ((1 << 20) * double(s_out))     (all QuantizeMultiplierSmallerThanOneExp)
        v_i = MBQMSmallerThanOneExp((x_i - zp_i) << 20, m_i)
        out = MBQMSmallerThanOneExp(v_1 + v_2, mo) + out_zp, clamped
    """
    s1, s2, so = _f32(x1_scale), _f32(x2_scale), _f32(out_scale)
    left_shift = 20
    twice_max = 2.0 * max(s1, s2)
    m1, sh1 = _quantize_multiplier_smaller_than_one_exp(s1 / twice_max)
    m2, sh2 = _quantize_multiplier_smaller_than_one_exp(s2 / twice_max)
    mo, sho = _quantize_multiplier_smaller_than_one_exp(
        twice_max / (float(1 << left_shift) * so))
    a, b = np.broadcast_arrays(_i64(x1), _i64(x2))
    v1 = _wrap32((a - int(x1_zp)) * (1 << left_shift))
    v2 = _wrap32((b - int(x2_zp)) * (1 << left_shift))
    sv1 = _mbqm_smaller_than_one_exp(v1, m1, sh1)
    sv2 = _mbqm_smaller_than_one_exp(v2, m2, sh2)
    raw = _mbqm_smaller_than_one_exp(_wrap32(sv1 + sv2), mo, sho) + int(out_zp)
    lo, hi = activation_range(activation, so, int(out_zp))
    return np.clip(raw, lo, hi).astype(np.int8)


def mul(x1, x2, *, x1_scale: float, x1_zp: int, x2_scale: float, x2_zp: int,
        out_scale: float, out_zp: int, activation: str = "NONE") -> np.ndarray:
    """MUL int8 with numpy broadcasting.

    Mirrors micro/kernels/mul_common.cc ``CalculateOpDataMul`` and
    reference/integer_ops/mul.h ``MulElementwise``:
    ``m = QuantizeMultiplier(double(s1) * double(s2) / double(s_out))``;
    ``out = MBQM((x1 - zp1) * (x2 - zp2), m) + out_zp``, clamped.
    """
    s1, s2, so = _f32(x1_scale), _f32(x2_scale), _f32(out_scale)
    m, sh = quantize_multiplier(s1 * s2 / so)
    a, b = np.broadcast_arrays(_i64(x1), _i64(x2))
    prod = _wrap32((a - int(x1_zp)) * (b - int(x2_zp)))
    raw = multiply_by_quantized_multiplier(prod, m, sh) + int(out_zp)
    lo, hi = activation_range(activation, so, int(out_zp))
    return np.clip(raw, lo, hi).astype(np.int8)


def softmax(x, *, x_scale: float, beta: float = 1.0, out_scale: float = 1.0 / 256,
            out_zp: int = -128) -> np.ndarray:
    """SOFTMAX int8 -> int8 over the last axis.

    Mirrors micro/kernels/softmax_common.cc ``CalculateSoftmaxParams`` and
    reference/softmax.h (quantized ``Softmax<int8_t, int8_t>``), gemmlowp path:

    * TFLM requires the output to be zero point -128, scale 1/256.
    * ``PreprocessSoftmaxScaling(beta, x_scale, 5)``:
      ``min(double(beta) * double(x_scale) * 2^26, 2^31 - 1)`` ->
      QuantizeMultiplierGreaterThanOne -> (multiplier, left_shift).
    * ``diff_min = -CalculateInputRadius(5, left_shift)``.
    * Per row: ``diff = x - max``; entries with ``diff >= diff_min`` get
      ``exp_on_negative_values`` (Q5.26 in, Q0.31 out) of
      ``MBQMGreaterThanOne(diff, multiplier, left_shift)``; the sum is taken in
      Q12.19 (Rescale<12>), ``GetReciprocal`` gives the Q0.31 reciprocal and
      ``num_bits_over_unit``; output =
      ``RoundingDivideByPOT(recip * exp, num_bits_over_unit + 23) - 128``,
      clamped; entries below ``diff_min`` output -128.
    * If a row's sum of exponentials reaches 512 TFLM aborts
      (``TFLITE_CHECK(exponent <= 31)``); this raises ``ValueError`` instead.
    """
    if int(out_zp) != -128 or _f32(out_scale) != _f32(1.0 / 256):
        raise ValueError("TFLM int8 SOFTMAX requires output zero point -128 and scale 1/256")
    x = _i64(x)
    beta_d = _f32(beta)
    k_scaled_diff_integer_bits = 5
    k_accumulation_integer_bits = 12
    real = min(beta_d * _f32(x_scale) * float(1 << (31 - k_scaled_diff_integer_bits)),
               float((1 << 31) - 1))
    input_multiplier, input_left_shift = _quantize_multiplier_greater_than_one(real)
    diff_min = int(-1.0 * _calculate_input_radius(k_scaled_diff_integer_bits, input_left_shift))

    max_in_row = x.max(axis=-1, keepdims=True)
    diff = x - max_in_row
    valid = diff >= diff_min
    rescaled = _mbqm_greater_than_one(diff, input_multiplier, input_left_shift)
    exps = _exp_on_negative_values(rescaled, k_scaled_diff_integer_bits)
    exps_acc = rounding_divide_by_pot(exps, k_accumulation_integer_bits)  # Rescale<12>
    sum_of_exps = _wrap32(np.where(valid, exps_acc, 0).sum(axis=-1, keepdims=True))
    shifted_scale, num_bits_over_unit = _get_reciprocal(sum_of_exps, k_accumulation_integer_bits)
    exponent = num_bits_over_unit + 31 - 8
    if np.any((exponent < 0) | (exponent > 31)):
        # TFLITE_CHECK(0 <= exponent && exponent <= 31) aborts TFLM: the sum of the
        # exponentials reached 512 (e.g. a row of more than ~512 near-maximal values).
        raise ValueError("SOFTMAX: sum of exponentials too large for the int8 kernel "
                         "(TFLM aborts on TFLITE_CHECK(exponent <= 31))")
    unsat = rounding_divide_by_pot(saturating_rounding_doubling_high_mul(shifted_scale, exps),
                                   exponent)
    out = np.clip(unsat - 128, INT8_MIN, INT8_MAX)
    return np.where(valid, out, INT8_MIN).astype(np.int8)


def logistic(x, *, x_scale: float, x_zp: int, out_scale: float = 1.0 / 256,
             out_zp: int = -128) -> np.ndarray:
    """LOGISTIC int8 -> int8.

    Mirrors micro/kernels/logistic_common.cc ``CalculateArithmeticOpDataLogistic``
    and reference/integer_ops/logistic.h (int8 overload), i.e. the gemmlowp
    fixed-point path (no LUT):

    * output zero point must be -128 (TFLM checks this; the scale is assumed
      to be 1/256 and not used).
    * ``input_real_multiplier = double(x_scale) * 2^27``;
      ``q, left_shift = frexp(..)``; ``multiplier = int32(round(q * 2^31))``
      (no 2^31 fix-up here, unlike QuantizeMultiplier).
    * ``radius = CalculateInputRadius(4, left_shift, 31)``;
      ``input = x - x_zp``; ``input <= -radius`` -> -128, ``>= radius`` -> 127,
      else ``RoundingDivideByPOT(gemmlowp::logistic(Q4.27
      MBQM(input, multiplier, left_shift)), 23) - 128`` clamped.
    """
    if int(out_zp) != -128:
        raise ValueError("TFLM int8 LOGISTIC requires output zero point -128")
    x = _i64(x)
    k_input_integer_bits = 4
    real = _f32(x_scale) * float(1 << (31 - k_input_integer_bits))
    q, left_shift = math.frexp(real)
    multiplier = int(_wrap32(_round_half_away_scalar(q * float(1 << 31))))
    radius = _calculate_input_radius(k_input_integer_bits, left_shift, 31)
    inp = x - int(x_zp)
    q4 = multiply_by_quantized_multiplier(inp, multiplier, left_shift)
    out_q0 = _gemmlowp_logistic(q4, k_input_integer_bits)
    out = np.clip(rounding_divide_by_pot(out_q0, 31 - 8) - 128, INT8_MIN, INT8_MAX)
    out = np.where(inp <= -radius, INT8_MIN, np.where(inp >= radius, INT8_MAX, out))
    return out.astype(np.int8)


def pad(x, paddings, *, zero_point: int = 0, constant_value: int | None = None) -> np.ndarray:
    """PAD / PADV2 int8 (micro/kernels/pad.cc, reference/pad.h): constant
    padding with ``constant_value`` if given (PADV2) else the output zero
    point.  ``paddings`` is ``[(before, after), ...]`` per dimension."""
    x = np.asarray(x, dtype=np.int8)
    value = int(zero_point) if constant_value is None else int(constant_value)
    pw = [(int(a), int(b)) for a, b in np.asarray(paddings).reshape(-1, 2)]
    return np.pad(x, pw, constant_values=np.int8(value))


def _resolve_axes(ndim: int, axis) -> tuple[int, ...]:
    axes = []
    for a in np.atleast_1d(np.asarray(axis, dtype=np.int64)).tolist():
        a = a + ndim if a < 0 else a
        if not 0 <= a < ndim:
            raise ValueError("axis out of range")
        if a not in axes:
            axes.append(a)
    return tuple(axes)


def mean(x, axis, keep_dims: bool = True, *, x_scale: float, x_zp: int,
         out_scale: float, out_zp: int) -> np.ndarray:
    """MEAN int8 over ``axis`` (list of ints, negatives allowed, duplicates removed).

    Mirrors micro/kernels/reduce_common.cc ``EvalIntegerMean`` ->
    ``QuantizedMeanOrSum`` (reference/reduce.h, compute_sum = false).  This
    TFLM build uses that one path for every int8 MEAN -- there is no special
    4-D axes-[1, 2] kernel and no shortcut when input and output quantization
    are equal (both verified against TFLM)::

        (m, s) = QuantizeMultiplier(double(x_scale) / double(out_scale))
        n      = number of reduced elements
        k      = min(floor(log2(n)), 32, 31 + s)
        m'     = (int64(m) << k) / n          (integer division)
        s'     = s - k
        out    = MBQM(int32(sum(x) - x_zp * n), m', s') + out_zp, clamped to int8
    """
    x = _i64(x)
    axes = _resolve_axes(x.ndim, axis)
    n = 1
    for a in axes:
        n *= x.shape[a]
    sums = _wrap32(x.sum(axis=axes, keepdims=keep_dims)) if axes else x.copy()
    if n == 0:
        return np.zeros(sums.shape, dtype=np.int8)
    m, s = quantize_multiplier(_f32(x_scale) / _f32(out_scale))
    k = n.bit_length() - 1
    k = min(k, 32)
    k = min(k, 31 + s)
    m2 = (m << k) // n if k >= 0 else (m >> -k) // n
    s2 = s - k
    shifted = _wrap32(sums - int(x_zp) * n)
    out = multiply_by_quantized_multiplier(shifted, m2, s2) + int(out_zp)
    return np.clip(out, INT8_MIN, INT8_MAX).astype(np.int8)


def concatenation(xs: Sequence[np.ndarray], axis: int, *,
                  x_qparams: Sequence[tuple[float, int]] | None = None,
                  out_qparams: tuple[float, int] | None = None) -> np.ndarray:
    """CONCATENATION int8 (micro/kernels/concatenation.cc).

    TFLM's int8 path is ``EvalUnquantized<int8_t>`` -> ``reference_ops::
    Concatenation``: a plain copy of the raw int8 values; inputs are never
    requantized (unlike LiteRT's ConcatenationWithScaling).  Instead, this
    TFLM build's Prepare rejects the model unless every input has exactly the
    output's scale and zero point (verified against TFLM).  If ``x_qparams``
    (one ``(scale, zero_point)`` per input) and ``out_qparams`` are given, the
    same check is made here and a mismatch raises ``ValueError``.
    """
    arrs = [np.asarray(a, dtype=np.int8) for a in xs]
    if x_qparams is not None and out_qparams is not None:
        os_, oz = _f32(out_qparams[0]), int(out_qparams[1])
        for i, (s, z) in enumerate(x_qparams):
            if _f32(s) != os_ or int(z) != oz:
                raise ValueError(f"CONCATENATION input {i}: quantization ({s}, {z}) differs "
                                 f"from the output's ({out_qparams[0]}, {oz}); TFLM rejects this")
    return np.concatenate(arrs, axis=axis)


def quantize(x, *, out_scale: float, out_zp: int, x_scale: float | None = None,
             x_zp: int = 0) -> np.ndarray:
    """QUANTIZE (micro/kernels/quantize_common.cc).

    * int8 input (requantize): ``reference_ops::Requantize`` with
      ``(m, s) = QuantizeMultiplier(double(x_scale) / double(out_scale))``;
      ``out = MBQM(x - x_zp, m, s) + out_zp``, clamped to int8.
    * float input: ``reference_ops::AffineQuantize``:
      ``int32(TfLiteRound(x / float(out_scale))) + out_zp`` (float32 maths), clamped;
      values whose quotient overflows int32 follow x86-64 (INT32_MIN, then wrap).
    """
    xa = np.asarray(x)
    if np.issubdtype(xa.dtype, np.floating):
        with np.errstate(all="ignore"):
            v = _round_half_away(xa.astype(np.float32) / np.float32(out_scale))
        # static_cast<int32_t>(float): out-of-range/NaN is UB in C++; x86-64 (cvttss2si,
        # what the pip build runs on) yields INT32_MIN.  The zero-point add then wraps.
        bad = ~np.isfinite(v) | (v < INT32_MIN) | (v > INT32_MAX)
        q = np.where(bad, INT32_MIN, np.where(bad, 0, v)).astype(np.int64)
        q = _wrap32(q + int(out_zp))
        return np.clip(q, INT8_MIN, INT8_MAX).astype(np.int8)
    if x_scale is None:
        raise ValueError("x_scale is required for int8 -> int8 requantization")
    m, s = quantize_multiplier(_f32(x_scale) / _f32(out_scale))
    out = multiply_by_quantized_multiplier(_i64(xa) - int(x_zp), m, s) + int(out_zp)
    return np.clip(out, INT8_MIN, INT8_MAX).astype(np.int8)


def reshape(x, shape: Iterable[int]) -> np.ndarray:
    """RESHAPE (micro/kernels/reshape.cc): data copied unchanged."""
    return np.asarray(x).reshape(tuple(int(d) for d in shape))
