"""The Cortex-M asm kernels (kernels/*_asm.py): the machine code mpy-cross emits for armv6m,
run in Unicorn as a Cortex-M0 with every buffer in its own mapping, bit-exact with the
reference kernels on hypothesis-drawn shapes and values; counted; guarded."""

from __future__ import annotations

import ast
import random
import tempfile
from array import array
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, note, settings
from hypothesis import strategies as st

pytest.importorskip("unicorn")

from host_sim import cortexm, mpy  # noqa: E402
from tinyrt.kernels.conv import axis_windows, conv2d  # noqa: E402
from tinyrt.kernels.fully_connected import fully_connected  # noqa: E402

from .conftest import SHARED_MODELS  # noqa: E402

KERNELS = Path(cortexm.__file__).resolve().parents[1] / "mp_runtime" / "tinyrt" / "kernels"
ASM_MODULES = sorted(KERNELS.glob("*_asm.py"))


def _requant(draw, n):
    m_hi = array("i", draw(st.lists(st.integers(1 << 15, 0xFFFF), min_size=n, max_size=n)))
    m_lo = array("i", draw(st.lists(st.integers(0, 0x7FFF), min_size=n, max_size=n)))
    shift = draw(st.lists(st.integers(-14, 2), min_size=n, max_size=n))
    left = array("i", [max(s, 0) for s in shift])
    right = array("i", [max(-s, 0) for s in shift])
    return m_hi, m_lo, left, right


def _act(draw):
    lo = draw(st.integers(-128, 127))
    return lo, draw(st.integers(lo, 127))


@st.composite
def fc_cases(draw):
    batches = draw(st.integers(1, 3))
    n_in = draw(st.integers(1, 40))
    # multiples of 8 run int8_rows (eight channels per pass), the others int8_rows4
    n_out = draw(st.one_of(st.integers(1, 10), st.sampled_from([8, 16, 24])))
    x = array("b", draw(st.lists(st.integers(-128, 127), min_size=batches * n_in,
                                 max_size=batches * n_in)))
    w = array("b", draw(st.lists(st.integers(-128, 127), min_size=n_in * n_out,
                                 max_size=n_in * n_out)))
    bias = array("i", draw(st.lists(st.integers(-(1 << 16), 1 << 16), min_size=n_out,
                                    max_size=n_out)))
    zx, zy = draw(st.integers(-128, 127)), draw(st.integers(-128, 127))
    return (x, w, bias, batches, n_in, n_out, zx, zy) + _requant(draw, n_out) + _act(draw)


@st.composite
def conv_cases(draw):
    h, wd = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    c = draw(st.integers(1, 6))
    oc = draw(st.one_of(st.integers(1, 6), st.sampled_from([8, 16])))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    sh, sw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    dh, dw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    eh, ew = (kh - 1) * dh + 1, (kw - 1) * dw + 1
    pt, pl = draw(st.integers(0, eh - 1)), draw(st.integers(0, ew - 1))
    pb, pr = draw(st.integers(0, eh - 1)), draw(st.integers(0, ew - 1))
    oh, ow = (h + pt + pb - eh) // sh + 1, (wd + pl + pr - ew) // sw + 1
    if oh < 1 or ow < 1:
        pb, pr = eh - 1, ew - 1
        pt, pl = 0, 0
        oh, ow = (h + pb - eh) // sh + 1, (wd + pr - ew) // sw + 1
    n = draw(st.integers(1, 2))
    x = array("b", draw(st.lists(st.integers(-128, 127), min_size=n * h * wd * c,
                                 max_size=n * h * wd * c)))
    w = array("b", draw(st.lists(st.integers(-128, 127), min_size=oc * kh * kw * c,
                                 max_size=oc * kh * kw * c)))
    bias = array("i", draw(st.lists(st.integers(-(1 << 16), 1 << 16), min_size=oc,
                                    max_size=oc)))
    zx, zy = draw(st.integers(-128, 127)), draw(st.integers(-128, 127))
    geom = (n, h, wd, c, oc, kh, kw, sh, sw, dh, dw, pt, pl, oh, ow)
    return (x, w, bias, geom, zx, zy) + _requant(draw, oc) + _act(draw)


