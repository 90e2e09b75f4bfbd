"""Larq Compute Engine models through converter.lce_import: the shared LCE-converted model
bit-exact on every interpreter, and LCE .tflite files written here (every LCE custom op and
option form) against the numpy oracle of LCE semantics."""

from __future__ import annotations

from dataclasses import dataclass, field

import flatbuffers
import numpy as np
import pytest
import tflite
from flatbuffers import flexbuffers
from hypothesis import given, settings
from hypothesis import strategies as st

from converter import lce_import, writer
from host_sim.oracle import lce_ref
from tests.conftest import SHARED_MODELS
from tests.test_binary import run_raw, words_of

MODEL = SHARED_MODELS / "test_bconv2d_bin_0.tflite"

# -- a writer of LCE .tflite files (custom ops with flexbuffer options) -------------------------

_TYPES = {"int8": (tflite.TensorType.INT8, "i1"), "int32": (tflite.TensorType.INT32, "<i4"),
          "float32": (tflite.TensorType.FLOAT32, "<f4")}


@dataclass
class LTensor:
    name: str
    shape: tuple
    dtype: str
    scale: float | None = None
    zero_point: int = 0
    data: np.ndarray | None = None


@dataclass
class LOp:
    code: str  # custom code, e.g. "LceBconv2d"
    inputs: list[int]
    outputs: list[int]
    options: dict = field(default_factory=dict)


def lce_tflite(tensors: list[LTensor], ops: list[LOp], inputs: list[int],
               outputs: list[int]) -> bytes:
    """One subgraph of LCE custom ops as a .tflite flatbuffer (as LCE's converter writes it:
    CUSTOM operator codes, flexbuffer-map options)."""
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
        quant = None
        if t.scale is not None:
            b.StartVector(4, 1, 4)
            b.PrependFloat32(float(t.scale))
            sv = b.EndVector()
            b.StartVector(8, 1, 8)
            b.PrependInt64(int(t.zero_point))
            zv = b.EndVector()
            tflite.QuantizationParametersStart(b)
            tflite.QuantizationParametersAddScale(b, sv)
            tflite.QuantizationParametersAddZeroPoint(b, zv)
            quant = tflite.QuantizationParametersEnd(b)
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
        tflite.OperatorAddCustomOptions(b, ov)
        tflite.OperatorAddCustomOptionsFormat(b, tflite.CustomOptionsFormat.FLEXBUFFERS)
        ooffs.append(tflite.OperatorEnd(b))
    coffs = []
    for code in codes:
        s = b.CreateString(code)
        tflite.OperatorCodeStart(b)
        tflite.OperatorCodeAddDeprecatedBuiltinCode(b, tflite.BuiltinOperator.CUSTOM)
        tflite.OperatorCodeAddBuiltinCode(b, tflite.BuiltinOperator.CUSTOM)
        tflite.OperatorCodeAddCustomCode(b, s)
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
    g = lce_import.import_lce_tflite(MODEL.read_bytes())
    assert [op.name for op in g.ops] == ["BCONV_2D"]
    x, y = g.tensors[g.inputs[0]], g.tensors[g.outputs[0]]
    assert (x.dtype, x.shape, y.dtype, y.shape) == ("packed", (1, 12, 11, 128), "packed",
                                                    (1, 5, 9, 32))
    assert g.ops[0].params == [2, 1, 1, 1, 0, 0, 5, 9, 0, 0]  # stride (2, 1), VALID, bits out


def test_shared_model_bit_exact(interpreter):
    """All 20 reference outputs of LCE's interpreter, bit for bit."""
    io = np.load(SHARED_MODELS / "test_bconv2d_bin_0_io.npz")
    model = writer.serialize(lce_import.import_lce_tflite(MODEL.read_bytes()))
    (rows,) = run_raw([(model, [[x] for x in io["x"]])], interpreter)
    assert len(rows) == 20
    for (y,), want in zip(rows, io["y"]):
        np.testing.assert_array_equal(words_of(y), want.ravel())


def test_shared_model_oracle_agrees():
    """The numpy oracle reproduces LCE's outputs of the shared model from its constants."""
    tensors, ops, _, _ = lce_import.read_lce_tflite(MODEL.read_bytes())
    (name, _, ins, _), = ops
    io = np.load(SHARED_MODELS / "test_bconv2d_bin_0_io.npz")
    for x, want in zip(io["x"], io["y"]):
        got = lce_ref.bconv2d(x, 128, tensors[ins[1]].data, (2, 1), (1, 1), "VALID", 0,
                              thresholds=tensors[ins[4]].data)
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
    models = [writer.serialize(lce_import.import_lce_tflite(data)) for data, _, _ in cases]
    results = run_raw([(m, [[x] for x in xs]) for m, (_, xs, _) in zip(models, cases)],
                      interpreter)
    for (_, xs, expect), rows in zip(cases, results):
        for x, (y,) in zip(xs, rows):
            want = np.asarray(expect(x))
            got = y if want.dtype == np.int8 else words_of(y)
            np.testing.assert_array_equal(got, want.ravel())


# -- the importer API and its refusals -----------------------------------------------------------

@dataclass
class _ImporterTensor:  # the shape of a general importer's tensor: scales / zero_points arrays
    name: str
    shape: tuple
    dtype: str
    scales: np.ndarray | None
    zero_points: np.ndarray | None
    data: np.ndarray | None = None


def test_convert_lce_op_with_importer_tensors():
    """A general importer calls convert_lce_op for each CUSTOM op with its own tensors and
    tensor map; model inputs are made by the op that reads them."""
    from converter.graph import Graph

    f = np.zeros((8, 1, 1, 2), np.int32)
    tensors = [_ImporterTensor("x", (1, 4, 4, 40), "int8", np.array([0.1], np.float32),
                               np.array([3])),
               _ImporterTensor("xq", (1, 4, 4, 2), "int32", None, None),
               _ImporterTensor("f", f.shape, "int32", None, None, f),
               _ImporterTensor("thr", (8,), "int32", None, None, np.full(8, 20, np.int32)),
               _ImporterTensor("y", (1, 4, 4, 1), "int32", None, None)]
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


@pytest.mark.parametrize("data, message", [
    (_one_bconv("float32"), "float32 output"),
    (_one_bconv(filt=np.zeros((8, 1, 1, 1), np.int32), cin=64), "grouped"),
    (_one_bconv(opts={"padding": 7}), "padding=7"),
    (_one_bconv(opts={"fused_activation_function": 5}), "fused_activation_function=5"),
    (b"not a tflite file at all", "not a .tflite"),
])
def test_lce_import_refuses(data, message):
    with pytest.raises(lce_import.LceImportError, match=message):
        lce_import.import_lce_tflite(data)


def test_missing_channels_in_is_refused():
    data = _one_bconv()
    tensors, ops, _, _ = lce_import.read_lce_tflite(data)
    (name, _, ins, outs), = ops
    from converter.graph import Graph

    with pytest.raises(lce_import.LceImportError, match="channels_in"):
        lce_import.convert_lce_op(Graph(), name, bytes(flexbuffers.Dumps({"padding": 1})), ins,
                                  outs, tensors, {})
