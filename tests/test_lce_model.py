"""Larq Compute Engine models through `tinyrt convert` (converter.tflite_import routes CUSTOM(Lce*)
ops to converter.lce_import): the shared LCE-converted model bit-exact on every interpreter
through `tinyrt convert` + `tinyrt run`, LCE .tflite files written here (every LCE custom op
and option form) and mixed int8 + LCE graphs against the numpy oracles of LCE semantics and
TFLM's int8 kernels."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import flatbuffers
import numpy as np
import pytest
import tflite
from flatbuffers import flexbuffers
from hypothesis import given, settings
from hypothesis import strategies as st

from converter import lce_import, writer
from converter.graph import Graph
from converter.tflite_import import UnsupportedModelError, import_tflite
from converter.tflite_reader import TflTensor, read_tflite
from host_sim import cli
from host_sim.device import invoke_models
from host_sim.oracle import int8_ref, lce_ref
from host_sim.oracle.tflm import TOp, TTensor, _options, _quantization
from tests.conftest import SHARED_MODELS

MODEL = SHARED_MODELS / "test_bconv2d_bin_0.tflite"

# -- a writer of LCE .tflite files (custom ops with flexbuffer options) -------------------------

_TYPES = {"int8": (tflite.TensorType.INT8, "i1"), "int32": (tflite.TensorType.INT32, "<i4"),
          "float32": (tflite.TensorType.FLOAT32, "<f4")}
LTensor = TTensor  # name, shape, dtype, scale (one or per channel), zero_point, ..., data


@dataclass
class LOp:
    code: str  # custom code, e.g. "LceBconv2d", or a builtin operator, e.g. "CONV_2D"
    inputs: list[int]
    outputs: list[int]
    options: dict = field(default_factory=dict)  # flexbuffer map, or builtin option fields

    @property
    def builtin(self) -> bool:
        return self.code.isupper()


def lce_tflite(tensors: list[LTensor], ops: list[LOp], inputs: list[int],
               outputs: list[int]) -> bytes:
    """One subgraph of LCE custom ops and builtin ops as a .tflite flatbuffer (as LCE's
    converter writes it: CUSTOM operator codes, flexbuffer-map options; builtin options
    tables as TFLite's)."""
    b = flatbuffers.Builder(1024)

    def ivec(values):
        b.StartVector(4, len(values), 4)
        for v in reversed(values):
            b.PrependInt32(int(v))
        return b.EndVector()

    def offsets(offs):
        b.StartVector(4, len(offs), 4)
        for o in reversed(offs):
            b.PrependUOffsetTRelative(o)
        return b.EndVector()

    buffers = []
    tflite.BufferStart(b)
    buffers.append(tflite.BufferEnd(b))
    for t in tensors:
        vec = None
        if t.data is not None:
            raw = np.ascontiguousarray(np.asarray(t.data).astype(_TYPES[t.dtype][1])).tobytes()
            b.StartVector(1, len(raw), 16)
            b.head -= len(raw)
            b.Bytes[b.head: b.head + len(raw)] = raw
            vec = b.EndVector()
        tflite.BufferStart(b)
        if vec is not None:
            tflite.BufferAddData(b, vec)
        buffers.append(tflite.BufferEnd(b))
    toffs = []
    for i, t in enumerate(tensors):
        name = b.CreateString(t.name)
        shape = ivec(t.shape)
        quant = _quantization(b, t)
        tflite.TensorStart(b)
        tflite.TensorAddShape(b, shape)
        tflite.TensorAddType(b, _TYPES[t.dtype][0])
        tflite.TensorAddBuffer(b, i + 1)
        tflite.TensorAddName(b, name)
        if quant is not None:
            tflite.TensorAddQuantization(b, quant)
        toffs.append(tflite.TensorEnd(b))
    codes = list(dict.fromkeys(op.code for op in ops))
    ooffs = []
    for op in ops:
        if op.builtin:
            opt_type, opt_off = _options(b, TOp(op.code, op.inputs, op.outputs, op.options), [])
        else:
            opts = bytes(flexbuffers.Dumps(op.options))
            b.StartVector(1, len(opts), 1)
            b.head -= len(opts)
            b.Bytes[b.head: b.head + len(opts)] = opts
            ov = b.EndVector()
        ins, outs = ivec(op.inputs), ivec(op.outputs)
        tflite.OperatorStart(b)
        tflite.OperatorAddOpcodeIndex(b, codes.index(op.code))
        tflite.OperatorAddInputs(b, ins)
        tflite.OperatorAddOutputs(b, outs)
        if op.builtin and opt_type != tflite.BuiltinOptions.NONE:
            tflite.OperatorAddBuiltinOptionsType(b, opt_type)
            tflite.OperatorAddBuiltinOptions(b, opt_off)
        elif not op.builtin:
            tflite.OperatorAddCustomOptions(b, ov)
            tflite.OperatorAddCustomOptionsFormat(b, tflite.CustomOptionsFormat.FLEXBUFFERS)
        ooffs.append(tflite.OperatorEnd(b))
    coffs = []
    for code in codes:
        custom = not code.isupper()
        builtin = getattr(tflite.BuiltinOperator, "CUSTOM" if custom else code)
        name = b.CreateString(code) if custom else None
        tflite.OperatorCodeStart(b)
        tflite.OperatorCodeAddDeprecatedBuiltinCode(b, min(builtin, 127))
        tflite.OperatorCodeAddBuiltinCode(b, builtin)
        if custom:
            tflite.OperatorCodeAddCustomCode(b, name)
        tflite.OperatorCodeAddVersion(b, 1)
        coffs.append(tflite.OperatorCodeEnd(b))
    tv, ov_, iv, outv = offsets(toffs), offsets(ooffs), ivec(inputs), ivec(outputs)
    tflite.SubGraphStart(b)
    tflite.SubGraphAddTensors(b, tv)
    tflite.SubGraphAddInputs(b, iv)
    tflite.SubGraphAddOutputs(b, outv)
    tflite.SubGraphAddOperators(b, ov_)
    sg = tflite.SubGraphEnd(b)
    sgv, cv, bv = offsets([sg]), offsets(coffs), offsets(buffers)
    desc = b.CreateString("tinyrt tests: LCE custom ops")
    tflite.ModelStart(b)
    tflite.ModelAddVersion(b, 3)
    tflite.ModelAddOperatorCodes(b, cv)
    tflite.ModelAddSubgraphs(b, sgv)
    tflite.ModelAddDescription(b, desc)
    tflite.ModelAddBuffers(b, bv)
    b.Finish(tflite.ModelEnd(b), file_identifier=b"TFL3")
    return bytes(b.Output())


# -- the shared LCE-converted model --------------------------------------------------------------

def test_shared_model_imports_as_one_bconv():
    g = import_tflite(MODEL.read_bytes())
    assert [op.name for op in g.ops] == ["BCONV_2D"]
    x, y = g.tensors[g.inputs[0]], g.tensors[g.outputs[0]]
    assert (x.dtype, x.shape, y.dtype, y.shape) == ("packed", (1, 12, 11, 128), "packed",
                                                    (1, 5, 9, 32))
    assert g.ops[0].params == [2, 1, 1, 1, 0, 0, 5, 9, 0, 0]  # stride (2, 1), VALID, bits out
    assert g.metadata["parameters"] == g.metadata["binary_parameters"] == 32 * 3 * 3 * 128


def test_shared_model_convert_and_run_bit_exact(interpreter, tmp_path: Path, capsys):
    """All 20 reference outputs of LCE's interpreter, bit for bit, through `tinyrt convert`
    and `tinyrt run` as for any int8 model: int32 words in, int32 words out."""
    io = np.load(SHARED_MODELS / "test_bconv2d_bin_0_io.npz")
    trt, x, y = tmp_path / "bconv.trt", tmp_path / "x.npy", tmp_path / "y.npy"
    assert cli.main(["convert", str(MODEL), "-o", str(trt)]) == 0
    out = capsys.readouterr().out
    assert "BCONV_2D" in out and "(binary)" in out
    # 1 x 5 x 9 positions x 32 channels x 3 x 3 x 128 taps
    assert "MACs          1,658,880 per inference (1,658,880 of them binary" in out
    np.save(x, io["x"])  # (20, 1, 12, 11, 4) int32 words
    assert cli.main(["run", str(trt), "--input", str(x), "--output", str(y),
                     "--interpreter", interpreter]) == 0
    got = np.load(y)
    assert got.dtype == np.int32 and got.shape == io["y"].shape == (20, 1, 5, 9, 1)
    np.testing.assert_array_equal(got, io["y"])


def test_shared_model_oracle_agrees():
    """The numpy oracle reproduces LCE's outputs of the shared model from its constants."""
    m = read_tflite(MODEL.read_bytes())
    (op,) = m.ops
    assert op.name == "CUSTOM(LceBconv2d)" and op.custom_options
    io = np.load(SHARED_MODELS / "test_bconv2d_bin_0_io.npz")
    for x, want in zip(io["x"], io["y"]):
        got = lce_ref.bconv2d(x, 128, m.tensors[op.inputs[1]].data, (2, 1), (1, 1), "VALID", 0,
                              thresholds=m.tensors[op.inputs[4]].data)
        np.testing.assert_array_equal(got, want)


# -- LCE .tflite files of every op, imported and run ---------------------------------------------

_ACT_CODES = {"NONE": 0, "RELU": 1, "RELU_N1_TO_1": 2, "RELU6": 3}


def _words(c: int) -> int:
    return (c + 31) // 32


def _bits(rng, shape):
    return lce_ref.pack(rng.integers(0, 2, shape).astype(bool))


def _opts(rng, old_style: bool, **kw) -> dict:
    """Options as LCE >= 0.6 writes them (ints), or older files (strings / NHWC vectors)."""
    if not old_style:
        return kw
    out = dict(kw)
    if "padding" in out:
        out["padding"] = ["SAME", "VALID"][out["padding"]] if rng.random() < 0.5 else \
            ["same", "valid"][out["padding"]]
    if "fused_activation_function" in out:
        out["fused_activation_function"] = {v: k for k, v in _ACT_CODES.items()}[
            out["fused_activation_function"]]
    if "stride_height" in out and "filter_height" not in out:
        out["strides"] = [1, out.pop("stride_height"), out.pop("stride_width"), 1]
        out["dilations"] = [1, out.pop("dilation_height_factor"),
                            out.pop("dilation_width_factor"), 1]
    return out


def lce_case(rng):
    """(tflite bytes, inputs, expected outputs) of a random LCE graph: LceQuantize ->
    LceBconv2d (bit-packed out) -> LceBMaxPool2d -> LceBconv2d (int8 out), or a single
    LceDequantize / LceBconv2d op, with options in either LCE format."""
    old = bool(rng.random() < 0.3)
    kind = int(rng.integers(0, 3))
    n, h, w = 1, int(rng.integers(3, 7)), int(rng.integers(3, 7))
    if kind == 0:
        c0 = int(rng.integers(1, 70))
        c1 = int(rng.integers(1, 40))
        c2 = int(rng.integers(1, 20))
        zp, osc, ozp = int(rng.integers(-128, 128)), float(np.float32(rng.uniform(0.01, 0.5))), \
            int(rng.integers(-100, 100))
        f1 = _bits(rng, (c1, 3, 3, c0))
        thr = rng.integers(0, 9 * c0 + 1, c1).astype(np.int32)
        f2 = _bits(rng, (c2, 2, 2, c1))
        mul = (rng.normal(0, 1, c2) * 0.05).astype(np.float32)
        bias = rng.normal(0, 1, c2).astype(np.float32)
        act = str(rng.choice(list(_ACT_CODES)))
        h1, w1 = h, w  # SAME, stride 1, one-padding
        h2, w2 = lce_ref.out_and_pad("SAME", h1, 2, 2)[0], lce_ref.out_and_pad("SAME", w1, 2, 2)[0]
        h3, w3 = h2 - 1, w2 - 1  # VALID 2x2
        if h3 < 1 or w3 < 1:
            h3, w3, h, w = 1, 1, 4, 4
            h1, w1, h2, w2 = 4, 4, 2, 2
        t = [LTensor("x", (n, h, w, c0), "int8", 0.05, zp),
             LTensor("xq", (n, h, w, _words(c0)), "int32"),
             LTensor("f1", f1.shape, "int32", data=f1), LTensor("thr", (c1,), "int32", data=thr),
             LTensor("y1", (n, h1, w1, _words(c1)), "int32"),
             LTensor("y2", (n, h2, w2, _words(c1)), "int32"),
             LTensor("f2", f2.shape, "int32", data=f2), LTensor("m", (c2,), "float32", data=mul),
             LTensor("b", (c2,), "float32", data=bias),
             LTensor("y", (n, h3, w3, c2), "int8", osc, ozp)]
        ops = [LOp("LceQuantize", [0], [1]),
               LOp("LceBconv2d", [1, 2, -1, -1, 3], [4], _opts(
                   rng, old, channels_in=c0, dilation_height_factor=1, dilation_width_factor=1,
                   fused_activation_function=0, pad_values=1, padding=0, stride_height=1,
                   stride_width=1)),
               LOp("LceBMaxPool2d", [4], [5], _opts(rng, old, padding=0, stride_width=2,
                                                     stride_height=2, filter_width=2,
                                                     filter_height=2)),
               LOp("LceBconv2d", [5, 6, 7, 8, -1], [9], _opts(
                   rng, old, channels_in=c1, dilation_height_factor=1, dilation_width_factor=1,
                   fused_activation_function=_ACT_CODES[act], pad_values=1, padding=1,
                   stride_height=1, stride_width=1))]
        xs = [rng.integers(-128, 128, (n, h, w, c0)).astype(np.int8) for _ in range(2)]

        def expect(x):
            v = lce_ref.quantize(x, zp)
            v = lce_ref.bconv2d(v, c0, f1, (1, 1), (1, 1), "SAME", 1, thresholds=thr)
            v = lce_ref.bmaxpool(v, (2, 2), (2, 2), "SAME")
            return lce_ref.bconv2d(v, c1, f2, (1, 1), (1, 1), "VALID", 1, act, None, mul, bias,
                                   osc, ozp)
        return lce_tflite(t, ops, [0], [9]), xs, expect
    if kind == 1:
        c = int(rng.integers(1, 80))
        scale, zp = float(np.float32(rng.uniform(0.003, 1.5))), int(rng.integers(-128, 128))
        t = [LTensor("x", (n, h, w, _words(c)), "int32"), LTensor("y", (n, h, w, c), "int8",
                                                                  scale, zp)]
        xs = [_bits(rng, (n, h, w, c)) for _ in range(2)]
        return (lce_tflite(t, [LOp("LceDequantize", [0], [1])], [0], [1]), xs,
                lambda x: lce_ref.dequantize(x, c, scale, zp))
    # one bconv: zero or one padding, int8 or bit-packed output, float or packed filters
    cin, cout = int(rng.integers(1, 70)), int(rng.integers(1, 40))
    kh, kw, sh, sw = (int(v) for v in rng.integers(1, [4, 4, 3, 3]))
    pad = str(rng.choice(["SAME", "VALID"]))
    if pad == "VALID":
        h, w = max(h, kh), max(w, kw)
    pv = int(rng.integers(0, 2))
    oh, ow = lce_ref.out_and_pad(pad, h, kh, sh)[0], lce_ref.out_and_pad(pad, w, kw, sw)[0]
    f = _bits(rng, (cout, kh, kw, cin))
    f_in = (np.where(lce_ref.unpack(f, cin) < 0, -1.0, 1.0).astype(np.float32)
            if rng.random() < 0.3 else f)
    opts = _opts(rng, old, channels_in=cin, dilation_height_factor=1, dilation_width_factor=1,
                 fused_activation_function=0, pad_values=pv, padding=["SAME", "VALID"].index(pad),
                 stride_height=sh, stride_width=sw)
    t = [LTensor("x", (n, h, w, _words(cin)), "int32"),
         LTensor("f", f_in.shape, "float32" if f_in.dtype == np.float32 else "int32", data=f_in)]
    xs = [_bits(rng, (n, h, w, cin)) for _ in range(2)]
    if rng.random() < 0.5:
        thr = rng.integers(-1, kh * kw * cin + 1, cout).astype(np.int32)
        t += [LTensor("thr", (cout,), "int32", data=thr),
              LTensor("y", (n, oh, ow, _words(cout)), "int32")]
        return (lce_tflite(t, [LOp("LceBconv2d", [0, 1, -1, -1, 2], [3], opts)], [0], [3]), xs,
                lambda x: lce_ref.bconv2d(x, cin, f, (sh, sw), (1, 1), pad, pv, thresholds=thr))
    mul = (rng.normal(0, 1, cout) * 0.1).astype(np.float32)
    bias = rng.normal(0, 2, cout).astype(np.float32)
    osc, ozp = float(np.float32(rng.uniform(0.02, 1.0))), int(rng.integers(-128, 128))
    t += [LTensor("m", (cout,), "float32", data=mul), LTensor("b", (cout,), "float32", data=bias),
          LTensor("y", (n, oh, ow, cout), "int8", osc, ozp)]
    return (lce_tflite(t, [LOp("LceBconv2d", [0, 1, 2, 3, -1], [4], opts)], [0], [4]), xs,
            lambda x: lce_ref.bconv2d(x, cin, f, (sh, sw), (1, 1), pad, pv, "NONE", None, mul,
                                      bias, osc, ozp))


@settings(max_examples=3)
@given(st.integers(0, 2**32 - 1))
def test_lce_models_match_oracle(interpreter, seed):
    cases = [lce_case(np.random.default_rng([seed, i])) for i in range(15)]
    models = [writer.serialize(import_tflite(data)) for data, _, _ in cases]
    results = invoke_models([(m, [[x] for x in xs]) for m, (_, xs, _) in zip(models, cases)],
                            interpreter)
    for (_, xs, expect), rows in zip(cases, results):
        for x, (y,) in zip(xs, rows):
            np.testing.assert_array_equal(y, np.asarray(expect(x)).ravel())


# -- mixed int8 + LCE graphs --------------------------------------------------------------------

def _conv_case(rng, h: int, w: int, cin: int, cout: int, scale: float, zp: int):
    """TFLite int8 CONV_2D tensors (weights per channel, bias, output; SAME 3x3, no fused
    activation), its options, output quantization and oracle."""
    wt = rng.integers(-127, 128, (cout, 3, 3, cin)).astype(np.int8)
    ws = [float(np.float32(v)) for v in rng.uniform(0.002, 0.02, cout)]
    bias = rng.integers(-2000, 2000, cout).astype(np.int32)
    osc, ozp = float(np.float32(rng.uniform(0.02, 0.2))), int(rng.integers(-20, 20))
    act = "NONE"  # a ReLU before LceQuantize would make every bit 0 (+1)
    tensors = [LTensor("conv/w", wt.shape, "int8", ws, 0, 0, wt),
               LTensor("conv/b", (cout,), "int32", data=bias),
               LTensor("conv/y", (1, h, w, cout), "int8", osc, ozp)]

    def oracle(v):
        return int8_ref.conv2d(v, wt, bias, x_scale=scale, x_zp=zp, w_scale=ws, out_scale=osc,
                               out_zp=ozp, padding="SAME", activation=act)
    return tensors, {"padding": "SAME", "fused_activation_function": act}, (osc, ozp), oracle


def mixed_case(rng):
    """(tflite bytes, inputs, oracle) of a graph mixing int8 builtin ops and LCE ops:
      kind 0: int8 x -> CONV_2D -> LceQuantize -> LceBconv2d (bits) -> LceDequantize -> FC
      kind 1: int8 x -> CONV_2D -> LceQuantize -> LceBconv2d (int8) -> FC
      kind 2: packed x -> LceBconv2d (int8) -> CONV_2D -> LceQuantize -> packed y"""
    kind = int(rng.integers(0, 3))
    h, w = int(rng.integers(2, 6)), int(rng.integers(2, 6))
    c0, c1, c2 = (int(v) for v in rng.integers(1, 45, 3))
    xs_, xzp = float(np.float32(rng.uniform(0.01, 0.1))), int(rng.integers(-30, 30))
    pv = int(rng.integers(0, 2))
    bopts = dict(channels_in=c1, dilation_height_factor=1, dilation_width_factor=1,
                 fused_activation_function=0, pad_values=pv, padding=0, stride_height=1,
                 stride_width=1)
    f = lce_ref.pack(rng.integers(0, 2, (c2, 3, 3, c1)).astype(bool))
    mul = (rng.normal(0, 1, c2) * 0.05).astype(np.float32)
    bias = rng.normal(0, 1, c2).astype(np.float32)
    bsc, bzp = float(np.float32(rng.uniform(0.02, 0.3))), int(rng.integers(-50, 50))
    if kind == 2:
        conv_t, conv_o, _, conv = _conv_case(rng, h, w, c2, c0, bsc, bzp)
        t = [LTensor("x", (1, h, w, _words(c1)), "int32"), LTensor("f", f.shape, "int32", data=f),
             LTensor("bconv/y", (1, h, w, c2), "int8", bsc, bzp)] + conv_t + [
             LTensor("m", (c2,), "float32", data=mul), LTensor("b", (c2,), "float32", data=bias),
             LTensor("y", (1, h, w, _words(c0)), "int32")]
        ops = [LOp("LceBconv2d", [0, 1, 6, 7, -1], [2], bopts),
               LOp("CONV_2D", [2, 3, 4], [5], conv_o), LOp("LceQuantize", [5], [8])]
        xs = [lce_ref.pack(rng.integers(0, 2, (1, h, w, c1)).astype(bool)) for _ in range(2)]

        def expect(x):
            v = lce_ref.bconv2d(x, c1, f, padding="SAME", pad_values=pv, multiplier=mul,
                                bias=bias, out_scale=bsc, out_zp=bzp)
            return lce_ref.quantize(conv(v), conv_t[2].zero_point)
        return lce_tflite(t, ops, [0], [8]), xs, expect
    conv_t, conv_o, (csc, czp), conv = _conv_case(rng, h, w, c0, c1, xs_, xzp)
    n = int(rng.integers(1, 12))
    fw = rng.integers(-127, 128, (n, h * w * c2)).astype(np.int8)
    fb = rng.integers(-3000, 3000, n).astype(np.int32)
    fws, fsc, fzp = 0.004, float(np.float32(rng.uniform(0.05, 0.5))), int(rng.integers(-10, 10))
    t = [LTensor("x", (1, h, w, c0), "int8", xs_, xzp)] + conv_t + [
         LTensor("xq", (1, h, w, _words(c1)), "int32"), LTensor("f", f.shape, "int32", data=f)]
    ops = [LOp("CONV_2D", [0, 1, 2], [3], conv_o), LOp("LceQuantize", [3], [4])]
    if kind == 0:
        thr = rng.integers(0, 9 * c1 + 1, c2).astype(np.int32)
        t += [LTensor("thr", (c2,), "int32", data=thr),
              LTensor("bconv/y", (1, h, w, _words(c2)), "int32"),
              LTensor("deq", (1, h, w, c2), "int8", bsc, bzp)]
        ops += [LOp("LceBconv2d", [4, 5, -1, -1, 6], [7], bopts), LOp("LceDequantize", [7], [8])]
    else:
        t += [LTensor("m", (c2,), "float32", data=mul), LTensor("b", (c2,), "float32", data=bias),
              LTensor("bconv/y", (1, h, w, c2), "int8", bsc, bzp)]
        ops += [LOp("LceBconv2d", [4, 5, 6, 7, -1], [8], bopts)]
    t += [LTensor("fc/w", fw.shape, "int8", fws, 0, data=fw),
          LTensor("fc/b", (n,), "int32", data=fb), LTensor("y", (1, n), "int8", fsc, fzp)]
    ops += [LOp("FULLY_CONNECTED", [8, 9, 10], [11], {})]
    xs = [rng.integers(-128, 128, (1, h, w, c0)).astype(np.int8) for _ in range(2)]

    def expect(x):
        v = lce_ref.quantize(conv(x), czp)
        if kind == 0:
            v = lce_ref.bconv2d(v, c1, f, padding="SAME", pad_values=pv, thresholds=thr)
            v = lce_ref.dequantize(v, c2, bsc, bzp)
        else:
            v = lce_ref.bconv2d(v, c1, f, padding="SAME", pad_values=pv, multiplier=mul,
                                bias=bias, out_scale=bsc, out_zp=bzp)
        return int8_ref.fully_connected(v, fw, fb, x_scale=bsc, x_zp=bzp, w_scale=fws,
                                        out_scale=fsc, out_zp=fzp)
    return lce_tflite(t, ops, [0], [11]), xs, expect


@settings(max_examples=2)
@given(st.integers(0, 2**32 - 1))
def test_mixed_int8_lce_models_match_oracles(interpreter, seed):
    cases = [mixed_case(np.random.default_rng([seed, i])) for i in range(12)]
    models = [writer.serialize(import_tflite(data)) for data, _, _ in cases]
    results = invoke_models([(m, [[x] for x in xs]) for m, (_, xs, _) in zip(models, cases)],
                            interpreter)
    for (_, xs, expect), rows in zip(cases, results):
        for x, (y,) in zip(xs, rows):
            np.testing.assert_array_equal(y, np.asarray(expect(x)).ravel())


def test_mixed_model_convert_info_run(tmp_path: Path, capsys):
    """`tinyrt convert`, `tinyrt info --json` and `tinyrt run` on a mixed int8 + LCE model."""
    rng = np.random.default_rng(5)
    while True:
        data, xs, expect = mixed_case(rng)
        if read_tflite(data).ops[0].name == "CONV_2D":  # int8 in, int8 out
            break
    src, trt = tmp_path / "mixed.tflite", tmp_path / "mixed.trt"
    src.write_bytes(data)
    assert cli.main(["convert", str(src)]) == 0
    out = capsys.readouterr().out
    for op in ("CONV_2D", "BINARIZE", "BCONV_2D", "FULLY_CONNECTED"):
        assert op in out
    assert "of them binary" in out
    assert cli.main(["info", str(trt), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["ops"][:3] == ["CONV_2D", "BINARIZE", "BCONV_2D"]
    assert info["ops"][-1] == "FULLY_CONNECTED"
    assert [r["dtype"] for r in info["inputs"] + info["outputs"]] == ["int8", "int8"]
    assert "packed" in {t["dtype"] for t in info["tensors"]}
    assert info["metadata"]["source_ops"][1:3] == ["CUSTOM(LceQuantize)", "CUSTOM(LceBconv2d)"]
    np.save(tmp_path / "x.npy", np.stack(xs))
    assert cli.main(["run", str(trt), "--input", str(tmp_path / "x.npy"), "--output",
                     str(tmp_path / "y.npy")]) == 0
    y = np.load(tmp_path / "y.npy")
    np.testing.assert_array_equal(y, np.stack([expect(x) for x in xs]))


# -- the importer API and its refusals -----------------------------------------------------------

def _tensor(i: int, name: str, shape: tuple, dtype: str, scale: float | None = None,
            zero_point: int = 0, data: np.ndarray | None = None) -> TflTensor:
    q = scale is not None
    return TflTensor(i, name, dtype, shape, np.array([scale], np.float32) if q else None,
                     np.array([zero_point]) if q else None, 0, data)


def test_convert_lce_op_with_reader_tensors():
    """convert_lce_op converts one CUSTOM op on the reader's tensors and a shared tensor
    map; model inputs are made by the op that reads them."""
    f = np.zeros((8, 1, 1, 2), np.int32)
    tensors = [_tensor(0, "x", (1, 4, 4, 40), "int8", 0.1, 3),
               _tensor(1, "xq", (1, 4, 4, 2), "int32"),
               _tensor(2, "f", f.shape, "int32", data=f),
               _tensor(3, "thr", (8,), "int32", data=np.full(8, 20, np.int32)),
               _tensor(4, "y", (1, 4, 4, 1), "int32")]
    g, tmap = Graph(), {}
    q = lce_import.convert_lce_op(g, "CUSTOM(LceQuantize)", b"", [0], [1], tensors, tmap)
    opts = bytes(flexbuffers.Dumps(dict(channels_in=40, stride_height=1, stride_width=1,
                                        dilation_height_factor=1, dilation_width_factor=1,
                                        padding=1, pad_values=1, fused_activation_function=0)))
    y = lce_import.convert_lce_op(g, "LceBconv2d", opts, [1, 2, -1, -1, 3], [4], tensors, tmap)
    assert tmap[1] == q[0] and tmap[4] == y[0]
    assert g.tensors[tmap[0]].zero_point == 3 and g.tensors[tmap[0]].dtype == "int8"
    assert g.tensors[y[0]].shape == (1, 4, 4, 8) and g.tensors[y[0]].dtype == "packed"
    assert [op.name for op in g.ops] == ["BINARIZE", "BCONV_2D"]


def _one_bconv(out_dtype="int32", filt=None, opts=None, cin=40):
    filt = np.zeros((8, 1, 1, 2), np.int32) if filt is None else filt
    t = [LTensor("x", (1, 4, 4, _words(cin)), "int32"),
         LTensor("f", filt.shape, str(filt.dtype), data=filt),
         LTensor("thr", (8,), "int32", data=np.zeros(8, np.int32)),
         LTensor("y", (1, 4, 4, 1 if out_dtype == "int32" else 8), out_dtype)]
    o = dict(channels_in=cin, stride_height=1, stride_width=1, dilation_height_factor=1,
             dilation_width_factor=1, padding=1, pad_values=1, fused_activation_function=0)
    o.update(opts or {})
    return lce_tflite(t, [LOp("LceBconv2d", [0, 1, -1, -1, 2], [3], o)], [0], [3])


def _packed_into_builtin():
    """A bit-packed model input read by a builtin op."""
    w = np.zeros((4, 2), np.int8)
    return lce_tflite([LTensor("x", (1, 2), "int32"), LTensor("w", w.shape, "int8", 0.1, data=w),
                       LTensor("y", (1, 4), "int8", 0.1, 0)],
                      [LOp("FULLY_CONNECTED", [0, 1, -1], [2], {})], [0], [2])


def _dangling_packed_input():
    """An LCE op reading an int32 tensor that no op makes and that is no model input."""
    t = [LTensor("x", (1, 2, 2, 8), "int8", 0.1, 0), LTensor("p", (1, 2, 2, 1), "int32"),
         LTensor("y", (1, 2, 2, 8), "int8", 0.1, 0)]
    return lce_tflite(t, [LOp("LceDequantize", [1], [2])], [0], [2])


@pytest.mark.parametrize("data, message", [
    (_one_bconv("float32"), "op 0 \\(CUSTOM\\(LceBconv2d\\)\\): output tensor 3 'y' is float32"),
    (_one_bconv(filt=np.zeros((8, 1, 1, 1), np.int32), cin=64), "grouped"),
    (_one_bconv(opts={"padding": 7}), "op 0 \\(CUSTOM\\(LceBconv2d\\)\\): option padding=7"),
    (_one_bconv(opts={"fused_activation_function": 5}), "fused_activation_function=5"),
    (_one_bconv(opts={"channels_in": [1, 2]}), "op 0 \\(CUSTOM\\(LceBconv2d\\)\\): "),
    (_packed_into_builtin(), "op 0 \\(FULLY_CONNECTED\\): input tensor 0 'x' is int32"),
    (_dangling_packed_input(), "'p' is produced by no op and is no model input"),
    (b"not a tflite file at all", "not a .tflite"),
])
def test_lce_import_refuses(data, message):
    with pytest.raises(UnsupportedModelError, match=message):
        import_tflite(data)


def test_missing_channels_in_is_refused():
    m = read_tflite(_one_bconv())
    (op,) = m.ops
    with pytest.raises(lce_import.LceImportError, match="channels_in"):
        lce_import.convert_lce_op(Graph(), op.name, bytes(flexbuffers.Dumps({"padding": 1})),
                                  op.inputs, op.outputs, m.tensors, {})
