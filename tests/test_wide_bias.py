"""int32 biases near +-2^30 and +-(2^31 - 1) (issue 13): batch-norm folding leaves dead or
always-saturated channels whose bias does not fit the boards' 31-bit small ints. The converter
proves such a channel's output constant and stores it as weights 0, a small bias and the
identity requantization (converter/layers/common.exact_channels); a wide channel that is not
constant ("edge" channels below: the bias puts the output on a rounding edge, so the products
decide) is recomputed after the layer's kernel by tinyrt/kernels/wide_channels.py with the
bias split in 15-bit halves (tinyrt/requant_wide.py). Everything else is unchanged.

A MobileNet-style block (CONV_2D 1x1 -> DEPTHWISE_CONV_2D 3x3 -> CONV_2D 1x1, per-channel
scales) is written as .tflite, run by tflite-micro, converted and run on every interpreter
with invoke() under heap_lock."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from converter.layers.common import exact_channels
from converter.layers.common import f32
from converter.quantization import (constant_channel_output, quantize_multiplier,
                                    tflm_requantize)
from converter.tflite_import import import_tflite
from converter.writer import serialize
from host_sim.device import invoke_models_with_kernels
from tinyrt.requant_wide import SATURATED, multiply_by_quantized_multiplier_wide
from tests.kernel_harness import fast_kernel
from host_sim.oracle.tflm import TOp, TTensor, build_tflite, run_tflm

I32_MAX = (1 << 31) - 1
WIDE = (1 << 30, -(1 << 30), I32_MAX, -I32_MAX, -(1 << 31))
EXAMPLES = 5


def edge_bias(level: float, x_scale: float, y_scale: float, y_zp: int) -> tuple[float, int]:
    """(weight scale, bias) of a channel whose bias is within 2^12 of 2^30 * sign(level) and
    puts the output exactly on a step (level is a half-integer: the step from y_zp + level -
    1/2 to y_zp + level + 1/2 lies at bias +-2^30): the smallest bias whose requantized output
    reaches the upper level. Sums of products >= 0 give the upper level, < 0 the lower: the
    channel is wide and not constant."""
    sc = float(np.float32(abs(level) * y_scale / (x_scale * (1 << 30))))
    m, shift = quantize_multiplier(float(f32(x_scale) * f32(sc) / f32(y_scale)))
    center = (1 << 30) if level > 0 else -(1 << 30)
    lo, hi = center - 4096, center + 4096
    target = tflm_requantize(hi, m, shift)
    assert tflm_requantize(lo, m, shift) < target
    while hi - lo > 1:  # requant(lo) < target == requant(hi)
        mid = (lo + hi) // 2
        if tflm_requantize(mid, m, shift) == target:
            hi = mid
        else:
            lo = mid
    return sc, hi


def _layer(rng, name, shape, axis, n, x_scale, wide, dead_scale=1e-7, edge=(), y=(1.0, 0)):
    """(weights, per-channel scales, bias) with `wide` {channel: bias}; a channel whose bias
    is +-(2^31 - 1) or -2^31 is dead (weights 0: any positive sum would wrap TFLM's int32
    accumulator), one with +-2^30 has tiny weights (scale dead_scale) or normal ones; `edge`
    {channel: level} are wide channels on a rounding edge (edge_bias; y: output scale, zp)."""
    w = rng.integers(-127, 128, shape).astype(np.int8)
    scales = np.float32(0.002) * (1 + 0.3 * rng.random(n, dtype=np.float32))
    bias = rng.integers(-5000, 5000, n).astype(np.int64)
    for c, b in wide.items():
        bias[c] = b
        idx = [slice(None)] * len(shape)
        idx[axis] = c
        if abs(b) > 1 << 30:
            w[tuple(idx)] = 0
        elif c % 2:
            scales[c] = dead_scale  # dead: |bias * scale| small, output near its constant
    for c, level in dict(edge).items():
        scales[c], bias[c] = edge_bias(level, x_scale, y[0], y[1])
    bscale = np.float32(x_scale) * scales
    return w, scales, bias.astype(np.int32), bscale


def block_tflite(seed: int, x_zp: int = -3) -> bytes:
    rng = np.random.default_rng(seed)
    h, c0, c1, c2 = 5, 8, 12, 6
    s0, s1, s2, s3 = 0.05, 0.04, 0.03, 0.06
    w1, sc1, b1, bs1 = _layer(rng, "c1", (c1, 1, 1, c0), 0, c1, s0,
                              {0: WIDE[0], 1: WIDE[1], 3: WIDE[2], 4: WIDE[3], 6: WIDE[4],
                               7: WIDE[0]}, edge={10: 20.5, 11: 3.5}, y=(s1, -128))
    w2, sc2, b2, bs2 = _layer(rng, "dw", (1, 3, 3, c1), 3, c1, s1,
                              {2: WIDE[1], 5: WIDE[0], 8: WIDE[3], 9: WIDE[0]},
                              edge={10: 5.5, 11: 40.5}, y=(s2, 4))
    w3, sc3, b3, bs3 = _layer(rng, "c2", (c2, 1, 1, c1), 0, c2, s2,
                              {1: WIDE[2], 2: WIDE[0], 3: WIDE[1]}, edge={0: -7.5, 5: 60.5},
                              y=(s3, 2))
    t = [
        TTensor("x", (1, h, h, c0), "int8", s0, x_zp),
        TTensor("w1", w1.shape, "int8", sc1.tolist(), 0, 0, w1),
        TTensor("b1", (c1,), "int32", bs1.tolist(), 0, 0, b1),
        TTensor("y1", (1, h, h, c1), "int8", s1, -128),
        TTensor("w2", w2.shape, "int8", sc2.tolist(), 0, 3, w2),
        TTensor("b2", (c1,), "int32", bs2.tolist(), 0, 0, b2),
        TTensor("y2", (1, h, h, c1), "int8", s2, 4),
        TTensor("w3", w3.shape, "int8", sc3.tolist(), 0, 0, w3),
        TTensor("b3", (c2,), "int32", bs3.tolist(), 0, 0, b3),
        TTensor("y3", (1, h, h, c2), "int8", s3, 2),
    ]
    ops = [TOp("CONV_2D", [0, 1, 2], [3], {"padding": "SAME",
                                            "fused_activation_function": "RELU6"}),
           TOp("DEPTHWISE_CONV_2D", [3, 4, 5], [6], {"padding": "SAME", "depth_multiplier": 1,
                                                      "fused_activation_function": "RELU"}),
           TOp("CONV_2D", [6, 7, 8], [9], {"padding": "SAME"})]
    return build_tflite(t, ops, [0], [3, 6, 9])  # every layer's output is compared


def fc_tflite(seed: int) -> bytes:
    """FULLY_CONNECTED 1024 -> 6 with per-channel multipliers ~2e-7 and biases +-2^30: the
    products move each output by several levels (not constant, > 31-bit accumulators), and
    two batches."""
    rng = np.random.default_rng(seed)
    sign = np.array([1, -1, 1, -1, 1, 1])[:, None]
    w = (sign * rng.integers(60, 128, (6, 1024))).astype(np.int8)  # the examples' extremes
    w[0] = 127  # move each output by a few levels
    scales = (1e-7 * (1 + 0.2 * rng.random(6))).astype(np.float32)
    bias = np.array([1 << 30, -(1 << 30), I32_MAX - (1 << 24), 1 << 30, 12345, -(1 << 30) - 77],
                    np.int64)
    return build_tflite([TTensor("x", (2, 1024), "int8", 1.0, 5),
                         TTensor("w", (6, 1024), "int8", scales.tolist(), 0, 0, w),
                         TTensor("b", (6,), "int32", scales.tolist(), 0, 0, bias),
                         TTensor("y", (2, 6), "int8", 1.0, 0)],
                        [TOp("FULLY_CONNECTED", [0, 1, 2], [3])], [0], [3])


@lru_cache(maxsize=None)
def cases() -> tuple:
    """(model file, examples, TFLM outputs) for a few seeds and input zero points (the block)
    and two wide FC layers."""
    out = []
    for seed, x_zp in ((1, -3), (2, 100), (3, -128)):
        tfl = block_tflite(seed, x_zp)
        rng = np.random.default_rng(seed + 10)
        xs = [rng.integers(-128, 128, (1, 5, 5, 8), dtype=np.int8) for _ in range(EXAMPLES)]
        xs[0][:] = 127
        xs[1][:] = -128
        want = [[y.ravel().astype(np.int64) for y in run_tflm(tfl, [x])] for x in xs]
        out.append((serialize(import_tflite(tfl)), [[x] for x in xs], want))
    for seed in (4, 5):
        tfl = fc_tflite(seed)
        rng = np.random.default_rng(seed + 10)
        xs = [rng.integers(-128, 128, (2, 1024), dtype=np.int8) for _ in range(EXAMPLES)]
        xs[0][0] = 127
        xs[0][1] = -128
        want = [[y.ravel().astype(np.int64) for y in run_tflm(tfl, [x])] for x in xs]
        out.append((serialize(import_tflite(tfl)), [[x] for x in xs], want))
    return tuple(out)


def test_edge_channels_are_wide_and_not_constant() -> None:
    """The cases exercise the fix-up: each layer has wide channels that are not constant
    (inputs [4], [5]), and TFLM's outputs on each of them take more than one value."""
    g = import_tflite(block_tflite(1))
    assert all(len(op.inputs) == 6 for op in g.ops)
    edges = ((10, 11), (10, 11), (0, 5))
    for op, chans in zip(g.ops, edges):
        assert g.tensors[op.inputs[4]].data[:, 0].tolist() == list(chans)
    models = cases()
    for layer, chans in enumerate(edges):
        for c in chans:
            levels = {int(v) for _, _, want in models[:3] for w in want
                      for v in w[layer].reshape(-1, g.tensors[g.ops[layer].outputs[0]].shape[3]
                                                )[:, c]}
            assert len(levels) > 1, (layer, c, levels)
    for _, _, want in models[3:]:
        fc = np.stack([w[0] for w in want]).reshape(-1, 6)
        assert all(len(np.unique(fc[:, c])) > 1 for c in (0, 1, 3, 5))


