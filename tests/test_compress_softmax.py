"""SOFTMAX_EXP (tinyrt/kernels/softmax_exp.py): the exp table the board computes at prepare from
TFLM's three softmax constants == the converter's table (converter/layers/activations.py), on
every interpreter; a model whose SOFTMAX became SOFTMAX_EXP (converter/compress_tables.py) gives
the same outputs as TFLM; bad params raise ModelError."""

from __future__ import annotations

import json

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from converter import layers, writer
from converter.compress_tables import compute_tables
from converter.graph import Graph
from converter.layers.activations import softmax_exp_table, softmax_params
from host_sim import run
from host_sim.device import invoke_models
from host_sim.oracle import tflm
from tinyrt import opcodes

TABLES = r"""
import json
from tinyrt.kernels.softmax_exp import exp_table
for p in json.loads(open("params.json").read()):
    print(json.dumps(list(exp_table(*p))))
"""

scales = st.floats(1e-4, 2.0).map(lambda s: float(np.float32(s)))


@settings(max_examples=1)
@given(st.lists(scales, min_size=40, max_size=40))
def test_device_table_equals_converter(interpreter, xs):
    xs = xs + [1 / 16, 0.5, 1e-4, 2.0]  # diff_min cuts the table off at small and large scales
    params = [list(softmax_params(s, 1.0)) for s in xs]
    r = run(TABLES, interpreter, files={"params.json": json.dumps(params)})
    assert r.returncode == 0, r.stderr[-2000:]
    rows = [json.loads(line) for line in r.stdout.strip().splitlines()]
    assert len(rows) == len(xs)
    for s, got in zip(xs, rows):
        np.testing.assert_array_equal(np.array(got), softmax_exp_table(s, 1.0).ravel(),
                                      err_msg=f"scale {s}")


def softmax_graph(scale: float, zp: int, depth: int) -> Graph:
    g = Graph()
    x = g.add_activation("x", (2, depth), scale, zp)
    g.inputs.append(x)
    g.outputs.append(layers.softmax(g, x))
    return g


def test_softmax_exp_models_match_tflm(interpreter):
    rng = np.random.default_rng(3)
    cases, refs = [], []
    for scale, zp, depth in ((0.05, 3, 10), (0.2, -20, 12), (1 / 256, 0, 30), (1.5, 100, 4)):
        g, n = compute_tables(softmax_graph(scale, zp, depth))
        assert n == 1 and [op.opcode for op in g.ops] == [opcodes.SOFTMAX_EXP]
        assert len(g.tensors) == 2  # the table is gone
        xs = [rng.integers(-128, 128, (2, depth)).astype(np.int8) for _ in range(3)]
        t = [tflm.TTensor("x", (2, depth), "int8", scale, zp),
             tflm.TTensor("y", (2, depth), "int8", 1 / 256, -128)]
        tfl = tflm.build_tflite(t, [tflm.TOp("SOFTMAX", [0], [1], {"beta": 1.0})], [0], [1])
        refs.append([tflm.run_tflm(tfl, [x])[0].ravel() for x in xs])
        cases.append((writer.serialize(g), [[x] for x in xs]))
    results = invoke_models(cases, interpreter)
    for rows, want in zip(results, refs):
        for (got,), y in zip(rows, want):
            np.testing.assert_array_equal(got, y)


def test_other_beta_keeps_its_table():
    g = softmax_graph(0.05, 0, 10)
    g.tensors[g.ops[0].inputs[1]].data = softmax_exp_table(0.05, 0.5)  # beta 0.5's table
    g2, n = compute_tables(g)
    assert n == 0 and g2.ops[0].opcode == opcodes.SOFTMAX


def test_bad_params_are_refused():
    import pytest

    import tinyrt

    g, _ = compute_tables(softmax_graph(0.05, 0, 10))
    for params in ([1 << 29, 3, -100], [1 << 30, 40, -100], [1 << 30, 3, 5], [1 << 30, 3]):
        g.ops[0].params = params
        with pytest.raises(tinyrt.ModelError, match="SOFTMAX_EXP"):
            tinyrt.load(writer.serialize(g))
