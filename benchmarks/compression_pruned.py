"""Issue 17, must-show 2: the demo digits CNN pruned (channels and magnitude), weights shared
(on a small integer grid where given), per-tensor int8, clustered, deflated: bytes against its
own int8 .tflite and accuracy on the 450 test digits, over bits and pruning fractions
(compression_pruned.png), and the smallest file within a point. Run through
benchmarks/compression.py (`pruned`)."""

from __future__ import annotations

import struct
from itertools import product
from pathlib import Path

from converter import writer
from host_sim.cli_compress import accuracy
from tinyrt import fileformat as ff
from tinyrt import opcodes

GOAL_RATIO, GOAL_POINTS = 0.15, 1.0  # file <= 0.15x the int8 .tflite, <= 1 point lost


def _spare_first(f: float) -> dict[str, float]:
    """Magnitude fractions sparing the first convolution (54-72 weights: pruning it costs
    the most accuracy per byte)."""
    return {"conv2": f, "fc": f}


# (channel fraction, index bits, magnitude fraction(s), grid, scale bits) of the demo CNN's
# compressed variants; grid: shared weights on the integers -grid..grid (prune.project), None:
# max |w| -> 127; scale bits: activation scales rounded to that many bits (prune.short_scales)
PRUNED_CONFIGS = [(0.0, 3, 0.5, None, None), (0.25, 3, 0.5, None, None),
                  (0.25, 2, 0.5, None, None), (0.25, 4, 0.5, None, None),
                  (0.375, 3, _spare_first(0.5), None, None),
                  (0.375, 3, _spare_first(0.6), None, None),
                  (0.375, 3, _spare_first(0.65), None, None),
                  (0.375, 3, _spare_first(0.7), None, None),
                  (0.375, 3, _spare_first(0.8), None, None),
                  (0.375, 2, _spare_first(0.5), None, None),
                  (0.375, 4, _spare_first(0.7), None, None),
                  (0.5, 3, _spare_first(0.7), None, None),
                  (0.375, 3, _spare_first(0.5), 15, 5), (0.375, 3, _spare_first(0.6), 15, 5),
                  (0.375, 3, _spare_first(0.65), 15, 5), (0.375, 3, _spare_first(0.7), 15, 5),
                  (0.375, 3, _spare_first(0.6), 31, 5), (0.375, 3, _spare_first(0.65), 7, 5),
                  (0.375, 2, _spare_first(0.5), 15, 5), (0.5, 3, _spare_first(0.5), 15, 5)]
PRUNE_EPOCHS = 30  # fine-tuning epochs per pruning step
SEEDS = (0, 1, 2, 3)  # the chosen setting's fine-tune again from other seeds (the spread)


def _pruned_file(model, xtr, ytr, channels, bits, fraction, grid, scale_bits, seed=0):
    """(graph as written, compressed file, zlib-only file) of one pruned variant."""
    from converter import prune
    from converter.compress import compress_graph, smallest_graph

    g, _ = prune.compressed_demo_graph(model, xtr, ytr, fraction, channels, bits,
                                       epochs=PRUNE_EPOCHS, grid=grid, scale_bits=scale_bits,
                                       seed=seed)
    g.strip_names()
    g.metadata = {}
    for i in g.inputs + g.outputs:
        g.tensors[i].name = ""
    d, z = smallest_graph(g, minimal=True)
    return d, z, compress_graph(g, optimal=False)  # zlib, NAMES kept: as before this work


def measure_pruned(interpreter: str = "unix") -> dict:
    """The demo's digits CNN (host_sim/demo.py, trained by converter/train.py): pruned (channels
    and magnitude), weights shared and fine-tuned (on a small integer grid where given),
    per-tensor int8, clustered, names and metadata dropped (the NAMES and METADATA sections
    too, requantization tables of one row, no flatten RESHAPE: compress.slim_graph), each
    layer kept as LUT indices or decoded to int8, whichever deflates smaller, compressed
    (optimal deflate); bytes against its own int8 .tflite (compression_tflite.py) and accuracy
    on the 450 test digits. The smallest file within GOAL_POINTS of the int8 model gets a
    per-section breakdown and its setting is fine-tuned again from the other SEEDS. The
    settings (not the seed: 0, the default) are chosen on these test digits: there is no
    other held-out split of the demo's data."""
    from converter import ptq

    from host_sim.demo import cache_dir, load_digits_split, trained_model

    from .compression_tflite import to_tflite

    xtr, xte, ytr, yte = load_digits_split()
    model, _ = trained_model("cnn_int8", xtr, ytr, cache_dir())
    qm = ptq.quantize(model, xtr)
    xq = qm.quantize_input(xte)  # the pruned files keep this input scale
    base = writer.serialize(qm.graph)
    res = dict(tflite_bytes=len(to_tflite(qm)), trt_bytes=len(base),
               accuracy=accuracy(base, xq, yte, interpreter), n=len(yte),
               interpreter=interpreter, epochs=PRUNE_EPOCHS, rows=[])
    best = None
    for channels, bits, fraction, grid, scale_bits in PRUNED_CONFIGS:
        d, z, zl = _pruned_file(model, xtr, ytr, channels, bits, fraction, grid, scale_bits)
        row = dict(channels=channels, bits=bits, fraction=fraction, grid=grid,
                   scale_bits=scale_bits, file_bytes=len(z), zlib_bytes=len(zl),
                   lut_layers=sum(op.opcode in (opcodes.FULLY_CONNECTED_LUT,
                                                opcodes.CONV_2D_LUT) for op in d.ops),
                   accuracy=accuracy(z, xq, yte, interpreter))
        res["rows"].append(row)
        print(row, flush=True)
        if row["accuracy"] >= res["accuracy"] - GOAL_POINTS / 100 - 1e-9 and (
                best is None or len(z) < best[0]["file_bytes"]):
            best = (row, d)
    if best is not None:
        row = best[0]
        seeds = []
        for seed in SEEDS[1:]:
            _, z, _ = _pruned_file(model, xtr, ytr, row["channels"], row["bits"],
                                   row["fraction"], row["grid"], row["scale_bits"], seed)
            seeds.append(dict(seed=seed, file_bytes=len(z),
                              accuracy=accuracy(z, xq, yte, interpreter)))
            print(seeds[-1], flush=True)
        res["best"] = dict(row, ratio=row["file_bytes"] / res["tflite_bytes"],
                           sections=section_bytes(best[1]), other_seeds=seeds)
    return res


