"""Run model files on one interpreter over batches of inputs, invoke() under heap_lock."""

from __future__ import annotations

import json

import numpy as np

from .interpreters import run

# For each model: prints the kernel chosen for each layer ("#kernels [...]"), feeds each
# example's inputs (read one line at a time), then invoke() with the heap locked (a
# MemoryError there means invoke allocated). Prints one JSON line of raw outputs per example.
# An example after a "reset" line starts from zero state (Model.reset(): an LSTM's; TFLM's
# harnesses Reset() per sample), else the state carries over from the example before.
# Twins are selected strictly: one that fails to prepare where it should run is an error.
INVOKE_MODELS = r"""
import json, micropython, tinyrt, tinyrt.fast
tinyrt.fast.enable(FAST, strict=True)
f = open("cases.txt")
while True:
    head = f.readline()
    if not head:
        break
    name, n = head.split()
    m = tinyrt.load(name)
    print("#kernels " + json.dumps([getattr(k, "impl", "reference") for k in m.kernels]))
    outs = []
    for j in range(m.n_outputs):
        outs.append(m.output(j))
    for _ in range(int(n)):
        line = f.readline()
        if line[0] == "r":
            m.reset()
            line = f.readline()
        ex = json.loads(line)
        line = None
        for i in range(len(ex)):
            m.input(i).set(ex[i])
        ex = None
        micropython.heap_lock()
        try:
            m.invoke()
        finally:
            micropython.heap_unlock()
        row = []
        for o in outs:
            row.append(o.tolist())
        print(json.dumps(row))
        row = None
    m = None
    outs = None
f.close()
"""


def invoke_models(cases: list[tuple[bytes, list[list[np.ndarray]]]], interpreter: str,
                  heap: int | None = None, fast: bool = True,
                  reset: bool | list[list[bool]] = True) -> list[list[list[np.ndarray]]]:
    """invoke_models_with_kernels without the kernels."""
    return invoke_models_with_kernels(cases, interpreter, heap, fast, reset)[0]


def invoke_models_with_kernels(cases: list[tuple[bytes, list[list[np.ndarray]]]],
                               interpreter: str, heap: int | None = None, fast: bool = True,
                               reset: bool | list[list[bool]] = True
                               ) -> tuple[list[list[list[np.ndarray]]], list[list[str]]]:
    """For each (model bytes, examples): the raw outputs of every example, as flat int64 arrays,
    and the kernel each model's layers run ("asm", "viper" or "reference").

    An example is a list of input arrays (one per model input) of what Tensor.set takes: int8
    values for an int8 input, int32 words for an int32 or bit-packed one (signed or unsigned).
    Outputs are what Tensor.tolist gives: int8 values, or signed int32 words. All models run in
    one interpreter process. fast=False keeps the reference kernels where viper twins exist.
    reset=False carries a stateful model's state (LSTM) from one example to the next; a list
    (per case, per example) says which examples start from zero state."""
    # one line per model ("name count"), then one JSON line per example: the script reads a
    # line at a time, so a board-sized --heap measures the model, not the harness
    lines = []
    for i, (_, examples) in enumerate(cases):
        lines.append(f"model{i}.trt {len(examples)}")
        for k, ex in enumerate(examples):
            if reset if isinstance(reset, bool) else reset[i][k]:
                lines.append("reset")
            lines.append(json.dumps([np.asarray(a).ravel().astype(int).tolist() for a in ex]))
    files = {f"model{i}.trt": model for i, (model, _) in enumerate(cases)}
    files["cases.txt"] = "\n".join(lines) + "\n"
    r = run(INVOKE_MODELS.replace("FAST", str(bool(fast))), interpreter, heap=heap, files=files)
    lines = r.stdout.rstrip("\n").split("\n") if r.stdout.strip() else []
    kernels = [json.loads(ln[len("#kernels "):]) for ln in lines if ln.startswith("#kernels ")]
    lines = [ln for ln in lines if not ln.startswith("#kernels ")]
    want = sum(len(ex) for _, ex in cases)
    if len(lines) != want:
        raise AssertionError(f"{interpreter}: {len(lines)} results for {want} examples:\n"
                             f"{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    results, pos = [], 0
    for _, examples in cases:
        rows = [[_values(o) for o in json.loads(line)]
                for line in lines[pos: pos + len(examples)]]
        results.append(rows)
        pos += len(examples)
    return results, kernels


def _values(o: list) -> np.ndarray:
    """One output's values: int64, or float64 for a float32 output (DEQUANTIZE's reals)."""
    floats = any(isinstance(v, float) for v in o)
    return np.array(o, dtype=np.float64 if floats else np.int64)


def invoke_batch(model: bytes, examples: list[list[np.ndarray]], interpreter: str,
                 heap: int | None = None, fast: bool = True,
                 reset: bool | list[list[bool]] = True) -> list[list[np.ndarray]]:
    """The raw outputs of one model for each example."""
    return invoke_models([(model, examples)], interpreter, heap, fast, reset)[0]
