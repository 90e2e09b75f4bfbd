"""`tinyrt quantize`: a float model (.npz or float32 .tflite) and calibration inputs -> a tinyrt
model file (converter.ptq), with the per-layer report.

Layers named in --binary that were trained as float layers are binarized after training, which
loses what they learned; the quantizer measures the damage (accuracy on --labels, else agreement
with the float model's argmax on the calibration inputs) and this command refuses to write such a
model (exit 1) unless --allow-untrained-binary is given."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from pathlib import Path

from .cli_args import EXIT_FAILED, EXIT_OK, InputError, fail, load_array, warn


def cmd_quantize(args: argparse.Namespace) -> int:
    from converter import ptq
    from converter.inspect_model import describe

    input_range = None
    if args.input_range:
        try:
            input_range = tuple(float(v) for v in args.input_range.split(","))
            assert len(input_range) == 2 and input_range[0] < input_range[1]
        except (ValueError, AssertionError):
            return fail(f"--input-range {args.input_range!r}: expected LO,HI with LO < HI")
    out = Path(args.output) if args.output else Path(args.model).with_suffix(".trt")
    if not out.parent.is_dir():
        return fail(f"cannot write {out}: no directory {out.parent}")
    if Path(args.model).is_dir():
        return fail(f"{args.model} is a directory, expected a float model (.npz or .tflite)")
    try:
        calib = load_array(args.calib, ("x",))
        labels = load_array(args.labels, ("y", "labels")) if args.labels else None
    except InputError as e:
        return fail(str(e))
    if labels is not None and labels.reshape(-1).shape[0] != len(calib):
        return fail(f"--labels: {labels.size} labels for {len(calib)} calibration inputs")
    try:
        model = ptq.load_float_model(args.model)
    except (OSError, ValueError, KeyError) as e:
        why = e.strerror if isinstance(e, OSError) and e.strerror else e
        return fail(f"cannot read {args.model} as a float model (.npz or float32 .tflite): "
                    f"{why}")
    binary = [s.strip() for s in (args.binary or "").split(",") if s.strip()]
    try:
        q = ptq.quantize(model, calib, calibration=args.calibration, percentile=args.percentile,
                         binary=binary, bias_correction=args.bias_correction,
                         input_range=input_range, labels=labels)
        data = q.model_bytes
    except (ValueError, KeyError) as e:
        return fail(f"{args.model}: {e}")
    check = q.binary_check
    if check is not None and check.flagged and not args.allow_untrained_binary:
        for w in q.warnings:
            if w != check.message():
                warn(w)
        return fail(f"{args.model}: {check.message()}; nothing written "
                    "(--allow-untrained-binary writes it anyway)", EXIT_FAILED)
    try:
        out.write_bytes(data)
    except OSError as e:
        return fail(f"cannot write {out}: {e.strerror or e}")
    for w in q.warnings:
        warn(w)
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
        try:
            Path(args.report_json).write_text(json.dumps(rows, indent=1))
        except OSError as e:
            return fail(f"cannot write {args.report_json}: {e.strerror or e}")
    return EXIT_OK


def add_parser(add) -> None:
    """Add `quantize` through cli.build_parser's add(name, help)."""
    quant = add("quantize", "quantize a float model (.npz or float32 .tflite) to a tinyrt "
                "model file")
    quant.add_argument("model", help="FLOAT_MODEL.npz (converter.float_model) or .tflite")
    quant.add_argument("-o", "--output", help="model file to write (default: MODEL.trt)")
    quant.add_argument("--calib", required=True, metavar="X.npy", help="real calibration "
                       "inputs, scaled as in training, batch on axis 0 (FILE.npz[:KEY] too)")
    quant.add_argument("--labels", metavar="Y.npy", help="the class of each calibration input: "
                       "layers binarized here are judged by accuracy (FILE.npz[:KEY] too)")
    quant.add_argument("--calibration", choices=("minmax", "percentile"), default="minmax")
    quant.add_argument("--percentile", type=float, default=99.99,
                       help="with --calibration percentile: keep this percentile (default "
                       "99.99) and 100 minus it")
    quant.add_argument("--binary", metavar="LAYER,...", help="Dense / Conv2D layers to make "
                       "binary (XNOR-popcount). A layer trained as float loses what it learned: "
                       "train it binary (converter.train.train(..., binary=[...])); a model "
                       "this damages is refused")
    quant.add_argument("--allow-untrained-binary", action="store_true", help="write the model "
                       "even when binarizing float-trained layers costs accuracy")
    quant.add_argument("--bias-correction", action=argparse.BooleanOptionalAction,
                       default=True, help="remove each layer's mean quantization error "
                       "through its bias (default: on)")
    quant.add_argument("--input-range", metavar="LO,HI",
                       help="the input's real range instead of its calibrated one")
    quant.add_argument("--report", action="store_true", help="print the per-layer report")
    quant.add_argument("--report-json", metavar="FILE", help="write the report as JSON")
    quant.set_defaults(func=cmd_quantize)