def reference_conv(x, w, bias, y, geom, zx, zy, q, act):
    """kernels.conv.conv2d with the tables Conv2D.__init__ builds."""
    n, h, wd, c, oc, kh, kw, sh, sw, dh, dw, pt, pl, oh, ow = geom
    ry = axis_windows(oh, h, kh, sh, dh, pt)
    rx = axis_windows(ow, wd, kw, sw, dw, pl)
    rows = array("i", [0] * (3 * oh))
    for r in range(oh):
        rows[3 * r:3 * r + 3] = array("i", [ry[3 * r] * wd * c, ry[3 * r + 1] * kw * c,
                                            ry[3 * r + 2]])
    cols = array("i", [0] * (4 * ow))
    for k in range(ow):
        n_fx = rx[3 * k + 2]
        runs, run = ((1 if n_fx else 0), n_fx * c) if dw == 1 else (n_fx, c)
        cols[4 * k:4 * k + 4] = array("i", [rx[3 * k] * c, rx[3 * k + 1] * c, runs, run])
    conv2d(x, w, bias, y, n, h * wd * c, rows, cols, oc, kh * kw * c, dh * wd * c, kw * c,
           dw * c, c, zx, zy, *q, *act)


def test_mpy_reader_finds_every_asm_function(tmp_path):
    """Our .mpy reader names each asm function as the source does (top-level defs decorated
    with micropython.asm_thumb), consumes each file to its last byte, and reads the header."""
    assert ASM_MODULES
    for src in ASM_MODULES:
        f = mpy.parse(mpy.compile_mpy(src, "armv6m", tmp_path / "m.mpy"))
        assert f.arch == "armv6m" and f.sub_version == 3
        tree = ast.parse(src.read_text())
        want = [d.name for d in tree.body if isinstance(d, ast.FunctionDef)
                and any(ast.unparse(x) == "micropython.asm_thumb" for x in d.decorator_list)]
        got = {n: rc for n, rc in f.functions().items() if rc.kind == "asm"}
        assert sorted(got) == sorted(want)
        for name in want:
            assert got[name].code[:2] == b"\xf2\xb5"  # push {r1, r4-r7, lr}
            assert got[name].code[-2:] == b"\xf2\xbd"  # pop {r1, r4-r7, pc}


@settings(max_examples=150)
@given(fc_cases())
def test_fully_connected_asm_bit_exact(case):
    x, w, bias, batches, n_in, n_out, zx, zy, m_hi, m_lo, left, right, lo, hi = case
    args = (batches, n_in, n_out, zx, zy, m_hi, m_lo, left, right, lo, hi)
    want = array("b", [0] * (batches * n_out))
    fully_connected(x, w, bias, want, *args)
    got = array("b", [0] * (batches * n_out))
    with cortexm.emulated_asm("m0") as m:
        from tinyrt.kernels import fully_connected_asm
        k = fully_connected_asm.prepare(x, w, bias, got, *args)
        m.count = 0
        k.fully_connected(x, w, bias, got, *args)
    note("instructions %d for %d MACs" % (m.count, batches * n_in * n_out))
    assert list(got) == list(want)


@settings(max_examples=150)
@given(conv_cases())
def test_conv_asm_bit_exact(case):
    x, w, bias, geom, zx, zy, m_hi, m_lo, left, right, lo, hi = case
    n, h, wd, c, oc, kh, kw, sh, sw, dh, dw, pt, pl, oh, ow = geom
    want = array("b", [0] * (n * oh * ow * oc))
    reference_conv(x, w, bias, want, geom, zx, zy, (m_hi, m_lo, left, right), (lo, hi))
    got = array("b", [0] * len(want))
    with cortexm.emulated_asm("m0"):
        from tinyrt.kernels import conv_asm
        k = conv_asm.prepare(x, w, bias, got, n, h, wd, c, oc, kh, kw, sh, sw, dh, dw, pt, pl,
                             oh, ow, zx, zy, m_hi, m_lo, left, right, lo, hi)
        k.conv2d(*([None] * 22))
    assert list(got) == list(want)


