"""Binary layers (Larq Compute Engine semantics): BINARIZE, BCONV_2D, BFULLY_CONNECTED,
UNBINARIZE and BMAX_POOL_2D builders, and the float path that binarizes a trained dense or conv
layer with its batch norm.

Tensors: packed activations and weights are Graph tensors of dtype "packed" whose last dimension
counts channels (bits); their data is int32 words (converter.bitpack's convention).

Op layouts (the kernel modules document the same):
  BINARIZE          in [x int8 (..., C)]            out [y packed (..., C)]     params []
  UNBINARIZE        in [x packed (..., C)]          out [y int8 (..., C)]
                    params [plus, minus]
  BMAX_POOL_2D      in [x packed (N, H, W, C)]      out [y packed (N, OH, OW, C)]
                    params [filter_h, filter_w, stride_h, stride_w, pad_top, pad_left, out_h,
                            out_w]
  BCONV_2D          in [x packed (N, H, W, Cin), w packed (Cout, KH, KW, Cin), t0, t1]
                    out [y packed | int8 (N, OH, OW, Cout)]
                    params [stride_h, stride_w, dilation_h, dilation_w, pad_top, pad_left,
                            out_h, out_w, zero_pad, out_mode]
  BFULLY_CONNECTED  in [x packed (..., n_in), w packed (n_out, n_in), t0, t1]
                    out [y packed | int8 (..., n_out)]   params [out_mode]

The output transform. The kernel computes an integer a per output: a = accum = popcount(x XOR w)
(with padded taps reading +1), or with zero padding (SAME, pad_values=0: padded taps count 0)
a = K - dot, twice LCE's accum. LCE's float transform is folded into integer tables here:
  out_mode 0, bit-packed output: bit = a > t0[c]. LCE's thresholds (bit = accum > threshold)
      are used as they are (doubled with zero padding); from a float multiplier and bias they
      are computed as LCE's converter does (ComputeWriteBitpackedOutputThresholds), flipping the
      filters of channels with a negative multiplier.
  int8 output: LCE computes out = saturate(round(float32(A') * m + b)) in float32, with
      A' = clamp(K - dot) and m, b the fused multiplier and bias (lce_int8_levels below). For
      a fixed channel this is a monotone step function of a, evaluated here for every a in
      [0, a_max] and stored either
        out_mode 1, steps: the a at which the output steps (at most 255 per channel, repeated
            for a jump of more than one level), searched by bisection on the device, or
        out_mode 2, table: the output for every a (Cout x (a_max + 1) int8),
      whichever is smaller (or as asked).
"""

from __future__ import annotations

import numpy as np
from tinyrt import opcodes

from .. import bitpack
from ..graph import Graph
from .conv import out_size_and_pad

OUT_BITS, OUT_STEPS, OUT_TABLE = 0, 1, 2
ACTIVATIONS = ("NONE", "RELU", "RELU6", "RELU_N1_TO_1")
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


# -- LCE's output transform, folded into integers -----------------------------------------------

def activation_clamp(activation: str, k: int) -> tuple[int, int]:
    """The clamp of the dot product LCE applies for a fused activation (its int32
    CalculateActivationRange, limited to [-K, K])."""
    lo, hi = {"NONE": (-k, k), "RELU": (0, k), "RELU6": (0, 6), "RELU_N1_TO_1": (-1, 1)}[
        _activation(activation)]
    return max(lo, -k), min(hi, k)


def _activation(activation) -> str:
    a = "NONE" if activation in (None, "") else str(activation).upper()
    if a not in ACTIVATIONS:
        raise ValueError(f"fused activation {activation!r}, expected one of {ACTIVATIONS}")
    return a