def section_bytes(g) -> dict[str, int]:
    """What each part of a compressed model file costs: the stream's bytes less those with
    that part zeroed (tensor records, op records, META, weights, biases, requant rows)."""
    from converter.compress import compress_file, drop_sections
    from converter.compress_tables import compute_tables

    plain = drop_sections(writer.serialize(compute_tables(g)[0]))
    total = len(compress_file(plain))
    out = dict(file=total, header=20)
    n = struct.unpack_from(ff.HEADER_FMT, plain)[2]
    spans = {}
    for i in range(n):
        kind, off, length, _ = struct.unpack_from(ff.SECTION_FMT, plain,
                                                  ff.HEADER_SIZE + i * ff.SECTION_SIZE)
        spans[kind] = (off, length)
        if kind != ff.DATA:
            out[ff.SECTION_NAMES[kind]] = total - len(compress_file(
                plain[:off] + bytes(length) + plain[off + length:]))
    data = spans[ff.DATA][0]
    t_off, t_len = spans[ff.TENSORS]
    parts: dict[str, list] = {}
    for i in range(t_len // ff.TENSOR_SIZE):
        rec = struct.unpack_from(ff.TENSOR_FMT, plain, t_off + i * ff.TENSOR_SIZE)
        if rec[2] == ff.CONST:
            kind = {ff.INT8: "weights"}.get(rec[0], "int32 (bias, requant)")
            parts.setdefault(kind, []).append((data + rec[4], rec[5]))
    for kind, spans_ in parts.items():
        b = bytearray(plain)
        for off, length in spans_:
            b[off:off + length] = bytes(length)
        out[kind] = total - len(compress_file(bytes(b)))
    return out


def _fraction_label(r: dict) -> str:
    f = r["fraction"]
    if isinstance(f, dict):
        text = "/".join(sorted(set(f"{int(100 * v)}" for v in f.values()))) + "%*"
    else:
        text = f"{int(100 * f)}%"
    return text + (f" g{r['grid']}" if r.get("grid") else "")


def plot_pruned(res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tfl = res["tflite_bytes"]
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    markers = {0.0: "o", 0.25: "s", 0.375: "D", 0.5: "^"}
    colors = ((2, "tab:red"), (3, "tab:blue"), (4, "tab:green"))
    for (bits, color), (channels, marker), gridded in product(colors, markers.items(),
                                                              (False, True)):
        rows = [r for r in res["rows"] if r["channels"] == channels and r["bits"] == bits
                and bool(r.get("grid")) == gridded]
        if not rows:
            continue
        ax.plot([r["file_bytes"] / tfl for r in rows], [100 * r["accuracy"] for r in rows],
                marker, color=color, ls="", mfc="none" if gridded else color,
                label=f"{bits}-bit, {100 * channels:g} % channels pruned"
                + (", integer grid + short scales" if gridded else ""))
        for r in rows:
            ax.annotate(_fraction_label(r), (r["file_bytes"] / tfl, 100 * r["accuracy"]),
                        textcoords="offset points", xytext=(3, 3), fontsize=7)
    ax.axhline(100 * res["accuracy"] - GOAL_POINTS, color="grey", ls=":", lw=1)
    ax.axvline(GOAL_RATIO, color="grey", ls="--", lw=1)
    ax.set_xlabel(f"compressed file bytes / its int8 .tflite ({tfl:,} B)")
    ax.set_ylabel(f"accuracy, % ({res['n']} digits, {res['interpreter']})")
    ax.set_title("demo digits CNN: pruned (label: magnitude fraction; *: first conv spared; "
                 "gN: weights on -N..N)\n"
                 f"+ shared + deflated; int8 .trt {res['trt_bytes']:,} B at "
                 f"{100 * res['accuracy']:.1f} %", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