def _fc_run(cpu, exact=False, n_in=37, n_out=9, batches=2, y_len=None):
    rnd = random.Random(7)
    x = array("b", [rnd.randint(-128, 127) for _ in range(batches * n_in)])
    w = array("b", [rnd.randint(-128, 127) for _ in range(n_in * n_out)])
    bias = array("i", [rnd.randint(-999, 999) for _ in range(n_out)])
    q = (array("i", [40000] * n_out), array("i", [123] * n_out), array("i", [0] * n_out),
         array("i", [9] * n_out))
    y = array("b", [0] * (y_len if y_len is not None else batches * n_out))
    with cortexm.emulated_asm(cpu) as m:
        from tinyrt.kernels import fully_connected_asm
        k = fully_connected_asm.prepare(x, w, bias, y, batches, n_in, n_out, 3, -4, *q,
                                        -128, 127)
        if exact:
            m.sync_in()
            m.count = 0
            name = "int8_rows4" if n_out % 8 else "int8_rows"  # the kernel Rows chose
            m.call(cortexm.asm_functions(fully_connected_asm.__file__)[name].code,
                   [m.place(k.p)], exact=True)
            m.sync_out()
        else:
            m.count = 0
            k.fully_connected(*([None] * 15))
        return m.count, list(y)


def test_counts_agree_across_cores_and_counting_modes():
    """Per-block counting equals per-instruction counting, and the armv6m code runs the same
    instructions on M0, M3 and M33 (no IT blocks in armv6m code)."""
    base = _fc_run("m0")
    assert _fc_run("m0", exact=True) == base
    assert _fc_run("m3") == base
    assert _fc_run("m33") == base
    assert _fc_run("m0", exact=True, n_out=16) == _fc_run("m0", n_out=16)  # int8_rows


def test_it_block_counting():
    assert cortexm.it_block_length(0xBF08) == 1  # it eq
    assert cortexm.it_block_length(0xBF04) == 2  # itt eq
    assert cortexm.it_block_length(0xBF01) == 4
    assert cortexm.it_block_length(0xBF00) == 0  # nop
    assert cortexm.thumb_length(0xF000) == 4 and cortexm.thumb_length(0x4770) == 2


def test_instructions_per_mac_goal():
    """int8 FC / 1x1 conv, whole call (loop control and requantization included), on the M0
    model: at most 5 instructions per MAC."""
    from host_sim import cortexm_bench

    n, macs = cortexm_bench.fc_count("m0", 1, 64, 64)
    assert n / macs <= 5.0
    n, macs = cortexm_bench.conv_count("m0", 5, 5, 64, 64, 1, 1, 1, 0)
    assert n / macs <= 5.0


def test_out_of_bounds_access_faults():
    """The guard: an asm kernel told that buffers are longer than they are faults in the
    harness (each buffer ends against unmapped memory), for a read and for a write."""
    with pytest.raises(cortexm.AsmFault, match="READ_UNMAPPED"):
        with cortexm.emulated_asm("m0"):
            from tinyrt.kernels import fully_connected_asm
            x = array("b", [1] * 64)
            w = array("b", [1] * 64 * 4)
            y = array("b", [0] * 4)
            k = fully_connected_asm.prepare(x, w, array("i", [0] * 4), y, 1, 64, 4, 0, 0,
                                            *([array("i", [0] * 4)] * 4), -128, 127)
            k.p[3] = 65  # K one past the end of x's (and the last weight row's) buffer
            k.fully_connected(*([None] * 15))
    with pytest.raises(cortexm.AsmFault, match="WRITE_UNMAPPED"):
        with cortexm.emulated_asm("m0"):
            from tinyrt.kernels import fully_connected_asm
            y = array("b", [0] * 4)
            k = fully_connected_asm.prepare(array("b", [1] * 16), array("b", [1] * 64),
                                            array("i", [0] * 16), y, 1, 4, 16, 0, 0,
                                            *([array("i", [0] * 16)] * 4), -128, 127)
            k.fully_connected(*([None] * 15))  # writes 16 outputs into a 4-byte y


def test_selection_stays_off_non_arm():
    """On CPython (and the unix/wasm ports) the asm twins are never imported."""
    from tinyrt import fast

    assert fast.native_arch() not in fast.ARM_ARCHS
    ref = object()
    fast.chosen.clear()
    assert fast.select("no_such_viper", "f", ref, ()) is ref
    assert fast.chosen["f"] == "reference"


