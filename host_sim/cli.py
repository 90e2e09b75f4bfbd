"""The `tinyrt` command: inspect, convert, quantize, run, evaluate and benchmark models on the
host."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import tinyrt

from . import cli_compress, cli_diff, cli_quantize, cli_run, cli_search
from .cli_args import (EXIT_CODES, EXIT_FAILED, EXIT_OK, EXIT_USAGE, CliParser, fail)


def cmd_info(args: argparse.Namespace) -> int:
    from .cli_info import format_info
    from .runner import RunnerError, read_model

    try:
        _, d = read_model(args.model)
    except RunnerError as e:
        return fail(str(e), e.code)
    print(json.dumps(d, indent=None) if args.json else format_info(d))
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import main as demo_main

    return demo_main(use_cache=not args.no_cache, calibration=args.calibration)


FIT_EXIT = ("exit status: 0 the model fits (in RAM or streaming), 1 it does not fit, 2 usage "
            "error (bad arguments, unknown board, unreadable or invalid model)")


def _fit_board(board: str):
    """The board profile, or None after printing why (exit 2)."""
    from boards import get

    try:
        return get(board)
    except KeyError as e:
        fail(str(e.args[0]))
        return None


def _print_fit(model: Path, profile) -> int:
    """Print whether `model` fits the board: 0 it fits, 1 it does not, 2 it cannot be assessed.
    The file is read and validated before anything is measured."""
    from boards.fit import FitError, fit, read

    try:
        data = model.read_bytes()
    except OSError as e:
        return fail(f"cannot read {model}: {e.strerror or e}")
    try:
        read(data)
        f = fit(data, profile, model.name)
    except FitError as e:
        return fail(f"{model}: {e}")
    print(f.report())
    return 0 if f.fits else 1


def cmd_fit(args: argparse.Namespace) -> int:
    profile = _fit_board(args.board)
    return 2 if profile is None else _print_fit(Path(args.model), profile)


def cmd_convert(args: argparse.Namespace) -> int:
    from .runner import RunnerError, convert

    profile = _fit_board(args.board) if args.board else None  # checked before any work
    if args.board and profile is None:
        return EXIT_USAGE
    src = Path(args.model)
    out = Path(args.output) if args.output else src.with_suffix(".trt")
    if src.is_dir():
        return fail(f"{src} is a directory, expected a .tflite file")
    if not out.parent.is_dir():
        return fail(f"cannot write {out}: no directory {out.parent}")
    try:
        report = convert(src, out, strip_names=args.strip_names, patch=args.patch)
    except RunnerError as e:
        return fail(str(e), e.code)
    print(report.summary())
    if args.compress:
        print(cli_compress.compress_output(Path(report.output), src))
    if profile is None:
        return EXIT_OK
    print()
    code = _print_fit(Path(report.output), profile)
    if code == EXIT_FAILED:
        print(f"tinyrt: {report.output} was written, but it does not fit {args.board} (exit 1)",
              file=sys.stderr)
    return code


def _board_names() -> list[str]:
    from boards import names

    return names()


def build_parser() -> argparse.ArgumentParser:
    p = CliParser(prog="tinyrt", description=__doc__, epilog=EXIT_CODES)
    p.add_argument("--version", action="version",
                   version=f"tinyrt {tinyrt.__version__} (model format "
                   f"{tinyrt.fileformat.FORMAT_VERSION})")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, help: str, epilog: str = EXIT_CODES, **kw) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, epilog=epilog, **kw)

    info = add("info", "print a model file's contents")
    info.add_argument("model", help="MODEL.trt")
    info.add_argument("--json", action="store_true", help="one JSON object (full names)")
    info.set_defaults(func=cmd_info)
    conv = add("convert", "convert an int8 .tflite model to a tinyrt model file",
               EXIT_CODES + " With --board, exit 1 means the file was written but does not "
               "fit the board.")
    conv.add_argument("model", help="MODEL.tflite (int8; for a float32 .tflite use tinyrt "
                      "quantize)")
    conv.add_argument("-o", "--output", help="model file to write (default: MODEL.trt)")
    conv.add_argument("--board", help="also tell whether the model fits this board "
                      "(exit 1 if not, 2 unknown board): " + ", ".join(_board_names()))
    conv.add_argument("--strip-names", action="store_true",
                      help="keep only the inputs' and outputs' tensor names (names take RAM "
                      "on the board; summary() then shows tensor indices)")
    conv.add_argument("--patch", action="store_true", help="run the first high-resolution "
                      "stage in row bands (MCUNetV2) where that lowers the activation arena, "
                      "for at most 25%% more MACs (bit-exact; the plan is in the metadata)")
    conv.add_argument("--compress", action="store_true", help="write the file losslessly "
                      "compressed (zlib; decoded at load on the board, outputs unchanged)")
    conv.set_defaults(func=cmd_convert)
    fitp = add("fit", "does a model file fit a board: flash, RAM measured on 32-bit firmware, "
               "loading mode (exit 0 fits, 1 does not, 2 usage error)", FIT_EXIT,
               description="Does MODEL.trt fit the board? RAM is measured on the emulated m0 "
               "firmware (32-bit MicroPython).")
    fitp.add_argument("model", help="MODEL.trt")
    fitp.add_argument("--board", required=True, help=", ".join(_board_names()) + " (or an "
                      "alias: pico, pico2, esp32-s3, ...)")
    fitp.set_defaults(func=cmd_fit)
    cli_run.add_parsers(sub)
    cli_diff.add_parser(sub, add)
    cli_compress.add_parser(add)
    cli_search.add_parser(add)
    demo = add("demo", "run the end-to-end demo on the host simulator")
    demo.add_argument("--no-cache", action="store_true", help="train again, cache nothing")
    demo.add_argument("--calibration", choices=("minmax", "percentile"), default="minmax")
    demo.set_defaults(func=cmd_demo)
    cli_quantize.add_parser(add)
    # listed for --help; main() hands `bench` to its own parser (host_sim/bench.py)
    add("bench", "latency, MAC/s per layer and the ratio to tflite-micro (tinyrt bench -h); "
        "--interpreter m0|m3: instructions per invoke, MAC and layer on the emulated boards, "
        "against TFLM and CMSIS-NN there; --cortex-m: the asm kernels' counts alone")
    return p


def _dispatch(argv: list[str]) -> int:
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


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand; every failure is one line on stderr and an exit status (0 done,
    1 the job failed, 2 usage or input error), never a traceback (TINYRT_DEBUG=1 shows it)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        return _dispatch(argv)
    except KeyboardInterrupt:
        print("tinyrt: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `tinyrt info m.trt | head`: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except Exception as e:  # noqa: BLE001 - a bug: still one line, with how to see more
        if os.environ.get("TINYRT_DEBUG"):
            raise
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        print(f"tinyrt: internal error (please report it; TINYRT_DEBUG=1 shows the traceback): "
              f"{type(e).__name__}: {first}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
