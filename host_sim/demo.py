"""`tinyrt demo`: the whole product end to end on a real data set, no board and no TensorFlow.

1. Train (numpy, converter.train) two small CNNs on scikit-learn's bundled digits (8x8 images;
   the split of ../shared/models: train_test_split(images / 16, labels, test_size=0.25,
   random_state=0)): an int8 CNN and a binary variant whose middle convolutions are binary
   (XNOR / popcount, Larq Compute Engine semantics), trained binary from the start with the
   straight-through estimator (converter.train; binarizing a float-trained layer afterwards
   predicts at chance, and `tinyrt quantize --binary` refuses it). Trained weights are cached
   (the cache directory below) and reused on the next run.
2. Quantize both (converter.ptq: int8 post-training quantization calibrated on the training
   images; the binary layers through converter.layers.binary) and write the model files.
3. Run the test images through the runtime on the host simulator (CPython) and on the
   MicroPython unix port with a board-sized heap (invoke() under heap_lock), a subset on the
   32-bit WASI build, and time invoke() on the MicroPython ports.
4. Print test accuracy (float, simulated int8, on the device), latency, arena and file bytes,
   and whether every interpreter gave the same outputs to the bit.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from converter import float_model as fm
from converter import ptq
from converter.inspect_model import describe

from .device import invoke_models
from .interpreters import run
from .runner import BINARY_MAC_OPS, op_macs

HEAP = 192 * 1024  # bytes: a board's free heap (ESP32 / RP2040 after boot, roughly)
TRAIN_VERSION = 1  # bump when training changes: old cache entries are then ignored

# name -> (layers, epochs, Adam learning rate); build_model() makes them
ARCHS = {
    "cnn_int8": ("conv3x3x8-maxpool-conv3x3x16-maxpool-fc10 (int8)", 30, 3e-3),
    "cnn_binary": ("conv3x3x32-bn-maxpool-bconv3x3x32-bn-bconv3x3x32-bn-maxpool-fc10 "
                   "(binary middle)", 15, 1e-2),
}

# Loads each model and prints one JSON line per model: the heap held by a second load() once
# collected (the model's own: file buffer, parsed records, arena, prepared kernels; the first
# load imported the kernel modules), on unix only as the WASI build must not gc.collect() here,
# and microseconds per invoke() over at least RUNS invokes and MIN_US microseconds.
LATENCY = r"""
import gc, json, sys, tinyrt
from time import ticks_us, ticks_diff
wasi = getattr(sys.implementation, "_build", "") == "wasi"
for name in NAMES:
    m = tinyrt.load(name)
    used = -1
    if not wasi:
        m = None
        gc.collect()
        free0 = gc.mem_free()
        m = tinyrt.load(name)
        gc.collect()
        used = free0 - gc.mem_free()
    m.invoke()
    n = 0
    t0 = ticks_us()
    while n < RUNS or ticks_diff(ticks_us(), t0) < MIN_US:
        m.invoke()
        n += 1
    us = ticks_diff(ticks_us(), t0) / n
    print(json.dumps([name, used, us]))
    m = None
"""


def cache_dir() -> Path:
    """$TINYRT_CACHE, else $XDG_CACHE_HOME/tinyrt, else ~/.cache/tinyrt."""
    if os.environ.get("TINYRT_CACHE"):
        return Path(os.environ["TINYRT_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "tinyrt"


def load_digits_split():
    """(x_train, x_test, y_train, y_test): images / 16 as (N, 8, 8, 1) float32."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    xtr, xte, ytr, yte = train_test_split(d.images / 16, d.target, test_size=0.25,
                                          random_state=0)
    return (xtr.reshape(-1, 8, 8, 1).astype(np.float32),
            xte.reshape(-1, 8, 8, 1).astype(np.float32), ytr, yte)


def _bn(c: int) -> fm.BatchNorm:
    one, zero = np.ones(c, np.float32), np.zeros(c, np.float32)
    return fm.BatchNorm(one, zero, zero.copy(), one.copy(), name=None)


