"""Tables the board can compute exactly at prepare instead of reading them from the file.

SOFTMAX's int32 (2, 256) exp table (2 KB; ~550 B deflated, most of a small compressed model) is
a function of three integers, TFLM's (input_multiplier, input_left_shift, diff_min): the op
becomes SOFTMAX_EXP (tinyrt/kernels/softmax_exp.py) with those as params. A table is replaced
only where it equals, entry for entry, the one those params give (beta = 1, what TFLite
converters write), so the outputs are the same to the bit.
"""

from __future__ import annotations

import numpy as np

from tinyrt import opcodes

from .cluster import prune
from .graph import Graph, Op
from .layers.activations import softmax_exp_table, softmax_params


def compute_tables(g: Graph) -> tuple[Graph, int]:
    """A copy of `g` with each SOFTMAX whose exp table is the beta = 1 one made SOFTMAX_EXP;
    and how many were."""
    out = Graph(list(g.tensors), [], list(g.inputs), list(g.outputs), dict(g.metadata))
    n = 0
    for op in g.ops:
        if op.opcode == opcodes.SOFTMAX and len(op.inputs) == 2:
            scale = g.tensors[op.inputs[0]].scale
            table = g.tensors[op.inputs[1]].data
            try:
                params = softmax_params(scale, 1.0)
                same = table is not None and np.array_equal(
                    np.asarray(table).reshape(2, 256), softmax_exp_table(scale, 1.0))
            except ValueError:
                same = False
            if same:
                out.ops.append(Op(opcodes.SOFTMAX_EXP, [op.inputs[0]], list(op.outputs),
                                  [int(p) for p in params]))
                n += 1
                continue
        out.ops.append(op)
    return prune(out), n
