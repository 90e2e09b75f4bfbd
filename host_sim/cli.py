"""The `tinyrt` command: inspect, convert, run and benchmark models on the host."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import tinyrt


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
        print(f"    {t['index']:3d} {t['name']:<28} {t['dtype']:<7} {str(tuple(t['shape'])):<18} "
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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tinyrt", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    info = sub.add_parser("info", help="print a model file's contents")
    info.add_argument("model")
    info.add_argument("--json", action="store_true", help="one JSON object")
    info.set_defaults(func=cmd_info)
    demo = sub.add_parser("demo", help="run the end-to-end demo on the host simulator")
    demo.set_defaults(func=cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
