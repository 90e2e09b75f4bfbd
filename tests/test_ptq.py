"""Post-training quantization from float models (converter.ptq, converter.float_model,
converter.float_tflite).

- test_random_layers_within_error_bound: hypothesis draws float Dense / Conv2D / DepthwiseConv2D
  layers, quantizes each with min/max calibration on its own inputs and runs the model file on
  the host simulator; every output is within the derived bound of the float output.
- test_converted_model_bit_exact[interpreter]: a float model with every supported layer (and a
  binary variant) converted and run on each interpreter gives the host simulator's outputs
  (reference kernels) bit for bit.
- test_shared_digits_ptq_vs_tflm: tinyrt's PTQ of ../shared/models/digits_*_float.tflite against
  the TFLM-converted int8 models (accuracy 0.960 / 0.964) on the MicroPython unix port; the
  weight scales equal the TFLite converter's to the bit; the comparison is printed.
- the float description (forward, folding, .npz), the calibration and the report.

The error bound. A quantized Dense / conv output is
    y_q = clamp(requant(acc)),  acc = sum_i w_q,i (x_q,i - zp_x) + b_q,
and acc * s_x * s_w is exactly sum_i w^_i x^_i + b^ with w^ = s_w w_q, x^ = s_x (x_q - zp_x),
b^ = s_x s_w b_q. Per term, w^ x^ - w x = (w^ - w) x^ + w (x^ - x) with |w^ - w| <= s_w / 2
(symmetric rounding, no clipping at max |w|) and |x^ - x| <= s_x / 2 (the input range is
calibrated on these inputs: its grid covers them, the zero-point nudge moves an end by at most
s_x / 2), and |b^ - b| <= s_x s_w / 2. TFLM's requantization (a 31-bit multiplier, two
roundings) is within 1 output step s_y of acc's real value, and the clamp to the output grid
(which covers the calibrated float outputs up to s_y / 2) only moves it towards the float
output. So for output j, over the taps i of its receptive field:
    |y^_j - y_j| <= s_w,j / 2 * sum_i |x^_i| + s_x / 2 * sum_i |w_j,i| + s_x s_w,j / 2 + s_y.
Padding taps are exact (real 0 on both sides); a fused ReLU / ReLU6 is a clamp, which does not
increase the distance to the clamped float output.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from converter import float_model as fm
from converter import ptq
from converter.float_tflite import UnsupportedModelError, load_float_tflite, read_float_tflite
from converter.inspect_model import describe
from host_sim import cli
from host_sim.device import invoke_models

from .conftest import SHARED_MODELS

NO_SHRINK = (Phase.explicit, Phase.reuse, Phase.generate)
TFLM_ACCURACY = {"cnn": 0.960, "mlp": 0.964}  # ../shared/models/README.md
FLOAT_ACCURACY = {"cnn": 0.956, "mlp": 0.964}


def digits():
    from host_sim.demo import load_digits_split

    return load_digits_split()


# -- random layers within the error bound -------------------------------------------------------

@st.composite
def layer_cases(draw):
    """(float model of one layer, inputs (8, ...))."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    kind = draw(st.sampled_from(["dense", "conv2d", "depthwise"]))
    act = draw(st.sampled_from([None, "relu", "relu6"]))
    w_std = draw(st.floats(0.01, 1.0))
    x_mid, x_width = draw(st.floats(-2.0, 2.0)), draw(st.floats(0.1, 8.0))
    with_bias = draw(st.booleans())
    if kind == "dense":
        n_in, n_out = draw(st.integers(1, 64)), draw(st.integers(1, 12))
        in_shape, w_shape, n_ch = (n_in,), (n_out, n_in), n_out
    else:
        k = draw(st.integers(1, 3))
        h, w, c = draw(st.integers(k, 6)), draw(st.integers(k, 6)), draw(st.integers(1, 6))
        in_shape = (h, w, c)
        if kind == "conv2d":
            n_ch = draw(st.integers(1, 8))
            w_shape = (n_ch, k, k, c)
        else:
            n_ch = c * draw(st.integers(1, 2))
            w_shape = (k, k, n_ch)
    spread = np.exp(rng.uniform(-2, 2, n_ch))  # per-channel weight scales differ
    wts = rng.normal(0, w_std, w_shape)
    wts = wts * (spread[:, None] if kind == "dense" else spread.reshape(
        (-1, 1, 1, 1) if kind == "conv2d" else (1, 1, -1)))
    bias = rng.normal(0, w_std * x_width, n_ch) if with_bias else None
    if kind == "dense":
        layer = fm.Dense(wts, bias, act)
    else:
        geo = dict(stride=draw(st.integers(1, 2)), padding=draw(st.sampled_from(["same",
                                                                                 "valid"])))
        cls = fm.Conv2D if kind == "conv2d" else fm.DepthwiseConv2D
        layer = cls(wts, bias, activation=act, **geo)
    x = rng.uniform(x_mid - x_width / 2, x_mid + x_width / 2, (8,) + in_shape)
    return fm.FloatModel(in_shape, [layer]), x.astype(np.float32)


