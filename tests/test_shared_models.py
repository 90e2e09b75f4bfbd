"""The real models of ../shared/models, imported from .tflite and run on every interpreter:
each output must equal TensorFlow Lite Micro's recorded output to the bit.

Each model is converted once (with the SOFTMAX input exposed as a second graph output, so the
logits are compared too, the plain conversion gives the arena and file figures) and every
reference input is run in one interpreter process per (model, interpreter). The table of results
is printed at the end of the module (without xdist) and kept in the pytest cache
(.pytest_cache/d/tinyrt/shared_models.md). `python -m tests.test_shared_models` prints it too.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from dataclasses import dataclass
from functools import cache

import numpy as np
import pytest
from tinyrt import opcodes

from converter.graph import Graph
from converter.inspect_model import describe
from converter.tflite_import import import_tflite
from converter.writer import serialize
from host_sim import INTERPRETERS, cli
from host_sim.device import invoke_models_with_kernels

from .conftest import SHARED_MODELS
from .kernel_harness import fast_kernel

# TFLM's recorded arena per model (../shared/models/README.md, 64-bit host).
TFLM_ARENA = {
    "hello_world_int8": 1504,
    "micro_speech_quantized": 7584,
    "kws_ref_model": 24272,
    "digits_cnn_int8": 3584,
    "digits_mlp_int8": 2048,
    "trained_lstm_int8": 4208,  # stateful: the harness reset()s before each input, as TFLM did
}
MODELS = list(TFLM_ARENA)
# Ops with an asm twin (ARM boards) and a viper twin: the one chosen is asserted per layer.
TWINNED_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
# TFLM's accuracy on the digits test set (README), reproduced from tinyrt's outputs.
ACCURACY = {"digits_cnn_int8": 0.960, "digits_mlp_int8": 0.964}
# Every reference input runs on every interpreter: the slowest model, kws_ref_model (2.66 M MACs),
# takes ~0.3 s per inference on cpython and unix and ~0.5 s on wasm, so its 20 inputs cost
# < 15 s per interpreter and no subset is needed.


@dataclass
class Converted:
    model: bytes  # the plain conversion, as `tinyrt convert` writes it
    tested: bytes  # the same graph with the softmax input as an extra output
    info: dict
    tflite_bytes: int
    has_logits: bool


def _path(name: str):
    p = SHARED_MODELS / f"{name}.tflite"
    if not p.exists():
        pytest.skip(f"{p} not present")
    return p


def expose_softmax_input(g: Graph) -> bool:
    """Append the input of the (last) SOFTMAX to the graph outputs; False if there is none."""
    soft = [op for op in g.ops if op.opcode == opcodes.SOFTMAX]
    if not soft:
        return False
    g.outputs.append(soft[-1].inputs[0])
    return True


@cache
def converted(name: str) -> Converted:
    data = _path(name).read_bytes()
    model = serialize(import_tflite(data, source_name=f"{name}.tflite"))
    g = import_tflite(data)
    has_logits = expose_softmax_input(g)
    return Converted(model, serialize(g), describe(model), len(data), has_logits)


@cache
def reference(name: str) -> dict[str, np.ndarray]:
    p = SHARED_MODELS / f"{name}_io.npz"
    if not p.exists():
        pytest.skip(f"{p} not present")
    with np.load(p) as z:
        return {k: z[k] for k in z.files}


RESULTS: dict[tuple[str, str], dict] = {}
# Rows of this session only: pytest-xdist workers share the cache and PYTEST_XDIST_TESTRUNUID.
RUN_ID = os.environ.get("PYTEST_XDIST_TESTRUNUID") or uuid.uuid4().hex


@pytest.fixture(scope="module", autouse=True)
def results_table(request):
    yield
    if not RESULTS:
        return
    cache = request.config.cache
    for (model, interp), row in RESULTS.items():
        cache.set(f"tinyrt/shared_models/{model}/{interp}", {**row, "run": RUN_ID})
    rows = {}
    for model in MODELS:
        for interp in INTERPRETERS:
            row = cache.get(f"tinyrt/shared_models/{model}/{interp}", None)
            if row is not None and row.get("run") == RUN_ID:
                rows[(model, interp)] = row
    text = format_table(rows)
    (cache.mkdir("tinyrt") / "shared_models.md").write_text(text + "\n")
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line("")
            for line in text.splitlines():
                reporter.write_line(line)


def format_table(rows: dict[tuple[str, str], dict]) -> str:
    head = ("| model | ops | " + " | ".join(f"{i} bit-exact" for i in INTERPRETERS)
            + " | tinyrt arena / TFLM arena | .trt / .tflite bytes |")
    lines = [head, "|" + "---|" * (len(INTERPRETERS) + 4)]
    for model in MODELS:
        cells = [rows.get((model, i)) for i in INTERPRETERS]
        first = next((c for c in cells if c), None)
        if first is None:
            continue
        exact = []
        for c in cells:
            if c is None:
                exact.append("-")
            else:
                acc = f", acc {c['accuracy']:.3f}" if c.get("accuracy") is not None else ""
                exact.append(f"{c['exact']}/{c['n']}{acc} ({c['seconds']:.1f} s)")
        lines.append(
            f"| {model} | {first['ops']} | " + " | ".join(exact)
            + f" | {first['arena']:,} / {first['tflm_arena']:,} | "
            f"{first['trt_bytes']:,} / {first['tflite_bytes']:,} |")
    return "\n".join(lines)


def _ops_summary(ops: list[str]) -> str:
    out: list[str] = []
    for name in dict.fromkeys(ops):
        k = ops.count(name)
        out.append(f"{name} x{k}" if k > 1 else name)
    return ", ".join(out)


@pytest.mark.parametrize("name", MODELS)
def test_shared_model_bit_exact(name: str, interpreter: str) -> None:
    conv = converted(name)
    ref = reference(name)
    x, y = ref["x"], ref["y"]
    n = len(x)
    in_shape = tuple(conv.info["inputs"][0]["shape"])
    examples = [[x[i].reshape(in_shape)] for i in range(n)]
    t0 = time.perf_counter()
    (rows,), (kernels,) = invoke_models_with_kernels([(conv.tested, examples)], interpreter)
    seconds = time.perf_counter() - t0
    for op, kernel in zip(conv.info["ops"], kernels, strict=True):
        if op in TWINNED_OPS:  # the kernel chosen is the fastest this interpreter has
            assert kernel == fast_kernel(interpreter), (name, interpreter, op, kernel)
    got = np.stack([r[0] for r in rows]).reshape(n, -1)
    want = y[:n].reshape(n, -1).astype(np.int64)
    exact = int(np.sum(np.all(got == want, axis=1)))
    if conv.has_logits and "y_logits" in ref:
        logits = np.stack([r[1] for r in rows]).reshape(n, -1)
        want_logits = ref["y_logits"][:n].reshape(n, -1).astype(np.int64)
        exact_logits = np.all(logits == want_logits, axis=1)
        exact = int(np.sum(exact_logits & np.all(got == want, axis=1)))
    accuracy = None
    if name in ACCURACY:
        accuracy = float(np.mean(np.argmax(got, axis=1) == ref["label"][:n]))
    RESULTS[(name, interpreter)] = {
        "ops": _ops_summary(conv.info["ops"]), "exact": exact, "n": n, "seconds": seconds,
        "accuracy": accuracy, "arena": conv.info["arena_bytes"],
        "tflm_arena": TFLM_ARENA[name], "trt_bytes": conv.info["file_bytes"],
        "tflite_bytes": conv.tflite_bytes, "kernels": kernels}
    np.testing.assert_array_equal(got, want, err_msg=f"{name} on {interpreter}: outputs")
    if conv.has_logits and "y_logits" in ref:
        np.testing.assert_array_equal(logits, want_logits,
                                      err_msg=f"{name} on {interpreter}: softmax input")
    if accuracy is not None:
        assert round(accuracy, 3) == ACCURACY[name]


@pytest.mark.parametrize("name", MODELS)
def test_shared_model_metadata(name: str) -> None:
    """The converted file keeps the source's hash, op list and tensor names."""
    conv = converted(name)
    meta = conv.info["metadata"]
    data = _path(name).read_bytes()
    assert meta["source_sha256"] == hashlib.sha256(data).hexdigest()
    assert meta["source"] == f"{name}.tflite"
    assert conv.info["ops"]  # every op imported; folded shape ops are listed apart
    folded = {int(s.split(":")[0]) for s in meta["folded_ops"]}
    assert len(meta["source_ops"]) == len(conv.info["ops"]) + len(folded)
    names = {t["name"] for t in conv.info["tensors"]}
    assert conv.info["inputs"][0]["name"] in names and conv.info["outputs"][0]["name"]


@pytest.mark.parametrize("name", MODELS)
def test_shared_model_info_json(name: str, tmp_path, capsys) -> None:
    """`tinyrt convert` then `tinyrt info --json`: the keys other tools rely on."""
    out = tmp_path / f"{name}.trt"
    assert cli.main(["convert", str(_path(name)), "-o", str(out)]) == 0
    capsys.readouterr()
    assert cli.main(["info", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    for key in ("format_version", "file_bytes", "arena_bytes", "weight_bytes", "ops", "inputs",
                "outputs"):
        assert key in info, key
    assert info["ops"] == converted(name).info["ops"]
    assert info["file_bytes"] == out.stat().st_size


if __name__ == "__main__":
    rows = {}
    for model in MODELS:
        for interp in INTERPRETERS:
            test_shared_model_bit_exact(model, interp)
            rows[(model, interp)] = RESULTS[(model, interp)]
            print(json.dumps({"model": model, "interpreter": interp, **rows[(model, interp)]}))
    print(format_table(rows))
