"""One candidate of `tinyrt search`, end to end (a Dask task): train, quantize, cluster, write
the model file, then measure it as the board would see it.

- accuracy: the model file run by tinyrt on the MicroPython unix port (bit-exact with the
  boards) over the validation split (`accuracy`, what the search ranks by) and the test split
  (`test_accuracy`, reported, never used to choose);
- instructions per invoke: measured on the emulated Cortex-M0 (host_sim.bench on "m0", the
  RP2040's instruction set, asm_thumb twins), with each layer's count (the cost model's
  calibration data);
- flash and RAM: boards.fit, the runtime's own figures (RAM measured on m0 by bisection, scaled
  to the board; flash in whole filesystem blocks of the model file plus the runtime).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import numpy as np

from . import search_space

LR_INT8, LR_BINARY = 3e-3, 1e-2  # Adam learning rates (the demo's for each kind of model)
EVAL_VERSION = 1  # part of the cache key: bump when a candidate's figures would change


@dataclass
class Dataset:
    """Float inputs (N, ...) and integer labels, split three ways."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    @property
    def n_classes(self) -> int:
        return int(max(self.y_train.max(), self.y_val.max(), self.y_test.max())) + 1

    @property
    def input_range(self) -> tuple[float, float]:
        return float(self.x_train.min()), float(self.x_train.max())

    @property
    def image(self) -> bool:
        """Whether CNNs apply: inputs are (H, W, C)."""
        return len(self.input_shape) == 3

    def fingerprint(self) -> list:
        return [self.name, list(self.input_shape), len(self.x_train), len(self.x_val),
                float(self.x_train.sum()), int(self.y_train.sum())]


def load_dataset(spec: str) -> Dataset:
    """`digits` (scikit-learn's, the demo's train/test split) or `X.npy,Y.npy` (25% held out
    for test, stratified, random_state 0). In both, 20% of the training part is the
    validation split the search ranks candidates by."""
    from sklearn.model_selection import train_test_split

    if spec == "digits":
        from .demo import load_digits_split

        xtr, xte, ytr, yte = load_digits_split()
    else:
        from .cli_args import InputError, load_array

        parts = spec.split(",")
        if len(parts) != 2:
            raise InputError(f"--dataset {spec!r}: expected digits or X.npy,Y.npy")
        x = load_array(parts[0], ("x",)).astype(np.float32)
        y = load_array(parts[1], ("y", "label", "labels")).astype(np.int64).ravel()
        if len(x) != len(y) or len(x) < 20:
            raise InputError(f"--dataset: {len(x)} inputs and {len(y)} labels; expected as "
                             "many of each, at least 20")
        if x.ndim == 3:
            x = x[..., None]  # (N, H, W) images: one channel
        if y.min() < 0:
            raise InputError("--dataset: labels must be class numbers 0, 1, ...")
        xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.25, random_state=0,
                                              stratify=y)
    xtr, xval, ytr, yval = train_test_split(xtr, ytr, test_size=0.2, random_state=0,
                                            stratify=ytr)
    return Dataset(spec if spec == "digits" else "npy", xtr, ytr, xval, yval, xte, yte)


def with_validation_trained(data: Dataset) -> Dataset:
    """`data` whose training split also holds the validation split: the chosen model's
    final training (the validation split stays, now seen in training; the test split is
    what tells)."""
    return dataclasses.replace(
        data, x_train=np.concatenate([data.x_train, data.x_val]),
        y_train=np.concatenate([data.y_train, data.y_val]))


def _one_thread():
    from .demo import _blas_one_thread

    return _blas_one_thread()