def error_bound(q: ptq.QuantizedModel, x_hat: np.ndarray) -> np.ndarray:
    """The module docstring's bound for each output of the one-layer model q on inputs x_hat
    (the dequantized int8 inputs)."""
    st_ = q.steps[0]
    layer = st_.layer
    s_x = q.input_params[0]
    s_y = st_.scale
    s_w = st_.w_scale.astype(np.float64)
    w = np.abs(np.asarray(layer.weights, np.float64))
    ax = np.abs(x_hat.astype(np.float64))
    if isinstance(layer, fm.Dense):
        sum_x = ax.reshape(len(ax), -1).sum(axis=1, keepdims=True)
        sum_w = w.sum(axis=1)
    elif isinstance(layer, fm.Conv2D):
        ones = np.ones((1,) + layer.weights.shape[1:])
        sum_x = fm.conv2d(ax, ones, None, layer.stride, layer.padding)
        sum_w = w.reshape(len(w), -1).sum(axis=1)
    else:
        kh, kw, cm = layer.weights.shape
        sum_x = fm.depthwise_conv2d(ax, np.ones((kh, kw, cm)), None, layer.stride,
                                    layer.padding)
        sum_w = w.reshape(-1, cm).sum(axis=0)
    bias_term = s_x * s_w / 2 if st_.b_q is not None else 0.0
    return s_w / 2 * sum_x + s_x / 2 * sum_w + bias_term + s_y


@settings(max_examples=3, deadline=None, phases=NO_SHRINK)
@given(cases=st.lists(layer_cases(), min_size=12, max_size=12))
def test_random_layers_within_error_bound(cases):
    runs = []
    for model, x in cases:
        q = ptq.quantize(model, x, bias_correction=False, report=False)
        xq = q.quantize_input(x)
        runs.append((q, xq, model.forward(x)))
    outs = invoke_models([(q.model_bytes, [[v] for v in xq]) for q, xq, _ in runs], "cpython",
                         fast=False)
    for (q, xq, y), rows in zip(runs, outs):
        got = q.dequantize_output(np.stack([r[0] for r in rows])).reshape(y.shape)
        s, zp = q.input_params
        bound = error_bound(q, (xq.astype(np.float64) - zp) * s)
        err = np.abs(got - y)
        assert np.all(err <= bound * (1 + 1e-6)), (
            f"{q.steps[0].op}: error {err.max():.4g} beyond the bound (worst ratio "
            f"{(err / bound).max():.3f})")


# -- bit-exact across interpreters --------------------------------------------------------------

def _bn(rng, c):
    return fm.BatchNorm(rng.uniform(0.5, 2, c) * rng.choice([-1, 1], c), rng.normal(0, 0.3, c),
                        rng.normal(0, 0.3, c), rng.uniform(0.5, 2, c))