@pytest.mark.slow
def test_kws_model_asm_path_matches_tflm():
    """kws_ref_model end to end with the asm twins selected (as on an ARM board): the glue on
    CPython, conv/depthwise/FC machine code in the emulated M0; equal to TFLM's recorded output."""
    path = SHARED_MODELS / "kws_ref_model.tflite"
    if not path.exists():
        pytest.skip("shared models not present")
    from converter.tflite_import import import_tflite
    from converter.writer import serialize

    io = np.load(SHARED_MODELS / "kws_ref_model_io.npz")
    blob = serialize(import_tflite(path.read_bytes()))
    with cortexm.emulated_asm("m0") as m:
        import tinyrt
        from tinyrt import fast

        fast.arch[0] = 4
        try:
            mod = tinyrt.load(bytearray(blob))
        finally:
            fast.arch[0] = fast.native_arch()
        assert fast.chosen["conv2d"] == "asm" and fast.chosen["fully_connected"] == "asm"
        assert fast.chosen["depthwise_conv2d"] == "asm"
        # the four depthwise layers' 12,096 B padded images planned into the file's arena,
        # over each layer's input and the first 4,096 B of its output (at most 8000 - 4416:
        # tinyrt.buffers.plan_work, rows written bottom up): no shared buffer, no byte more
        assert len(mod.arena) == 16000 and mod.work is None
        assert sorted(mod.padded.values()) == [(0, 12096)] * 4
        mod.input(0).set([int(v) for v in io["x"][0].reshape(-1)])
        mod.invoke()
        assert m.count > 1_000_000
        got = mod.output(0).tolist()
    assert got == [int(v) for v in io["y"][0].reshape(-1)]


def test_harness_maps_slices_into_their_owner():
    m = cortexm.Machine("m0")
    buf = bytearray(100)
    mv = memoryview(buf)[10:20]
    assert m.place(mv) == m.place(buf) + 10
    with tempfile.TemporaryDirectory():
        assert m.place(array("i", [1, 2])) % 4 == 0


@st.composite
def packed_cases(draw):
    words = draw(st.integers(1, 20))
    rows = draw(st.integers(1, 6))
    src = array("b", draw(st.lists(st.integers(-128, 127), min_size=4 * words,
                                   max_size=4 * words)))
    w = array("b", draw(st.lists(st.integers(-128, 127), min_size=4 * words * rows,
                                 max_size=4 * words * rows)))
    return src, w, words, rows


@settings(max_examples=150)
@given(packed_cases())
def test_xor_popcount_asm_bit_exact(case):
    from tinyrt.bitpack import xor_popcount

    src, w, words, rows = case
    acc = array("i", [0] * rows)
    with cortexm.emulated_asm("m0"):
        from tinyrt.kernels import bxor_popcount_asm
        bxor_popcount_asm.xor_popcount(src, w, words, rows, acc)
    assert list(acc) == [xor_popcount(src, 0, w, 4 * words * c, 4 * words)
                         for c in range(rows)]


def test_binary_instructions_per_mac_goal():
    from host_sim import cortexm_bench

    n, macs = cortexm_bench.xor_popcount_count("m0", 64, 64)
    assert n / macs <= 0.5


@st.composite
def depthwise_cases(draw):
    h, wd = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    c, dm = draw(st.integers(1, 9)), draw(st.integers(1, 3))
    oc = c * dm
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    sh, sw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    dh, dw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    eh, ew = (kh - 1) * dh + 1, (kw - 1) * dw + 1
    if draw(st.booleans()):  # SAME (TFLite's split: the extra row/column at the end)
        oh, ow = (h + sh - 1) // sh, (wd + sw - 1) // sw
        pt = max((oh - 1) * sh + eh - h, 0) // 2
        pl = max((ow - 1) * sw + ew - wd, 0) // 2
    else:  # VALID, grown to fit the filter
        h, wd = max(h, eh), max(wd, ew)
        oh, ow = (h - eh) // sh + 1, (wd - ew) // sw + 1
        pt = pl = 0
    n = draw(st.integers(1, 2))
    x = array("b", draw(st.lists(st.integers(-128, 127), min_size=n * h * wd * c,
                                 max_size=n * h * wd * c)))
    w = array("b", draw(st.lists(st.integers(-128, 127), min_size=kh * kw * oc,
                                 max_size=kh * kw * oc)))
    bias = array("i", draw(st.lists(st.integers(-(1 << 16), 1 << 16), min_size=oc,
                                    max_size=oc)))
    zx, zy = draw(st.integers(-128, 127)), draw(st.integers(-128, 127))
    geom = (n, h, wd, c, dm, kh, kw, sh, sw, dh, dw, pt, pl, oh, ow)
    return (x, w, bias, geom, zx, zy) + _requant(draw, oc) + _act(draw)


