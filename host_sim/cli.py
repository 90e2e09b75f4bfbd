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

    return demo_main(use_cache=not args.no_cache, calibration=args.calibration)


def cmd_quantize(args: argparse.Namespace) -> int:
    import dataclasses
    import math

    import numpy as np

    from converter import ptq
    from converter.inspect_model import describe

    try:
        model = ptq.load_float_model(args.model)
    except (OSError, ValueError, KeyError) as e:
        return _fail(f"cannot read {args.model} as a float model (.npz or float32 .tflite): {e}")
    try:
        calib = np.load(args.calib, allow_pickle=False)
    except (OSError, ValueError) as e:
        return _fail(f"cannot read {args.calib} as a .npy array: {e}")
    binary = [s.strip() for s in (args.binary or "").split(",") if s.strip()]
    input_range = None
    if args.input_range:
        try:
            input_range = tuple(float(v) for v in args.input_range.split(","))
            assert len(input_range) == 2
        except (ValueError, AssertionError):
            return _fail(f"--input-range {args.input_range!r}: expected LO,HI")
    try:
        q = ptq.quantize(model, calib, calibration=args.calibration, percentile=args.percentile,
                         binary=binary, bias_correction=args.bias_correction,
                         input_range=input_range)
        data = q.model_bytes
    except (ValueError, KeyError) as e:
        return _fail(f"{args.model}: {e}")
    out = Path(args.output) if args.output else Path(args.model).with_suffix(".trt")
    try:
        out.write_bytes(data)
    except OSError as e:
        return _fail(f"cannot write {out}: {e.strerror or e}")
    for w in q.warnings:
        print(f"tinyrt: warning: {w}", file=sys.stderr)
    d = describe(data)
    s, zp = q.input_params
    print(f"wrote {out}: {' -> '.join(d['ops'])}; file {d['file_bytes']:,} B, weights "
          f"{d['weight_bytes']:,} B, arena {d['arena_bytes']:,} B; input scale {s:.6g} "
          f"zero point {zp}; calibrated on {len(calib)} inputs ({args.calibration})")
    if args.report:
        print(ptq.format_report(q.report))
    if args.report_json:
        rows = [{k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                 for k, v in dataclasses.asdict(r).items()} for r in q.report]
        Path(args.report_json).write_text(json.dumps(rows, indent=1))
    return 0


def _fail(message: str) -> int:
    print(f"tinyrt: error: {message}", file=sys.stderr)
    return 2


FIT_EXIT = ("exit status: 0 the model fits (in RAM or streaming), 1 it does not fit, 2 usage "
            "error (bad arguments, unknown board, unreadable or invalid model)")


def _fit_board(board: str):
    """The board profile, or None after printing why (exit 2)."""
    from boards import get

    try:
        return get(board)
    except KeyError as e:
        _fail(str(e.args[0]))
        return None


def _print_fit(model: Path, profile) -> int:
    """Print whether `model` fits the board: 0 it fits, 1 it does not, 2 it cannot be assessed.
    The file is read and validated before anything is measured."""
    from boards.fit import FitError, fit, read

    try:
        data = model.read_bytes()
    except OSError as e:
        return _fail(f"cannot read {model}: {e.strerror or e}")
    try:
        read(data)
        f = fit(data, profile, model.name)
    except FitError as e:
        return _fail(f"{model}: {e}")
    print(f.report())
    return 0 if f.fits else 1


def cmd_fit(args: argparse.Namespace) -> int:
    profile = _fit_board(args.board)
    return 2 if profile is None else _print_fit(Path(args.model), profile)


def cmd_convert(args: argparse.Namespace) -> int:
    from .runner import RunnerError, convert

    profile = _fit_board(args.board) if args.board else None
    if args.board and profile is None:
        return 2
    try:
        report = convert(args.model, args.output)
    except RunnerError as e:
        return _fail(str(e))
    print(report.summary())
    if profile is not None:
        print()
        return _print_fit(Path(report.output), profile)
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
        shapes = ", ".join(f"{spec['dtype']} {y.shape}" for spec, y in zip(d["outputs"], outs))
        print(f"ran {len(x)} inputs on {args.interpreter}; wrote {shapes} to {out}")
        return 0
    print(f"ran {len(x)} inputs on {args.interpreter}")
    for spec, y in zip(d["outputs"], outs):
        packed = spec["dtype"] == "packed"
        what = "int32 words of packed bits" if packed else spec["dtype"]
        print(f"  output {spec['name']!r}: {what} {y.shape}, scale={spec['scale']:.6g} "
              f"zero_point={spec['zero_point']}")
        flat = y.reshape(len(y), -1)
        for i in range(min(len(y), 5)):
            tail = "" if packed else f"  argmax {int(np.argmax(flat[i]))}"
            print(f"    [{i}] {flat[i].tolist()}{tail}")
        if len(y) > 5:
            print(f"    ... ({len(y) - 5} more; --output Y.npy writes them all)")
    return 0