def every_layer_model(seed: int = 0) -> fm.FloatModel:
    """A float model with every layer kind the quantizer takes, binary ones included."""
    rng = np.random.default_rng(seed)

    def w(*shape, std=0.3):
        return rng.normal(0, std, shape).astype(np.float32)

    return fm.FloatModel((8, 8, 2), [
        fm.Conv2D(w(8, 3, 3, 2), w(8), name="conv1"), _bn(rng, 8), fm.ReLU(),
        fm.DepthwiseConv2D(w(3, 3, 16), w(16), stride=2, name="dw"), fm.ReLU6(),
        fm.Conv2D(w(16, 1, 1, 16), w(16), padding="valid", name="pw"), _bn(rng, 16),
        fm.Conv2D(w(32, 3, 3, 16), None, binary=True, name="bconv1"), _bn(rng, 32),
        fm.MaxPool2D(2, stride=1, name="bpool"),
        fm.Conv2D(w(40, 2, 2, 32), None, binary=True, padding="same", name="bconv2"),
        _bn(rng, 40), fm.ReLU(),
        fm.AvgPool2D(2, padding="same", name="avg"), fm.Flatten(),
        fm.Dense(w(24, 160, std=0.1), w(24), activation="relu", name="fc1"),
        fm.Dense(w(24, 24), None, name="fc2"), fm.Add(other="fc1", activation="relu"),
        fm.Dense(w(40, 24), w(40), name="fc3"), _bn(rng, 40),
        fm.Dense(w(10, 40), w(10), binary=True, name="bfc"), _bn(rng, 10),
        fm.Reshape((10, 1)), fm.Flatten(), fm.Logistic(name="logistic"),
        fm.Dense(w(10, 10, std=2.0), w(10), name="fc4"), fm.Softmax(beta=0.5, name="softmax"),
    ])


_REFERENCE: dict = {}


def bit_exact_cases():
    if not _REFERENCE:
        model = every_layer_model()
        x = np.random.default_rng(1).normal(0.3, 1.0, (64, 8, 8, 2)).astype(np.float32)
        q = ptq.quantize(model, x[:48])
        xq = q.quantize_input(x[48:])
        cases = [(q.model_bytes, [[v] for v in xq])]
        ref = invoke_models(cases, "cpython", fast=False)
        _REFERENCE.update(q=q, cases=cases, ref=ref, x=x[48:])
    return _REFERENCE


def test_converted_model_bit_exact(interpreter):
    r = bit_exact_cases()
    ops = describe(r["cases"][0][0])["ops"]
    for op in ("CONV_2D", "DEPTHWISE_CONV_2D", "BINARIZE", "BCONV_2D", "BMAX_POOL_2D",
               "AVERAGE_POOL_2D", "FULLY_CONNECTED", "BFULLY_CONNECTED", "ADD", "RESHAPE",
               "LOGISTIC", "SOFTMAX"):
        assert op in ops
    got = invoke_models(r["cases"], interpreter, fast=True)
    for a, b in zip(got[0], r["ref"][0]):
        assert np.array_equal(a[0], b[0])


def test_simulation_tracks_the_device():
    """q.simulate (numpy, rounding each tensor to its grid) is close to the integer model."""
    r = bit_exact_cases()
    q = r["q"]
    sim = np.round(q.simulate(r["x"]) / q.output_params[0]) + q.output_params[1]
    dev = np.stack([row[0] for row in r["ref"][0]])
    assert np.mean(np.abs(sim - dev) <= 2) > 0.9


# -- the shared digits models -------------------------------------------------------------------

def _shared(name: str):
    p = SHARED_MODELS / f"digits_{name}_float.tflite"
    if not p.exists():
        pytest.skip(f"{p} not present")
    return p


@pytest.mark.parametrize("name", ["cnn", "mlp"])
def test_float_tflite_reads_the_digits_models(name):
    xtr, xte, ytr, yte = digits()
    model = load_float_tflite(_shared(name))
    assert np.mean(model.predict(xte) == yte) == pytest.approx(FLOAT_ACCURACY[name], abs=0.0012)


def test_float_tflite_refuses_int8_models():
    p = SHARED_MODELS / "digits_cnn_int8.tflite"
    if not p.exists():
        pytest.skip(f"{p} not present")
    with pytest.raises(UnsupportedModelError, match="not a float model"):
        read_float_tflite(p.read_bytes())


CONFIGS = {"minmax": dict(calibration="minmax"),
           "minmax, no bias corr.": dict(calibration="minmax", bias_correction=False),
           "percentile 99.99": dict(calibration="percentile")}