def reference_depthwise(x, w, bias, y, geom, zx, zy, q, act):
    """kernels.depthwise_conv.depthwise_conv2d with the tables DepthwiseConv2D builds."""
    from tinyrt.kernels.depthwise_conv import depthwise_conv2d

    n, h, wd, c, dm, kh, kw, sh, sw, dh, dw, pt, pl, oh, ow = geom
    oc = c * dm
    rows = axis_windows(oh, h, kh, sh, dh, pt)
    for r in range(0, 3 * oh, 3):
        rows[r] *= wd * c
        rows[r + 1] *= kw * oc
    cols = axis_windows(ow, wd, kw, sw, dw, pl)
    for k in range(0, 3 * ow, 3):
        cols[k] *= c
        cols[k + 1] *= oc
    depthwise_conv2d(x, w, bias, y, n, h * wd * c, rows, cols, c, dm, dh * wd * c, kw * oc,
                     dw * c, oc, zx, zy, *q, *act)


@settings(max_examples=120, deadline=None)
@given(depthwise_cases())
def test_depthwise_conv_asm_bit_exact(case):
    x, w, bias, geom, zx, zy, m_hi, m_lo, left, right, lo, hi = case
    n, h, wd, c, dm, kh, kw, sh, sw, dh, dw, pt, pl, oh, ow = geom
    want = array("b", [0] * (n * oh * ow * c * dm))
    reference_depthwise(x, w, bias, want, geom, zx, zy, (m_hi, m_lo, left, right), (lo, hi))
    got = array("b", [0] * len(want))
    with cortexm.emulated_asm("m0") as m:
        from tinyrt.kernels import depthwise_conv_asm
        work = bytearray(depthwise_conv_asm.work_bytes(h, wd, c, kh, kw, sh, sw, dh, dw, oh,
                                                         ow))
        k = depthwise_conv_asm.prepare(x, w, bias, got, *geom, zx, zy, m_hi, m_lo, left,
                                       right, lo, hi, work)
        m.count = 0
        k.depthwise_conv2d(*([None] * 22))
    note("geom %r: %d instructions" % (geom, m.count))
    assert list(got) == list(want)


def run_in_one_arena(m, mod, case, order):
    """The asm depthwise kernel (module `mod`) with its input, output and padded image in one
    buffer as Model.work_view plans them, overlapping both as far as
    depthwise_conv.padded_leads lets it: order "xy" the input first, the image above the
    output's start (rows written top down); "yx" the output first; "low" the input first, the
    image below the output's start (rows written bottom up). Twice, with the arena rewritten
    between: every call must copy and write its border again. Returns the outputs and the
    bytes the image overlapped (input, output)."""
    from tinyrt.kernels.depthwise_conv import padded_leads

    x, w, bias, geom, zx, zy, m_hi, m_lo, left, right, lo, hi = case
    n, h, wd, c, dm, kh, kw, sh, sw, dh, dw, pt, pl, oh, ow = geom
    xs, ys = n * h * wd * c, n * oh * ow * c * dm
    size = mod.work_bytes(h, wd, c, kh, kw, sh, sw, dh, dw, oh, ow)
    x_lead, y_lead, y_lag = padded_leads(*geom)
    if order == "low":
        xo = 0
        yo = (max(xs, y_lag + max(x_lead, 0)) + 3) & ~3
        p = (yo - y_lag) & ~3
        assert p >= max(x_lead, 0)
    else:
        xo = 0 if order == "xy" else (ys + 3) & ~3
        yo = (xs + 3) & ~3 if order == "xy" else 0
        p = (max(xo + x_lead, yo + y_lead, 0) + 3) & ~3
    arena = array("b", bytes(max(p + size, xo + xs, yo + ys)))
    mv = memoryview(arena)
    k = mod.prepare(mv[xo : xo + xs], w, bias, mv[yo : yo + ys], *geom, zx, zy, m_hi, m_lo,
                    left, right, lo, hi, mv[p : p + size])
    outs = []
    for fill in (7, -9):
        for i in range(len(arena)):
            arena[i] = fill
        mv[xo : xo + xs] = x
        k.depthwise_conv2d(*([None] * 22))
        outs.append(list(arena[yo : yo + ys]))
    return outs, (max(0, min(xo + xs, p + size) - max(xo, p)),
                  max(0, min(yo + ys, p + size) - max(yo, p)))


