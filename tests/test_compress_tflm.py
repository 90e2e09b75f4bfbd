"""TFLM's LUT-compressed models (converter/compress_tflm.py): models compressed by tflite-micro's
own tooling (TFLM_DECODE ops, LUT tables per channel or per tensor, 2..7-bit indices) run under
tflite-micro and, imported, give the same outputs on every interpreter; the decoded weights equal
the uncompressed model's; other decode types are refused."""

from __future__ import annotations

import numpy as np
import pytest
from tflite_micro.tensorflow.lite.micro.compression import spec, spec_builder
from tflite_micro.tensorflow.lite.micro.compression.compress import compress as tflm_compress

from converter import cluster, writer
from converter.compress_tflm import DECODE_OP, decode_lut
from converter.tflite_import import import_tflite
from converter.tflite_reader import UnsupportedModelError, read_tflite
from host_sim.device import invoke_models
from host_sim.oracle import tflm


def levels(rng, shape, bits, per_channel):
    """int8 weights with at most 2^bits distinct values per output channel (or per tensor)."""
    n_lv = 1 << bits
    if per_channel:
        lv = [rng.choice(np.arange(-127, 128), n_lv, replace=False) for _ in range(shape[0])]
        return np.stack([rng.choice(v, shape[1:]) for v in lv]).astype(np.int8)
    return rng.choice(rng.choice(np.arange(-127, 128), n_lv, replace=False), shape).astype(
        np.int8)


def model(seed: int, bits: int, per_channel: bool) -> tuple[bytes, list[int]]:
    """conv 3x3 (6 channels) -> FC 10: an int8 .tflite, and its weight tensors' indices."""
    rng = np.random.default_rng(seed)
    w1, w2 = levels(rng, (6, 3, 3, 2), bits, per_channel), levels(rng, (10, 96), bits,
                                                                 per_channel)

    def scales(c):
        return [float(np.float32(v)) for v in rng.uniform(0.002, 0.01, c)] if per_channel \
            else float(np.float32(0.005))

    s1, s2 = scales(6), scales(10)
    zp = (lambda c: [0] * c) if per_channel else (lambda c: 0)
    bias_s = (lambda s: [float(np.float32(0.02 * v)) for v in s]) if per_channel else \
        (lambda s: float(np.float32(0.02 * s)))
    t = [tflm.TTensor("x", (1, 4, 4, 2), "int8", 0.02, 3),
         tflm.TTensor("w1", w1.shape, "int8", s1, zp(6), 0, w1),
         tflm.TTensor("b1", (6,), "int32", bias_s(s1), zp(6), 0,
                      rng.integers(-300, 300, 6).astype(np.int32)),
         tflm.TTensor("y1", (1, 4, 4, 6), "int8", 0.05, -10),
         tflm.TTensor("flat", (1, 96), "int8", 0.05, -10),
         tflm.TTensor("shape", (2,), "int32", None, 0, 0, np.array([1, 96], np.int32)),
         tflm.TTensor("w2", w2.shape, "int8", s2, zp(10), 0, w2),
         tflm.TTensor("b2", (10,), "int32", bias_s(s2), zp(10), 0,
                      rng.integers(-300, 300, 10).astype(np.int32)),
         tflm.TTensor("y", (1, 10), "int8", 0.1, 5)]
    ops = [tflm.TOp("CONV_2D", [0, 1, 2], [3], dict(padding="SAME")),
           tflm.TOp("RESHAPE", [3, 5], [4], dict(new_shape=[1, 96])),
           tflm.TOp("FULLY_CONNECTED", [4, 6, 7], [8])]
    return tflm.build_tflite(t, ops, [0], [8]), [1, 6]


def compressed(plain: bytes, weights: list[int], bits: int, per_channel: bool) -> bytes:
    sb = spec_builder.SpecBuilder()
    for i in weights:
        sb.add_tensor(0, i).with_lut(bits, spec.PerChannel(0) if per_channel
                                     else spec.PerTensor())
    with pytest.warns(UserWarning) if bits == 7 else _nothing():
        return bytes(tflm_compress(plain, sb.build()))


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


CASES = [(0, 2, True), (1, 3, True), (2, 4, False), (3, 7, True), (4, 3, False)]


@pytest.fixture(scope="module")
def lut_models():
    out = []
    rng = np.random.default_rng(9)
    for seed, bits, per_channel in CASES:
        plain, weights = model(seed, bits, per_channel)
        z = compressed(plain, weights, bits, per_channel)
        assert sum(op.name == DECODE_OP for op in read_tflite(z).ops) == 2
        xs = [rng.integers(-128, 128, (1, 4, 4, 2)).astype(np.int8) for _ in range(3)]
        ref = [tflm.run_tflm(z, [x])[0].ravel() for x in xs]
        for x, r in zip(xs, ref):  # TFLM's DECODE gives the uncompressed model's outputs
            np.testing.assert_array_equal(r, tflm.run_tflm(plain, [x])[0].ravel())
        out.append((plain, z, xs, ref, bits, per_channel))
    return out


def test_decoded_weights_equal_the_originals(lut_models):
    for plain, z, _, _, bits, per_channel in lut_models:
        g, gz = import_tflite(plain), import_tflite(z)
        assert writer.serialize(gz) != b"" and len(gz.ops) == len(g.ops)
        for a, b in zip(g.tensors, gz.tensors):
            if a.data is not None:
                np.testing.assert_array_equal(a.data, b.data)
        if not per_channel:  # one table per layer: stored again as b-bit LUT layers, lossless
            _, sizes = cluster.cluster_graph(gz, bits, 0)
            assert [(s.levels <= 1 << bits, s.rms_error) for s in sizes] == [(True, 0.0)] * 2


def test_lut_models_on_every_interpreter(interpreter, lut_models):
    cases = [(writer.serialize(import_tflite(z)), [[x] for x in xs])
             for _, z, xs, _, _, _ in lut_models]
    results = invoke_models(cases, interpreter)
    for rows, (_, _, _, ref, _, _) in zip(results, lut_models):
        for (got,), want in zip(rows, ref):
            np.testing.assert_array_equal(got, want)


def test_bad_ancillary_data_is_refused():
    anc = np.zeros(32, np.uint8)
    anc[1], anc[4], anc[5], anc[6] = 1, 1, 2, 4
    anc[16:20] = [1, 2, 3, 4]
    enc = np.array([0b00011011], np.uint8)  # indices 0 1 2 3, MSB first
    np.testing.assert_array_equal(decode_lut(enc, anc, (4,), "int8", 1, False), [1, 2, 3, 4])
    for pos, value, msg in ((0, 1, "Huffman"), (0, 2, "pruning"), (1, 2, "DCM version"),
                            (6, 2, "past its value table"), (5, 0, "width 0")):
        bad = anc.copy()
        bad[pos] = value
        with pytest.raises(ValueError, match=msg):
            decode_lut(enc, bad, (4,), "int8", 1, False)
    with pytest.raises(ValueError, match="need 2 bytes"):
        decode_lut(enc, anc, (8,), "int8", 1, False)
    plain, weights = model(0, 2, True)
    z = bytearray(compressed(plain, weights, 2, True))
    m = read_tflite(bytes(z))
    anc_t = m.tensors[m.ops[0].inputs[1]]
    anc_t.data = anc_t.data.copy()
    anc_t.data.view(np.uint8)[0] = 1  # a Huffman table
    from converter.compress_tflm import decode_tflm_ops

    with pytest.raises(UnsupportedModelError, match="Huffman"):
        decode_tflm_ops(m)
