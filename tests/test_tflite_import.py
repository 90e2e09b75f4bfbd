"""converter.tflite_import against TensorFlow Lite Micro, through real .tflite files.

Each case is a small .tflite written with host_sim.oracle.tflm.build_tflite; it is imported,
run on every interpreter (all cases in one process) and compared with tflite-micro's output
for the same raw int8 inputs. Then the importer's refusals (unsupported op, float, uint8 and
hybrid models, options, per-channel axis) and the `tinyrt convert / run / info` commands.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

from converter.inspect_model import describe
from converter.tflite_import import SUPPORTED_OPS, UnsupportedModelError, import_tflite
from converter.writer import serialize
from host_sim import cli
from host_sim.device import invoke_batch, invoke_models
from host_sim.oracle.tflm import TOp, TTensor, build_tflite, run_tflm

from .conftest import SHARED_MODELS
from .test_lce_model import mixed_case
from .test_new_ops import TESTED_OPS as NEW_OPS

EXAMPLES = 6  # random inputs per case


@dataclass
class Case:
    tensors: list[TTensor]
    ops: list[TOp]
    inputs: list[int]
    outputs: list[int]
    folded: int = 0  # ops the importer must fold away
    seed: int = 0
    notes: dict = field(default_factory=dict)


def _i8(rng: np.random.Generator, shape) -> np.ndarray:
    return rng.integers(-128, 128, shape, dtype=np.int8)


def _i32(name: str, values) -> TTensor:
    arr = np.asarray(values, dtype=np.int32)
    return TTensor(name, arr.shape, "int32", data=arr)


def _scales(n: int, base: float = 0.004) -> list[float]:
    return [base * (1 + 0.37 * k) for k in range(n)]


def _fc(rng, x_shape, n_out, per_channel: bool, bias: bool, act: str) -> Case:
    n_in = x_shape[-1] if len(x_shape) == 2 else int(np.prod(x_shape[1:]))
    batches = int(np.prod(x_shape)) // n_in
    ws = _scales(n_out) if per_channel else 0.006
    tensors = [
        TTensor("x", x_shape, "int8", 0.05, -3),
        TTensor("w", (n_out, n_in), "int8", ws, 0, 0, _i8(rng, (n_out, n_in))),
        TTensor("y", (batches, n_out), "int8", 0.3, 5),
        TTensor("b", (n_out,), "int32", np.float32(0.05) * np.asarray(ws, np.float32), 0, 0,
                rng.integers(-2000, 2000, n_out)),
    ]
    op = TOp("FULLY_CONNECTED", [0, 1, 3 if bias else -1], [2],
             {"fused_activation_function": act})
    return Case(tensors, [op], [0], [2])


def _conv(rng, dw: bool, x_shape, w_shape, options: dict, out_hw, per_channel=True) -> Case:
    cout = w_shape[3] if dw else w_shape[0]
    ws = _scales(cout) if per_channel else 0.005
    y_shape = (1, out_hw[0], out_hw[1], cout)
    tensors = [
        TTensor("x", x_shape, "int8", 0.05, -4),
        TTensor("w", w_shape, "int8", ws, 0, 3 if dw else 0, _i8(rng, w_shape)),
        TTensor("b", (cout,), "int32", np.float32(0.05) * np.asarray(ws, np.float32), 0,
                3 if dw else 0, rng.integers(-3000, 3000, cout)),
        TTensor("y", y_shape, "int8", 0.4 if not dw else 0.3, -2),
    ]
    return Case(tensors, [TOp("DEPTHWISE_CONV_2D" if dw else "CONV_2D", [0, 1, 2], [3],
                              options)], [0], [3])


def _unary(opcode: str, in_shape, out_shape, options: dict, out_q=(0.1, 0),
           extra: tuple[TTensor, ...] = (), in_q=(0.1, 0)) -> Case:
    tensors = [TTensor("x", in_shape, "int8", *in_q), TTensor("y", out_shape, "int8", *out_q),
               *extra]
    return Case(tensors, [TOp(opcode, [0] + [2 + k for k in range(len(extra))], [1], options)],
                [0], [1])


def _binary(opcode: str, shape_a, shape_b, act: str, const_b: bool = False) -> Case:
    rng = np.random.default_rng(7)
    shape = tuple(np.broadcast_shapes(shape_a, shape_b))
    tensors = [
        TTensor("a", shape_a, "int8", 0.05, 3),
        TTensor("b", shape_b, "int8", 0.03, -5, data=_i8(rng, shape_b) if const_b else None),
        TTensor("y", shape, "int8", 0.08, -10),
    ]
    return Case(tensors, [TOp(opcode, [0, 1], [2], {"fused_activation_function": act})],
                [0] if const_b else [0, 1], [2])


def _reshape_folded() -> Case:
    """RESHAPE whose shape is computed: SHAPE -> STRIDED_SLICE -> PACK (batch, -1)."""
    tensors = [
        TTensor("x", (1, 3, 2, 4), "int8", 0.1, 0),
        TTensor("shape", (4,), "int32"),
        _i32("begin", [0]), _i32("end", [1]), _i32("strides", [1]),
        TTensor("batch", (), "int32"),
        _i32("minus_one", -1),
        TTensor("new_shape", (2,), "int32"),
        TTensor("y", (1, 24), "int8", 0.1, 0),
    ]
    ops = [
        TOp("SHAPE", [0], [1], {}),
        TOp("STRIDED_SLICE", [1, 2, 3, 4], [5], {"shrink_axis_mask": 1}),
        TOp("PACK", [5, 6], [7], {"values_count": 2, "axis": 0}),
        TOp("RESHAPE", [0, 7], [8], {}),
    ]
    return Case(tensors, ops, [0], [8], folded=3)


def _shared_weights() -> Case:
    """Two FULLY_CONNECTED ops reading one weight tensor: its bytes are stored once."""
    rng = np.random.default_rng(21)
    w = _i8(rng, (16, 16))
    tensors = [
        TTensor("x", (1, 16), "int8", 0.05, 0),
        TTensor("w", (16, 16), "int8", 0.01, 0, 0, w),
        TTensor("h", (1, 16), "int8", 0.2, -1),
        TTensor("y", (1, 16), "int8", 0.5, 2),
    ]
    ops = [TOp("FULLY_CONNECTED", [0, 1, -1], [2], {"fused_activation_function": "RELU"}),
           TOp("FULLY_CONNECTED", [2, 1, -1], [3], {})]
    return Case(tensors, ops, [0], [3], notes={"shared_bytes": 256})


def _cases() -> dict[str, Case]:
    r = np.random.default_rng
    conv_relu = {"stride_w": 2, "stride_h": 2, "padding": "SAME",
                 "fused_activation_function": "RELU"}
    return {
        "fc_per_tensor_relu": _fc(r(1), (1, 20), 7, False, True, "RELU"),
        "fc_per_channel_batch2_relu6": _fc(r(2), (2, 12), 5, True, True, "RELU6"),
        "fc_4d_input_no_bias": _fc(r(3), (1, 2, 2, 3), 4, True, False, "NONE"),
        "conv_same_stride2_relu": _conv(r(4), False, (1, 7, 6, 3), (4, 3, 3, 3), conv_relu,
                                        (4, 3)),
        "conv_valid_dilated_relu6_per_tensor": _conv(
            r(5), False, (1, 8, 8, 2), (3, 3, 3, 2),
            {"padding": "VALID", "dilation_w_factor": 2, "dilation_h_factor": 2,
             "fused_activation_function": "RELU6"}, (4, 4), per_channel=False),
        "depthwise_same": _conv(r(6), True, (1, 6, 6, 4), (1, 3, 3, 4), {"padding": "SAME"},
                                (6, 6)),
        "depthwise_mult2_valid_stride2_relu": _conv(
            r(7), True, (1, 7, 7, 2), (1, 3, 3, 4),
            {"padding": "VALID", "stride_w": 2, "stride_h": 2, "depth_multiplier": 2,
             "fused_activation_function": "RELU"}, (3, 3)),
        "average_pool_same": _unary("AVERAGE_POOL_2D", (1, 5, 7, 3), (1, 3, 4, 3),
                                    {"filter_width": 3, "filter_height": 2, "stride_w": 2,
                                     "stride_h": 2, "padding": "SAME"}),
        "max_pool_valid_relu": _unary("MAX_POOL_2D", (1, 6, 6, 2), (1, 4, 4, 2),
                                      {"filter_width": 3, "filter_height": 3,
                                       "padding": "VALID", "fused_activation_function": "RELU"}),
        "add_relu6": _binary("ADD", (1, 4, 4, 3), (1, 4, 4, 3), "RELU6"),
        "add_broadcast_const": _binary("ADD", (1, 4, 4, 3), (1, 1, 1, 3), "NONE", True),
        "mul": _binary("MUL", (1, 3, 4, 2), (1, 3, 4, 2), "NONE"),
        "mul_broadcast_relu": _binary("MUL", (1, 3, 4, 2), (1, 1, 1, 2), "RELU"),
        "quantize_requant": _unary("QUANTIZE", (1, 8), (1, 8), {}, out_q=(0.3, 5)),
        "reshape_shape_tensor": _unary("RESHAPE", (1, 2, 3, 4), (6, 4), {},
                                       extra=(_i32("s", [6, -1]),)),
        "reshape_options": _unary("RESHAPE", (1, 2, 3, 4), (1, 24), {"new_shape": [1, 24]}),
        "reshape_folded_shape_subgraph": _reshape_folded(),
        "expand_dims": _unary("EXPAND_DIMS", (1, 8), (1, 1, 8), {},
                              extra=(_i32("axis", [1]),)),
        "padv2_zero_point": _unary("PADV2", (1, 3, 3, 2), (1, 4, 3, 2), {}, in_q=(0.1, 3),
                                   out_q=(0.1, 3),
                                   extra=(_i32("p", [[0, 0], [0, 1], [0, 0], [0, 0]]),
                                          TTensor("v", (), "int8", 0.1, 3, data=np.int8(3)))),
        "squeeze": _unary("SQUEEZE", (1, 1, 1, 8), (1, 8), {"squeeze_dims": [1, 2]}),
        "pad": _unary("PAD", (1, 3, 3, 2), (1, 5, 6, 2), {},
                      extra=(_i32("p", [[0, 0], [1, 1], [2, 1], [0, 0]]),)),
        "mean_keep_dims": _unary("MEAN", (1, 4, 5, 3), (1, 1, 1, 3), {"keep_dims": True},
                                 extra=(_i32("a", [1, 2]),)),
        "mean_requantize": _unary("MEAN", (1, 4, 4, 3), (1, 3), {"keep_dims": False},
                                  out_q=(0.05, 3), extra=(_i32("a", [1, 2]),)),
        "concatenation": Case(
            [TTensor("a", (1, 2, 2, 3), "int8", 0.1, 2), TTensor("b", (1, 2, 2, 5), "int8",
                                                                 0.1, 2),
             TTensor("y", (1, 2, 2, 8), "int8", 0.1, 2)],
            [TOp("CONCATENATION", [0, 1], [2], {"axis": 3})], [0, 1], [2]),
        "softmax": _unary("SOFTMAX", (2, 10), (2, 10), {"beta": 1.0}, out_q=(1 / 256, -128)),
        "softmax_beta": _unary("SOFTMAX", (1, 12), (1, 12), {"beta": 0.5}, out_q=(1 / 256, -128),
                               in_q=(0.07, 4)),
        "logistic": _unary("LOGISTIC", (1, 40), (1, 40), {}, out_q=(1 / 256, -128),
                           in_q=(0.06, -3)),
        "shared_weights": _shared_weights(),
        "sub_relu": _binary("SUB", (1, 4, 4, 3), (1, 4, 4, 3), "RELU"),
        "sub_broadcast_const": _binary("SUB", (1, 4, 4, 3), (1, 1, 1, 3), "NONE", True),
        "maximum_broadcast": Case(
            [TTensor("a", (1, 3, 4), "int8", 0.1, 2), TTensor("b", (4,), "int8", 0.1, 2),
             TTensor("y", (1, 3, 4), "int8", 0.1, 2)],
            [TOp("MAXIMUM", [0, 1], [2])], [0, 1], [2]),
        "minimum": Case(
            [TTensor("a", (2, 5), "int8", 0.1, -7), TTensor("b", (2, 5), "int8", 0.1, -7),
             TTensor("y", (2, 5), "int8", 0.1, -7)],
            [TOp("MINIMUM", [0, 1], [2])], [0, 1], [2]),
        "leaky_relu": _unary("LEAKY_RELU", (1, 30), (1, 30), {"alpha": 0.2}, in_q=(0.05, -4),
                             out_q=(0.04, -20)),
        "relu": _unary("RELU", (1, 30), (1, 30), {}, in_q=(0.05, 6), out_q=(0.03, -128)),
        "relu6": _unary("RELU6", (1, 30), (1, 30), {}, in_q=(0.05, 6), out_q=(0.05, 6)),
        "hard_swish": _unary("HARD_SWISH", (1, 30), (1, 30), {}, in_q=(0.05, 6),
                             out_q=(0.03, -30)),
        "tanh": _unary("TANH", (1, 30), (1, 30), {}, in_q=(0.04, 3), out_q=(1 / 128, 0)),
    }


@dataclass
class Prepared:
    tflite: bytes
    model: bytes
    examples: list[list[np.ndarray]]
    expected: list[list[np.ndarray]]


@lru_cache(maxsize=1)
def prepared() -> dict[str, Prepared]:
    out = {}
    for k, (name, case) in enumerate(_cases().items()):
        tfl = build_tflite(case.tensors, case.ops, case.inputs, case.outputs)
        model = serialize(import_tflite(tfl))
        rng = np.random.default_rng(1000 + k)
        examples = [[_i8(rng, case.tensors[i].shape) for i in case.inputs]
                    for _ in range(EXAMPLES)]
        expected = [run_tflm(tfl, ex) for ex in examples]
        out[name] = Prepared(tfl, model, examples, expected)
    return out


# Ops whose differential cases live in a file of their own (stateful ones need sequences with
# reset(), which the one-invoke-per-example cases here do not model).
TESTED_ELSEWHERE = {"UNIDIRECTIONAL_SEQUENCE_LSTM": "tests/test_lstm.py"}
TESTED_ELSEWHERE.update({op: "tests/test_new_ops.py" for op in NEW_OPS})


def test_every_supported_op_has_a_case() -> None:
    used = {op.opcode for c in _cases().values() for op in c.ops}
    missing = set(SUPPORTED_OPS) - used - set(TESTED_ELSEWHERE)
    assert not missing, f"no .tflite case for {sorted(missing)}"


def test_single_op_models_match_tflm(interpreter: str) -> None:
    cases = prepared()
    results = invoke_models([(p.model, p.examples) for p in cases.values()], interpreter)
    bad = []
    for (name, p), rows in zip(cases.items(), results):
        diffs = [(g, w.ravel()) for got, want in zip(rows, p.expected)
                 for g, w in zip(got, want) if not np.array_equal(g, w.ravel())]
        if diffs:
            g, w = diffs[0]
            bad.append(f"{name}: {len(diffs)}/{len(rows)} differ, e.g. tinyrt {g.tolist()[:12]}"
                       f" TFLM {w.tolist()[:12]}")
    assert not bad, f"{len(bad)} cases differ from TFLM on {interpreter}:\n" + "\n".join(bad)


def test_import_keeps_names_folds_shapes_and_dedupes() -> None:
    cases = _cases()
    for name, case in cases.items():
        tfl = build_tflite(case.tensors, case.ops, case.inputs, case.outputs)
        d = describe(serialize(import_tflite(tfl)))
        assert len(d["metadata"]["folded_ops"]) == case.folded, name
        assert len(d["ops"]) + case.folded >= len(case.ops), name
        assert [r["name"] for r in d["inputs"]] == [case.tensors[i].name for i in case.inputs]
        assert [r["name"] for r in d["outputs"]] == [case.tensors[i].name for i in case.outputs]
    d = describe(prepared()["shared_weights"].model)
    weights = [t for t in d["tensors"] if t["name"] == "w"]
    assert len(weights) == 2 and weights[0]["offset"] == weights[1]["offset"]
    assert d["metadata"]["folded_ops"] == [] and d["metadata"]["parameters"] == 256
    d = describe(prepared()["reshape_folded_shape_subgraph"].model)
    assert d["ops"] == ["RESHAPE"]
    assert d["metadata"]["folded_ops"] == ["0:SHAPE", "1:STRIDED_SLICE", "2:PACK"]


def test_flatten_with_reduce_prod_is_folded() -> None:
    """reshape(x, [shape(x)[0], reduce_prod(shape(x)[1:])]): five ops folded (TFLM itself has
    no REDUCE_PROD kernel, so this model runs on tinyrt only; RESHAPE keeps the data)."""
    tensors = [
        TTensor("x", (1, 3, 2, 4), "int8", 0.1, 0), TTensor("shape", (4,), "int32"),
        _i32("b0", [0]), _i32("e0", [1]), _i32("s", [1]), TTensor("batch", (), "int32"),
        _i32("b1", [1]), _i32("e1", [0]), TTensor("rest", (3,), "int32"), _i32("axis", [0]),
        TTensor("prod", (), "int32"), TTensor("new_shape", (2,), "int32"),
        TTensor("y", (1, 24), "int8", 0.1, 0),
    ]
    ops = [
        TOp("SHAPE", [0], [1], {}),
        TOp("STRIDED_SLICE", [1, 2, 3, 4], [5], {"shrink_axis_mask": 1}),
        TOp("STRIDED_SLICE", [1, 6, 7, 4], [8], {"end_mask": 1}),
        TOp("REDUCE_PROD", [8, 9], [10], {"keep_dims": False}),
        TOp("PACK", [5, 10], [11], {"values_count": 2, "axis": 0}),
        TOp("RESHAPE", [0, 11], [12], {}),
    ]
    g = import_tflite(build_tflite(tensors, ops, [0], [12]))
    assert g.metadata["folded_ops"] == ["0:SHAPE", "1:STRIDED_SLICE", "2:STRIDED_SLICE",
                                        "3:REDUCE_PROD", "4:PACK"]
    assert [op.name for op in g.ops] == ["RESHAPE"]
    assert g.tensors[g.outputs[0]].shape == (1, 24)
    x = np.arange(-12, 12, dtype=np.int8).reshape(1, 3, 2, 4)
    (y,), = invoke_batch(serialize(g), [[x]], "cpython")
    np.testing.assert_array_equal(y, x.ravel())
    ops[3] = TOp("SUM", [8, 9], [10], {"keep_dims": False})  # 3 + 2 + 4: a wrong shape
    msg = _refusal(tensors, ops, [0], [12])
    assert msg == "op 5 (RESHAPE): shape input [1, 9] disagrees with the output shape (1, 24)"


# --- refusals ---------------------------------------------------------------------------------


def _refusal(tensors, ops, inputs, outputs) -> str:
    with pytest.raises(UnsupportedModelError) as e:
        import_tflite(build_tflite(tensors, ops, inputs, outputs))
    return str(e.value)


def _lstm_model() -> bytes:
    """FULLY_CONNECTED then an int8 BIDIRECTIONAL_SEQUENCE_LSTM (its inputs elided), an op
    TFLM does not run either."""
    rng = np.random.default_rng(0)
    tensors = [
        TTensor("x", (1, 8), "int8", 0.1, 0),
        TTensor("w", (8, 8), "int8", 0.01, 0, 0, _i8(rng, (8, 8))),
        TTensor("h", (1, 8), "int8", 0.1, 0),
        TTensor("seq", (1, 1, 8), "int8", 0.1, 0),
    ]
    ops = [TOp("FULLY_CONNECTED", [0, 1, -1], [2], {}),
           TOp("BIDIRECTIONAL_SEQUENCE_LSTM", [2], [3], {})]
    return build_tflite(tensors, ops, [0], [3])


def test_unsupported_op_names_op_index_and_supported_list() -> None:
    with pytest.raises(UnsupportedModelError) as e:
        import_tflite(_lstm_model())
    msg = str(e.value)
    assert msg.startswith("op 1 (BIDIRECTIONAL_SEQUENCE_LSTM) is not supported by tinyrt; "
                          "supported ops: ")
    for op in ("FULLY_CONNECTED", "CONV_2D", "SOFTMAX"):
        assert op in msg


def test_float_model_is_refused() -> None:
    path = SHARED_MODELS / "digits_cnn_float.tflite"
    if not path.exists():
        pytest.skip(f"{path} not present")
    with pytest.raises(UnsupportedModelError) as e:
        import_tflite(path.read_bytes())
    msg = str(e.value)
    assert "'serving_default_image:0' is float32: this is a float model" in msg
    assert "int8 models only" in msg


def test_uint8_and_hybrid_models_are_refused() -> None:
    rng = np.random.default_rng(0)
    w = _i8(rng, (4, 8))
    msg = _refusal([TTensor("x", (1, 8), "uint8", 0.1, 128),
                    TTensor("w", (4, 8), "uint8", 0.01, 128, 0, w.view(np.uint8)),
                    TTensor("y", (1, 4), "uint8", 0.1, 128)],
                   [TOp("FULLY_CONNECTED", [0, 1, -1], [2], {})], [0], [2])
    assert "'x' is uint8: this is a uint8 (legacy asymmetric) quantized model" in msg
    msg = _refusal([TTensor("x", (1, 8), "float32"), TTensor("w", (4, 8), "int8", 0.01, 0, 0, w),
                    TTensor("y", (1, 4), "float32")],
                   [TOp("FULLY_CONNECTED", [0, 1, -1], [2], {})], [0], [2])
    assert "hybrid (dynamic-range quantized) model" in msg
    msg = _refusal([TTensor("x", (1, 8), "float32"), TTensor("q", (1, 8), "int8", 0.1, 0),
                    TTensor("w", (4, 8), "int8", 0.01, 0, 0, w),
                    TTensor("y", (1, 4), "int8", 0.1, 0)],
                   [TOp("QUANTIZE", [0], [1], {}),
                    TOp("FULLY_CONNECTED", [1, 2, -1], [3], {})], [0], [3])
    assert msg.startswith("op 0 (QUANTIZE): input tensor 0 'x' is float32: this is an int8 "
                          "model with a float32 interface")


def test_unsupported_options_and_layouts_are_refused() -> None:
    rng = np.random.default_rng(0)
    fc = [TTensor("x", (1, 8), "int8", 0.1, 0),
          TTensor("w", (4, 8), "int8", 0.01, 0, 0, _i8(rng, (4, 8))),
          TTensor("y", (1, 4), "int8", 0.1, 0)]
    msg = _refusal(fc, [TOp("FULLY_CONNECTED", [0, 1, -1], [2],
                            {"fused_activation_function": "TANH"})], [0], [2])
    assert msg.startswith("op 0 (FULLY_CONNECTED): fused activation TANH is not supported")
    # weights computed at run time (here: a model input)
    msg = _refusal([fc[0], TTensor("w", (4, 8), "int8", 0.01, 0), fc[2]],
                   [TOp("FULLY_CONNECTED", [0, 1, -1], [2], {})], [0, 1], [2])
    assert "its weights (input 1) must be a constant tensor" in msg
    # a CONV_2D filter quantized per channel on axis 3 (CONV_2D needs axis 0)
    conv = [TTensor("x", (1, 4, 4, 4), "int8", 0.1, 0),
            TTensor("w", (4, 3, 3, 4), "int8", _scales(4), 0, 3, _i8(rng, (4, 3, 3, 4))),
            TTensor("y", (1, 4, 4, 4), "int8", 0.1, 0)]
    msg = _refusal(conv, [TOp("CONV_2D", [0, 1, -1], [2], {"padding": "SAME"})], [0], [2])
    assert msg == ("op 0 (CONV_2D): weights tensor 1 'w' shape (4, 3, 3, 4) are quantized per "
                   "channel on axis 3 (4 scales); CONV_2D needs axis 0")
    # concatenation inputs quantized differently from the output (TFLM copies raw bytes)
    msg = _refusal([TTensor("a", (1, 2), "int8", 0.1, 0), TTensor("b", (1, 2), "int8", 0.2, 0),
                    TTensor("y", (1, 4), "int8", 0.1, 0)],
                   [TOp("CONCATENATION", [0, 1], [2], {"axis": 1})], [0, 1], [2])
    assert "needs them equal" in msg


def test_not_a_tflite_file() -> None:
    tfl = prepared()["fc_per_tensor_relu"].tflite
    for bad in (b"", b"hello world, no flatbuffer here", tfl[:40]):
        with pytest.raises(UnsupportedModelError):
            import_tflite(bad)


def test_corrupt_files_give_unsupported_model_error_only() -> None:
    """Random byte changes in real and generated .tflite files: the import succeeds or raises
    UnsupportedModelError, never another exception (no traceback for the user)."""
    sources = [p.tflite for p in prepared().values()]
    sources += [p.read_bytes() for p in sorted(SHARED_MODELS.glob("*_int8.tflite"))]
    sources += [p.read_bytes() for p in sorted(SHARED_MODELS.glob("test_bconv2d_*.tflite"))]
    sources += [mixed_case(np.random.default_rng([2024, i]))[0] for i in range(4)]  # int8 + LCE
    rng = np.random.default_rng(2024)
    outcomes = {"converted": 0, "refused": 0}
    for k in range(600):
        data = bytearray(sources[k % len(sources)])
        for _ in range(int(rng.integers(1, 12))):
            data[int(rng.integers(0, len(data)))] = int(rng.integers(0, 256))
        try:
            serialize(import_tflite(bytes(data)))
            outcomes["converted"] += 1
        except UnsupportedModelError:
            outcomes["refused"] += 1
    assert outcomes["refused"] > 150


# --- the commands -----------------------------------------------------------------------------


def test_cli_convert_refusal_is_one_line(tmp_path: Path, capsys) -> None:
    src = tmp_path / "lstm.tflite"
    src.write_bytes(_lstm_model())
    assert cli.main(["convert", str(src), "-o", str(tmp_path / "lstm.trt")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tinyrt: error: ") and "op 1 (BIDIRECTIONAL_SEQUENCE_LSTM)" in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "lstm.trt").exists()


def test_cli_convert_info_run(tmp_path: Path, capsys) -> None:
    p = prepared()["conv_same_stride2_relu"]
    src = tmp_path / "conv.tflite"
    src.write_bytes(p.tflite)
    assert cli.main(["convert", str(src)]) == 0  # --board (fit to a board): the boards' tests
    out = capsys.readouterr()
    trt = tmp_path / "conv.trt"
    written, direct = describe(trt.read_bytes()), describe(p.model)
    for key in ("operators", "tensors", "arena_bytes"):
        assert written[key] == direct[key]  # only the metadata (source file name) differs
    assert written["metadata"]["source"] == "conv.tflite"
    for key in ("ops", "parameters", "weight bytes", "arena bytes", "file bytes", "MACs"):
        assert f"  {key} " in out.out
    # 4x3 positions x 4 channels x 3x3x3 taps (taps in the padding counted, as from shapes)
    assert "MACs          1,296 per inference" in out.out

    assert cli.main(["info", str(trt), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    for key in ("format_version", "file_bytes", "arena_bytes", "weight_bytes", "ops", "inputs",
                "outputs"):
        assert key in info
    assert info["ops"] == ["CONV_2D"] and info["file_bytes"] == trt.stat().st_size

    x = np.stack([ex[0] for ex in p.examples])  # (6, 1, 7, 6, 3): x[i] has the input shape
    np.save(tmp_path / "x.npy", x.reshape(len(x), -1))  # flat rows are reshaped
    y_path = tmp_path / "y.npy"
    assert cli.main(["run", str(trt), "--input", str(tmp_path / "x.npy"), "--output",
                     str(y_path)]) == 0
    y = np.load(y_path)
    assert y.dtype == np.int8 and y.shape == (6, 1, 4, 3, 4)
    np.testing.assert_array_equal(y, np.stack([e[0] for e in p.expected]))

    np.save(tmp_path / "bad.npy", x.reshape(len(x), -1)[:, :10])
    capsys.readouterr()
    assert cli.main(["run", str(trt), "--input", str(tmp_path / "bad.npy")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "has shape (1, 7, 6, 3) (126 values)" in err
    np.save(tmp_path / "float.npy", x.astype(np.float32))
    assert cli.main(["run", str(trt), "--input", str(tmp_path / "float.npy")]) == 2
    assert "raw int8" in capsys.readouterr().err
