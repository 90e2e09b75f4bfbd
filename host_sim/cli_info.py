"""`tinyrt info`'s table: a described model file (converter.inspect_model.describe) as text,
with long fused TFLite names shortened for display and every operator's params labelled."""

from __future__ import annotations

NAME_WIDTH = 36  # characters of a tensor name shown; --json keeps the whole name

# Each op's integer params in the order the converter writes them (converter/layers/*), as
# (label, count) groups; count None takes the rest. Unlisted ops print `params [...]`.
_CLAMP = ("clamp", 2)  # the fused activation's [lo, hi] in output int8 steps
_CONV = [("stride", 2), ("dilation", 2), ("pad", 2), ("out", 2)]  # pad: top, left; out: h, w
_POOL = [("filter", 2), ("stride", 2), ("pad", 2)]
PARAM_LABELS: dict[str, list[tuple[str, int | None]]] = {
    "CONV_2D": _CONV + [_CLAMP],
    "DEPTHWISE_CONV_2D": _CONV + [("depth_multiplier", 1), _CLAMP],
    "FULLY_CONNECTED": [_CLAMP],
    "FULLY_CONNECTED_LUT": [_CLAMP, ("bits", 1), ("weights", 2)],
    "CONV_2D_LUT": _CONV + [("bits", 1), ("filter", 4), _CLAMP],
    "ADD": [_CLAMP],
    "MUL": [_CLAMP],
    "AVERAGE_POOL_2D": _POOL + [_CLAMP],
    "MAX_POOL_2D": _POOL + [_CLAMP],
    "BMAX_POOL_2D": _POOL + [("out", 2)],
    "BCONV_2D": _CONV + [("zero_pad", 1), ("out_mode", 1)],
    "BFULLY_CONNECTED": [("out_mode", 1)],
    "UNBINARIZE": [("plus", 1), ("minus", 1)],
    "PAD": [("pad", None)],  # (before, after) per dimension
    "MEAN": [("axes", None)],
    "CONCATENATION": [("axis", 1)],
}


def short_name(name: str, width: int = NAME_WIDTH) -> str:
    """`name` in at most `width` characters: the end is kept (a fused TFLite name's last part
    says the most), the start replaced by an ellipsis."""
    return name if len(name) <= width else "…" + name[-(width - 1):]


def label_params(op: str, params: list[int]) -> str:
    """`stride=(2,2) dilation=(1,1) ... clamp=(-128,127)`; raw `params [...]` for an op
    without labels or params of an unexpected length."""
    groups = PARAM_LABELS.get(op)
    if groups is None:
        return f"params {params}" if params else ""
    fixed = sum(n or 0 for _, n in groups)
    rest = any(n is None for _, n in groups)
    if (len(params) < fixed) if rest else (len(params) != fixed):
        return f"params {params}"
    out, pos = [], 0
    for label, n in groups:
        vals = params[pos:] if n is None else params[pos: pos + n]
        pos += len(vals)
        out.append(f"{label}={vals[0]}" if n == 1 else f"{label}=({','.join(map(str, vals))})")
    return " ".join(out)


def format_info(d: dict) -> str:
    lines = [f"tinyrt model, format {d['format_version']}: {d['file_bytes']:,} bytes "
             f"(weights {d['weight_bytes']:,} B), arena {d['arena_bytes']:,} B"]
    meta = d.get("metadata") or {}
    for k in sorted(meta):
        v = meta[k]
        if k == "labels":
            v = ", ".join(map(str, v))
        elif isinstance(v, list) and len(v) > 8:
            v = f"{len(v)} items: {', '.join(map(str, v[:8]))}, ..."
        lines.append(f"  {k}: {v}")
    for kind, rows in (("input", d["inputs"]), ("output", d["outputs"])):
        for r in rows:
            lines.append(f"  {kind} {r['index']} {short_name(r['name'])!r}: {r['dtype']} "
                         f"{tuple(r['shape'])} scale={r['scale']:.6g} "
                         f"zero_point={r['zero_point']}")
    lines.append(f"  {len(d['operators'])} operators:")
    for i, o in enumerate(d["operators"]):
        lines.append(f"    {i:3d} {o['name']:<18} in {o['inputs']} -> out {o['outputs']} "
                     f"{label_params(o['name'], o['params'])}".rstrip())
    lines.append(f"  {len(d['tensors'])} tensors:")
    for t in d["tensors"]:
        where = f"{t['storage']}@{t['offset']}"
        lines.append(f"    {t['index']:3d} {short_name(t['name']):<{NAME_WIDTH}} "
                     f"{t['dtype']:<7} {tuple(t['shape'])!s:<18} {t['nbytes']:>7} B {where}")
    return "\n".join(lines)
