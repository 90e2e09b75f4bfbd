"""Binary layers: the bit convention of device and converter agree, and every binary kernel
matches the numpy oracle of Larq Compute Engine semantics (host_sim/oracle/lce_ref.py) on
every interpreter, invoke() under heap_lock, through the public path (Tensor.set / tolist:
packed tensors as int32 words)."""

from __future__ import annotations

import json
from array import array

import numpy as np
import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st
from tinyrt import bitpack as device_bitpack

from converter import bitpack, writer
from converter.graph import Graph
from converter.layers import binary
from host_sim.device import invoke_models
from host_sim.interpreters import run
from host_sim.oracle import lce_ref


def values(a: np.ndarray) -> np.ndarray:
    """A tensor's values as Tensor.set takes and Tensor.tolist gives them: int8 values, or the
    int32 words of a packed tensor (the last dimension counts words)."""
    return np.asarray(a).ravel()


def words_of(raw: np.ndarray) -> np.ndarray:
    """The int32 words of a packed tensor's raw bytes (int8 items)."""
    return np.ascontiguousarray(raw, dtype=np.int8).view("<i4").astype(np.int32)


# -- the bit convention: device module == converter module == oracle ----------------------------

@settings(max_examples=60, deadline=None)
@given(st.integers(1, 3), st.integers(1, 100), st.integers(-128, 127), st.integers(0, 2**32 - 1))
def test_bit_convention_device_converter_oracle(rows, channels, zero_point, seed):
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, (rows, channels)).astype(np.int8)
    host = bitpack.pack_bits(x < zero_point)
    assert np.array_equal(host, lce_ref.pack(x < zero_point))
    assert bitpack.unused_bits_clear(host, channels)
    rb = device_bitpack.row_bytes(channels)
    assert rb == 4 * bitpack.words(channels) == 4 * device_bitpack.words(channels)
    y = array("b", bytes(rows * rb))
    xs = array("b", x.ravel().tobytes())
    for r in range(rows):
        device_bitpack.pack_row(xs, r * channels, channels, zero_point, y, r * rb)
    assert np.array_equal(words_of(np.array(y, dtype=np.int8)).reshape(host.shape), host)
    # unpack: 0-bit -> plus, 1-bit -> minus
    back = array("b", bytes(rows * channels))
    for r in range(rows):
        device_bitpack.unpack_row(y, r * rb, channels, 5, -7, back, r * channels)
    want = np.where(bitpack.unpack_bits(host, channels), -7, 5).ravel()
    assert np.array_equal(np.array(back), want)
    assert np.array_equal(bitpack.unpack_signs(host, channels), lce_ref.unpack(host, channels))
    # xor-popcount over whole rows: device bytes == bitarray count == explicit +-1 dot
    other = bitpack.pack_bits(rng.integers(0, 2, (rows, channels)).astype(bool))
    ob = array("b", np.ascontiguousarray(other, dtype="<i4").tobytes())
    for r in range(rows):
        dev = device_bitpack.xor_popcount(y, r * rb, ob, r * rb, rb)
        assert dev == bitpack.xor_popcount(host[r], other[r])
        dot = int(np.dot(lce_ref.unpack(host[r], channels), lce_ref.unpack(other[r], channels)))
        assert dot == channels - 2 * dev
        assert device_bitpack.popcount(y, r * rb, rb) == int(np.sum(x[r] < zero_point))


PACKED_API = r"""
import tinyrt
m = tinyrt.load("m.trt")
x = m.input(0)
def attempt(values):
    try:
        x.set(values)
        print("ok", x.tolist())
    except tinyrt.TinyrtError as e:
        print(type(e).__name__, e)
attempt([-1, 0x7FFFFFFF, 255, -2147483648, 1 << 29, 0])
attempt([0xFFFFFFFF, 0x80000000, 0, 0x40000000, 5, 1])
attempt([0, 0, 0, 0, 0, 1 << 8])
attempt([0, 0, 0, 0, 0])
attempt([0, 0, 1 << 32, 0, 0, 0])
print(m.invoke([0, 0, 255, 0, 0, 0]).tolist())
"""


