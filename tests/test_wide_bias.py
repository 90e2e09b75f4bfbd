"""int32 biases near +-2^30 and +-(2^31 - 1) (issue 13): batch-norm folding leaves dead or
always-saturated channels whose bias does not fit the boards' 31-bit small ints. The converter
proves such a channel's output constant and stores it as weights 0, a small bias and the
identity requantization (converter/layers/common.exact_channels); everything else is unchanged.

A MobileNet-style block (CONV_2D 1x1 -> DEPTHWISE_CONV_2D 3x3 -> CONV_2D 1x1, per-channel
scales) is written as .tflite, run by tflite-micro, converted and run on every interpreter
with invoke() under heap_lock."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pytest

from converter.layers.common import exact_channels
from converter.quantization import constant_channel_output, tflm_requantize
from converter.tflite_import import UnsupportedModelError, import_tflite
from converter.writer import serialize
from host_sim.device import invoke_models
from host_sim.oracle.tflm import TOp, TTensor, build_tflite, run_tflm

I32_MAX = (1 << 31) - 1
WIDE = (1 << 30, -(1 << 30), I32_MAX, -I32_MAX, -(1 << 31))
EXAMPLES = 5


def _layer(rng, name, shape, axis, n, x_scale, wide, dead_scale=1e-7):
    """(weights, per-channel scales, bias) with `wide` {channel: bias}; a channel whose bias
    is +-(2^31 - 1) or -2^31 is dead (weights 0: any positive sum would wrap TFLM's int32
    accumulator), one with +-2^30 has tiny weights (scale dead_scale) or normal ones."""
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
    bscale = np.float32(x_scale) * scales
    return w, scales, bias.astype(np.int32), bscale


def block_tflite(seed: int, x_zp: int = -3) -> bytes:
    rng = np.random.default_rng(seed)
    h, c0, c1, c2 = 5, 8, 12, 6
    s0, s1, s2, s3 = 0.05, 0.04, 0.03, 0.06
    w1, sc1, b1, bs1 = _layer(rng, "c1", (c1, 1, 1, c0), 0, c1, s0,
                              {0: WIDE[0], 1: WIDE[1], 3: WIDE[2], 4: WIDE[3], 6: WIDE[4],
                               7: WIDE[0]})
    w2, sc2, b2, bs2 = _layer(rng, "dw", (1, 3, 3, c1), 3, c1, s1,
                              {2: WIDE[1], 5: WIDE[0], 8: WIDE[3], 9: WIDE[0]})
    w3, sc3, b3, bs3 = _layer(rng, "c2", (c2, 1, 1, c1), 0, c2, s2,
                              {1: WIDE[2], 2: WIDE[0], 3: WIDE[1]})
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
    return build_tflite(t, ops, [0], [9])


@lru_cache(maxsize=None)
def cases() -> tuple:
    """(model file, examples, TFLM outputs) for a few seeds and input zero points."""
    out = []
    for seed, x_zp in ((1, -3), (2, 100), (3, -128)):
        tfl = block_tflite(seed, x_zp)
        rng = np.random.default_rng(seed + 10)
        xs = [rng.integers(-128, 128, (1, 5, 5, 8), dtype=np.int8) for _ in range(EXAMPLES)]
        xs[0][:] = 127
        xs[1][:] = -128
        want = [run_tflm(tfl, [x])[0].ravel().astype(np.int64) for x in xs]
        out.append((serialize(import_tflite(tfl)), [[x] for x in xs], want))
    return tuple(out)


def test_converted_biases_fit_small_ints() -> None:
    for tfl in (block_tflite(1), block_tflite(2, 100)):
        g = import_tflite(tfl)
        for t in g.tensors:
            if t.is_const and t.dtype == "int32" and t.name.startswith("b"):
                assert np.abs(t.data.astype(np.int64)).max() < 1 << 20, t.name


def test_block_matches_tflm(interpreter: str) -> None:
    models = cases()
    got = invoke_models([(m, ex) for m, ex, _ in models], interpreter)
    n = 0
    for (_, _, want), rows in zip(models, got):
        for w, (y,) in zip(want, rows):
            np.testing.assert_array_equal(y, w)
            n += 1
    assert n == 3 * EXAMPLES


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


def test_non_constant_wide_channel_is_refused_with_reason() -> None:
    # 1024 products of weight 127, multiplier 2e-7: bias 2^30 puts the output near 87 and the
    # products move it by +-6 levels: it is not constant and needs > 31-bit accumulators
    w = np.full((1, 1024), 127, np.int8)
    with pytest.raises(ValueError, match="channel 0.*not the same for every input"):
        exact_channels("fc", w, np.array([1 << 30], np.int32), 1.0, 0, [2e-7], 1.0, -128,
                       -128, 127)
    tfl = build_tflite([TTensor("x", (1, 1024), "int8", 1.0, 0),
                        TTensor("w", (1, 1024), "int8", [2e-7], 0, 0, w),
                        TTensor("b", (1,), "int32", [2e-7], 0, 0, np.array([1 << 30])),
                        TTensor("y", (1, 1), "int8", 1.0, -128)],
                       [TOp("FULLY_CONNECTED", [0, 1, 2], [3])], [0], [3])
    with pytest.raises(UnsupportedModelError, match="not the same for every input"):
        import_tflite(tfl)
