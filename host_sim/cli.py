"""The `tinyrt` command: inspect, convert, run and benchmark models on the host."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import tinyrt

from .interpreters import INTERPRETERS


def _print_info(d: dict) -> None:
    print(f"tinyrt model, format {d['format_version']}: {d['file_bytes']:,} bytes "
          f"(weights {d['weight_bytes']:,} B), arena {d['arena_bytes']:,} B")
    meta = d.get("metadata") or {}
    for k in sorted(meta):
        if k != "labels":
            print(f"  {k}: {meta[k]}")
    for kind, rows in (("input", d["inputs"]), ("output", d["outputs"])):
        for r in rows:
            print(f"  {kind} {r['index']} {r['name']!r}: {r['dtype']} {tuple(r['shape'])} "
                  f"scale={r['scale']:.6g} zero_point={r['zero_point']}")
    print(f"  {len(d['operators'])} operators:")
    for i, o in enumerate(d["operators"]):
        print(f"    {i:3d} {o['name']:<18} in {o['inputs']} -> out {o['outputs']} "
              f"params {o['params']}")
    print(f"  {len(d['tensors'])} tensors:")
    for t in d["tensors"]:
        where = f"{t['storage']}@{t['offset']}"
        print(f"    {t['index']:3d} {t['name']:<28} {t['dtype']:<7} {tuple(t['shape'])!s:<18} "
              f"{t['nbytes']:>7} B {where}")


def cmd_info(args: argparse.Namespace) -> int:
    from converter.inspect_model import describe

    data = Path(args.model).read_bytes()
    try:
        tinyrt.fileformat.read_model(data)  # the board reader's verdict, with its message
        d = describe(data)
    except tinyrt.TinyrtError as e:
        print(f"tinyrt: {args.model}: {type(e).__name__}: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(d, indent=None))
    else:
        _print_info(d)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import main as demo_main

    return demo_main()


def _fail(message: str) -> int:
    print(f"tinyrt: error: {message}", file=sys.stderr)
    return 2


def cmd_convert(args: argparse.Namespace) -> int:
    from .runner import RunnerError, convert

    if args.board:
        print(f"tinyrt: note: --board {args.board} accepted but not used yet: board profiles "
              "(RAM/flash fit, latency) are not available in this version", file=sys.stderr)
    try:
        report = convert(args.model, args.output)
    except RunnerError as e:
        return _fail(str(e))
    print(report.summary())
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    import numpy as np

    from .runner import RunnerError, run

    try:
        x = np.load(args.input, allow_pickle=False)
    except (OSError, ValueError) as e:
        return _fail(f"cannot read {args.input} as a .npy array: {e}")
    if args.heap is not None and args.interpreter == "cpython":
        print("tinyrt: note: --heap applies to the MicroPython interpreters (unix, wasm), not "
              "cpython", file=sys.stderr)
    try:
        outs, d = run(args.model, x, args.interpreter, args.heap)
    except RunnerError as e:
        return _fail(str(e))
    if args.output:
        out = Path(args.output)
        try:
            if len(outs) == 1:
                np.save(out, outs[0])
            elif out.suffix == ".npz":
                np.savez(out, **{f"output{k}": y for k, y in enumerate(outs)})
            else:
                return _fail(f"the model has {len(outs)} outputs: give an .npz --output")
        except OSError as e:
            return _fail(f"cannot write {out}: {e.strerror or e}")
        shapes = ", ".join(str(y.shape) for y in outs)
        print(f"ran {len(x)} inputs on {args.interpreter}; wrote int8 {shapes} to {out}")
        return 0
    print(f"ran {len(x)} inputs on {args.interpreter}")
    for spec, y in zip(d["outputs"], outs):
        print(f"  output {spec['name']!r}: int8 {y.shape}, scale={spec['scale']:.6g} "
              f"zero_point={spec['zero_point']}")
        flat = y.reshape(len(y), -1)
        for i in range(min(len(y), 5)):
            print(f"    [{i}] {flat[i].tolist()}  argmax {int(np.argmax(flat[i]))}")
        if len(y) > 5:
            print(f"    ... ({len(y) - 5} more; --output Y.npy writes them all)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tinyrt", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    info = sub.add_parser("info", help="print a model file's contents")
    info.add_argument("model")
    info.add_argument("--json", action="store_true", help="one JSON object")
    info.set_defaults(func=cmd_info)
    conv = sub.add_parser("convert", help="convert an int8 .tflite model to a tinyrt model file")
    conv.add_argument("model", help="MODEL.tflite")
    conv.add_argument("-o", "--output", help="model file to write (default: MODEL.trt)")
    conv.add_argument("--board", help="target board (accepted; board profiles come later)")
    conv.set_defaults(func=cmd_convert)
    run = sub.add_parser("run", help="run raw int8 inputs through a model file")
    run.add_argument("model", help="MODEL.trt")
    run.add_argument("--input", required=True, help="X.npy: raw int8 inputs, batch on axis 0")
    run.add_argument("--output", help="Y.npy: the stacked raw int8 outputs")
    run.add_argument("--interpreter", choices=INTERPRETERS, default="cpython")
    run.add_argument("--heap", type=int, help="MicroPython heap size in bytes")
    run.set_defaults(func=cmd_run)
    demo = sub.add_parser("demo", help="run the end-to-end demo on the host simulator")
    demo.set_defaults(func=cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
