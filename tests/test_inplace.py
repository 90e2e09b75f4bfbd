"""A CONV_2D whose planned output overlaps its input: the kernels read input rows after writing
output rows, so such a file (the converter never writes one) must raise ModelError at load."""

from __future__ import annotations

import struct

import numpy as np
import pytest

import tinyrt
from converter import writer
from converter.graph import Graph
from converter.layers import conv
from tests.models import patch_section
from tinyrt import fileformat as ff

_TENSOR_FMT = "<BBBBII4Ifi"  # fileformat TENSORS record: offset at byte 4, nbytes at 8


def _pointwise() -> tuple[bytes, int, int]:
    rng = np.random.default_rng(3)
    g = Graph()
    x = g.add_activation("x", (1, 4, 4, 8), 0.05, -3)
    g.inputs.append(x)
    y = conv.conv2d(g, x, rng.integers(-128, 128, (8, 1, 1, 8)), rng.uniform(0.001, 0.01, 8),
                    rng.integers(-99, 99, 8), 0.1, 2)
    g.outputs.append(y)
    return writer.serialize(g), x, y


def _offset(b: bytes, t: int) -> tuple[int, int]:
    _, off, _, _ = next(struct.unpack_from(ff.SECTION_FMT, b, ff.HEADER_SIZE + ff.SECTION_SIZE * i)
                        for i in range(struct.unpack_from("<H", b, 6)[0])
                        if struct.unpack_from("<I", b, ff.HEADER_SIZE + ff.SECTION_SIZE * i)[0]
                        == ff.TENSORS)
    return struct.unpack_from("<II", b, off + 36 * t + 4)


def test_planned_apart_runs():
    b, x, y = _pointwise()
    (ox, nx), (oy, ny) = _offset(b, x), _offset(b, y)
    assert (nx, ny) == (128, 128)
    assert ox + nx <= oy or oy + ny <= ox  # the planner keeps them apart
    m = tinyrt.load(b)
    m.invoke(bytes(128))  # loads and runs


@pytest.mark.parametrize("shift", [0, 4, -4, 124])
def test_overlap_raises(shift):
    b, x, y = _pointwise()
    ox, _ = _offset(b, x)
    bad = patch_section(b, ff.TENSORS, 36 * y + 4, "<I", max(0, ox + shift))
    assert _offset(bad, y)[0] == max(0, ox + shift)
    with pytest.raises(tinyrt.ModelError, match="overlaps its input"):
        tinyrt.load(bad)
