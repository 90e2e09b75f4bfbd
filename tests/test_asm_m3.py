"""The armv7m (Thumb-2) asm kernels: kernels/armv7m_rows_asm.py (FC, 1x1 and im2col conv: two
rows per SMLAL, requantization with SMULL) and kernels/armv7m_depthwise_asm.py, compiled by
mpy-cross for armv7m and run in Unicorn as a Cortex-M3, bit-exact with the reference kernels
on hypothesis-drawn shapes and values; chosen only where the firmware's arch is armv7m or
later (the M0 keeps the armv6m kernels); counted."""

from __future__ import annotations

import random
from array import array

import pytest
from hypothesis import given, note, settings
from hypothesis import strategies as st

pytest.importorskip("unicorn")

from host_sim import cortexm  # noqa: E402
from tinyrt.kernels.fully_connected import fully_connected  # noqa: E402

from .test_asm import (_act, _requant, conv_cases, depthwise_cases,  # noqa: E402
                       reference_conv, reference_depthwise)

ARCH = {"m0": (4, "armv6m"), "m3": (5, "armv7m")}


class _Core:
    """emulated_asm for a core with tinyrt.fast.arch set to its firmware's arch (so the
    kernels choose as on that board) while the modules are imported and prepared."""

    def __init__(self, cpu):
        self.cpu = cpu
        self.cm = cortexm.emulated_asm(cpu, ARCH[cpu][1])

    def __enter__(self):
        from tinyrt import fast

        self.m = self.cm.__enter__()
        fast.arch[0] = ARCH[self.cpu][0]
        return self.m

    def __exit__(self, *exc):
        from tinyrt import fast

        fast.arch[0] = fast.native_arch()
        return self.cm.__exit__(*exc)


@st.composite
def fc_cases(draw):
    batches = draw(st.integers(1, 5))
    # K up to 300: several 127-k chunks, the K % 4 single steps, and past MAX_K (rows4)
    n_in = draw(st.one_of(st.integers(1, 40), st.integers(120, 300), st.just(1100)))
    n_out = draw(st.one_of(st.integers(1, 10), st.sampled_from([16, 64])))
    rnd = random.Random(draw(st.integers(0, 1 << 30)))
    x = array("b", [rnd.randint(-128, 127) for _ in range(batches * n_in)])
    if draw(st.booleans()):  # the extremes: |A| reaches its bound
        x = array("b", [-128] * (batches * n_in))
    w = array("b", [rnd.randint(-128, 127) for _ in range(n_in * n_out)])
    if draw(st.booleans()):
        w = array("b", [-128] * (n_in * n_out))
    bias = array("i", [rnd.randint(-(1 << 16), 1 << 16) for _ in range(n_out)])
    zx, zy = draw(st.integers(-128, 127)), draw(st.integers(-128, 127))
    return (x, w, bias, batches, n_in, n_out, zx, zy) + _requant(draw, n_out) + _act(draw)


@settings(max_examples=120, deadline=None)
@given(fc_cases())
def test_fully_connected_m3_bit_exact(case):
    x, w, bias, batches, n_in, n_out, zx, zy, m_hi, m_lo, left, right, lo, hi = case
    args = (batches, n_in, n_out, zx, zy, m_hi, m_lo, left, right, lo, hi)
    want = array("b", [0] * (batches * n_out))
    fully_connected(x, w, bias, want, *args)
    got = array("b", [0] * (batches * n_out))
    with _Core("m3") as m:
        from tinyrt.kernels import fully_connected_asm
        k = fully_connected_asm.prepare(x, w, bias, got, *args)
        assert type(k.rows).__name__ == ("Pairs" if n_in <= 1024 else "Rows")
        m.count = 0
        k.fully_connected(x, w, bias, got, *args)
    note("instructions %d for %d MACs" % (m.count, batches * n_in * n_out))
    assert list(got) == list(want)


@settings(max_examples=100, deadline=None)
@given(conv_cases())
def test_conv_m3_bit_exact(case):
    x, w, bias, geom, zx, zy, m_hi, m_lo, left, right, lo, hi = case
    n, h, wd, c, oc, kh, kw, sh, sw, dh, dw, pt, pl, oh, ow = geom
    want = array("b", [0] * (n * oh * ow * oc))
    reference_conv(x, w, bias, want, geom, zx, zy, (m_hi, m_lo, left, right), (lo, hi))
    got = array("b", [0] * len(want))
    with _Core("m3"):
        from tinyrt.kernels import conv_asm
        k = conv_asm.prepare(x, w, bias, got, n, h, wd, c, oc, kh, kw, sh, sw, dh, dw, pt, pl,
                             oh, ow, zx, zy, m_hi, m_lo, left, right, lo, hi)
        assert type(k.rows).__name__ == "Pairs"
        k.conv2d(*([None] * 22))
    assert list(got) == list(want)