def test_packed_tensor_set_and_tolist(interpreter):
    """Tensor.set / tolist of a packed tensor take and give int32 words (unsigned words are
    taken too), refuse bits past the last channel, and feed invoke(x), on every interpreter."""
    g = Graph()
    x = g.add_activation("x", (2, 72), 1.0, 0, "packed")  # 2 rows of 3 words (8 bits used)
    g.inputs.append(x)
    g.outputs.append(binary.unbinarize(g, x, 1.0, 0))
    r = run(PACKED_API, interpreter, files={"m.trt": writer.serialize(g)})
    lines = r.stdout.strip().split("\n")
    assert lines[0] == "ok [-1, 2147483647, 255, -2147483648, 536870912, 0]"
    assert lines[1] == "ok [-1, -2147483648, 0, 1073741824, 5, 1]"
    assert lines[2].startswith("ShapeError word 5 of packed tensor 'x' sets bits past channel "
                               "71 of its row")
    assert lines[3] == "ShapeError tensor 'x' (packed, shape (2, 72)) takes 6 int32 words, got 5"
    assert lines[4].startswith("ShapeError word 4294967296 at 2 is outside int32")
    assert json.loads(lines[5]) == [1] * 64 + [-1] * 8 + [1] * 72


def test_popcount_table():
    table = device_bitpack.POPCOUNT
    for v in range(-128, 128):
        assert table[v] == bin(v & 0xFF).count("1")
    assert device_bitpack.BIT == tuple(int(np.int8(np.uint8(1 << j))) for j in range(8))


# -- differential tests of the kernels on every interpreter ------------------------------------
# Each hypothesis example is one seed; the cases of one interpreter run are drawn from it with
# numpy (varied shapes from the first example on, and one process per run).

ACTS = ["NONE", "RELU", "RELU6", "RELU_N1_TO_1"]


def _channels(rng) -> int:
    """Channel counts around and between the 32-bit word boundaries."""
    if rng.random() < 0.3:
        return int(rng.choice([1, 31, 32, 33, 63, 64, 65]))
    return int(rng.integers(1, 71))


def _random_words(rng, shape_head, channels):
    return lce_ref.pack(rng.integers(0, 2, tuple(shape_head) + (channels,)).astype(bool))


def _output_args(rng, k: int, cout: int) -> dict:
    """Bit-packed output with LCE thresholds, or int8 output with a float multiplier / bias."""
    if rng.random() < 0.4:
        thr = np.round(rng.normal(k / 2, max(k, 4) ** 0.5, cout)).astype(np.int64)
        if cout >= 3 and rng.random() < 0.5:
            thr[:2] = [-(2**31), 2**31 - 1]  # LCE's "always 1" / "always 0"
        return dict(thresholds=thr)
    mul = (rng.normal(0, 1, cout) * 10.0 ** rng.uniform(-3, 0)).astype(np.float32)
    bias = rng.normal(0, 2, cout).astype(np.float32)
    scale = float(np.float32(10.0 ** rng.uniform(-2.5, 0.3)))
    if rng.random() < 0.25:  # exact halves: rounding ties
        mul = rng.choice([-0.25, 0.25, 0.75, -1.25], cout).astype(np.float32)
        bias = (rng.integers(-40, 40, cout) / 4).astype(np.float32)
        scale = 1.0
    return dict(multiplier=mul, bias=bias, out_scale=scale,
                out_zero_point=int(rng.integers(-128, 128)), activation=str(rng.choice(ACTS)),
                int8_method=str(rng.choice(["auto", "steps", "table"])))


def _expect(dot_fn, k, out):
    """Oracle output (int8 values or int32 words) of the dot products for the output args."""
    if "thresholds" in out:
        return lambda x: values(lce_ref.output_bits(dot_fn(x), k, out["thresholds"]))
    return lambda x: values(lce_ref.output_int8(
        dot_fn(x), k, out["multiplier"], out["bias"], out["out_scale"], out["out_zero_point"],
        out["activation"]))