def shared_digits_comparison() -> tuple[list[str], list[tuple[str, float, float]]]:
    """(printed lines, [(model, tinyrt accuracy, agreement with TFLM's class)]) of tinyrt's PTQ
    of the two float digits models, run on the unix port, against the TFLM-converted models."""
    from converter.tflite_import import read_tflite

    xtr, xte, ytr, yte = digits()
    cases, meta = [], []
    for name in ("cnn", "mlp"):
        model = load_float_tflite(_shared(name))
        io = np.load(SHARED_MODELS / f"digits_{name}_int8_io.npz")
        tflm = read_tflite((SHARED_MODELS / f"digits_{name}_int8.tflite").read_bytes())
        tflm_scales = sorted(t.scales.tobytes() for t in tflm.tensors
                             if t.data is not None and t.dtype == "int8")
        for config, kwargs in CONFIGS.items():
            q = ptq.quantize(model, xtr, **kwargs)
            xq = q.quantize_input(xte)
            assert np.array_equal(xq.reshape(len(xte), -1), io["x"].reshape(len(xte), -1))
            ours = sorted(st.w_scale.tobytes() for st in q.steps if st.w_scale is not None)
            assert ours == tflm_scales  # per-channel weight scales: TFLite's, to the bit
            cases.append((q.model_bytes, [[v] for v in xq]))
            meta.append((name, config, io))
    outs = invoke_models(cases, "unix")
    lines = ["tinyrt PTQ of the float digits models (calibrated on the 1347 training images) vs "
             f"the TFLM-converted int8 models; {len(xte)} test images, tinyrt's int8 model run "
             "on the MicroPython unix port"]
    results = []
    for (name, config, io), rows in zip(meta, outs):
        y = np.stack([r[0] for r in rows])
        acc = float(np.mean(y.argmax(axis=1) == yte))
        agree = float(np.mean(y.argmax(axis=1) == io["y"].reshape(len(xte), -1).argmax(axis=1)))
        lines.append(f"  digits_{name} {config:<22} tinyrt {acc:.3f}   TFLM "
                     f"{TFLM_ACCURACY[name]:.3f}   float {FLOAT_ACCURACY[name]:.3f}   "
                     f"same class as TFLM {agree:.3f}")
        results.append((name, acc, agree))
    return lines, results


def test_shared_digits_ptq_vs_tflm():
    lines, results = shared_digits_comparison()
    print("\n".join(lines))
    for name, acc, agree in results:
        assert acc >= TFLM_ACCURACY[name] - 0.01
        assert agree >= 0.98


# -- the float description, calibration, the report ------------------------------------------

def test_fold_keeps_the_function():
    model = every_layer_model(3)
    x = np.random.default_rng(0).normal(0.3, 1.0, (16, 8, 8, 2)).astype(np.float32)
    folded = model.folded()
    assert not any(isinstance(la, fm.ReLU6) for la in folded.layers)
    assert sum(isinstance(la, fm.BatchNorm) for la in folded.layers) == 3  # after binary
    a, b = model.forward(x, True), folded.forward(x, True)
    for name in ("fc1", "bconv1", "logistic", "softmax"):
        np.testing.assert_allclose(a[name], b[name], rtol=1e-4, atol=1e-4)


def test_binary_option_moves_the_activation():
    model = fm.FloatModel((4,), [fm.Dense(np.eye(4), None, "relu", name="d"),
                                 fm.Dense(np.eye(4), None, name="e"), fm.Add(other="d")])
    folded = model.folded(binary=["d"])
    assert [la.kind for la in folded.layers] == ["Dense", "ReLU", "Dense", "Add"]
    assert folded.layers[0].binary and folded.layers[3].other == "d/relu"
    with pytest.raises(ValueError, match="only Dense and Conv2D"):
        model.folded(binary=["add_2"])


def test_npz_round_trip(tmp_path):
    model = every_layer_model(5)
    model.labels = list("abcdefghij")
    model.save(tmp_path / "m.npz")
    back = fm.FloatModel.load(tmp_path / "m.npz")
    assert back.labels == model.labels
    x = np.random.default_rng(0).normal(size=(4, 8, 8, 2)).astype(np.float32)
    assert np.array_equal(back.forward(x), model.forward(x))
    assert [la.name for la in back.layers] == [la.name for la in model.layers]


