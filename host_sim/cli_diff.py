"""`tinyrt diff OLD.trt NEW.trt -o UPDATE.bin`: the delta update a board applies with
tinyrt.update(model_path, update_path). The smaller encoding is chosen (converter/delta.py):
changed bytes as they are (format 1), or as differences from the old ones (format 2: small
when NEW was quantized on OLD's grid, `ptq.quantize(..., like=old)`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from .cli_args import EXIT_OK, fail


def cmd_diff(args: argparse.Namespace) -> int:
    from converter.delta import make_update

    data = []
    for p in (args.old, args.new):
        try:
            data.append(Path(p).read_bytes())
        except OSError as e:
            return fail(f"cannot read {p}: {e.strerror or e}")
    try:
        update, st = make_update(*data)
    except ValueError as e:
        return fail(str(e).replace("OLD", args.old).replace("NEW", args.new))
    try:
        Path(args.output).write_bytes(update)
    except OSError as e:
        return fail(f"cannot write {args.output}: {e.strerror or e}")
    how = ("as differences from the old bytes (format 2, ADD records)"
           if st.encoding == "arithmetic" else "as literal bytes (format 1)")
    print(f"{args.output}: update bytes {st.update_bytes:,} ({st.update_bytes / st.new_bytes:.1%}"
          f" of the new file's {st.new_bytes:,}); {st.copied:,} bytes kept from the old file, "
          f"{st.literal:,} carried {how}, deflated")
    return EXIT_OK


def add_parser(sub, add) -> None:
    p = add("diff", "the delta update from one model file to another, for tinyrt.update() on "
            "the board")
    p.add_argument("old", help="OLD.trt (the model on the board)")
    p.add_argument("new", help="NEW.trt")
    p.add_argument("-o", "--output", required=True, help="UPDATE.bin to write")
    p.set_defaults(func=cmd_diff)
