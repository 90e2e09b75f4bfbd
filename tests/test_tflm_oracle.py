"""Self-check of the TFLM oracle: the .tflite writer, the runner and TFLM's requantization."""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import tflite

from host_sim.oracle.tflm import TFLMError, TOp, TTensor, build_tflite, run_tflm, tflm_arena_bytes

MODELS = Path(__file__).resolve().parents[2] / "shared" / "models"
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


# --- TFLite/gemmlowp fixed-point reference (double rounding), on Python ints ----------------


def quantize_multiplier(m: float) -> tuple[int, int]:
    """TFLite QuantizeMultiplier(double): (q31 multiplier, shift)."""
    if m == 0.0:
        return 0, 0
    mant, shift = math.frexp(m)
    q = int(math.copysign(math.floor(abs(mant) * 2**31 + 0.5), mant))  # std::round
    if q == 2**31:
        q //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return q, shift


def srdhm(a: int, b: int) -> int:
    """SaturatingRoundingDoublingHighMul."""
    if a == b == INT32_MIN:
        return INT32_MAX
    ab = a * b
    nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
    n = ab + nudge
    return (abs(n) >> 31) * (1 if n >= 0 else -1)  # C division truncates toward zero


def rdbpot(x: int, exponent: int) -> int:
    """RoundingDivideByPOT."""
    mask = (1 << exponent) - 1
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> exponent) + (1 if (x & mask) > threshold else 0)


def multiply_by_quantized_multiplier(x: int, q: int, shift: int) -> int:
    """TFLM's requantization: double rounding."""
    left, right = max(shift, 0), max(-shift, 0)
    return rdbpot(srdhm(x * (1 << left), q), right)


def single_rounding(x: int, q: int, shift: int) -> int:
    """LiteRT's TFLITE_SINGLE_ROUNDING variant, which TFLM must NOT match."""
    total = 31 - shift
    return (x * q + (1 << (total - 1))) >> total


def f32(x: float) -> float:
    return float(np.float32(x))  # scales are stored as float32 in the flatbuffer


def test_fixed_point_helpers() -> None:
    assert quantize_multiplier(0.5) == (2**30, 0)
    assert quantize_multiplier(1.0) == (2**30, 1)
    assert srdhm(INT32_MIN, INT32_MIN) == INT32_MAX
    assert rdbpot(5, 1) == 3 and rdbpot(-5, 1) == -3 and rdbpot(-6, 2) == -2


# --- FULLY_CONNECTED, per-channel, checked against a hand computation ------------------------


def test_fully_connected_per_channel_matches_hand_computation() -> None:
    rng = np.random.default_rng(1)
    batch, n_in, n_out = 16, 16, 5
    in_scale, in_zp = 0.037, 7
    out_scale, out_zp = 0.09, -11
    w_scales = [0.0041, 0.0123, 0.0007, 0.0219, 0.0093]
    w = rng.integers(-127, 128, (n_out, n_in), dtype=np.int8)
    bias = rng.integers(-3000, 3000, n_out, dtype=np.int32)
    x = rng.integers(-128, 128, (batch, n_in), dtype=np.int8)
    tensors = [
        TTensor("x", (batch, n_in), "int8", in_scale, in_zp),
        TTensor("w", (n_out, n_in), "int8", w_scales, 0, 0, w),
        TTensor("b", (n_out,), "int32", [in_scale * s for s in w_scales], 0, 0, bias),
        TTensor("y", (batch, n_out), "int8", out_scale, out_zp),
    ]
    op = TOp("FULLY_CONNECTED", [0, 1, 2], [3], {"fused_activation_function": "RELU"})
    (y,) = run_tflm(build_tflite(tensors, [op], [0], [3]), [x])

    def expected(requantize: Callable[[int, int, int], int]) -> np.ndarray:
        act_min = max(-128, out_zp)  # RELU: quantized 0
        out = np.empty((batch, n_out), np.int8)
        for c in range(n_out):
            q, shift = quantize_multiplier(f32(in_scale) * f32(w_scales[c]) / f32(out_scale))
            for r in range(batch):
                acc = int(np.dot(x[r].astype(np.int64) - in_zp, w[c].astype(np.int64)))
                v = requantize(acc + int(bias[c]), q, shift) + out_zp
                out[r, c] = min(127, max(act_min, v))
        return out

    assert y.dtype == np.int8 and y.shape == (batch, n_out)
    np.testing.assert_array_equal(y, expected(multiply_by_quantized_multiplier))