def quantized(config: dict, data: Dataset, seed: int, epochs: int, report: bool = False):
    """(float model, ptq.QuantizedModel, model file bytes) of `config` trained for `epochs`
    (0: untrained, enough for its structure)."""
    from converter import cluster, ptq, writer
    from converter.train import train

    model = search_space.build(config, data.input_shape, data.n_classes, seed)
    if epochs:
        lr = LR_BINARY if any(config["binary"]) else LR_INT8
        with _one_thread():
            train(model, data.x_train, data.y_train, epochs=epochs, lr=lr, seed=seed)
        calib = data.x_train
    else:
        calib = data.x_train[:32]
    q = ptq.quantize(model, calib, input_range=data.input_range, report=report,
                     bias_correction=bool(epochs))
    g = q.graph
    if config["cluster"]:
        g, _ = cluster.cluster_graph(g, config["cluster"])
    return model, q, writer.serialize(g)


def layer_shapes(model: bytes) -> list[dict]:
    """Per operator: op name, MACs, input and output elements (the cost model's features)."""
    from converter.inspect_model import describe

    from .runner import op_macs

    d = describe(model)
    macs = op_macs(d)
    out = []
    for o, m in zip(d["operators"], macs):
        size = [int(np.prod(d["tensors"][t]["shape"])) for t in (o["inputs"][0],
                                                                  o["outputs"][0])]
        p = o["params"]
        if o["name"] == "FULLY_CONNECTED_LUT":  # params end with bits, n_out, n_in
            m = size[1] * p[4]
        elif o["name"] == "CONV_2D_LUT":  # params[9:13]: the weights' (Cout, KH, KW, Cin)
            m = size[1] * p[10] * p[11] * p[12]
        out.append({"op": o["name"], "macs": int(m), "in": size[0], "out": size[1]})
    return out


def _accuracy(model: bytes, q, data: Dataset) -> tuple[float, float]:
    from .device import invoke_models

    xs = [q.quantize_input(data.x_val), q.quantize_input(data.x_test)]
    outs = invoke_models([(model, [[x] for x in xs[0]]), (model, [[x] for x in xs[1]])],
                         "unix")
    accs = []
    for rows, y in zip(outs, (data.y_val, data.y_test)):
        pred = np.array([int(np.argmax(r[0])) for r in rows])
        accs.append(float(np.mean(pred == y)))
    return accs[0], accs[1]


def evaluate(config: dict, data: Dataset, seed: int, epochs: int, board: str,
             full_report: bool = False) -> dict:
    """Everything the search knows of one candidate (JSON-able, plus the model bytes under
    "model"). Raises on any failure: the caller logs it."""
    from boards import get
    from boards.fit import fit

    from .bench import benchmark

    t0 = time.perf_counter()
    if config["family"] == "cnn" and not data.image:
        raise ValueError(f"{search_space.label(config)}: a CNN needs (H, W, C) inputs, the "
                         f"data set's are {data.input_shape}")
    fmodel, q, model = quantized(config, data, seed, epochs, report=full_report)
    t_train = time.perf_counter() - t0
    float_acc = float(np.mean(fmodel.predict(data.x_val) == data.y_val))
    acc, test_acc = _accuracy(model, q, data)
    bench = benchmark(model, "m0", runs=1)
    shapes = layer_shapes(model)
    for s, lr in zip(shapes, bench["layers"]):
        s["instructions"] = lr["instructions"]
    profile = get(board)
    f = fit(model, profile, "best.trt")
    streamed = f.layout.streamable
    out = {
        "config": config, "label": search_space.label(config),
        "accuracy": acc, "test_accuracy": test_acc, "float_accuracy": float_acc,
        "instructions_per_invoke": int(bench["instructions_per_invoke"]),
        "latency_ms_estimate": bench["instructions_per_invoke"] / profile.clock_hz * 1000,
        "flash_bytes": len(model), "flash_fs_bytes": f.flash_needed,
        "ram_bytes": f.ram_needed(False),
        "ram_streamed_bytes": f.ram_needed(True) if streamed else None,
        "verdict": f.verdict, "macs": int(bench["macs"]),
        "arena_bytes": int(bench["arena_bytes"]), "layers": shapes,
        "train_seconds": t_train, "seconds": time.perf_counter() - t0,
        "model": model,
    }
    if full_report:
        from converter import ptq

        out["report"] = {"quantization": ptq.format_report(q.report), "fit": f.report()}
    return out