@settings(max_examples=100, deadline=None)
@given(depthwise_cases(), st.sampled_from(["drawn", "c4", "dm4"]))
def test_depthwise_m3_bit_exact(case, shape):
    x, w, bias, geom, zx, zy, m_hi, m_lo, left, right, lo, hi = case
    n, h, wd, c, dm, kh, kw, sh, sw, dh, dw, pt, pl, oh, ow = geom
    if shape != "drawn":  # the fast tap loops' layers: dm 1 and C % 4 == 0, or dm % 4 == 0
        c, dm = (4 * ((c + 3) // 4), 1) if shape == "c4" else (c, 4 * (1 + len(x) % 2))
        oc = c * dm
        rnd = random.Random(len(x) + oc)
        x = array("b", [rnd.randint(-128, 127) for _ in range(n * h * wd * c)])
        w = array("b", [rnd.randint(-128, 127) for _ in range(kh * kw * oc)])
        bias = array("i", [rnd.randint(-(1 << 16), 1 << 16) for _ in range(oc)])
        q = [array("i", [v[i % len(v)] for i in range(oc)]) for v in (m_hi, m_lo, left, right)]
        m_hi, m_lo, left, right = q
        geom = (n, h, wd, c, dm, kh, kw, sh, sw, dh, dw, pt, pl, oh, ow)
    want = array("b", [0] * (n * oh * ow * c * dm))
    reference_depthwise(x, w, bias, want, geom, zx, zy, (m_hi, m_lo, left, right), (lo, hi))
    for cpu in ("m3", "m0"):  # m0: dw_rows, its fast tap loops where they apply
        got = array("b", [0] * len(want))
        with _Core(cpu) as m:
            from tinyrt.kernels import depthwise_conv_asm
            work = bytearray(depthwise_conv_asm.work_bytes(h, wd, c, kh, kw, sh, sw, dh, dw,
                                                             oh, ow))
            k = depthwise_conv_asm.prepare(x, w, bias, got, *geom, zx, zy, m_hi, m_lo, left,
                                           right, lo, hi, work)
            mode = 1 if dm == 1 and c % 4 == 0 else (2 if dm % 4 == 0 else 0)
            assert k.run.__name__ == ("dw_rows7" if mode and cpu == "m3" else "dw_rows")
            if cpu == "m0":
                assert k.p[24] == mode
            m.count = 0
            k.depthwise_conv2d(*([None] * 22))
        note("%s geom %r: %d instructions" % (cpu, geom, m.count))
        assert list(got) == list(want), cpu


@settings(max_examples=60, deadline=None)
@given(depthwise_cases(), st.sampled_from(["xy", "yx", "low"]))
def test_depthwise_m3_padded_image_overlapping_input_and_output(case, order):
    """dw_rows7 with the padded image over the layer's dead input and its output in one arena
    (tinyrt.buffers.plan_work, depthwise_conv.padded_leads): bit-exact, calls repeated."""
    from .test_asm import run_in_one_arena

    x, w, bias, geom, zx, zy, m_hi, m_lo, left, right, lo, hi = case
    n, h, wd, c, dm, kh, kw, sh, sw, dh, dw, pt, pl, oh, ow = geom
    c = 4 * ((c + 3) // 4)  # dw_rows7's layers: dm 1 and C % 4 == 0
    oc = c
    rnd = random.Random(len(x) + oc)
    x = array("b", [rnd.randint(-128, 127) for _ in range(h * wd * c)])
    w = array("b", [rnd.randint(-128, 127) for _ in range(kh * kw * oc)])
    bias = array("i", [rnd.randint(-(1 << 16), 1 << 16) for _ in range(oc)])
    q = [array("i", [v[i % len(v)] for i in range(oc)]) for v in (m_hi, m_lo, left, right)]
    geom = (1, h, wd, c, 1, kh, kw, sh, sw, dh, dw, pt, pl, oh, ow)
    want = array("b", [0] * (oh * ow * oc))
    reference_depthwise(x, w, bias, want, geom, zx, zy, tuple(q), (lo, hi))
    with _Core("m3") as m:
        from tinyrt.kernels import depthwise_conv_asm

        outs, overlap = run_in_one_arena(m, depthwise_conv_asm, (x, w, bias, geom, zx, zy,
                                                                 *q, lo, hi), order)
    note("geom %r order %s: overlaps %r" % (geom, order, overlap))
    assert outs == [list(want)] * 2


def test_m0_keeps_armv6m_kernels():
    """On the M0's arch the armv6m kernels are chosen (and the Thumb-2 modules not even
    imported); the same layer on armv7m chooses the Thumb-2 ones."""
    import sys

    rnd = random.Random(3)
    x = array("b", [rnd.randint(-128, 127) for _ in range(2 * 64)])
    w = array("b", [rnd.randint(-128, 127) for _ in range(64 * 8)])
    q = [array("i", [40000] * 8), array("i", [5] * 8), array("i", [0] * 8), array("i", [7] * 8)]
    for cpu, want in (("m0", "Rows"), ("m3", "Pairs")):
        with _Core(cpu):
            from tinyrt.kernels import depthwise_conv_asm, fully_connected_asm
            y = array("b", [0] * 16)
            k = fully_connected_asm.prepare(x, w, array("i", [0] * 8), y, 2, 64, 8, 0, 0, *q,
                                            -128, 127)
            assert type(k.rows).__name__ == want
            assert ("tinyrt.kernels.armv7m_rows_asm" in sys.modules) == (cpu == "m3")
            work = bytearray(depthwise_conv_asm.work_bytes(4, 4, 8, 3, 3, 1, 1, 1, 1, 4, 4))
            d = depthwise_conv_asm.prepare(x[:128], w[:72], array("i", [0] * 8), y, 1, 4, 4,
                                           8, 1, 3, 3, 1, 1, 1, 1, 1, 1, 4, 4, 0, 0, *q, -128,
                                           127, work)
            assert d.run.__name__ == ("dw_rows7" if cpu == "m3" else "dw_rows")


def test_m3_instructions_per_mac():
    """Whole calls on the M3 model: 1x1 conv 5x5x64 -> 64 at most 2.2 instructions per MAC
    (M0: 4.35 repacked, 4.83 in place), depthwise 3x3 25x5x64 at most 7.0 (M0: 12.1)."""
    from host_sim import cortexm_bench

    n, macs = cortexm_bench.conv_count("m3", 5, 5, 64, 64, 1, 1, 1, 0)
    assert n / macs <= 2.2
    n, macs = cortexm_bench.depthwise_count("m3", 25, 5, 64, 1, 3, 3, 1, 1)
    assert n / macs <= 7.0