def test_fully_connected_uses_double_rounding() -> None:
    """Multipliers in [0.1, 0.5) (right shift 1..3) make double and single rounding differ."""
    x = np.arange(-128, 128, dtype=np.int8).reshape(256, 1)
    w_scales = [0.6, 0.9, 0.33, 0.47]  # effective multipliers 0.5 * w_scale
    in_scale, out_scale = 0.6, 1.2
    w = np.ones((4, 1), np.int8)
    tensors = [
        TTensor("x", x.shape, "int8", in_scale, 0),
        TTensor("w", w.shape, "int8", w_scales, 0, 0, w),
        TTensor("y", (256, 4), "int8", out_scale, 0),
    ]
    op = TOp("FULLY_CONNECTED", [0, 1, -1], [2], {})
    (y,) = run_tflm(build_tflite(tensors, [op], [0], [2]), [x])
    for c, ws in enumerate(w_scales):
        q, shift = quantize_multiplier(f32(in_scale) * f32(ws) / f32(out_scale))
        double = [multiply_by_quantized_multiplier(int(v), q, shift) for v in x[:, 0]]
        single = [single_rounding(int(v), q, shift) for v in x[:, 0]]
        np.testing.assert_array_equal(y[:, c], double)
        assert double != single


# --- one model per supported op ----------------------------------------------------------


