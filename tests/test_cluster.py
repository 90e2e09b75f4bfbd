"""Weight sharing (converter/cluster.py, FULLY_CONNECTED_LUT, CONV_2D_LUT): a clustered model on
every interpreter == the same model with its decoded int8 weights run by the plain kernels ==
the numpy oracle, bit for bit; packing, k-means, the file's size and `tinyrt compress`."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from converter import cluster, layers, writer
from converter.graph import Graph
from host_sim.device import invoke_models
from host_sim.oracle import int8_ref
from tests.conftest import SHARED_MODELS

ACTS = ["NONE", "RELU", "RELU6"]


@st.composite
def lut_cases(draw):
    """An FC or a conv layer with drawn shapes, quantization and index width."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    conv = draw(st.booleans())
    c = dict(conv=conv, bits=draw(st.integers(1, 6)), act=draw(st.sampled_from(ACTS)),
             x_scale=float(np.float32(draw(st.floats(0.002, 0.5)))),
             x_zp=draw(st.integers(-128, 127)),
             out_scale=float(np.float32(draw(st.floats(0.05, 2.0)))),
             out_zp=draw(st.integers(-128, 127)))
    if conv:
        oc, kh, kw, ch = (draw(st.integers(1, n)) for n in (6, 3, 3, 5))
        c.update(shape=(oc, kh, kw, ch), x_shape=(1, draw(st.integers(kh, 6)),
                                                  draw(st.integers(kw, 6)), ch),
                 stride=(draw(st.integers(1, 2)), draw(st.integers(1, 2))),
                 padding=draw(st.sampled_from(["SAME", "VALID"])))
    else:
        n_out, n_in = draw(st.integers(1, 10)), draw(st.integers(1, 40))
        c.update(shape=(n_out, n_in), x_shape=(draw(st.integers(1, 2)), n_in))
    oc = c["shape"][0]
    c["w"] = np.clip(np.round(rng.normal(0, 50, c["shape"])), -127, 127).astype(np.int8)
    c["w_scale"] = rng.uniform(0.0005, 0.02, oc if draw(st.booleans()) else 1).astype(
        np.float32)
    c["bias"] = rng.integers(-5000, 5000, oc).astype(np.int32) if draw(st.booleans()) else None
    c["xs"] = [rng.integers(-128, 128, c["x_shape"]).astype(np.int8) for _ in range(2)]
    return c


def build(c) -> Graph:
    g = Graph()
    x = g.add_activation("x", c["x_shape"], c["x_scale"], c["x_zp"])
    g.inputs.append(x)
    if c["conv"]:
        y = layers.conv2d(g, x, c["w"], c["w_scale"], c["bias"], c["out_scale"], c["out_zp"],
                          stride=c["stride"], padding=c["padding"], activation=c["act"])
    else:
        y = layers.fully_connected(g, x, c["w"], c["w_scale"], c["bias"], c["out_scale"],
                                   c["out_zp"], c["act"])
    g.outputs.append(y)
    return g


def oracle(c, w, x) -> np.ndarray:
    q = dict(x_scale=c["x_scale"], x_zp=c["x_zp"], w_scale=c["w_scale"],
             out_scale=c["out_scale"], out_zp=c["out_zp"], activation=c["act"])
    if c["conv"]:
        return int8_ref.conv2d(x, w, c["bias"], stride=c["stride"], padding=c["padding"], **q)
    return int8_ref.fully_connected(x, w, c["bias"], **q)


def test_pack_roundtrip_and_layout():
    rng = np.random.default_rng(0)
    for bits in range(1, 7):
        for n in (1, 7, 8, 9, 333):
            idx = rng.integers(0, 1 << bits, n)
            p = cluster.pack_indices(idx, bits)
            assert p.dtype == np.int8 and p.size == (n * bits + 7) // 8 + 1 and p[-1] == 0
            np.testing.assert_array_equal(cluster.unpack_indices(p, bits, n), idx)
    # index j at bits j*b.., LSB first: 3-bit indices 1, 2, 7 -> 0b111_010_001
    assert cluster.pack_indices([1, 2, 7], 3).view(np.uint8).tolist() == [0b11010001, 0b1, 0]