@settings(max_examples=100, deadline=None)
@given(depthwise_cases(), st.sampled_from(["xy", "yx", "low"]))
def test_depthwise_asm_padded_image_overlapping_input_and_output(case, order):
    """The padded image planned into the arena (tinyrt.buffers.plan_work) over the layer's
    dead input and its output: bit-exact with the reference."""
    x, w, bias, geom, zx, zy, m_hi, m_lo, left, right, lo, hi = case
    if geom[0] != 1:
        return  # one batch: padded_leads forbids overlaps otherwise
    want = array("b", [0] * (geom[13] * geom[14] * geom[3] * geom[4]))
    reference_depthwise(x, w, bias, want, geom, zx, zy, (m_hi, m_lo, left, right), (lo, hi))
    with cortexm.emulated_asm("m0") as m:
        from tinyrt.kernels import depthwise_conv_asm

        outs, overlap = run_in_one_arena(m, depthwise_conv_asm, case, order)
    note("geom %r order %s: overlaps %r" % (geom, order, overlap))
    assert outs == [list(want)] * 2


def test_depthwise_padded_image_overlaps_on_kws_geometry():
    """kws_ref_model's 25x5x64 3x3 layer (12,096 B image): input below the output (the
    converter's plan), the image from the output's second row up, or (as load() plans it) from
    4,416 B below the output's start, within the file's 16,000 B arena; or the output below,
    the image over the whole input and the output's last 512 B."""
    from tinyrt.kernels.depthwise_conv import padded_leads

    assert padded_leads(1, 25, 5, 64, 1, 3, 3, 1, 1, 1, 1, 1, 1, 25, 5) == (
        -(7 + 1) * 64, 320, 27 * 448 - 24 * 320)
    rng = np.random.default_rng(4)
    geom = (1, 25, 5, 64, 1, 3, 3, 1, 1, 1, 1, 1, 1, 25, 5)
    x = array("b", rng.integers(-128, 128, 8000).tolist())
    w = array("b", rng.integers(-128, 128, 9 * 64).tolist())
    bias = array("i", rng.integers(-5000, 5000, 64).tolist())
    q = (array("i", [40000] * 64), array("i", [123] * 64), array("i", [0] * 64),
         array("i", [9] * 64))
    case = (x, w, bias, geom, -3, 2) + q + (-128, 127)
    want = array("b", [0] * 8000)
    reference_depthwise(x, w, bias, want, geom, -3, 2, q, (-128, 127))
    want_overlap = {"xy": (0, 8000 - 320), "yx": (8000, 512), "low": (4416, 7680)}
    for order in want_overlap:
        with cortexm.emulated_asm("m0") as m:
            from tinyrt.kernels import depthwise_conv_asm

            outs, overlap = run_in_one_arena(m, depthwise_conv_asm, case, order)
        assert outs == [list(want)] * 2, order
        assert overlap == want_overlap[order], (order, overlap)


def test_depthwise_instructions_per_mac():
    """Depthwise on the M0 model: each tap added costs 4.5 instructions per MAC (the tap
    loop: 54 per 3 taps x 4 channels), at most 5; the whole 3x3 call (padded copy, loops,
    one ~60-instruction requantization per 9 MACs) at most 12.5 per MAC."""
    from host_sim import cortexm_bench

    n3, macs3 = cortexm_bench.depthwise_count("m0", 10, 10, 16, 1, 3, 3, 1, 1)
    n5, macs5 = cortexm_bench.depthwise_count("m0", 10, 10, 16, 1, 5, 5, 1, 2)
    assert (n5 - n3) / (macs5 - macs3) <= 5.0
    n, macs = cortexm_bench.depthwise_count("m0", 25, 5, 64, 1, 3, 3, 1, 1)
    assert n / macs <= 12.5


