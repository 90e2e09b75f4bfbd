"""Pruning (converter/prune.py): channel pruning keeps the function when the removed channels
are dead; magnitude masks and shared weights survive fine-tuning; per-tensor quantization keeps
shared weights at exactly 2^b int8 levels (clustering is then lossless); a pruned, shared,
compressed demo CNN gives its decoded int8 twin's outputs on every interpreter; the CLI."""

from __future__ import annotations

import copy
import re

import numpy as np
import pytest

from converter import cluster, ptq, prune, writer
from converter import float_model as fm
from converter.compress import compress_graph, slim_graph, smallest_graph
from host_sim.demo import build_model, load_digits_split
from host_sim.device import invoke_models


@pytest.fixture(scope="module")
def digits():
    xtr, xte, ytr, yte = load_digits_split()
    return xtr[:600], xte[:60], ytr[:600], yte[:60]


@pytest.fixture(scope="module")
def trained(digits):
    from converter.train import train

    xtr, _, ytr, _ = digits
    return train(build_model("cnn_int8"), xtr, ytr, epochs=4, lr=3e-3)


def test_channel_pruning_keeps_the_function_of_live_channels(trained, digits):
    m = copy.deepcopy(trained)
    conv1, conv2 = m.layer("conv1"), m.layer("conv2")
    conv1.weights[[1, 5]] = 0  # dead channels: zero filter, zero bias, relu -> 0
    conv1.bias[[1, 5]] = 0
    conv2.weights[[0, 3, 9, 12]] = 0
    conv2.bias[[0, 3, 9, 12]] = 0
    p = prune.prune_channels(m, 0.25)
    assert p.layer("conv1").weights.shape == (6, 3, 3, 1)
    assert p.layer("conv2").weights.shape == (12, 3, 3, 6)
    assert p.layer("fc").weights.shape == (10, 48)
    x = digits[1]
    np.testing.assert_allclose(p.forward(x), m.forward(x), rtol=1e-5, atol=1e-6)
    assert trained.layer("conv1").weights.shape == (8, 3, 3, 1)  # the original is untouched


def test_masks_and_shared_weights_survive_fine_tuning(trained, digits):
    xtr, _, ytr, _ = digits
    m = copy.deepcopy(trained)
    masks = prune.magnitude_masks(m, 0.6)
    for name, mask in masks.items():
        assert int(mask.size - mask.sum()) == round(0.6 * mask.size), name
    prune.fine_tune(m, xtr, ytr, masks, epochs=1, lr=3e-3)
    assert prune.sparsity(m) == pytest.approx(0.6, abs=0.01)
    groups = prune.share_weights(m, 2, masks)
    prune.fine_tune(m, xtr, ytr, masks, epochs=1, lr=3e-3, groups=groups)
    for la in m.layers:
        if isinstance(la, (fm.Conv2D, fm.Dense)):
            nz = np.unique(la.weights[la.weights != 0])
            assert nz.size <= 3 and np.all(la.weights[masks[la.name] == 0] == 0), la.name
    frozen = copy.deepcopy(m)
    prune.fine_tune(frozen, xtr, ytr, None, epochs=1, lr=3e-3, frozen=["conv1", "conv2"])
    for name in ("conv1", "conv2"):
        np.testing.assert_array_equal(frozen.layer(name).weights, m.layer(name).weights)
    assert not np.array_equal(frozen.layer("fc").weights, m.layer("fc").weights)
    qm = prune.quantize_per_tensor(ptq.quantize(m, xtr))
    g, sizes = cluster.cluster_graph(qm.graph, 2, 0)
    assert len(sizes) == 3
    for s in sizes:
        assert s.levels <= 4 and s.rms_error == 0.0  # the shared levels are exact in int8