def test_kmeans_exact_levels_and_error():
    w = np.array([-100, -100, -3, 5, 5, 90], np.int8)
    cb = cluster.kmeans_1d(w, 2)  # 4 distinct levels, 4 centroids: lossless
    np.testing.assert_array_equal(cb[cluster.assign(w, cb)], w)
    rng = np.random.default_rng(1)
    w = np.clip(np.round(rng.normal(0, 40, 4000)), -127, 127).astype(np.int8)
    errs = []
    for bits in range(1, 7):
        cb = cluster.kmeans_1d(w, bits)
        assert cb.size == 1 << bits and np.all(np.diff(cb.astype(int)) >= 0)
        errs.append(np.sqrt(np.mean((w - cb[cluster.assign(w, cb)].astype(int)) ** 2)))
        # no worse than uniform levels over the range
        uni = np.round(np.linspace(w.min(), w.max(), 1 << bits))
        uerr = np.sqrt(np.mean((w - uni[np.argmin(np.abs(w[:, None] - uni), 1)]) ** 2))
        assert errs[-1] <= uerr + 1e-9
    assert errs == sorted(errs, reverse=True) and errs[-1] < 1.0


@settings(max_examples=2)
@given(st.lists(lut_cases(), min_size=12, max_size=12))
def test_lut_layers_match_decoded_and_oracle(interpreter, cases):
    """Each clustered layer and its decoded twin run in the same interpreter process; both
    equal the numpy oracle over the decoded weights."""
    runs, decoded_w = [], []
    for c in cases:
        g, sizes = cluster.cluster_graph(build(c), c["bits"], min_weights=0)
        assert len(sizes) == 1 and g.ops[0].name.endswith("_LUT")
        dec = cluster.decoded_graph(g)
        decoded_w.append(dec.tensors[dec.ops[0].inputs[1]].data)
        examples = [[x] for x in c["xs"]]
        runs += [(writer.serialize(g), examples), (writer.serialize(dec), examples)]
    results = invoke_models(runs, interpreter)
    for i, c in enumerate(cases):
        assert len(np.unique(decoded_w[i])) <= 1 << c["bits"]
        for x, (lut,), (plain,) in zip(c["xs"], results[2 * i], results[2 * i + 1]):
            want = oracle(c, decoded_w[i], x).ravel()
            np.testing.assert_array_equal(plain, want)
            np.testing.assert_array_equal(lut, want)


def test_digits_cnn_clustered_on_every_interpreter(interpreter):
    """The shared digits CNN with every FC and CONV_2D clustered (3 bits) == its decoded twin."""
    from converter.tflite_import import import_tflite

    src = SHARED_MODELS / "digits_cnn_int8.tflite"
    io = np.load(SHARED_MODELS / "digits_cnn_int8_io.npz")
    g, sizes = cluster.cluster_graph(import_tflite(src.read_bytes(), src.name), 3,
                                     min_weights=0)
    assert [s.op for s in sizes] == ["CONV_2D", "CONV_2D", "FULLY_CONNECTED"]
    examples = [[x] for x in io["x"][:6]]
    lut, plain = invoke_models([(writer.serialize(g), examples),
                                (writer.serialize(cluster.decoded_graph(g)), examples)],
                               interpreter)
    for a, b in zip(lut, plain):
        np.testing.assert_array_equal(a[0], b[0])


def test_graph_from_file_roundtrip():
    from converter.tflite_import import import_tflite

    src = SHARED_MODELS / "digits_cnn_int8.tflite"
    b = writer.serialize(import_tflite(src.read_bytes(), src.name))
    assert writer.serialize(cluster.graph_from_file(b)) == b


def test_bad_index_sizes_are_refused():
    import tinyrt

    c = dict(conv=False, bits=3, act="NONE", x_scale=0.1, x_zp=0, out_scale=0.5, out_zp=0,
             shape=(2, 5), x_shape=(1, 5), w=np.arange(10, dtype=np.int8).reshape(2, 5),
             w_scale=np.array([0.01], np.float32), bias=None)
    g, _ = cluster.cluster_graph(build(c), 3, min_weights=0)
    g.ops[0].params[2] = 4  # 4-bit indices would need more bytes and a 16-entry codebook
    with pytest.raises(tinyrt.ModelError, match="indices: 5 bytes, expected 6"):
        tinyrt.load(writer.serialize(g))


def test_compress_cli(tmp_path, capsys):
    from host_sim.cli import main

    m = SHARED_MODELS / "digits_cnn_int8.tflite"
    io = SHARED_MODELS / "digits_cnn_int8_io.npz"
    out = tmp_path / "c.trt"
    assert main(["compress", str(m), "-o", str(out), "--cluster", "4", "--strip-names",
                 "--eval", f"{io}:x", "--labels", f"{io}:label", "--interpreter",
                 "unix"]) == 0
    text = capsys.readouterr().out
    assert "FULLY_CONNECTED" in text and "the .tflite has 8,040" in text
    assert "accuracy 0.9600 ->" in text
    assert out.stat().st_size < m.stat().st_size
