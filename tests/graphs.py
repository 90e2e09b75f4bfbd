"""Hypothesis strategies for model files (structure only: the reader does not run ops)."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from converter.graph import Graph, Tensor

DTYPES = ["int8", "int16", "int32", "packed"]


@st.composite
def graphs(draw) -> Graph:
    g = Graph()
    n = draw(st.integers(2, 8))
    arena = []
    for i in range(n):
        dtype = draw(st.sampled_from(DTYPES))
        shape = tuple(draw(st.lists(st.integers(1, 40), min_size=1, max_size=4)))
        while int(np.prod(shape)) > 2048:  # keep files small: the reader is what is tested
            shape = shape[1:] if len(shape) > 1 else (2048,)
        scale = draw(st.floats(2**-20, 16.0, width=32))
        zp = draw(st.integers(-128, 127))
        name = draw(st.text(min_size=0, max_size=12))
        if draw(st.booleans()):
            t = Tensor(name, shape, dtype, scale, zp)
            data_dtype = {"int8": np.int8, "int16": np.int16}.get(dtype, np.int32)
            count = t.nbytes // np.dtype(data_dtype).itemsize
            seed = draw(st.integers(0, 2**16))
            t.data = np.random.default_rng(seed).integers(-100, 100, count).astype(data_dtype)
            if draw(st.booleans()):
                t.per_channel = True
            g.add_tensor(t)
        else:
            arena.append(g.add_tensor(Tensor(name, shape, dtype, scale, zp)))
    if not arena:
        arena.append(g.add_tensor(Tensor("x", (4,), "int8", 0.5, 0)))
    n_ops = draw(st.integers(1, 5))
    for _ in range(n_ops):
        ins = draw(st.lists(st.sampled_from(range(len(g.tensors))), max_size=5))
        if draw(st.booleans()):
            ins.append(-1)
        outs = draw(st.lists(st.sampled_from(arena), min_size=1, max_size=2))
        ins = [t for t in ins if t not in outs]  # an op never writes its own input
        params = draw(st.lists(st.integers(-(2**31), 2**31 - 1), max_size=6))
        g.add_op(draw(st.integers(0, 300)), ins, outs, params)
    g.add_op(9, [], list(arena), [])  # every activation is used
    g.inputs = draw(st.lists(st.sampled_from(arena), min_size=1, max_size=2))
    g.outputs = draw(st.lists(st.sampled_from(arena), min_size=1, max_size=2))
    g.metadata = {"note": draw(st.text(max_size=20))}
    return g