def test_activation_params_make_zero_exact():
    for lo, hi in [(0, 1), (-1, 1), (-0.3, 5.7), (2, 3), (-4, -1), (0, 0)]:
        s, zp = ptq.activation_params(lo, hi)
        assert -128 <= zp <= 127 and s > 0 and s == float(np.float32(s))
        assert (-128 - zp) * s <= min(lo, 0) + s / 2 and (127 - zp) * s >= max(hi, 0) - s / 2
    assert ptq.activation_params(0, 1) == (float(np.float32(1 / 255)), -128)


def test_weight_params_tflite_conventions():
    w = np.array([[0.5, -1.0, 0.25], [0.0, 0.0, 0.0], [3.0, 1.0, -2.0]])
    q, s = ptq.weight_params(w, axis=0)
    assert q.dtype == np.int8 and s.dtype == np.float32
    assert q.min() >= -127 and list(np.abs(q).max(axis=1)) == [127, 0, 127]
    assert s[0] == np.float32(1.0 / 127) and s[2] == np.float32(3.0 / 127)


def test_percentile_clips_and_reports():
    rng = np.random.default_rng(0)
    model = fm.FloatModel((16,), [fm.Dense(rng.normal(size=(8, 16)), None, name="fc")])
    x = rng.standard_t(2, (4000, 16)).astype(np.float32)  # heavy tails
    mm = ptq.quantize(model, x, calibration="minmax")
    pc = ptq.quantize(model, x, calibration="percentile", percentile=99.9)
    rm, rp = mm.report[1], pc.report[1]
    assert rm.clip_fraction == 0 and 0 < rp.clip_fraction < 0.01
    assert rp.scale < rm.scale and math.isfinite(rp.sqnr_db)
    text = ptq.format_report(pc.report)
    assert "fc" in text and "SQNR" in text and "FULLY_CONNECTED" in text


def test_report_rows():
    r = bit_exact_cases()
    rows = r["q"].report
    names = [row.name for row in rows]
    assert names[0] == "input" and "bconv1" in names and "bfc" in names
    for row in rows:
        if row.dtype == "packed":
            assert row.scale is None and row.zero_point is None
        else:
            assert row.scale > 0 and -128 <= row.zero_point <= 127
        assert 0 <= row.clip_fraction <= 1
    conv = rows[names.index("conv1")]
    assert conv.weight_scale[0] <= conv.weight_scale[1] and conv.sqnr_db > 25


def test_bias_correction_removes_the_mean_error():
    rng = np.random.default_rng(2)
    model = fm.FloatModel((64,), [fm.Dense(rng.normal(0, 0.05, (8, 64)), None, name="fc")])
    model.layers[0].weights[:, :4] = 1.0  # coarse weight grid: w_scale = 1/127
    x = (0.5 + rng.uniform(0, 1, (2000, 64))).astype(np.float32)  # inputs with a mean
    y = model.forward(x)
    errs = []
    for bc in (False, True):
        q = ptq.quantize(model, x, bias_correction=bc)
        errs.append(np.abs((q.simulate(x) - y).mean(axis=0)).mean())
    assert errs[1] < errs[0] / 3


def test_binary_layer_reading_relu_warns():
    rng = np.random.default_rng(0)
    model = fm.FloatModel((8,), [fm.Dense(rng.normal(size=(32, 8)), None, "relu"),
                                 fm.Dense(rng.normal(size=(4, 32)), None, name="b")])
    q = ptq.quantize(model, rng.normal(size=(50, 8)), binary=["b"])
    assert any("every input bit is +1" in w for w in q.warnings)


def test_cli_quantize(tmp_path, capsys):
    model = every_layer_model(7)
    model.save(tmp_path / "m.npz")
    np.save(tmp_path / "x.npy", np.random.default_rng(0).normal(size=(32, 8, 8, 2)))
    rc = cli.main(["quantize", str(tmp_path / "m.npz"), "--calib", str(tmp_path / "x.npy"),
                   "--calibration", "percentile", "--binary", "fc2", "--allow-untrained-binary",
                   "--report", "--report-json", str(tmp_path / "r.json")])
    out = capsys.readouterr().out
    assert rc == 0 and "BFULLY_CONNECTED" in out and "SQNR" in out
    assert (tmp_path / "m.trt").exists()
    rows = json.loads((tmp_path / "r.json").read_text())
    assert rows[0]["name"] == "input" and {"scale", "zero_point", "clip_fraction",
                                            "sqnr_db"} <= set(rows[0])
    assert cli.main(["quantize", str(tmp_path / "x.npy"), "--calib",
                     str(tmp_path / "x.npy")]) == 2