def bconv_case(rng):
    cin = _channels(rng)
    cout = int(rng.choice([int(rng.integers(1, 41)), 32, 33]))
    kh, kw, sh, sw = (int(v) for v in rng.integers(1, [4, 4, 3, 3]))
    dh, dw = (1, 1) if rng.random() < 0.6 else (int(v) for v in rng.integers(1, 3, 2))
    padding = str(rng.choice(["SAME", "VALID"]))
    lo_h, lo_w = ((kh - 1) * dh + 1, (kw - 1) * dw + 1) if padding == "VALID" else (1, 1)
    n, h, w = int(rng.integers(1, 3)), int(rng.integers(lo_h, lo_h + 5)), int(
        rng.integers(lo_w, lo_w + 5))
    pad_values = int(rng.integers(0, 2))
    k = kh * kw * cin
    out = _output_args(rng, k, cout)
    filters = _random_words(rng, (cout, kh, kw), cin)
    geo = dict(stride=(sh, sw), dilation=(dh, dw), padding=padding, pad_values=pad_values)
    g = Graph()
    x = g.add_activation("x", (n, h, w, cin), 1.0, 0, "packed")
    g.inputs.append(x)
    g.outputs.append(binary.bconv_2d(g, x, filters, **geo, **out))

    def dot(v):
        return lce_ref.conv_dot(lce_ref.unpack(v, cin), lce_ref.unpack(filters, cin), (sh, sw),
                                (dh, dw), padding, pad_values)

    xs = [_random_words(rng, (n, h, w), cin) for _ in range(2)]
    return writer.serialize(g), xs, _expect(dot, k, out)


def bfc_case(rng):
    n_in = int(rng.choice([int(rng.integers(1, 131)), 32, 64, 96]))
    n_out = int(rng.integers(1, 41))
    lead = [(1,), (3,), (2, 2)][int(rng.integers(0, 3))]
    out = _output_args(rng, n_in, n_out)
    weights = _random_words(rng, (n_out,), n_in)
    g = Graph()
    x = g.add_activation("x", lead + (n_in,), 1.0, 0, "packed")
    g.inputs.append(x)
    g.outputs.append(binary.bfully_connected(g, x, weights, **out))

    def dot(v):
        return lce_ref.unpack(v, n_in) @ lce_ref.unpack(weights, n_in).T

    xs = [_random_words(rng, lead, n_in) for _ in range(2)]
    return writer.serialize(g), xs, _expect(dot, n_in, out)


def bit_op_case(rng):
    """BINARIZE, UNBINARIZE or BMAX_POOL_2D."""
    c = _channels(rng)
    n, h, w = (int(v) for v in rng.integers(1, [3, 7, 7]))
    kind = ["binarize", "unbinarize", "bmaxpool"][int(rng.integers(0, 3))]
    g = Graph()
    if kind == "binarize":
        zp = int(rng.choice([-128, 127, int(rng.integers(-128, 128))]))
        x = g.add_activation("x", (n, h, w, c), 0.1, zp)
        y = binary.binarize(g, x)
        xs = [rng.integers(-128, 128, (n, h, w, c)).astype(np.int8) for _ in range(2)]
        xs[1][..., 0] = zp  # x == zero point is +1

        def expect(v):
            return values(lce_ref.quantize(v, zp))
    elif kind == "unbinarize":
        scale = float(np.float32(rng.choice([rng.uniform(0.004, 2.0), 0.4, 2 / 3, 1 / 3,
                                             0.0078125])))
        zp = int(rng.integers(-128, 128))
        x = g.add_activation("x", (n, h, w, c), 1.0, 0, "packed")
        y = binary.unbinarize(g, x, scale, zp)
        xs = [_random_words(rng, (n, h, w), c) for _ in range(2)]

        def expect(v):
            return values(lce_ref.dequantize(v, c, scale, zp))
    else:
        fh, fw, sh, sw = (int(v) for v in rng.integers(1, 4, 4))
        padding = str(rng.choice(["SAME", "VALID"]))
        if padding == "VALID":
            h, w = max(h, fh), max(w, fw)
        x = g.add_activation("x", (n, h, w, c), 1.0, 0, "packed")
        y = binary.bmax_pool_2d(g, x, (fh, fw), (sh, sw), padding)
        # mostly 1-bits (-1), so that the AND keeps some
        xs = [lce_ref.pack(rng.random((n, h, w, c)) < 0.8) for _ in range(2)]

        def expect(v):
            return values(lce_ref.bmaxpool(v, (fh, fw), (sh, sw), padding))
    g.inputs.append(x)
    g.outputs.append(y)
    return writer.serialize(g), xs, expect