def test_pruned_compressed_model_on_every_interpreter(interpreter, trained, digits):
    """The LUT file, the smallest one (some layers decoded to int8, no NAMES / METADATA, one
    requantization row per layer, no RESHAPE, optimal deflate) and the decoded int8 file give
    the same outputs (weights shared on the integers -15..15, short activation scales)."""
    xtr, xte, ytr, _ = digits
    g, sizes = prune.compressed_demo_graph(trained, xtr, ytr, {"conv2": 0.7, "fc": 0.7},
                                           0.25, 3, epochs=1, rounds=1, grid=15, scale_bits=5)
    assert [s.op for s in sizes] == ["CONV_2D", "CONV_2D", "FULLY_CONNECTED"]
    dec = writer.serialize(cluster.decoded_graph(g))
    small_g, small = smallest_graph(g, minimal=True)
    assert "RESHAPE" not in [op.name for op in small_g.ops] and len(small_g.ops) == 6
    assert [small_g.tensors[op.inputs[-1]].shape for op in small_g.ops
            if op.name.startswith(("CONV", "FULLY"))] == [(1, 3)] * 3
    assert len(small) < len(compress_graph(g)) and len(small) <= len(compress_graph(
        cluster.decoded_graph(g), minimal=True))
    xq = [[x] for x in ptq.quantize(trained, xtr).quantize_input(xte[:4])]
    lut, smallest, plain = invoke_models([(compress_graph(g), xq), (small, xq), (dec, xq)],
                                         interpreter)
    assert len(lut) == 4
    for (a,), (b,), (c,) in zip(lut, smallest, plain):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, c)


def test_slim_graph(trained, digits):
    """One requantization row where a layer's rows are all the same (per-tensor weights), the
    (C, 3) table where they differ (per-channel); the flatten RESHAPE dropped; same outputs."""
    xtr, xte, _, _ = digits
    per_channel = ptq.quantize(trained, xtr)
    per_tensor = prune.quantize_per_tensor(ptq.quantize(trained, xtr))
    xq = [[x] for x in per_channel.quantize_input(xte[:3])]
    for qm, rows in ((per_channel, [8, 16, 10]), (per_tensor, [1, 1, 1])):
        g = qm.graph
        s = slim_graph(g)
        assert [op.name for op in s.ops] == [op.name for op in g.ops if op.name != "RESHAPE"]
        assert len(s.tensors) == len(g.tensors) - 1 and len(g.ops) == 7
        tables = [s.tensors[op.inputs[3]] for op in s.ops if op.name in ("CONV_2D",
                                                                         "FULLY_CONNECTED")]
        assert [t.shape[0] for t in tables] == rows and all(t.shape[1] == 3 for t in tables)
        assert len(writer.serialize(s)) < len(writer.serialize(g))
        a, b = invoke_models([(writer.serialize(g), xq), (writer.serialize(s), xq)], "cpython")
        for (ya,), (yb,) in zip(a, b):
            np.testing.assert_array_equal(ya, yb)
    assert len(slim_graph(per_tensor.graph).tensors) == len(per_tensor.graph.tensors) - 1


def test_grid_and_short_scales(trained, digits):
    """Shared weights on the grid -15..15 stay exactly those integers in int8 (clustering
    lossless); activation scales with 5 significant bits, the input's kept, ranges not cut."""
    xtr, _, ytr, _ = digits
    p = prune.prune(trained, xtr, ytr, {"conv2": 0.6, "fc": 0.6}, epochs=1, rounds=1, bits=3,
                    grid=15)
    qm = ptq.quantize(p, xtr)
    before = dict(qm.qparams)
    prune.short_scales(qm, 5)
    prune.quantize_per_tensor(qm, 15)
    for st in qm.steps:
        if st.w_q is not None:
            assert np.abs(st.w_q).max() == 15 and np.unique(st.w_q).size <= 8, st.name
            np.testing.assert_allclose(st.w_q * np.float64(st.w_scale[0]), st.layer.weights,
                                       rtol=1e-5, atol=1e-7)
    assert qm.qparams["input"] == before["input"]
    for name, (scale, zp) in qm.qparams.items():
        if name != "input" and name != "softmax":
            bits = int(np.float32(scale).view(np.uint32))
            assert bits & ((1 << 19) - 1) == 0, (name, scale)  # 1 + 4 mantissa bits
            assert before[name][0] <= scale < before[name][0] * (1 + 2 ** -4), name
    g, sizes = cluster.cluster_graph(qm.graph, 3, 0)
    assert all(s.rms_error == 0.0 for s in sizes)


