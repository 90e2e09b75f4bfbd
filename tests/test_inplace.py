"""A CONV_2D whose planned output overlaps its input: the kernels read input rows after writing
output rows, so such a file (the converter never writes one) must raise ModelError at load."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

import tinyrt
from converter import patch, writer
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


# A patched stage's output placed in its input's bytes (converter.patch band_graph, overlap):
# each band writes its output rows below every input row a later band reads. On every
# interpreter, invoke() under heap_lock, the outputs equal the unpatched model's to the bit.
_OVER_CASES = [(2, 24, 16, 3, [("conv", 3, 2, 1, "SAME", 8), ("dw", 3, 1, 1, "SAME", 8),
                               ("conv", 1, 1, 1, "SAME", 8), ("dw", 3, 2, 1, "SAME", 8)], 4),
               (5, 24, 12, 4, [("conv", 3, 2, 1, "SAME", 8), ("dw", 3, 1, 1, "SAME", 8),
                               ("conv", 1, 1, 1, "SAME", 4)], 3),
               # pointwise only, Cout <= Cin: 1x1 layers in place, one band of temporaries
               (7, 16, 8, 8, [("conv", 1, 1, 1, "SAME", 8), ("conv", 1, 1, 1, "SAME", 6)], 4)]


def test_stage_output_over_its_input(interpreter):
    from host_sim import run
    from tests.test_patch import SCRIPT, _outputs, chain_graph

    files, script_cases, want = {}, [], {}
    for k, (seed, h, w, c, specs, bands) in enumerate(_OVER_CASES):
        g = chain_graph(seed, h, w, c, specs)
        pg, _ = patch.band_graph(g, 0, len(specs), bands)
        # the overlap is taken: the stage's output (the head's input) in the graph input's bytes
        assert pg.tensors[pg.ops[-1].inputs[0]].view_of == (pg.inputs[0], 0)
        b = writer.serialize(pg)
        assert writer.plan(pg)[1] < writer.plan(patch.band_graph(g, 0, len(specs), bands,
                                                                 False)[0])[1]
        xs = np.random.default_rng(seed).integers(-128, 128, (2, h * w * c)).tolist()
        name = f"o{k}.trt"
        files[name] = b
        script_cases.append([name, xs])
        want[name] = _outputs(writer.serialize(g), xs)
    files["cases.json"] = json.dumps(script_cases)
    out = run(SCRIPT, interpreter, files=files).stdout
    got: dict = {}
    for line in out.splitlines():
        if line.startswith("CASE "):
            name, y = json.loads(line[5:])
            got.setdefault(name, []).append(y)
    assert got == want


def test_unsafe_stage_overlap_is_refused():
    from tests.test_patch import chain_graph

    # 1x1 then 3x3 at stride 1, as wide out as in: a band's output rows reach the next
    # band's halo input row, so the output stays in bytes of its own
    g = chain_graph(4, 16, 16, 8, [("conv", 1, 1, 1, "SAME", 16), ("dw", 3, 1, 1, "SAME", 16),
                                   ("conv", 1, 1, 1, "SAME", 8)])
    pg, _ = patch.band_graph(g, 0, 3, 5)
    assert pg.tensors[pg.ops[-1].inputs[0]].view_of is None
    assert pg.tensors[patch.band_graph(g, 0, 3, 5, False)[0].ops[-1].inputs[0]].view_of is None
