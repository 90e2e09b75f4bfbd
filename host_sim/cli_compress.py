"""`tinyrt compress MODEL -o OUT.trt [--lossless] [--cluster BITS]`: weight sharing
(converter/cluster.py) and lossless zlib coding of the whole file (converter/compress.py), with
the size table (file bytes against the .tflite, per layer) and, given inputs and labels, the
accuracy before and after. With --lossless, each clustered layer is kept as LUT indices or
decoded to int8 weights, whichever deflates smaller (the outputs are the same)."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from .cli_args import EXIT_OK, InputError, fail, load_array


def source_graph(path: Path, calib):
    """A .trt, an int8 .tflite, or a float .npz (quantized with `calib`) as a Graph."""
    from converter import cluster

    data = path.read_bytes()
    if data[:4] == b"TNRT":
        return cluster.graph_from_file(data)
    if path.suffix == ".tflite":
        from converter.tflite_import import import_tflite

        return import_tflite(data, path.name)
    from converter import ptq

    if calib is None:
        raise InputError(f"{path}: a float model needs --calib X.npy to be quantized")
    return ptq.quantize(ptq.load_float_model(str(path)), calib).graph


def accuracy(model: bytes, x: np.ndarray, labels: np.ndarray, interpreter: str) -> float:
    """Top-1 accuracy of a model file's first output over raw int8 inputs x."""
    from .runner import run

    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "model.trt"
        p.write_bytes(model)
        outs, _ = run(p, x, interpreter)
    pred = np.argmax(outs[0].reshape(len(labels), -1), axis=1)
    return float(np.mean(pred == labels))


def size_table(before: int, after: int, tflite: int | None, sizes) -> list[str]:
    lines = [f"  {'layer':<34} {'op':<16} {'weights':>7} {'int8 B':>7} {'LUT B':>6} "
             f"{'ratio':>6} {'levels':>6} {'rms err':>7}"] if sizes else []
    for s in sizes:
        name = s.name if len(s.name) <= 34 else "…" + s.name[-33:]
        lines.append(f"  {name:<34} {s.op:<16} {s.weights:>7,} {s.int8_bytes:>7,} "
                     f"{s.lut_bytes:>6,} {s.lut_bytes / s.int8_bytes:>6.3f} {s.levels:>6} "
                     f"{s.rms_error:>7.2f}")
    lines.append(f"  file bytes {before:,} -> {after:,} ({after / before:.3f}x)"
                 + (f"; the .tflite has {tflite:,} ({after / tflite:.3f}x)" if tflite else ""))
    return lines


def compress_output(path: Path, src: Path | None = None) -> str:
    """Rewrite the model file at `path` losslessly compressed; one line saying what it took."""
    from converter.cluster import graph_from_file
    from converter.compress import compress_graph

    plain = path.read_bytes()
    z = compress_graph(graph_from_file(plain))
    path.write_bytes(z)
    tfl = src.stat().st_size if src is not None and src.suffix == ".tflite" else None
    return (f"{path}: compressed {len(plain):,} -> {len(z):,} bytes ({len(z) / len(plain):.3f}x"
            + (f"; {len(z) / tfl:.3f}x the .tflite" if tfl else "") + "), decoded at load")


def pruned_graph(args: argparse.Namespace, src: Path, calib: np.ndarray | None):
    """--prune / --channels: the float .npz model pruned, fine-tuned on --train (and, with
    --cluster, weights shared) then quantized; (graph, clustered layer sizes)."""
    from converter import ptq
    from converter.prune import compressed_demo_graph

    if src.suffix != ".npz":
        raise InputError("--prune and --channels fine-tune a float model: give its .npz "
                         "(FloatModel.save; the demo's and tinyrt quantize's)")
    if not args.train or not args.train_labels:
        raise InputError("--prune and --channels need --train X.npy --train-labels Y.npy "
                         "(fine-tuning data)")
    xt = load_array(args.train, ("x",)).astype(np.float32)
    yt = load_array(args.train_labels, ("label", "labels")).astype(np.int64).ravel()
    model = ptq.load_float_model(str(src))
    del calib  # the fine-tuning inputs calibrate the pruned model
    return compressed_demo_graph(model, xt, yt, args.prune or 0.0, args.channels or 0.0,
                                 args.cluster, epochs=args.epochs, grid=args.grid,
                                 scale_bits=args.scale_bits)


def prune_fraction(text: str):
    """--prune: a fraction, or layer=fraction pairs separated by commas."""
    try:
        if "=" not in text:
            return float(text)
        return {k.strip(): float(v) for k, v in (kv.split("=") for kv in text.split(","))}
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a fraction (0.7) or layer="
                                         "fraction pairs (conv2=0.7,fc=0.8)") from None