class _OT:
    """kernels.bconv.OutputTransform's fields, built directly (no model)."""

    def __init__(self, mode, a_max):
        self.mode = mode
        self.thr = self.start = self.count = self.base = self.dir = self.steps = None
        self.table = None
        self.steps_wide = 0
        self.table_row = a_max + 1


def _packed_rows(draw, n_rows, n_bits):
    """n_rows packed rows of n_bits channels (tinyrt.bitpack: unused bits of the last word 0)."""
    wb = (n_bits + 31) // 32 * 4
    vals = draw(st.lists(st.integers(0, 255), min_size=n_rows * wb, max_size=n_rows * wb))
    out = array("b", [0] * (n_rows * wb))
    for i, v in enumerate(vals):
        j = i % wb
        keep = max(0, min(8, n_bits - 8 * j))
        v &= (1 << keep) - 1
        out[i] = v - 256 if v & 0x80 else v
    return out


@st.composite
def bfc_cases(draw):
    sizes = st.sampled_from([1, 7, 31, 32, 33, 63, 64, 65, 96, 127, 128, 129])
    n_in = draw(sizes)
    n_out = draw(st.one_of(st.integers(1, 10), sizes))
    rows = draw(st.integers(1, 3))
    mode = draw(st.integers(0, 2))
    ot = _OT(mode, n_in)
    if mode == 0:
        ot.thr = array("i", [max(-1, min(n_in, t)) for t in draw(st.lists(
            st.integers(-3, n_in + 2), min_size=n_out, max_size=n_out))])
    elif mode == 1:
        ot.start, ot.count = array("i", [0] * n_out), array("i", [0] * n_out)
        ot.base, ot.dir = array("i", [0] * n_out), array("i", [0] * n_out)
        steps = []
        for c in range(n_out):
            s = sorted(draw(st.lists(st.integers(0, n_in), max_size=6)))
            d = draw(st.sampled_from([-1, 1]))
            base = draw(st.integers(-128 + 6, 127 - 6))
            ot.start[c], ot.count[c], ot.base[c], ot.dir[c] = len(steps), len(s), base, d
            steps += s
        ot.steps_wide = draw(st.booleans())
        ot.steps = array("i" if ot.steps_wide else "h", steps)
    else:
        rnd = random.Random(draw(st.integers(0, 1 << 32)))
        ot.table = array("b", [rnd.randint(-128, 127) for _ in range(n_out * (n_in + 1))])
    x = _packed_rows(draw, rows, n_in)
    w = _packed_rows(draw, n_out, n_in)
    return x, w, rows, n_in, n_out, ot


def _bfc_reference(x, w, rows, n_in, n_out, ot):
    from tinyrt.bitpack import row_bytes
    from tinyrt.kernels.bconv import bconv2d

    ybytes = rows * (row_bytes(n_out) if ot.mode == 0 else n_out)
    y = array("b", [0] * ybytes)
    bconv2d(x, w, y, None, None, None, rows, 1, 1, row_bytes(n_in), 1, 1, n_out, 1, 1, 1, 1,
            1, 1, 0, 0, 0, n_in, ot)
    return y


@settings(max_examples=150, deadline=None)
@given(bfc_cases())
def test_bfully_connected_asm_bit_exact(case):
    """BFULLY_CONNECTED's asm twin (xor-popcount in the emulated M0, output transform in
    Python) == kernels.bconv.bconv2d as bfully_connected calls it, every output mode."""
    from tinyrt.bitpack import row_bytes

    x, w, rows, n_in, n_out, ot = case
    want = _bfc_reference(x, w, rows, n_in, n_out, ot)
    got = array("b", [0x55] * len(want))
    wb = row_bytes(n_in)
    with cortexm.emulated_asm("m0") as m:
        from tinyrt.kernels import bfully_connected_asm
        k = bfully_connected_asm.prepare(x, w, got, rows, wb, n_out, n_in, ot)
        assert k is not None
        m.count = 0
        k.bconv2d(x, w, got, None, None, None, rows, 1, 1, wb, 1, 1, n_out, 1, 1, 1, 1, 1, 1,
                  0, 0, 0, n_in, ot)
    note("mode %d, %d x %d -> %d: %d instructions for %d binary MACs"
         % (ot.mode, rows, n_in, n_out, m.count, rows * n_in * n_out))
    assert list(got) == list(want)