def test_per_layer_fractions_and_distillation(trained, digits):
    xtr, _, ytr, _ = digits
    masks = prune.magnitude_masks(trained, {"conv2": 0.7, "fc": 0.5})
    assert masks["conv1"].all() and masks["conv2"].mean() == pytest.approx(0.3, abs=0.01)
    assert masks["fc"].mean() == pytest.approx(0.5, abs=0.01)
    p = prune.prune(trained, xtr, ytr, {"conv2": 0.7}, epochs=1, rounds=1, distill=0.5)
    assert np.mean(p.layer("conv2").weights == 0) == pytest.approx(0.7, abs=0.01)
    assert not np.any(p.layer("conv1").weights == 0) and not np.any(p.layer("fc").weights == 0)
    with pytest.raises(ValueError, match="expected 0 <= f < 1"):
        prune.prune(trained, xtr, ytr, {"fc": 1.0})


def test_cli_prune(tmp_path, capsys, trained, digits):
    from host_sim.cli import main

    xtr, xte, ytr, yte = digits
    trained.save(tmp_path / "m.npz")
    for name, a in (("xt", xtr), ("yt", ytr), ("xe", xte), ("ye", yte)):
        np.save(tmp_path / f"{name}.npy", a)
    out = tmp_path / "p.trt"
    args = ["compress", str(tmp_path / "m.npz"), "-o", str(out), "--prune", "conv2=0.7,fc=0.7",
            "--channels", "0.25", "--cluster", "3", "--lossless", "--minimal", "--epochs", "1",
            "--train", str(tmp_path / "xt.npy"), "--train-labels", str(tmp_path / "yt.npy"),
            "--eval", str(tmp_path / "xe.npy"), "--labels", str(tmp_path / "ye.npy")]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "3 layers clustered to 8 levels" in text and "compressed losslessly" in text
    assert re.search(r"\d of 3 clustered layers kept as LUT indices", text)
    from converter.compress import decompress_file
    from converter.inspect_model import describe

    assert describe(decompress_file(out.read_bytes()))["metadata"] == {}  # --minimal
    size = re.search(r"file bytes ([\d,]+) -> ([\d,]+)", text)
    assert size and int(size[2].replace(",", "")) == len(out.read_bytes())
    assert int(size[2].replace(",", "")) < 0.5 * int(size[1].replace(",", ""))
    assert re.search(r"accuracy \S+ -> \S+ \([+-]\d+\.\d\d points, 60 inputs", text)
    assert main(args[:6]) == 2
    assert "need --train" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(args[:4] + ["--prune", "conv2:0.7"])
    assert "expected a fraction (0.7) or layer=fraction pairs" in capsys.readouterr().err


@pytest.mark.slow
def test_issue17_setting_meets_the_goal():
    """The setting benchmarks/compression_pruned.py chose (compression.json's pruned best) on
    the demo CNN: file <= 0.15x its int8 .tflite, <= 1 point below the int8 model's accuracy
    on the 450 test digits (measured: 750 B of 5,152, 0.9733 against 0.9778)."""
    from benchmarks.compression_pruned import GOAL_POINTS, GOAL_RATIO, _pruned_file
    from benchmarks.compression_tflite import to_tflite
    from host_sim.cli_compress import accuracy
    from host_sim.demo import cache_dir, trained_model

    xtr, xte, ytr, yte = load_digits_split()
    model, _ = trained_model("cnn_int8", xtr, ytr, cache_dir(), log=lambda *a: None)
    qm = ptq.quantize(model, xtr)
    xq = qm.quantize_input(xte)
    d, z, _ = _pruned_file(model, xtr, ytr, 0.375, 3, {"conv2": 0.6, "fc": 0.6}, 15, 5)
    assert len(z) <= GOAL_RATIO * len(to_tflite(qm))
    assert [op.name for op in d.ops] == ["CONV_2D", "MAX_POOL_2D", "CONV_2D", "MAX_POOL_2D",
                                         "FULLY_CONNECTED", "SOFTMAX"]
    base = accuracy(writer.serialize(qm.graph), xq, yte, "unix")
    assert accuracy(z, xq, yte, "unix") >= base - GOAL_POINTS / 100 - 1e-9
