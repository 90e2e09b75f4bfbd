"""Patch-based inference (converter.patch): a stage of CONV_2D / DEPTHWISE_CONV_2D run in row
bands gives the unpatched model's outputs to the bit, on every interpreter (the reference
kernels, viper and asm twins over band tensors with their own pad_top), with a smaller arena."""

from __future__ import annotations

import json

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

import tinyrt
from converter import layers, patch, writer
from converter.graph import Graph
from host_sim import run
from tinyrt import fileformat as ff

# (kind, kernel, stride, dilation, padding, out channels)
_LAYER = st.tuples(st.sampled_from(["conv", "dw"]), st.sampled_from([1, 3, 5]),
                   st.sampled_from([1, 2]), st.sampled_from([1, 1, 2]),
                   st.sampled_from(["SAME", "VALID"]), st.integers(1, 6))


def chain_graph(seed: int, h: int, w: int, c: int, specs) -> Graph | None:
    """A chain of conv / depthwise layers (None when the shapes shrink to nothing) with a
    1x1 conv head, so that the stage's output is read by a later op."""
    rng = np.random.default_rng(seed)
    g = Graph()
    t = g.add_activation("x", (1, h, w, c), 0.05, int(rng.integers(-20, 20)))
    g.inputs.append(t)
    for i, (kind, k, s, d, pad, oc) in enumerate(specs):
        _, hh, ww, cc = g.tensors[t].shape
        ext = (k - 1) * d + 1
        if pad == "VALID" and (hh < ext or ww < ext):
            return None
        zp = int(rng.integers(-30, 30))
        act = str(rng.choice(["NONE", "RELU", "RELU6"]))
        if kind == "dw":
            wts = rng.integers(-127, 128, (1, k, k, cc))
            t = layers.depthwise_conv2d(g, t, wts, rng.uniform(0.002, 0.02, cc),
                                        rng.integers(-500, 500, cc), 0.06, zp, 1, (s, s),
                                        (d, d), pad, act, f"dw{i}")
        else:
            wts = rng.integers(-127, 128, (oc, k, k, cc))
            t = layers.conv2d(g, t, wts, rng.uniform(0.002, 0.01, oc),
                              rng.integers(-500, 500, oc), 0.08, zp, (s, s), (d, d), pad, act,
                              f"conv{i}")
    cc = g.tensors[t].shape[3]
    t = layers.conv2d(g, t, rng.integers(-127, 128, (3, 1, 1, cc)), [0.01] * 3, None, 0.1, 0,
                      name="head")
    g.outputs.append(t)
    return g


def _outputs(b: bytes, xs) -> list:
    m = tinyrt.load(b)
    return [m.invoke(x).tolist() for x in xs]


@given(st.integers(0, 2**31), st.integers(5, 20), st.integers(3, 12), st.integers(1, 4),
       st.lists(_LAYER, min_size=2, max_size=4), st.integers(2, 9))
def test_bands_equal_unpatched_on_cpython(seed, h, w, c, specs, bands):
    g = chain_graph(seed, h, w, c, specs)
    if g is None:
        return
    rng = np.random.default_rng(seed)
    xs = rng.integers(-128, 128, (2, h * w * c)).tolist()
    want = _outputs(writer.serialize(g), xs)
    for start, end in patch.stages(g):
        pg, _ = patch.band_graph(g, start, end, bands)  # (its MACs may even drop: rows
        # that a later stride skips are not computed)
        b = writer.serialize(pg)
        assert _outputs(b, xs) == want, (start, end, bands)
        _check_views(pg, b)


def _check_views(pg: Graph, b: bytes) -> None:
    """Every view lies inside its parent's bytes at the planned offset."""
    mf = ff.read_model(b)
    for i, t in enumerate(pg.tensors):
        if t.view_of:
            parent, at = t.view_of
            assert mf.tensors[i].offset == mf.tensors[parent].offset + at
            assert at + t.nbytes <= pg.tensors[parent].nbytes