def test_bfully_connected_asm_selected_on_arm_only():
    """fast.select picks the asm twin when the firmware is ARM (fast.arch) and not otherwise;
    an unaligned buffer keeps the viper/reference kernel."""
    from tinyrt import fast
    from tinyrt.kernels.bconv import bconv2d

    ot = _OT(0, 64)
    ot.thr = array("i", [10, 40])
    x, w, y = array("b", [0] * 8), array("b", [0] * 16), array("b", [0] * 4)
    args = (x, w, y, 1, 8, 2, 64, ot)
    with cortexm.emulated_asm("m0"):
        fast.arch[0] = 4
        try:
            fast.select("bfully_connected_viper", "bconv2d", bconv2d, args)
            assert fast.chosen["bconv2d"] == "asm"
            un = memoryview(array("b", [0] * 12))[1:9]
            fast.select("bfully_connected_viper", "bconv2d", bconv2d, (un,) + args[1:])
            assert fast.chosen["bconv2d"] != "asm"
        finally:
            fast.arch[0] = fast.native_arch()
    fast.select("bfully_connected_viper", "bconv2d", bconv2d, args)
    assert fast.chosen["bconv2d"] != "asm"


def test_bfully_connected_instructions_per_binary_mac():
    """Machine code of a binary dense layer, whole call (xor-popcount, loop control, ~26
    instructions per output channel; the Python output transform is not counted), M0 model:
    the 4-word loop's 0.484 plus 26 / n_in, so 0.51 at 1024 inputs, under 0.5 from 2048."""
    from host_sim import cortexm_bench

    n, macs = cortexm_bench.bfc_count("m0", 1, 1024, 256, 0)
    assert n / macs <= 0.52
    n, macs = cortexm_bench.bfc_count("m0", 1, 2048, 64, 2)
    assert n / macs <= 0.5


def test_padded_images_planned_around_row_bands_bit_exact():
    """Patched models (converter.patch: row bands whose input views share halo rows, whose
    output views fill one parent): load() plans the depthwise images into the arena where no
    band still to run reads (tinyrt.buffers.plan_work), and the asm path on the emulated M0
    gives the unpatched model's outputs. Planning by each view's own lifetime clobbered the
    next band's halo rows."""
    from converter import patch, writer
    from tinyrt import fast

    from .test_patch import chain_graph

    cases = [(2, 23, 17, 3, [("conv", 3, 2, 1, "SAME", 8), ("dw", 3, 1, 1, "SAME", 8),
                             ("conv", 1, 1, 1, "SAME", 12), ("dw", 3, 2, 1, "SAME", 12)], 4),
             (3, 20, 9, 2, [("dw", 5, 1, 2, "SAME", 2), ("conv", 3, 1, 1, "VALID", 5),
                            ("dw", 3, 2, 1, "VALID", 5)], 3)]
    import tinyrt

    planned = 0
    for seed, h, w, c, specs, bands in cases:
        g = chain_graph(seed, h, w, c, specs)
        xs = np.random.default_rng(seed).integers(-128, 128, (2, h * w * c)).tolist()
        blob = writer.serialize(patch.band_graph(g, 0, len(specs), bands)[0])
        want = [tinyrt.load(writer.serialize(g)).invoke(x).tolist() for x in xs]
        with cortexm.emulated_asm("m0"):
            fast.arch[0] = 4
            try:
                m = tinyrt.load(bytearray(blob))
                got = [m.invoke(x).tolist() for x in xs]
            finally:
                fast.arch[0] = fast.native_arch()
        assert fast.chosen["depthwise_conv2d"] == "asm"
        assert got == want
        planned += len(m.padded)
    assert planned == 8 + 3  # every depthwise band's image in the arena