def check_cases(make_case, seed: int, n: int, interpreter: str) -> None:
    cases = [make_case(np.random.default_rng([seed, i])) for i in range(n)]
    results = invoke_models([(model, [[x] for x in xs]) for model, xs, _ in cases], interpreter)
    for (_, xs, expect), rows in zip(cases, results):
        for x, (y,) in zip(xs, rows):
            np.testing.assert_array_equal(y, expect(x))


SEEDS = st.integers(0, 2**32 - 1)


# 4 x 25 + 3 x 25 + 3 x 30 cases per interpreter; about 10 s for the three interpreters.
@settings(max_examples=4, phases=[Phase.explicit, Phase.generate])
@given(SEEDS)
def test_bconv_matches_oracle(interpreter, seed):
    check_cases(bconv_case, seed, 25, interpreter)


@settings(max_examples=3, phases=[Phase.explicit, Phase.generate])
@given(SEEDS)
def test_bfully_connected_matches_oracle(interpreter, seed):
    check_cases(bfc_case, seed, 25, interpreter)


@settings(max_examples=3, phases=[Phase.explicit, Phase.generate])
@given(SEEDS)
def test_bit_ops_match_oracle(interpreter, seed):
    check_cases(bit_op_case, seed, 30, interpreter)


# -- the converter's integer output transform (host) --------------------------------------------

@settings(max_examples=40, deadline=None)
@given(SEEDS)
def test_int8_levels_and_steps_match_the_oracle_transform(seed):
    """Every kernel value a of every channel: lce_int8_levels == the oracle's float32 transform
    of dot = K - a (one padding: a = accum, dot = K - 2a), and step_tables / the bisection
    give back the levels."""
    rng = np.random.default_rng(seed)
    k, cout = int(rng.integers(1, 300)), int(rng.integers(1, 12))
    out = _output_args(rng, k, cout)
    if "thresholds" in out:
        return
    zero_pad = bool(rng.integers(0, 2))
    levels = binary.lce_int8_levels(out["multiplier"], out["bias"], k, out["out_scale"],
                                    out["out_zero_point"], out["activation"], zero_pad)
    a = np.arange(levels.shape[1])
    dot = k - a if zero_pad else k - 2 * a
    want = lce_ref.output_int8(np.broadcast_to(dot[:, None], (a.size, cout)), k,
                               out["multiplier"], out["bias"], out["out_scale"],
                               out["out_zero_point"], out["activation"])
    np.testing.assert_array_equal(levels, want.T)
    rows, steps = binary.step_tables(levels)
    for c, (first, count, base, direction) in enumerate(rows):
        s = steps[first: first + count]
        assert np.all(np.diff(s) >= 0) and count <= 255
        np.testing.assert_array_equal(
            base + direction * np.searchsorted(s, a, side="right"), levels[c])