def cmd_compress(args: argparse.Namespace) -> int:
    from converter import cluster, writer
    from converter.compress import compress_graph

    src = Path(args.model)
    try:
        calib = load_array(args.calib, ("x",)) if args.calib else None
        if calib is None and args.train:
            calib = load_array(args.train, ("x",)).astype(np.float32)
        x = load_array(args.eval, ("x",)) if args.eval else None
        labels = load_array(args.labels, ("label", "labels")) if args.labels else None
        if (x is None) != (labels is None):
            raise InputError("--eval and --labels go together")
        if not src.is_file():
            raise InputError(f"cannot read {src}: no such file")
        pruning = args.prune is not None or args.channels is not None
        if pruning:
            g, pruned_sizes = pruned_graph(args, src, calib)
        else:
            g = source_graph(src, calib)
    except InputError as e:
        return fail(str(e))
    except (ValueError, KeyError) as e:
        return fail(f"{src}: {e}")
    if args.strip_names:
        g.strip_names()
    if args.cluster is None and not args.lossless and not pruning:
        return fail("nothing to do: give --cluster BITS, --prune F and/or --lossless")
    if pruning:  # compare with the int8 model quantized from the unpruned float one
        before_g = source_graph(src, calib)
        if args.strip_names:
            before_g.strip_names()
        before = writer.serialize(before_g)
    else:
        before = writer.serialize(g)
    new, sizes = g, []
    if pruning:
        sizes = pruned_sizes
    elif args.cluster is not None:
        try:
            new, sizes = cluster.cluster_graph(g, args.cluster, args.min_weights)
        except ValueError as e:
            return fail(str(e))
    if args.lossless and sizes:
        from converter.compress import smallest_graph

        new, written = smallest_graph(new, args.minimal)
        after = writer.serialize(new)
    else:
        after = writer.serialize(new)
        written = compress_graph(new, args.minimal) if args.lossless else after
        if args.minimal and not args.lossless:
            from converter.compress import drop_sections, slim_graph

            written = drop_sections(writer.serialize(slim_graph(new)))
    Path(args.output).write_bytes(written)
    tflite = src.stat().st_size if src.suffix == ".tflite" else None
    if args.cluster is not None:
        print(f"{args.output}: {len(sizes)} layers clustered to {1 << args.cluster} levels "
              f"({args.cluster}-bit indices)")
    if args.lossless:
        n_lut = sum(op.opcode in cluster._DECODED for op in new.ops)
        print(f"{args.output}: the model file ({len(after):,} B) compressed losslessly to "
              f"{len(written):,} B, decoded at load"
              + (f"; {n_lut} of {len(sizes)} clustered layers kept as LUT indices, the others "
                 "as int8 (smaller deflated)" if sizes else ""))
    print("\n".join(size_table(len(before), len(written), tflite, sizes)))
    if x is not None:
        if x.dtype.kind == "f":
            from converter.inspect_model import describe

            from .cli_run import quantize_inputs

            x = quantize_inputs(x, describe(before)["inputs"][0])
        y = labels.astype(np.int64).ravel()
        a0 = accuracy(before, x, y, args.interpreter)
        a1 = accuracy(written, x, y, args.interpreter)
        print(f"  accuracy {a0:.4f} -> {a1:.4f} ({100 * (a1 - a0):+.2f} points, {len(y)} "
              f"inputs on {args.interpreter})")
    return EXIT_OK


def add_parser(add) -> None:
    p = add("compress", "smaller model files: cluster FULLY_CONNECTED / CONV_2D weights to "
            "b-bit indices + an int8 codebook per layer, and/or code the file losslessly "
            "(size table; accuracy with --eval)")
    p.add_argument("model", help="MODEL.trt, an int8 .tflite, or a float .npz (with --calib)")
    p.add_argument("-o", "--output", required=True, help="OUT.trt to write")
    p.add_argument("--cluster", type=int, choices=range(2, 7), metavar="BITS",
                   help="index width, 2..6 bits (2^BITS shared weights per layer)")
    p.add_argument("--lossless", action="store_true", help="code the whole file with zlib "
                   "(decoded at load on the board into RAM; outputs unchanged)")
    p.add_argument("--prune", type=prune_fraction, metavar="FRACTION", help="magnitude "
                   "pruning: this fraction of each FC / CONV_2D layer's weights set to zero "
                   "(or per layer: conv2=0.7,fc=0.8; layers not named are not pruned), "
                   "fine-tuned (a float .npz model and --train data); with --cluster, weights "
                   "shared in float and fine-tuned so, then quantized per tensor")
    p.add_argument("--channels", type=float, metavar="FRACTION", help="channel pruning: this "
                   "fraction of each CONV_2D's output channels removed (smallest L1), fine-tuned")
    p.add_argument("--grid", type=int, metavar="N", help="with --prune and --cluster: the "
                   "shared weights kept on the integers -N..N times one scale per layer while "
                   "fine-tuned (e.g. 15: small int8 weights and int32 biases, which deflate)")
    p.add_argument("--scale-bits", type=int, metavar="B", help="with --prune: the activation "
                   "scales (not the input's) rounded up to B significant bits (e.g. 5)")
    p.add_argument("--train", metavar="X.npy", help="fine-tuning inputs (real values) for "
                   "--prune / --channels; also the calibration inputs by default")
    p.add_argument("--train-labels", metavar="Y.npy", help="class labels of --train")
    p.add_argument("--epochs", type=int, default=10, help="fine-tuning epochs per step "
                   "(default 10)")
    p.add_argument("--min-weights", type=int, default=None, metavar="N",
                   help="cluster layers of at least N weights (default: those where it "
                   "makes the file smaller)")
    p.add_argument("--strip-names", action="store_true",
                   help="drop the tensor names but the inputs' and outputs' (smaller file)")
    p.add_argument("--minimal", action="store_true",
                   help="drop the optional NAMES and METADATA sections (names, labels, "
                   "converter version), keep a per-tensor layer's requantization table as one "
                   "row, drop a RESHAPE before FULLY_CONNECTED: the smallest file")
    p.add_argument("--calib", metavar="X.npy", help="calibration inputs (a float .npz model)")
    p.add_argument("--eval", metavar="X.npy", help="inputs for accuracy before/after: raw "
                   "int8 values, or real ones (quantized with the input's scale)")
    p.add_argument("--labels", metavar="Y.npy", help="class labels of --eval")
    p.add_argument("--interpreter", default="unix", help="where accuracy is measured "
                   "(default unix)")
    p.set_defaults(func=cmd_compress)