def build_model(name: str, seed: int = 0) -> fm.FloatModel:
    """The untrained demo model `name` (ARCHS)."""
    from converter.train import glorot

    rng = np.random.default_rng(seed)

    def w(shape):
        fan_in = int(np.prod(shape[1:]))
        return glorot(rng, shape, fan_in, shape[0] * fan_in // shape[-1])

    labels = [str(d) for d in range(10)]
    if name == "cnn_int8":
        layers = [fm.Conv2D(w((8, 3, 3, 1)), np.zeros(8), activation="relu", name="conv1"),
                  fm.MaxPool2D(2, name="pool1"),
                  fm.Conv2D(w((16, 3, 3, 8)), np.zeros(16), activation="relu", name="conv2"),
                  fm.MaxPool2D(2, name="pool2"), fm.Flatten(name="flatten"),
                  fm.Dense(w((10, 64)), np.zeros(10), name="fc"), fm.Softmax(name="softmax")]
    elif name == "cnn_binary":
        layers = [fm.Conv2D(w((32, 3, 3, 1)), None, name="conv1"), _bn(32),
                  fm.MaxPool2D(2, name="pool1"),
                  fm.Conv2D(w((32, 3, 3, 32)), None, binary=True, name="bconv2"), _bn(32),
                  fm.Conv2D(w((32, 3, 3, 32)), None, binary=True, name="bconv3"), _bn(32),
                  fm.MaxPool2D(2, name="pool3"), fm.Flatten(name="flatten"),
                  fm.Dense(w((10, 128)), np.zeros(10), name="fc"), fm.Softmax(name="softmax")]
    else:
        raise KeyError(f"no demo model {name!r} (models: {', '.join(ARCHS)})")
    return fm.FloatModel((8, 8, 1), layers, labels, f"tinyrt demo {name}: {ARCHS[name][0]}")


def _blas_one_thread():
    """Tiny matrices train fastest on one BLAS thread (and do not fight other processes)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return nullcontext()
    return threadpool_limits(1)


def trained_model(name: str, xtr, ytr, cache: Path | None, log=print) -> tuple[
        fm.FloatModel, float | None]:
    """The trained demo model `name` from the cache, or trained now (then cached): (model,
    training seconds or None when it came from the cache)."""
    from converter.train import train

    _, epochs, lr = ARCHS[name]
    key = hashlib.sha256(json.dumps([TRAIN_VERSION, name, ARCHS[name], len(xtr),
                                     float(xtr.sum())]).encode()).hexdigest()[:12]
    path = cache / f"demo-{name}-{key}.npz" if cache else None
    if path is not None and path.exists():
        try:
            return fm.FloatModel.load(path), None
        except (OSError, ValueError, KeyError) as e:
            log(f"  ignoring unreadable cache entry {path}: {e}")
    t = time.perf_counter()
    with _blas_one_thread():
        model = train(build_model(name), xtr, ytr, epochs=epochs, lr=lr)
    seconds = time.perf_counter() - t
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            model.save(tmp)
            tmp.replace(path)
        except OSError as e:
            log(f"  cannot cache {path}: {e.strerror or e}")
    return model, seconds


@dataclass
class DemoModel:
    name: str
    float_model: fm.FloatModel
    quantized: ptq.QuantizedModel
    model_bytes: bytes
    info: dict
    train_seconds: float | None
    float_acc: float = 0.0
    sim_acc: float = 0.0
    device_acc: float = 0.0
    outputs: dict = field(default_factory=dict)  # interpreter -> (N, 10) raw int8
    latency_us: dict = field(default_factory=dict)  # interpreter -> us per invoke
    heap_used: int | None = None

    @property
    def macs(self) -> tuple[int, int]:
        """(int8 MACs, binary MACs) per inference."""
        macs = op_macs(self.info)
        binary = sum(m for m, o in zip(macs, self.info["ops"]) if o in BINARY_MAC_OPS)
        return sum(macs) - binary, binary

    @property
    def binary_weight_bytes(self) -> tuple[int, int]:
        """(bytes of the binary layers' packed weights, bytes as int8)."""
        packed = int8 = 0
        for o in self.info["operators"]:
            if o["name"] in BINARY_MAC_OPS:
                t = self.info["tensors"][o["inputs"][1]]
                packed += t["nbytes"]
                int8 += int(np.prod(t["shape"]))
        return packed, int8


def run_demo(n_cpython: int | None = None, n_wasm: int = 50, heap: int = HEAP,
             cache: Path | None = None, use_cache: bool = True, calibration: str = "minmax",
             latency_runs: int = 5, latency_us: int = 300_000, log=print) -> dict:
    """The demo's work; returns its figures (main() prints them). n_cpython: test images
    run on the host simulator (None: all); n_wasm: on the WASI build. All of them run on the
    unix port, whose outputs give the accuracy."""
    t_start = time.perf_counter()
    xtr, xte, ytr, yte = load_digits_split()
    cache = (cache or cache_dir()) if use_cache else None
    log(f"digits (scikit-learn): {len(xtr)} training / {len(xte)} test images, 8x8, "
        "pixels in [0, 1]")
    models = []
    for name in ARCHS:
        fmodel, secs = trained_model(name, xtr, ytr, cache, log)
        how = (f"trained in {secs:.1f} s ({ARCHS[name][1]} epochs, numpy)" if secs is not None
               else f"trained weights from the cache ({cache})")
        log(f"  {name}: {ARCHS[name][0]}; {how}")
        q = ptq.quantize(fmodel, xtr, calibration=calibration, input_range=(0.0, 1.0))
        b = q.model_bytes
        dm = DemoModel(name, fmodel, q, b, describe(b), secs)
        dm.float_acc = float(np.mean(fmodel.predict(xte) == yte))
        dm.sim_acc = float(np.mean(q.simulate(xte).argmax(axis=1) == yte))
        models.append(dm)
        if cache is not None:
            try:
                (cache / f"demo_{name}.trt").write_bytes(b)
            except OSError:
                pass
    t_convert = time.perf_counter()

    xq = models[0].quantized.quantize_input(xte)  # both models: scale 1/255, zero point -128
    n_cpython = len(xte) if n_cpython is None else min(n_cpython, len(xte))
    n_wasm = min(n_wasm, len(xte))

    def outputs(interp: str, n: int, fast: bool, h: int | None):
        cases = [(m.model_bytes, [[x] for x in xq[:n]]) for m in models]
        return [np.stack([r[0] for r in rows]) for rows in invoke_models(cases, interp, h, fast)]

    def latency(interp: str, h: int | None):
        files = {f"{m.name}.trt": m.model_bytes for m in models}
        code = (LATENCY.replace("NAMES", repr([f"{m.name}.trt" for m in models]))
                .replace("MIN_US", str(latency_us)).replace("RUNS", str(latency_runs)))
        return [json.loads(line) for line in run(code, interp, heap=h, files=files)
                .stdout.split("\n") if line.strip()]

    # The three interpreters run side by side; the timings come after, alone. The WASI build
    # runs with its default 4 MiB heap: with a board-sized heap its collector (which misses
    # objects held only in wasm locals) runs during the harness's JSON work and breaks it.
    with ThreadPoolExecutor(max_workers=3) as pool:
        jobs = {"cpython": pool.submit(outputs, "cpython", n_cpython, False, None),
                "unix": pool.submit(outputs, "unix", len(xte), True, heap),
                "wasm": pool.submit(outputs, "wasm", n_wasm, False, None)}
        results = {k: f.result() for k, f in jobs.items()}
    results["lat_unix"] = latency("unix", heap)
    results["lat_wasm"] = latency("wasm", None)
    for i, m in enumerate(models):
        for interp in ("cpython", "unix", "wasm"):
            m.outputs[interp] = results[interp][i]
        m.device_acc = float(np.mean(m.outputs["unix"].argmax(axis=1) == yte))
        _, m.heap_used, m.latency_us["unix"] = results["lat_unix"][i]
        m.latency_us["wasm"] = results["lat_wasm"][i][2]
    t_end = time.perf_counter()
    return {"models": models, "n_test": len(xte), "n_cpython": n_cpython, "n_wasm": n_wasm,
            "heap": heap, "cache": cache, "calibration": calibration,
            "seconds": {"prepare": t_convert - t_start, "run": t_end - t_convert,
                        "total": t_end - t_start}}


def bit_exact(m: DemoModel) -> dict[str, bool]:
    """Per MicroPython port: its outputs equal the host simulator's on the images both ran."""
    ref = m.outputs["cpython"]
    out = {}
    for interp in ("unix", "wasm"):
        n = min(len(ref), len(m.outputs[interp]))
        out[interp] = bool(np.array_equal(ref[:n], m.outputs[interp][:n]))
    return out


def print_results(r: dict) -> None:
    models = r["models"]
    print()
    for m in models:
        print(f"quantization report, {m.name} ({r['calibration']} calibration on the training "
              "images):")
        print("  " + ptq.format_report(m.quantized.report).replace("\n", "\n  "))
        print()
    n_test = r["n_test"]
    head = (f"{'model':<11} {'float':>6} {'tinyrt':>7} {'int8 MACs':>10} {'bin MACs':>9} "
            f"{'unix us':>8} {'wasm us':>8} {'arena B':>8} {'file B':>7} {'heap B':>7}")
    print(f"test accuracy on {n_test} images (float: numpy; tinyrt: the model file on the "
          f"MicroPython unix port, {r['heap'] // 1024} KiB heap) and time per invoke()")
    print(head)
    print("-" * len(head))
    for m in models:
        i8, b = m.macs
        print(f"{m.name:<11} {m.float_acc:>6.3f} {m.device_acc:>7.3f} {i8:>10,} {b:>9,} "
              f"{m.latency_us['unix']:>8.0f} {m.latency_us['wasm']:>8.0f} "
              f"{m.info['arena_bytes']:>8,} {m.info['file_bytes']:>7,} {m.heap_used:>7,}")
    for m in models:
        packed, int8 = m.binary_weight_bytes
        if packed:
            print(f"{m.name}: binary layers' weights {packed:,} B packed ({int8:,} B as int8); "
                  f"accuracy {m.device_acc - models[0].device_acc:+.3f} vs {models[0].name}")
    print("unix: x86-64, viper kernels where they exist; wasm: 32-bit bytecode (31-bit small "
          "ints as on ESP32/RP2040)\nheap B: what a loaded model holds on the unix port (file "
          "buffer, parsed tables, arena, prepared kernels)")
    print()
    ok = True
    for m in models:
        ex = bit_exact(m)
        ok &= all(ex.values())
        print(f"bit-exact {m.name}: host simulator (cpython, reference kernels, "
              f"{r['n_cpython']} images) = unix ({n_test}): {'yes' if ex['unix'] else 'NO'}, "
              f"= wasm ({r['n_wasm']}): {'yes' if ex['wasm'] else 'NO'}")
    s = r["seconds"]
    where = f"; model files and cached weights in {r['cache']}" if r["cache"] else ""
    print(f"time: {s['prepare']:.1f} s training/loading + quantizing, {s['run']:.1f} s on the "
          f"interpreters, {s['total']:.1f} s in all{where}")
    r["ok"] = ok


def main(n_cpython: int | None = None, n_wasm: int = 50, heap: int = HEAP,
         use_cache: bool = True, calibration: str = "minmax") -> int:
    try:
        import sklearn  # noqa: F401
    except ImportError:
        print("tinyrt demo needs scikit-learn (its bundled digits data set): pip install "
              "'tinyrt[test]' or pip install scikit-learn", file=sys.stderr)
        return 2
    r = run_demo(n_cpython, n_wasm, heap, use_cache=use_cache, calibration=calibration)
    print_results(r)
    return 0 if r["ok"] else 1