def float_tflite_every_op() -> bytes:
    """A float32 .tflite with every op float_tflite reads (tinyrt's TFLite writer)."""
    from host_sim.oracle import tflm

    rng = np.random.default_rng(4)
    tensors: list = []
    ops: list = []

    def t(shape, data=None, dtype="float32"):
        tensors.append(tflm.TTensor(f"t{len(tensors)}", tuple(shape), dtype,
                                    data=None if data is None else np.asarray(data)))
        return len(tensors) - 1

    def op(name, ins, out_shape, **options):
        y = t(out_shape)
        ops.append(tflm.TOp(name, ins, [y], options))
        return y

    def geo(stride, pad, act, **kw):
        return dict(padding=pad, stride_h=stride, stride_w=stride, fused_activation_function=act,
                    **kw)

    x = t((1, 7, 6, 3))
    c = op("CONV_2D", [x, t((4, 3, 3, 3), rng.normal(0, .5, (4, 3, 3, 3))),
                       t((4,), rng.normal(0, .5, 4))], (1, 7, 6, 4),
           **geo(1, "SAME", "RELU", dilation_h_factor=2, dilation_w_factor=1))
    d = op("DEPTHWISE_CONV_2D", [c, t((1, 3, 3, 8), rng.normal(0, .5, (1, 3, 3, 8))),
                                 t((8,), rng.normal(0, .5, 8))], (1, 4, 3, 8),
           **geo(2, "SAME", "RELU6", depth_multiplier=2, dilation_h_factor=1,
                 dilation_w_factor=1))
    mp = op("MAX_POOL_2D", [d], (1, 4, 3, 8), **geo(1, "SAME", "NONE", filter_height=2,
                                                     filter_width=2))
    ap = op("AVERAGE_POOL_2D", [mp], (1, 2, 2, 8), **geo(2, "SAME", "NONE", filter_height=2,
                                                          filter_width=2))
    lg = op("LOGISTIC", [ap], (1, 2, 2, 8))
    ad = op("ADD", [ap, lg], (1, 2, 2, 8), fused_activation_function="NONE")
    mn = op("MEAN", [ad, t((2,), [1, 2], "int32")], (1, 8), keep_dims=False)
    f1 = op("FULLY_CONNECTED", [mn, t((5, 8), rng.normal(0, .5, (5, 8))),
                                t((5,), rng.normal(0, .5, 5))], (1, 5),
            fused_activation_function="NONE")
    r = op("RELU", [f1], (1, 5))
    f2 = op("FULLY_CONNECTED", [r, t((4, 5), rng.normal(0, 1, (4, 5))), -1], (1, 4),
            fused_activation_function="NONE")
    out = op("SOFTMAX", [f2], (1, 4), beta=0.7)
    return tflm.build_tflite(tensors, ops, [x], [out])


def test_float_tflite_matches_tflm_float_kernels():
    """The reader and the numpy forward against TFLM running the same float32 model."""
    from host_sim.oracle import tflm

    data = float_tflite_every_op()
    model = read_float_tflite(data)
    kinds = [la.kind for la in model.layers]
    assert kinds == ["Conv2D", "DepthwiseConv2D", "MaxPool2D", "AvgPool2D", "Logistic", "Add",
                     "AvgPool2D", "Flatten", "Dense", "ReLU", "Dense", "Softmax"]
    x = np.random.default_rng(0).normal(0, 1, (6, 7, 6, 3)).astype(np.float32)
    want = np.stack([tflm.run_tflm(data, [xi[None]])[0][0] for xi in x])
    np.testing.assert_allclose(model.forward(x), want, rtol=1e-4, atol=1e-5)


if __name__ == "__main__":
    print("\n".join(shared_digits_comparison()[0]))