def lce_int8_levels(multiplier, bias, k: int, out_scale: float, out_zero_point: int,
                    activation: str = "NONE", zero_pad: bool = False) -> np.ndarray:
    """The int8 output of every channel for every kernel value a: int (Cout, a_max + 1).

    As LCE's bconv2d OneTimeSetup and OutputTransform<int8> on x86-64: m = float32(-mul /
    scale), b = float32((bias + K * mul) / scale + zp) formed in double; y = float32(A') * m + b
    in float32 (product rounded, then sum rounded), A' = clamp(accum << 1) to the activation's
    range; round half away from zero (std::round), saturate to int8."""
    mul = np.asarray(multiplier, dtype=np.float32).astype(np.float64).ravel()
    add = np.asarray(bias, dtype=np.float32).astype(np.float64).ravel()
    if mul.shape != add.shape:
        raise ValueError(f"{mul.size} multipliers but {add.size} biases")
    scale = float(np.float32(out_scale))
    if not np.isfinite(scale) or scale <= 0:
        raise ValueError(f"output scale {out_scale} must be positive")
    lo, hi = activation_clamp(activation, k)
    a_max = 2 * k if zero_pad else k
    a = np.arange(a_max + 1, dtype=np.int64)
    accum2 = a if zero_pad else 2 * a  # LCE's accum << 1 = K - dot
    accum2 = np.clip(accum2, k - hi, k - lo)
    m = (-mul / scale).astype(np.float32)
    b = ((add + k * mul) / scale + out_zero_point).astype(np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        y = (accum2.astype(np.float32)[None, :] * m[:, None]).astype(np.float32)
        y = (y + b[:, None]).astype(np.float32)
    y64 = y.astype(np.float64)
    r = np.sign(y64) * np.floor(np.abs(y64) + 0.5)
    if not np.all(np.isfinite(r)) or np.any(np.abs(r) >= 2.0**31):
        raise ValueError("the int8 output transform leaves int32 (LCE's result is undefined): "
                         "multiplier / scale too large")
    return np.clip(r, -128, 127).astype(np.int64)


def step_tables(levels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Compress monotone rows of levels (Cout, A + 1) into rows (first, count, base, dir) and
    the ascending steps: levels[c, a] = base + dir * #{steps of c <= a}."""
    rows, steps = [], []
    for c, f in enumerate(levels):
        d = np.diff(f)
        direction = -1 if np.any(d < 0) else 1
        if np.any(d * direction < 0):
            raise ValueError(f"channel {c}: output is not monotone in the accumulator")
        s = np.repeat(np.arange(1, f.size), np.abs(d))
        rows.append((len(steps), s.size, int(f[0]), direction))
        steps.extend(int(v) for v in s)
    return np.array(rows, dtype=np.int32).reshape(-1, 4), np.array(steps or [0], dtype=np.int32)


def lce_thresholds(multiplier, bias, k: int, activation: str = "NONE",
                   zero_pad: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Bit-packed output from a float multiplier and bias: (thresholds in the kernel's a, flip)
    with bit = a > threshold iff y = clamp(dot) * multiplier + bias < 0 once the filters of the
    channels where flip is True have been negated. LCE's converter's arithmetic
    (ComputeWriteBitpackedOutputThresholds): float32 bias / |mul| + K, floor(0.5 * that) (the
    0.5 dropped with zero padding, where a counts half accumulator units)."""
    mul = np.asarray(multiplier, dtype=np.float32).ravel()
    add = np.asarray(bias, dtype=np.float32).ravel()
    if mul.shape != add.shape:
        raise ValueError(f"{mul.size} multipliers but {add.size} biases")
    lo, hi = activation_clamp(activation, k)
    kf = np.float32(k)
    thr = np.zeros(mul.size, dtype=np.int64)
    flip = mul < 0
    for c in range(mul.size):
        m, b = mul[c], add[c]
        if not (np.isfinite(m) and np.isfinite(b)):
            raise ValueError(f"channel {c}: multiplier {m} / bias {b} not finite")
        if m == 0:
            thr[c] = INT32_MIN if b < 0 else INT32_MAX
            continue
        cmin, cmax = (np.float32(lo), np.float32(hi)) if m > 0 else (np.float32(-hi),
                                                                     np.float32(-lo))
        start = np.float32(cmin * abs(m)) + b
        end = np.float32(cmax * abs(m)) + b
        if start < 0 and end < 0:
            thr[c] = INT32_MIN
        elif start >= 0 and end >= 0:
            thr[c] = INT32_MAX
        else:
            t = np.float32(np.float32(b / abs(m)) + kf)
            thr[c] = int(np.floor(float(t) if zero_pad else 0.5 * float(t)))
    return thr, flip


def _kernel_thresholds(thr, a_max: int) -> np.ndarray:
    return np.clip(np.asarray(thr, dtype=np.int64), -1, a_max).astype(np.int32)


def _flip_filters(w_packed: np.ndarray, channels_in: int, flip: np.ndarray) -> np.ndarray:
    if not np.any(flip):
        return w_packed
    bits = bitpack.unpack_bits(w_packed, channels_in)
    bits[flip] = ~bits[flip]
    return bitpack.pack_bits(bits)


def _output_transform(g: Graph, name: str, w_packed: np.ndarray, channels_in: int, k: int,
                      zero_pad: bool, thresholds, multiplier, bias, out_scale,
                      out_zero_point: int, activation: str, int8_method: str):
    """Constants and mode of the output transform: (w_packed, [t0, t1], out_mode, dtype)."""
    a_max = 2 * k if zero_pad else k
    cout = w_packed.shape[0]
    if thresholds is not None:
        if multiplier is not None or out_scale is not None:
            raise ValueError(f"{name}: thresholds (bit-packed output) exclude multiplier / "
                             "out_scale (int8 output)")
        thr = np.asarray(thresholds, dtype=np.int64).ravel()
        if thr.size != cout:
            raise ValueError(f"{name}: {thr.size} thresholds for {cout} channels")
        if zero_pad:  # accum > t  <=>  2 * accum > 2t
            thr = np.where(thr <= INT32_MIN, thr, 2 * thr)
        t0 = g.add_const(name + "/thresholds", _kernel_thresholds(thr, a_max), "int32")
        return w_packed, [t0, -1], OUT_BITS, "packed"
    if multiplier is None or bias is None:
        raise ValueError(f"{name}: give thresholds, or multiplier and bias")
    mul = np.asarray(multiplier, dtype=np.float32).ravel()
    add = np.asarray(bias, dtype=np.float32).ravel()
    if mul.size != cout or add.size != cout:
        raise ValueError(f"{name}: {mul.size} multipliers / {add.size} biases for {cout} "
                         "channels")
    if out_scale is None:
        thr, flip = lce_thresholds(mul, add, k, activation, zero_pad)
        w_packed = _flip_filters(w_packed, channels_in, flip)
        t0 = g.add_const(name + "/thresholds", _kernel_thresholds(thr, a_max), "int32")
        return w_packed, [t0, -1], OUT_BITS, "packed"
    levels = lce_int8_levels(mul, add, k, out_scale, out_zero_point, activation, zero_pad)
    rows, steps = step_tables(levels)
    if np.any(rows[:, 1] > 255):
        raise ValueError(f"{name}: more than 255 output steps in a channel")
    table_bytes = levels.size
    steps_bytes = 16 * cout + 4 * steps.size
    method = int8_method
    if method == "auto":
        method = "table" if table_bytes <= steps_bytes else "steps"
    if method == "table":
        t0 = g.add_const(name + "/table", levels.astype(np.int8), "int8")
        return w_packed, [t0, -1], OUT_TABLE, "int8"
    if method != "steps":
        raise ValueError(f"{name}: int8_method {int8_method!r}, expected auto, table, steps")
    t0 = g.add_const(name + "/levels", rows, "int32")
    t1 = g.add_const(name + "/steps", steps, "int32")
    return w_packed, [t0, t1], OUT_STEPS, "int8"


def _packed_filters(filters, channels_in: int, shape_head: tuple, name: str) -> np.ndarray:
    """int32 filters are packed words (shape_head + (words,)); any other dtype holds values
    (shape_head + (channels_in,)) packed by sign (< 0 -> -1)."""
    w = np.asarray(filters)
    n = bitpack.words(channels_in)
    if w.dtype == np.int32 and w.shape == shape_head + (n,):
        if not bitpack.unused_bits_clear(w, channels_in):
            raise ValueError(f"{name}: packed filters have bits set past channel {channels_in}")
        return w
    if w.dtype != np.int32 and w.shape == shape_head + (channels_in,):
        return bitpack.pack_signs(w)
    raise ValueError(f"{name}: filters {w.dtype} {w.shape}, expected packed int32 "
                     f"{shape_head + (n,)} or values {shape_head + (channels_in,)}")


# -- builders ----------------------------------------------------------------------------------

def binarize(g: Graph, x: int, name: str = "binarize") -> int:
    """BINARIZE (LceQuantize): packed sign of an int8 tensor against its zero point."""
    xt = g.tensors[x]
    if xt.dtype != "int8":
        raise ValueError(f"{name}: input is {xt.dtype}, BINARIZE takes int8")
    y = g.add_activation(name + "/out", xt.shape, 1.0, 0, "packed")
    g.add_op(opcodes.BINARIZE, [x], [y])
    return y


def unbinarize_values(out_scale: float, out_zero_point: int) -> tuple[int, int]:
    """LceDequantize's int8 values of +1 and -1: zp +- round(1.0f / scale) (float32 division,
    std::round), saturated."""
    inv = float(np.float32(1.0) / np.float32(out_scale))
    if not np.isfinite(inv) or inv >= 2.0**31:
        raise ValueError(f"output scale {out_scale} too small")
    offset = int(np.floor(abs(inv) + 0.5)) * (1 if inv >= 0 else -1)
    return min(127, out_zero_point + offset), max(-128, out_zero_point - offset)


def unbinarize(g: Graph, x: int, out_scale: float, out_zero_point: int,
               name: str = "unbinarize") -> int:
    """UNBINARIZE (LceDequantize to int8)."""
    xt = g.tensors[x]
    if xt.dtype != "packed":
        raise ValueError(f"{name}: input is {xt.dtype}, UNBINARIZE takes packed")
    plus, minus = unbinarize_values(out_scale, int(out_zero_point))
    y = g.add_activation(name + "/out", xt.shape, out_scale, out_zero_point)
    g.add_op(opcodes.UNBINARIZE, [x], [y], [plus, minus])
    return y


def bmax_pool_2d(g: Graph, x: int, filter_size, stride, padding: str = "VALID",
                 name: str = "bmaxpool") -> int:
    """BMAX_POOL_2D (LceBMaxPool2d) on a packed NHWC tensor."""
    xt = g.tensors[x]
    if xt.dtype != "packed" or len(xt.shape) != 4:
        raise ValueError(f"{name}: input {xt.dtype} {xt.shape}, expected packed NHWC")
    fh, fw = _pair(filter_size, f"{name}: filter")
    sh, sw = _pair(stride, f"{name}: stride")
    oh, pt = out_size_and_pad(padding, xt.shape[1], fh, sh, 1)
    ow, pl = out_size_and_pad(padding, xt.shape[2], fw, sw, 1)
    if oh < 1 or ow < 1:
        raise ValueError(f"{name}: {padding} output {oh}x{ow} for input {xt.shape}")
    y = g.add_activation(name + "/out", (xt.shape[0], oh, ow, xt.shape[3]), 1.0, 0, "packed")
    g.add_op(opcodes.BMAX_POOL_2D, [x], [y], [fh, fw, sh, sw, pt, pl, oh, ow])
    return y


def _pair(v, what: str) -> tuple[int, int]:
    a, b = (v, v) if isinstance(v, (int, np.integer)) else v
    if int(a) < 1 or int(b) < 1:
        raise ValueError(f"{what} {v} must be >= 1")
    return int(a), int(b)


def bconv_2d(g: Graph, x: int, filters, *, stride=(1, 1), dilation=(1, 1),
             padding: str = "VALID", pad_values: int = 1, activation: str = "NONE",
             thresholds=None, multiplier=None, bias=None, out_scale: float | None = None,
             out_zero_point: int = 0, int8_method: str = "auto", name: str = "bconv") -> int:
    """BCONV_2D (LceBconv2d) on packed x (N, H, W, Cin).

    filters: int32 packed words (Cout, KH, KW, words(Cin)) as LCE stores them, or values of
    any other dtype (Cout, KH, KW, Cin) packed by sign. Output: bit-packed with LCE
    `thresholds`; bit-packed from `multiplier` and `bias` (the sign of clamp(dot) * multiplier
    + bias); or int8 with `multiplier`, `bias`, `out_scale`, `out_zero_point` (LCE's float32
    transform)."""
    xt = g.tensors[x]
    if xt.dtype != "packed" or len(xt.shape) != 4:
        raise ValueError(f"{name}: input {xt.dtype} {xt.shape}, expected packed NHWC")
    cin = xt.shape[3]
    w = np.asarray(filters)
    if w.ndim != 4:
        raise ValueError(f"{name}: filters {w.shape}, expected (Cout, KH, KW, Cin)")
    cout, kh, kw = (int(d) for d in w.shape[:3])
    w = _packed_filters(w, cin, (cout, kh, kw), name)
    padding = str(padding).upper()
    sh, sw = _pair(stride, f"{name}: stride")
    dh, dw = _pair(dilation, f"{name}: dilation")
    oh, pt = out_size_and_pad(padding, xt.shape[1], kh, sh, dh)
    ow, pl = out_size_and_pad(padding, xt.shape[2], kw, sw, dw)
    if oh < 1 or ow < 1:
        raise ValueError(f"{name}: {padding} output {oh}x{ow} for input {xt.shape} and filter "
                         f"{kh}x{kw} (dilation {dh}x{dw})")
    if pad_values not in (0, 1):
        raise ValueError(f"{name}: pad_values {pad_values}, expected 0 or 1")
    padded = ((oh - 1) * sh + (kh - 1) * dh + 1 > xt.shape[1]
              or (ow - 1) * sw + (kw - 1) * dw + 1 > xt.shape[2])
    zero_pad = padding == "SAME" and pad_values == 0 and padded  # else a is plain accum
    k = kh * kw * cin
    if 2 * k >= 2**29:
        raise ValueError(f"{name}: K = {k} bits per output is too large")
    w, ts, mode, dtype = _output_transform(g, name, w, cin, k, zero_pad, thresholds, multiplier,
                                           bias, out_scale, out_zero_point, activation,
                                           int8_method)
    wi = g.add_const(name + "/filters", w, "packed")
    g.tensors[wi].shape = (cout, kh, kw, cin)
    scale = 1.0 if out_scale is None or dtype == "packed" else out_scale
    zp = 0 if dtype == "packed" else out_zero_point
    y = g.add_activation(name + "/out", (xt.shape[0], oh, ow, cout), scale, zp, dtype)
    g.add_op(opcodes.BCONV_2D, [x, wi] + ts, [y],
             [sh, sw, dh, dw, pt, pl, oh, ow, int(zero_pad), mode])
    return y


def bfully_connected(g: Graph, x: int, weights, *, activation: str = "NONE", thresholds=None,
                     multiplier=None, bias=None, out_scale: float | None = None,
                     out_zero_point: int = 0, int8_method: str = "auto",
                     name: str = "bfc") -> int:
    """BFULLY_CONNECTED on packed x (..., n_in): weights packed int32 (n_out, words(n_in)) or
    values (n_out, n_in) packed by sign; outputs as bconv_2d."""
    xt = g.tensors[x]
    if xt.dtype != "packed":
        raise ValueError(f"{name}: input is {xt.dtype}, expected packed")
    n_in = xt.shape[-1]
    w = np.asarray(weights)
    if w.ndim != 2:
        raise ValueError(f"{name}: weights {w.shape}, expected (n_out, n_in)")
    n_out = int(w.shape[0])
    w = _packed_filters(w, n_in, (n_out,), name)
    w, ts, mode, dtype = _output_transform(g, name, w, n_in, n_in, False, thresholds,
                                           multiplier, bias, out_scale, out_zero_point,
                                           activation, int8_method)
    wi = g.add_const(name + "/weights", w, "packed")
    g.tensors[wi].shape = (n_out, n_in)
    scale = 1.0 if out_scale is None or dtype == "packed" else out_scale
    zp = 0 if dtype == "packed" else out_zero_point
    y = g.add_activation(name + "/out", tuple(xt.shape[:-1]) + (n_out,), scale, zp, dtype)
    g.add_op(opcodes.BFULLY_CONNECTED, [x, wi] + ts, [y], [mode])
    return y


# -- from float weights ----------------------------------------------------------------------

def fold_batch_norm(scale, layer_bias=None, batch_norm=None) -> tuple[np.ndarray, np.ndarray]:
    """(multiplier, bias) of  BN(scale * dot + layer_bias)  per output channel, with batch_norm
    = (gamma, beta, mean, variance, epsilon) or None."""
    scale = np.asarray(scale, dtype=np.float64)
    b = np.zeros_like(scale) if layer_bias is None else np.asarray(layer_bias, np.float64)
    if batch_norm is None:
        return scale.astype(np.float32), b.astype(np.float32)
    gamma, beta, mean, var, eps = batch_norm
    inv = np.asarray(gamma, np.float64) / np.sqrt(np.asarray(var, np.float64) + float(eps))
    return ((scale * inv).astype(np.float32),
            ((b - np.asarray(mean, np.float64)) * inv + np.asarray(beta, np.float64))
            .astype(np.float32))


def _binarize_weights(w: np.ndarray, scale: str | None) -> tuple[np.ndarray, np.ndarray]:
    """Sign of float weights (w < 0 -> -1, as Larq's ste_sign maps 0 to +1) and the per-output
    channel scale (mean |w| with scale='mean_abs', 1 with None)."""
    w = np.asarray(w, dtype=np.float64)
    axes = tuple(range(1, w.ndim))
    if scale == "mean_abs":
        alpha = np.mean(np.abs(w), axis=axes)
    elif scale is None:
        alpha = np.ones(w.shape[0])
    else:
        raise ValueError(f"scale {scale!r}, expected 'mean_abs' or None")
    return np.where(w < 0, -1, 1).astype(np.int8), alpha


def binary_dense(g: Graph, x: int, weights, bias=None, batch_norm=None,
                 scale: str | None = "mean_abs", activation: str = "NONE",
                 out_scale: float | None = None, out_zero_point: int = 0,
                 name: str = "bdense") -> int:
    """A trained float dense layer (weights (n_out, n_in), optional bias) followed by an
    optional batch norm, as a binary layer on packed x: y = BN(alpha * (sign(x) . sign(w)) + b).
    Output packed (the sign of y) without out_scale, else int8 quantized with it."""
    signs, alpha = _binarize_weights(weights, scale)
    mul, add = fold_batch_norm(alpha, bias, batch_norm)
    return bfully_connected(g, x, signs, activation=activation, multiplier=mul, bias=add,
                            out_scale=out_scale, out_zero_point=out_zero_point, name=name)


def binary_conv_2d(g: Graph, x: int, weights, bias=None, batch_norm=None,
                   scale: str | None = "mean_abs", stride=(1, 1), dilation=(1, 1),
                   padding: str = "VALID", pad_values: int = 1, activation: str = "NONE",
                   out_scale: float | None = None, out_zero_point: int = 0,
                   name: str = "bconv") -> int:
    """A trained float conv layer (weights (Cout, KH, KW, Cin), optional bias) followed by an
    optional batch norm, as a binary convolution on packed x; outputs as binary_dense."""
    signs, alpha = _binarize_weights(weights, scale)
    mul, add = fold_batch_norm(alpha, bias, batch_norm)
    return bconv_2d(g, x, signs, stride=stride, dilation=dilation, padding=padding,
                    pad_values=pad_values, activation=activation, multiplier=mul, bias=add,
                    out_scale=out_scale, out_zero_point=out_zero_point, name=name)