@settings(max_examples=30, deadline=None)
@given(SEEDS)
def test_bitpacked_output_from_float_multiplier(seed):
    """Bit-packed output built from a float multiplier and bias (negative multipliers flip
    the filters, as LCE's converter does): bit = (clamp(dot) * multiplier + bias < 0), away
    from ties; CPython in process."""
    import tinyrt

    rng = np.random.default_rng(seed)
    n_in, n_out = int(rng.integers(1, 100)), int(rng.integers(1, 40))
    mul = rng.normal(0, 1, n_out).astype(np.float32)
    mul[rng.random(n_out) < 0.1] = 0
    bias = rng.normal(0, 3, n_out).astype(np.float32)
    act = str(rng.choice(ACTS))
    w = _random_words(rng, (n_out,), n_in)
    g = Graph()
    x = g.add_activation("x", (4, n_in), 1.0, 0, "packed")
    g.inputs.append(x)
    g.outputs.append(binary.bfully_connected(g, x, w, multiplier=mul, bias=bias,
                                             activation=act))
    m = tinyrt.load(writer.serialize(g))
    xw = _random_words(rng, (4,), n_in)
    m.input(0).set(xw.ravel().tolist())
    m.invoke()
    got = lce_ref.unpack(np.array(m.output(0).tolist(), np.int32).reshape(4, -1), n_out)
    lo, hi = binary.activation_clamp(act, n_in)
    dot = np.clip(lce_ref.unpack(xw, n_in) @ lce_ref.unpack(w, n_in).T, lo, hi)
    y = dot * mul.astype(np.float64) + bias
    clear = np.abs(y) > 1e-3
    np.testing.assert_array_equal((got < 0)[clear], (y < 0)[clear])


def test_float_layers_fold_scale_and_batch_norm():
    """binary_dense / binary_conv_2d from float weights: sign(w), mean |w| per channel and the
    batch norm fold into LCE's multiplier and bias; the int8 output is the quantized float
    layer (within one step) on CPython."""
    import tinyrt

    rng = np.random.default_rng(7)
    n_in, n_out = 45, 6
    w = rng.normal(0, 0.1, (n_out, n_in))
    b = rng.normal(0, 0.1, n_out)
    bn = (rng.uniform(0.5, 2, n_out), rng.normal(0, 0.5, n_out), rng.normal(0, 0.3, n_out),
          rng.uniform(0.5, 2, n_out), 1e-3)
    mul, add = binary.fold_batch_norm(np.mean(np.abs(w), axis=1), b, bn)
    x_signs = np.where(rng.random((3, n_in)) < 0.5, -1, 1)
    pre = np.mean(np.abs(w), axis=1) * (x_signs @ np.where(w < 0, -1, 1).T) + b
    ref = bn[0] * (pre - bn[2]) / np.sqrt(bn[3] + bn[4]) + bn[1]
    np.testing.assert_allclose(x_signs @ np.where(w < 0, -1, 1).T * mul + add, ref, rtol=1e-5,
                               atol=1e-5)
    for conv in (False, True):
        g = Graph()
        if conv:
            x = g.add_activation("x", (3, 1, 1, n_in), 1.0, 0, "packed")
            y = binary.binary_conv_2d(g, x, w.reshape(n_out, 1, 1, n_in), b, bn,
                                      out_scale=0.05, out_zero_point=-3)
        else:
            x = g.add_activation("x", (3, n_in), 1.0, 0, "packed")
            y = binary.binary_dense(g, x, w, b, bn, out_scale=0.05, out_zero_point=-3)
        g.inputs.append(x)
        g.outputs.append(y)
        m = tinyrt.load(writer.serialize(g))
        got = np.array(m.invoke(lce_ref.pack(x_signs < 0).ravel().tolist()).tolist())
        want = np.clip(np.round(ref / 0.05) - 3, -128, 127).ravel()
        assert np.max(np.abs(got - want)) <= 1


def test_malformed_binary_ops_are_refused():
    import tinyrt
    from tinyrt.errors import ModelError

    rng = np.random.default_rng(0)
    g = Graph()
    x = g.add_activation("x", (1, 3, 3, 40), 1.0, 0, "packed")
    g.inputs.append(x)
    g.outputs.append(binary.bconv_2d(g, x, _random_words(rng, (5, 3, 3), 40),
                                     thresholds=np.zeros(5)))
    for params, message in ([[1] * 9, "params"], [[1, 1, 1, 1, 0, 0, 1, 1, 0, 7], "out_mode"],
                            [[1, 1, 1, 1, 0, 0, 1, 1, 2, 0], "zero_pad"],
                            [[1, 1, 1, 1, 0, 0, 2, 1, 0, 0], "output shape"],
                            [[1, 1, 1, 1, 0, 0, 1, 1, 0, 1], "int8"]):
        g.ops[0].params = params
        with pytest.raises(ModelError, match=message):
            tinyrt.load(writer.serialize(g))