def _i8(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.integers(-128, 128, shape, dtype=np.int8)


Case = tuple[list[TTensor], list[TOp], list[np.ndarray], list[tuple[tuple[int, ...], str]]]


def _conv_like(rng: np.random.Generator, dw: bool, options: dict, out_hw: int) -> Case:
    cin, cout = 2, 4
    w_shape = (1, 3, 3, cout) if dw else (cout, 3, 3, cin)
    scales = [0.01 * (i + 1) for i in range(cout)]
    tensors = [
        TTensor("x", (1, 6, 6, cin), "int8", 0.05, -3),
        TTensor("w", w_shape, "int8", scales, 0, 3 if dw else 0, _i8(rng, w_shape)),
        TTensor("b", (cout,), "int32", [0.05 * s for s in scales], 0, 0, np.arange(cout) * 50),
        TTensor("y", (1, out_hw, out_hw, cout), "int8", 0.2, 4),
    ]
    opcode = "DEPTHWISE_CONV_2D" if dw else "CONV_2D"
    return (
        tensors,
        [TOp(opcode, [0, 1, 2], [3], options)],
        [_i8(rng, (1, 6, 6, cin))],
        [((1, out_hw, out_hw, cout), "int8")],
    )


def _unary(
    opcode: str,
    in_shape: tuple[int, ...],
    out_shape: tuple[int, ...],
    options: dict,
    *,
    out_q: tuple[float, int] = (0.1, 0),
    extra: tuple[TTensor, ...] = (),
) -> Case:
    rng = np.random.default_rng(zlib.crc32(opcode.encode()))
    tensors = [
        TTensor("x", in_shape, "int8", 0.1, 0),
        TTensor("y", out_shape, "int8", out_q[0], out_q[1]),
        *extra,
    ]
    inputs = [0] + [2 + i for i in range(len(extra))]
    return (
        tensors,
        [TOp(opcode, inputs, [1], options)],
        [_i8(rng, in_shape)],
        [(out_shape, "int8")],
    )


def _binary(opcode: str, shape_b: tuple[int, ...], act: str) -> Case:
    rng = np.random.default_rng(7)
    shape = (1, 4, 4, 3)
    tensors = [
        TTensor("a", shape, "int8", 0.05, 3),
        TTensor("b", shape_b, "int8", 0.03, -5),
        TTensor("y", shape, "int8", 0.08, -10),
    ]
    return (
        tensors,
        [TOp(opcode, [0, 1], [2], {"fused_activation_function": act})],
        [_i8(rng, shape), _i8(rng, shape_b)],
        [(shape, "int8")],
    )


def _case_fc() -> Case:
    rng = np.random.default_rng(3)
    tensors = [
        TTensor("x", (2, 8), "int8", 0.1, 1),
        TTensor("w", (4, 8), "int8", [0.01, 0.02, 0.03, 0.04], 0, 0, _i8(rng, (4, 8))),
        TTensor("y", (2, 4), "int8", 0.2, 0),
    ]  # no bias: optional input absent
    op = TOp("FULLY_CONNECTED", [0, 1, -1], [2], {"fused_activation_function": "RELU6"})
    return tensors, [op], [_i8(rng, (2, 8))], [((2, 4), "int8")]


def _case_concat() -> Case:
    rng = np.random.default_rng(5)
    tensors = [
        TTensor("a", (1, 2, 2, 3), "int8", 0.1, 2),
        TTensor("b", (1, 2, 2, 2), "int8", 0.1, 2),
        TTensor("y", (1, 2, 2, 5), "int8", 0.1, 2),
    ]
    op = TOp("CONCATENATION", [0, 1], [2], {"axis": 3, "fused_activation_function": "NONE"})
    return (
        tensors,
        [op],
        [_i8(rng, (1, 2, 2, 3)), _i8(rng, (1, 2, 2, 2))],
        [((1, 2, 2, 5), "int8")],
    )


def _case_quantize_float() -> Case:
    tensors = [TTensor("x", (1, 8), "float32"), TTensor("y", (1, 8), "int8", 0.02, -4)]
    x = np.linspace(-2, 2, 8, dtype=np.float32).reshape(1, 8)
    return tensors, [TOp("QUANTIZE", [0], [1], {})], [x], [((1, 8), "int8")]


def _const_i32(name: str, values: object) -> TTensor:
    arr = np.asarray(values, dtype=np.int32)
    return TTensor(name, arr.shape, "int32", data=arr)


CASES: dict[str, Callable[[], Case]] = {
    "fully_connected_no_bias": _case_fc,
    "conv_same_stride2": lambda: _conv_like(
        np.random.default_rng(11), False, {"stride_w": 2, "stride_h": 2, "padding": "SAME"}, 3
    ),
    "conv_valid_dilated_relu": lambda: _conv_like(
        np.random.default_rng(12),
        False,
        {
            "padding": "VALID",
            "dilation_w_factor": 2,
            "dilation_h_factor": 2,
            "fused_activation_function": "RELU",
        },
        2,
    ),
    "depthwise_mult2_same": lambda: _conv_like(
        np.random.default_rng(13), True, {"padding": "SAME", "depth_multiplier": 2}, 6
    ),
    "depthwise_stride2_valid_relu6": lambda: _conv_like(
        np.random.default_rng(14),
        True,
        {"padding": "VALID", "stride_w": 2, "stride_h": 2, "fused_activation_function": "RELU6"},
        2,
    ),
    "average_pool": lambda: _unary(
        "AVERAGE_POOL_2D",
        (1, 4, 4, 3),
        (1, 2, 2, 3),
        {"filter_width": 2, "filter_height": 2, "stride_w": 2, "stride_h": 2, "padding": "VALID"},
        out_q=(0.1, 0),
    ),
    "max_pool_same_relu": lambda: _unary(
        "MAX_POOL_2D",
        (1, 4, 4, 3),
        (1, 4, 4, 3),
        {
            "filter_width": 3,
            "filter_height": 3,
            "padding": "SAME",
            "fused_activation_function": "RELU",
        },
        out_q=(0.1, 0),
    ),
    "add_relu6": lambda: _binary("ADD", (1, 4, 4, 3), "RELU6"),
    "add_broadcast": lambda: _binary("ADD", (1, 1, 1, 3), "NONE"),
    "mul": lambda: _binary("MUL", (1, 4, 4, 3), "NONE"),
    "mul_broadcast_relu": lambda: _binary("MUL", (1, 1, 1, 3), "RELU"),
    "reshape_options": lambda: _unary(
        "RESHAPE", (1, 2, 3, 4), (1, 24), {"new_shape": [1, 24]}, out_q=(0.1, 0)
    ),
    "reshape_shape_tensor": lambda: _unary(
        "RESHAPE", (1, 2, 3, 4), (6, 4), {}, out_q=(0.1, 0), extra=(_const_i32("s", [6, 4]),)
    ),
    "softmax": lambda: _unary("SOFTMAX", (2, 10), (2, 10), {"beta": 1.0}, out_q=(1 / 256, -128)),
    "logistic": lambda: _unary("LOGISTIC", (1, 10), (1, 10), {}, out_q=(1 / 256, -128)),
    "pad": lambda: _unary(
        "PAD",
        (1, 3, 3, 2),
        (1, 5, 6, 2),
        {},
        out_q=(0.1, 0),
        extra=(_const_i32("p", [[0, 0], [1, 1], [2, 1], [0, 0]]),),
    ),
    "mean_keep_dims": lambda: _unary(
        "MEAN", (1, 4, 4, 3), (1, 1, 1, 3), {"keep_dims": True}, extra=(_const_i32("a", [1, 2]),)
    ),
    "mean_requantize": lambda: _unary(
        "MEAN",
        (1, 4, 4, 3),
        (1, 3),
        {"keep_dims": False},
        out_q=(0.05, 3),
        extra=(_const_i32("a", [1, 2]),),
    ),
    "concatenation": _case_concat,
    "quantize_float": _case_quantize_float,
    "quantize_requant": lambda: _unary("QUANTIZE", (1, 8), (1, 8), {}, out_q=(0.3, 5)),
}


def _graph_inputs(tensors: list[TTensor], ops: list[TOp]) -> list[int]:
    """Non-constant tensors that no op produces, in tensor order."""
    produced = {i for op in ops for i in op.outputs}
    return [i for i, t in enumerate(tensors) if t.data is None and i not in produced]


def _run_simple(tensors: list[TTensor], op: TOp, xs: list[np.ndarray]) -> np.ndarray:
    (y,) = run_tflm(build_tflite(tensors, [op], _graph_inputs(tensors, [op]), op.outputs), xs)
    return y


@pytest.mark.parametrize("name", sorted(CASES))
def test_op_model_runs_under_tflm(name: str) -> None:
    tensors, ops, xs, want = CASES[name]()
    outputs = [i for op in ops for i in op.outputs]
    ys = run_tflm(build_tflite(tensors, ops, _graph_inputs(tensors, ops), outputs), xs)
    assert [(y.shape, str(y.dtype)) for y in ys] == want


def test_exact_data_movement_ops() -> None:
    rng = np.random.default_rng(21)
    x = _i8(rng, (1, 3, 3, 2))
    pad = _run_simple(
        [
            TTensor("x", x.shape, "int8", 0.1, -7),
            TTensor("y", (1, 5, 4, 2), "int8", 0.1, -7),
            _const_i32("p", [[0, 0], [1, 1], [0, 1], [0, 0]]),
        ],
        TOp("PAD", [0, 2], [1], {}),
        [x],
    )
    np.testing.assert_array_equal(
        pad, np.pad(x, [(0, 0), (1, 1), (0, 1), (0, 0)], constant_values=-7)
    )
    mp = _run_simple(
        [TTensor("x", x.shape, "int8", 0.1, 0), TTensor("y", (1, 1, 1, 2), "int8", 0.1, 0)],
        TOp("MAX_POOL_2D", [0], [1], {"filter_width": 3, "filter_height": 3, "padding": "VALID"}),
        [x],
    )
    np.testing.assert_array_equal(mp.ravel(), x.reshape(9, 2).max(axis=0))
    b = _i8(rng, (1, 3, 3, 1))
    cat = _run_simple(
        [
            TTensor("a", x.shape, "int8", 0.1, 0),
            TTensor("b", b.shape, "int8", 0.1, 0),
            TTensor("y", (1, 3, 3, 3), "int8", 0.1, 0),
        ],
        TOp("CONCATENATION", [0, 1], [2], {"axis": -1}),
        [x, b],
    )
    np.testing.assert_array_equal(cat, np.concatenate([x, b], axis=3))


def test_build_is_deterministic_and_well_formed() -> None:
    tensors, ops, _, _ = CASES["conv_same_stride2"]()
    model = build_tflite(tensors, ops, [0], [3])
    assert model == build_tflite(tensors, ops, [0], [3])
    m = tflite.Model.GetRootAsModel(model, 0)
    assert model[4:8] == b"TFL3" and m.Version() == 3
    assert m.Buffers(0).DataLength() == 0
    code = m.OperatorCodes(0)
    assert code.BuiltinCode() == code.DeprecatedBuiltinCode() == tflite.BuiltinOperator.CONV_2D
    w = m.Subgraphs(0).Tensors(1)
    assert w.Quantization().ScaleLength() == 4 and w.Quantization().QuantizedDimension() == 0
    np.testing.assert_array_equal(
        m.Buffers(w.Buffer()).DataAsNumpy().view(np.int8).reshape(4, 3, 3, 2), tensors[1].data
    )


def test_writer_rejects_bad_options() -> None:
    t = [TTensor("x", (1, 4), "int8", 0.1, 0), TTensor("y", (1, 4), "int8", 0.1, 0)]
    with pytest.raises(ValueError, match="no field"):
        build_tflite(t, [TOp("SOFTMAX", [0], [1], {"bogus": 1})], [0], [1])
    with pytest.raises(ValueError, match="bad value"):
        build_tflite(t, [TOp("ADD", [0, 0], [1], {"fused_activation_function": "X"})], [0], [1])
    with pytest.raises(ValueError, match="unknown builtin"):
        build_tflite(t, [TOp("NOPE", [0], [1], {})], [0], [1])


def test_runner_reports_tflm_rejection() -> None:
    t = [TTensor("x", (1, 10), "int8", 0.1, 0), TTensor("y", (1, 10), "int8", 0.1, 0)]
    model = build_tflite(t, [TOp("SOFTMAX", [0], [1], {})], [0], [1])  # output scale not 1/256
    with pytest.raises(TFLMError, match="rejected") as info:
        run_tflm(model, [np.zeros((1, 10), np.int8)])
    assert "SOFTMAX" in info.value.log  # TFLM's own explanation is kept
    with pytest.raises(TFLMError, match=r"not a \.tflite"):
        run_tflm(b"garbage" * 8, [])


def test_runner_survives_tflm_crash() -> None:
    """TFLM segfaults on DEPTHWISE_CONV_2D without bias; the forked child absorbs it."""
    w = np.ones((1, 3, 3, 2), np.int8)
    tensors = [
        TTensor("x", (1, 4, 4, 2), "int8", 0.1, 0),
        TTensor("w", w.shape, "int8", [0.1, 0.1], 0, 3, w),
        TTensor("y", (1, 4, 4, 2), "int8", 0.1, 0),
    ]
    model = build_tflite(tensors, [TOp("DEPTHWISE_CONV_2D", [0, 1, -1], [2], {})], [0], [2])
    with pytest.raises(TFLMError, match="crashed with SIG"):
        run_tflm(model, [np.zeros((1, 4, 4, 2), np.int8)])


# --- real model ----------------------------------------------------------------------------


def _shared(name: str) -> Path:
    path = MODELS / name
    if not path.exists():
        pytest.skip(f"{path} missing")
    return path


def test_hello_world_reproduces_reference_outputs() -> None:
    model = _shared("hello_world_int8.tflite").read_bytes()
    io = np.load(_shared("hello_world_int8_io.npz"))
    ys = np.stack([run_tflm(model, [x])[0] for x in io["x"]])
    np.testing.assert_array_equal(ys, io["y"])
    np.testing.assert_array_equal(run_tflm(model, [io["x"][3]], isolate=False)[0], io["y"][3])
    assert tflm_arena_bytes(model) == 1504  # README's recorded TFLM total


@pytest.mark.parametrize(
    ("name", "arena"),
    [
        ("micro_speech_quantized", 7584),
        ("kws_ref_model", 24272),
        ("digits_cnn_int8", 3584),
        ("digits_mlp_int8", 2048),
    ],
)
def test_shared_models_reproduce_reference_outputs(name: str, arena: int) -> None:
    model = _shared(f"{name}.tflite").read_bytes()
    io = np.load(_shared(f"{name}_io.npz"))
    for x, y in zip(io["x"][:8], io["y"][:8], strict=True):
        np.testing.assert_array_equal(run_tflm(model, [x])[0].reshape(y.shape), y)
    assert tflm_arena_bytes(model) == arena  # README's recorded TFLM totals
