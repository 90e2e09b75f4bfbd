"""`tinyrt demo`: the whole product end to end on the host simulator (no board needed)."""

from __future__ import annotations

import json
import time

import numpy as np

from converter import layers, writer
from converter.graph import Graph
from converter.inspect_model import describe

from .device import invoke_batch
from .interpreters import INTERPRETERS


def _demo_model(seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    g = Graph(metadata={"description": "tinyrt demo MLP 64-32-10 (random weights)"})
    x = g.add_activation("pixels", (1, 64), 1 / 255, -128)
    g.inputs.append(x)
    h = layers.fully_connected(g, x, rng.integers(-127, 128, (32, 64)),
                               rng.uniform(0.002, 0.006, 32), rng.integers(-2000, 2000, 32),
                               0.08, -128, "RELU", "fc1")
    y = layers.fully_connected(g, h, rng.integers(-127, 128, (10, 32)), 0.004, None, 0.1, 0,
                               "NONE", "fc2")
    g.outputs.append(y)
    return writer.serialize(g)


def main(n: int = 32, heap: int = 192 * 1024) -> int:
    model = _demo_model()
    d = describe(model)
    print(f"model: {' -> '.join(d['ops'])}; file {d['file_bytes']:,} B, weights "
          f"{d['weight_bytes']:,} B, arena {d['arena_bytes']:,} B")
    xs = np.random.default_rng(1).integers(-128, 128, (n, 64)).astype(np.int8)
    outputs = {}
    for interp in INTERPRETERS:
        t = time.perf_counter()
        rows = invoke_batch(model, [[x] for x in xs], interp, heap=heap)
        outputs[interp] = np.stack([r[0] for r in rows])
        print(f"  {interp:8s} {n} inferences (heap {heap // 1024} KiB, invoke under heap_lock) "
              f"in {time.perf_counter() - t:.2f} s")
    same = all(np.array_equal(outputs["cpython"], o) for o in outputs.values())
    print(f"bit-exact across {', '.join(INTERPRETERS)}: {'yes' if same else 'NO'}")
    print(json.dumps({"first_output": outputs["unix"][0].tolist()}))
    return 0 if same else 1