def test_converted_biases_fit_small_ints() -> None:
    for tfl in (block_tflite(1), block_tflite(2, 100)):
        g = import_tflite(tfl)
        for t in g.tensors:
            if t.is_const and t.dtype == "int32" and t.name.startswith("b"):
                assert np.abs(t.data.astype(np.int64)).max() < 1 << 20, t.name


def test_block_matches_tflm(interpreter: str) -> None:
    """Bit-exact on every interpreter, invoke() under heap_lock (host_sim.device), the layers
    run by the interpreter's fast kernel (asm on the boards, viper on unix) plus the fix-up."""
    models = cases()
    got, kernels = invoke_models_with_kernels([(m, ex) for m, ex, _ in models], interpreter)
    n = 0
    for (_, _, want), rows in zip(models, got):
        for w, y in zip(want, rows):
            assert len(y) == len(w)
            for a, b in zip(y, w):
                np.testing.assert_array_equal(a, b)
            n += 1
    assert n == 5 * EXAMPLES
    assert {k for ks in kernels for k in ks} == {fast_kernel(interpreter)}


def test_constant_proof_edges() -> None:
    m, shift = 1 << 30, 1  # real multiplier 1
    assert tflm_requantize(I32_MAX + 1, m, 0) == tflm_requantize(-(1 << 31), m, 0)
    # saturates high at both ends (multiplier 1/2)
    assert constant_channel_output(1 << 30, -100, 100, m, 0, 0, -128, 127) == 127
    # multiplier 1: acc << 1 wraps at acc = 2^30 in TFLM
    assert constant_channel_output((1 << 30) - 1, -100, -1, m, shift, 0, -128, 127) == 127
    assert constant_channel_output((1 << 30) - 1, -100, 100, m, shift, 0, -128, 127) is None
    # a sum that crosses the int32 top wraps the accumulator: not constant
    assert constant_channel_output(I32_MAX, -10, 10, m, 0, 0, -128, 127) is None
    assert constant_channel_output(I32_MAX, -10, 0, m, 0, 0, -128, 127) == 127
    assert constant_channel_output(-I32_MAX, -1, 0, m, 0, 0, -128, 127) == -128
    assert constant_channel_output(-I32_MAX, -2, 0, m, 0, 0, -128, 127) is None