def _board_names() -> list[str]:
    from boards import names

    return names()


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
    conv.add_argument("--board", help="also tell whether the model fits this board "
                      "(exit 1 if not, 2 unknown board): " + ", ".join(_board_names()))
    conv.set_defaults(func=cmd_convert)
    fitp = sub.add_parser("fit", help="does a model file fit a board: flash, RAM measured on "
                          "32-bit firmware, loading mode (exit 0 fits, 1 does not, 2 usage "
                          "error)", description="Does MODEL.trt fit the board? RAM is measured "
                          "on the emulated m0 firmware (32-bit MicroPython).", epilog=FIT_EXIT)
    fitp.add_argument("model", help="MODEL.trt")
    fitp.add_argument("--board", required=True, help=", ".join(_board_names()) + " (or an "
                      "alias: pico, pico2, esp32-s3, ...)")
    fitp.set_defaults(func=cmd_fit)
    run = sub.add_parser("run", help="run raw inputs (int8, or int32 words for packed tensors) "
                         "through a model file")
    run.add_argument("model", help="MODEL.trt")
    run.add_argument("--input", required=True,
                     help="X.npy: raw inputs (int8; int32 words for packed), batch on axis 0")
    run.add_argument("--output", help="Y.npy: the stacked raw outputs")
    run.add_argument("--interpreter", choices=INTERPRETERS, default="cpython")
    run.add_argument("--heap", type=int, help="MicroPython heap size in bytes")
    run.set_defaults(func=cmd_run)
    demo = sub.add_parser("demo", help="run the end-to-end demo on the host simulator")
    demo.add_argument("--no-cache", action="store_true", help="train again, cache nothing")
    demo.add_argument("--calibration", choices=("minmax", "percentile"), default="minmax")
    demo.set_defaults(func=cmd_demo)
    quant = sub.add_parser("quantize", help="quantize a float model (.npz or float32 .tflite) "
                           "to a tinyrt model file")
    quant.add_argument("model", help="FLOAT_MODEL.npz (converter.float_model) or .tflite")
    quant.add_argument("-o", "--output", help="model file to write (default: MODEL.trt)")
    quant.add_argument("--calib", required=True,
                       help="X.npy: real calibration inputs, batch on axis 0")
    quant.add_argument("--calibration", choices=("minmax", "percentile"), default="minmax")
    quant.add_argument("--percentile", type=float, default=99.99,
                       help="with --calibration percentile: keep this percentile (default "
                       "99.99) and 100 minus it")
    quant.add_argument("--binary", metavar="LAYER,...", help="Dense / Conv2D layers to make "
                       "binary (XNOR-popcount)")
    quant.add_argument("--bias-correction", action=argparse.BooleanOptionalAction,
                       default=True, help="remove each layer's mean quantization error "
                       "through its bias (default: on)")
    quant.add_argument("--input-range", metavar="LO,HI",
                       help="the input's real range instead of its calibrated one")
    quant.add_argument("--report", action="store_true", help="print the per-layer report")
    quant.add_argument("--report-json", metavar="FILE", help="write the report as JSON")
    quant.set_defaults(func=cmd_quantize)
    # listed for --help; main() hands `bench` to its own parser (host_sim/bench.py)
    sub.add_parser("bench", help="latency, MAC/s per layer and the ratio to tflite-micro "
                   "(tinyrt bench -h); --interpreter m0|m3: instructions per invoke, MAC "
                   "and layer on the emulated boards, against TFLM and CMSIS-NN there; "
                   "--cortex-m: the asm kernels' counts alone")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["bench"]:
        rest = argv[1:]
        if "--cortex-m" in rest:
            from .cortexm_bench import main as cortexm_main

            rest.remove("--cortex-m")
            return cortexm_main(rest)
        from .bench import main as bench_main

        return bench_main(rest)
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