def test_best_plan_lowers_the_arena_within_its_latency_cost():
    g = chain_graph(1, 48, 48, 3, [("conv", 3, 2, 1, "SAME", 8), ("dw", 3, 1, 1, "SAME", 8),
                                  ("conv", 1, 1, 1, "SAME", 16), ("dw", 3, 2, 1, "SAME", 16),
                                  ("conv", 1, 1, 1, "SAME", 16)])
    base = writer.plan(g)[1]
    total = sum(patch.macs(g, op) for op in g.ops)
    p = patch.best_plan(g, max_extra_macs=0.2)
    assert p is not None and p.arena < base and p.extra_macs <= 0.2 * total
    pg, plan = patch.patch(g, max_extra_macs=0.2)
    assert plan == p and writer.plan(pg)[1] == p.arena
    assert pg.metadata["patch"]["bands"] == p.bands
    # no budget, no recomputation: only plans without halo qualify
    q = patch.best_plan(g, max_extra_macs=0.0)
    assert q is None or q.extra_macs == 0
    print(f"48x48x3 chain: arena {base} -> {p.arena} B, {p.bands} bands over ops "
          f"[{p.start}, {p.end}), +{p.extra_macs / total:.1%} MACs")


# Patched models on every interpreter, each invoke() under heap_lock: outputs must equal the
# unpatched model's on the host.
SCRIPT = r"""
import json, micropython, tinyrt
for name, xs in json.loads(open("cases.json").read()):
    m = tinyrt.load(name)
    for x in xs:
        m.input(0).set(x)
        micropython.heap_lock()
        try:
            m.invoke()
        finally:
            micropython.heap_unlock()
        print("CASE " + json.dumps([name, m.output(0).tolist()]))
    m.close()
"""


def test_patched_models_on_every_interpreter(interpreter):
    cases = [(2, 23, 17, 3, [("conv", 3, 2, 1, "SAME", 8), ("dw", 3, 1, 1, "SAME", 8),
                             ("conv", 1, 1, 1, "SAME", 12), ("dw", 3, 2, 1, "SAME", 12)], 4),
             (3, 20, 9, 2, [("dw", 5, 1, 2, "SAME", 2), ("conv", 3, 1, 1, "VALID", 5),
                            ("dw", 3, 2, 1, "VALID", 5)], 3),
             (4, 16, 16, 8, [("conv", 1, 1, 1, "SAME", 16), ("dw", 3, 1, 1, "SAME", 16),
                             ("conv", 1, 1, 1, "SAME", 8)], 5)]
    files, script_cases, want = {}, [], {}
    for k, (seed, h, w, c, specs, bands) in enumerate(cases):
        g = chain_graph(seed, h, w, c, specs)
        xs = np.random.default_rng(seed).integers(-128, 128, (2, h * w * c)).tolist()
        pg, _ = patch.band_graph(g, 0, len(specs), bands)
        name = f"p{k}.trt"
        files[name] = writer.serialize(pg)
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


def test_convert_patch_option(tmp_path):
    from host_sim.runner import convert
    from tests.conftest import SHARED_MODELS

    src = SHARED_MODELS / "digits_cnn_int8.tflite"
    plain = convert(src, tmp_path / "a.trt")
    banded = convert(src, tmp_path / "b.trt", patch=True)
    a, b = (tinyrt.load(p.read_bytes()) for p in (tmp_path / "a.trt", tmp_path / "b.trt"))
    assert b.file.arena_bytes < a.file.arena_bytes
    assert "patch" in json.loads(json.dumps(b.metadata()))
    x = np.load(SHARED_MODELS / "digits_cnn_int8_io.npz")["x"][:3].reshape(3, -1).tolist()
    assert [b.invoke(v).tolist() for v in x] == [a.invoke(v).tolist() for v in x]
    assert plain.output != banded.output
