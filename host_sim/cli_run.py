"""`tinyrt run` and `tinyrt eval`: batches of inputs through a model file on one interpreter,
raw or real (quantized with the model's input scale and zero point), and the accuracy of the
predictions against labels."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from .cli_args import (EXIT_CODES, EXIT_OK, EXIT_USAGE, InputError, fail, heap_bytes,
                       load_array)
from .interpreters import INTERPRETERS

DEFAULT_INTERPRETER = "unix"  # fast (viper) and a real MicroPython; cpython is ~100x slower
PROB_OPS = ("SOFTMAX", "LOGISTIC")  # outputs that are probabilities once dequantized


def quantize_inputs(x: np.ndarray, spec: dict) -> np.ndarray:
    """Real inputs -> the model input's int8 values: round(x / scale) + zero_point, saturated
    (round half to even, as the board's Tensor.quantize)."""
    if spec["dtype"] != "int8":
        raise InputError(f"--float-input: the model input {spec['name']!r} is {spec['dtype']}; "
                         "only int8 inputs take real numbers")
    if x.dtype.kind not in "biuf":
        raise InputError(f"--float-input: the input array holds {x.dtype} values")
    q = np.rint(x.astype(np.float64) / spec["scale"]) + spec["zero_point"]
    return np.clip(q, -128, 127).astype(np.int8)


def _inputs(args: argparse.Namespace, d: dict) -> np.ndarray:
    x = load_array(args.input, ("x",))
    if not args.float_input:
        if x.dtype.kind == "f" and d["inputs"] and d["inputs"][0]["dtype"] == "int8":
            s = d["inputs"][0]
            raise InputError(f"{args.input} holds {x.dtype} values; tinyrt {args.command} "
                             "takes raw int8 tensor values, or real ones with --float-input "
                             f"(quantized with scale {s['scale']:.6g} and zero point "
                             f"{s['zero_point']})")
        return x
    if len(d["inputs"]) != 1:
        raise InputError(f"the model has {len(d['inputs'])} inputs; --float-input feeds one")
    return quantize_inputs(x, d["inputs"][0])


def _run(args: argparse.Namespace, x: np.ndarray) -> tuple[list[np.ndarray], dict]:
    from .runner import run

    if args.heap is not None and args.interpreter == "cpython":
        print("tinyrt: note: --heap applies to the MicroPython interpreters, not cpython",
              file=sys.stderr)
    return run(args.model, x, args.interpreter, args.heap, progress=True,
               sequence=getattr(args, "sequence", False))


def _producer(d: dict, tensor: int) -> str:
    return next((o["name"] for o in d["operators"] if tensor in o["outputs"]), "")


def _labels(d: dict) -> list[str]:
    return [str(v) for v in (d.get("metadata") or {}).get("labels") or []]


def dequantize(y: np.ndarray, spec: dict) -> np.ndarray:
    return ((y.astype(np.float64) - spec["zero_point"]) * spec["scale"]).astype(np.float32)


def cmd_run(args: argparse.Namespace) -> int:
    from .runner import RunnerError, read_model

    try:
        x = _inputs(args, read_model(args.model)[1])
        outs, d = _run(args, x)
    except (InputError, RunnerError) as e:
        return fail(str(e), getattr(e, "code", EXIT_USAGE))
    raw = outs
    if args.dequantize:
        outs = [dequantize(y, s) if s["dtype"] == "int8" else y for y, s in zip(raw, d["outputs"])]
    if args.output:
        out = Path(args.output)
        try:
            if len(outs) == 1:
                np.save(out, outs[0])
            elif out.suffix == ".npz":
                np.savez(out, **{f"output{k}": y for k, y in enumerate(outs)})
            else:
                return fail(f"the model has {len(outs)} outputs: give an .npz --output")
        except OSError as e:
            return fail(f"cannot write {out}: {e.strerror or e}")
        shapes = ", ".join(f"{'float32' if y.dtype.kind == 'f' else s['dtype']} {y.shape}"
                           for s, y in zip(d["outputs"], outs))
        print(f"ran {len(x)} inputs on {args.interpreter}; wrote {shapes} to {out}")
        return EXIT_OK
    print(f"ran {len(x)} inputs on {args.interpreter}")
    names = _labels(d)
    for spec, y, q in zip(d["outputs"], outs, raw):
        packed = spec["dtype"] == "packed"
        what = "int32 words of packed bits" if packed else spec["dtype"]
        if y.dtype.kind == "f":
            what = f"real values (dequantized {spec['dtype']})"
        prob = _producer(d, spec["index"]) in PROB_OPS
        print(f"  output {spec['name']!r}: {what} {y.shape}, scale={spec['scale']:.6g} "
              f"zero_point={spec['zero_point']}")
        flat = y.reshape(len(y), -1)
        real = dequantize(q.reshape(len(q), -1), spec) if spec["dtype"] == "int8" else None
        for i in range(min(len(y), args.show)):
            vals = [float(f"{v:.4g}") for v in flat[i]] if y.dtype.kind == "f" \
                else flat[i].tolist()
            tail = ""
            if real is not None and flat.shape[1] > 1:
                k = int(np.argmax(real[i]))
                tail = f"  argmax {k}" + (f" {names[k]!r}" if k < len(names) else "")
                if prob:
                    tail += f" p={real[i][k]:.3f}"
            print(f"    [{i}] {vals}{tail}")
        if len(y) > args.show:
            print(f"    ... ({len(y) - args.show} more; --output Y.npy writes them all)")
    return EXIT_OK


def confusion(pred: np.ndarray, labels: np.ndarray, n: int) -> np.ndarray:
    """(n, n) counts: row = true class, column = predicted class."""
    m = np.zeros((n, n), np.int64)
    np.add.at(m, (labels, pred), 1)
    return m


def class_figures(m: np.ndarray) -> list[dict]:
    """Per class: support, precision, recall and F1 from a confusion matrix."""
    rows = []
    for c in range(len(m)):
        tp, pred, true = int(m[c, c]), int(m[:, c].sum()), int(m[c].sum())
        p = tp / pred if pred else 0.0
        r = tp / true if true else 0.0
        rows.append(dict(cls=c, support=true, precision=p, recall=r,
                         f1=2 * p * r / (p + r) if p + r else 0.0))
    return rows


def _eval_labels(args: argparse.Namespace, n: int, classes: int) -> np.ndarray:
    y = load_array(args.labels, ("label", "labels"))
    if y.ndim == 2 and y.shape[1] == classes and y.shape[1] > 1:
        y = np.argmax(y, axis=1)  # one-hot
    if y.ndim != 1 or y.dtype.kind not in "biu":
        raise InputError(f"{args.labels}: labels have shape {y.shape} and dtype {y.dtype}; "
                         "expected class indices (n,) or one-hot (n, classes)")
    if len(y) != n:
        raise InputError(f"{args.labels} holds {len(y)} labels for {n} inputs")
    if len(y) and (y.min() < 0 or y.max() >= classes):
        raise InputError(f"labels range over [{y.min()}, {y.max()}] but the model output has "
                         f"{classes} classes")
    return y.astype(np.int64)


def cmd_eval(args: argparse.Namespace) -> int:
    from .runner import RunnerError, batch_examples, read_model

    try:
        _, d = read_model(args.model)
        spec = d["outputs"][0]
        classes = int(np.prod(spec["shape"]))
        if spec["dtype"] != "int8" or classes < 2:
            raise InputError(f"output {spec['name']!r} is {spec['dtype']} {spec['shape']}; "
                             "tinyrt eval takes an int8 output of class scores")
        x = _inputs(args, d)
        batch_examples(x, d)  # shapes and ranges checked before the labels
        labels = _eval_labels(args, len(x), classes)
        outs, d = _run(args, x)
    except (InputError, RunnerError) as e:
        return fail(str(e), getattr(e, "code", EXIT_USAGE))
    pred = np.argmax(outs[0].reshape(len(labels), -1), axis=1)
    m = confusion(pred, labels, classes)
    acc = float(np.mean(pred == labels))
    figs = class_figures(m)
    if args.json:
        print(json.dumps(dict(accuracy=acc, n=len(labels), correct=int(np.trace(m)),
                              interpreter=args.interpreter, confusion=m.tolist(),
                              per_class=figs)))
        return EXIT_OK
    names = _labels(d)
    print(f"accuracy {acc:.3f} ({int(np.trace(m))}/{len(labels)} on {args.interpreter})")
    print("confusion matrix (rows: true class, columns: predicted)")
    w = max(4, len(str(int(m.max()))) + 1)
    print("      " + "".join(f"{c:>{w}}" for c in range(classes)))
    for c in range(classes):
        print(f"  {c:>3} " + "".join(f"{v:>{w}}" for v in m[c]))
    print(f"  {'class':>5} {'label':<12} {'n':>5} {'precision':>9} {'recall':>7} {'F1':>6}")
    for f in figs:
        name = names[f["cls"]] if f["cls"] < len(names) else ""
        print(f"  {f['cls']:>5} {name[:12]:<12} {f['support']:>5} {f['precision']:>9.3f} "
              f"{f['recall']:>7.3f} {f['f1']:>6.3f}")
    return EXIT_OK


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="MODEL.trt")
    p.add_argument("--input", required=True, metavar="X.npy", help="inputs, batch on axis 0: "
                   "raw int8 values (int32 words for packed), or real ones with --float-input; "
                   "FILE.npz[:KEY] reads array KEY (default x)")
    p.add_argument("--float-input", action="store_true", help="the inputs are real numbers: "
                   "quantize them with the model input's scale and zero point")
    p.add_argument("--interpreter", choices=INTERPRETERS, default=DEFAULT_INTERPRETER,
                   help=f"where to run (default {DEFAULT_INTERPRETER})")
    p.add_argument("--heap", type=heap_bytes, metavar="BYTES",
                   help="MicroPython heap size (e.g. 192k); on m0/m3 the bytes left free")


def add_parsers(sub) -> None:
    run = sub.add_parser("run", help="run inputs through a model file and print or save the "
                         "outputs", epilog=EXIT_CODES)
    _common(run)
    run.add_argument("--output", metavar="Y.npy", help="save the stacked outputs (.npz for "
                     "several outputs)")
    run.add_argument("--dequantize", action="store_true", help="real outputs: (q - "
                     "zero_point) * scale (printed and saved as float32)")
    run.add_argument("--show", type=int, default=5, metavar="N", help="inputs printed "
                     "(default 5)")
    run.add_argument("--sequence", action="store_true", help="the inputs are one sequence: "
                     "a stateful model (LSTM) carries its state from x[i] to x[i+1] (by "
                     "default each x[i] starts from zero state)")
    run.set_defaults(func=cmd_run)
    ev = sub.add_parser("eval", help="accuracy, confusion matrix and per-class figures "
                        "against labels", epilog=EXIT_CODES)
    _common(ev)
    ev.add_argument("--labels", required=True, metavar="Y.npy", help="true classes (n,) or "
                    "one-hot (n, classes); FILE.npz[:KEY] (default key label)")
    ev.add_argument("--json", action="store_true", help="one JSON object")
    ev.set_defaults(func=cmd_eval)