def test_non_constant_wide_channel_is_kept_with_its_weights() -> None:
    # 1024 products of weight 127, multiplier 2e-7: bias 2^30 puts the output near 87 and the
    # products move it by +-6 levels: not constant, it needs > 31-bit accumulators
    w = np.full((1, 1024), 127, np.int8)
    w_main, bias, rows, wide = exact_channels("fc", w, np.array([1 << 30], np.int32), 1.0, 0,
                                              [2e-7], 1.0, -128, -128, 127)
    assert not w_main.any() and not bias.any() and rows.tolist() == [[1 << 15, 0, 0]]
    m, shift = quantize_multiplier(float(np.float32(2e-7)))
    assert wide[0].tolist() == [[0, 1 << 15, 0, m >> 15, m & 0x7FFF, shift]]
    assert np.array_equal(wide[1], w)


def test_too_many_products_is_refused_with_reason() -> None:
    with pytest.raises(ValueError, match="40000 products per output"):
        exact_channels("fc", np.ones((1, 40000), np.int8), None, 1.0, 0, [1e-3], 1.0, 0,
                       -128, 127)


@given(st.integers(-(1 << 31), I32_MAX), st.integers(-(1 << 30) + 1, (1 << 30) - 1),
       st.one_of(st.just(0), st.just(1 << 30), st.integers(1 << 30, I32_MAX)),
       st.integers(-31, 30))
def test_wide_requantization_is_tflms(b: int, d: int, m: int, shift: int) -> None:
    """tinyrt.requant_wide (limbs of small ints) == TFLM's int32 arithmetic on exact ints,
    outside +-2^16 only the sign (the kernels clamp)."""
    want = tflm_requantize(b + d, m, shift)
    got = multiply_by_quantized_multiplier_wide(b >> 15, b & 0x7FFF, d, m >> 15, m & 0x7FFF,
                                                max(shift, 0), max(-shift, 0))
    if abs(want) < SATURATED:
        assert got == want
    else:
        assert abs(got) >= SATURATED and (got > 0) == (want > 0)
