"""Issue 17 figures. Lossless: every shared model's file, plain and compressed
(converter/compress.py), against its .tflite, and what decoding costs on m0 (instructions, under
-icount shift=0 ticks_us x 1000). Weight sharing on the digits CNN: file bytes against the int8
.tflite and accuracy on the shared 450 test digits, for 2..6-bit indices. Writes
compression.json and compression.png (bytes vs accuracy); the pruned demo CNN's curve
(compression_pruned.png) and the delta-update figures.
Run: .venv/bin/python -m benchmarks.compression [lossless pruned updates clustered]"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np

from converter import cluster, writer
from converter.compress import WBITS, compress_graph
from converter.tflite_import import import_tflite
from host_sim import run
from host_sim.cli_compress import accuracy

from .compression_pruned import GOAL_POINTS, GOAL_RATIO, measure_pruned, plot_pruned

MODELS = Path(__file__).resolve().parents[2] / "shared" / "models"
OUT = Path(__file__).resolve().parent


LOSSLESS_MODELS = ["hello_world_int8", "digits_mlp_int8", "digits_cnn_int8", "kws_ref_model",
                   "micro_speech_quantized", "seanet_conv0", "seanet_pad0", "test_bconv2d_bin_0"]

# On the board: instructions to decode each compressed file (tinyrt.decompress.inflate_path)
# and to load it (decode + validate + prepare) beside loading the plain file (from ROMFS: in
# place). The largest model first, while the heap is in one piece.
DECODE = r"""
import gc, json, time, tinyrt
from tinyrt.decompress import inflate_path
def us(f, *a):
    gc.collect()
    t = time.ticks_us()
    r = f(*a)
    t = time.ticks_diff(time.ticks_us(), t)
    r = None
    gc.collect()
    return t
out = {}
for name in NAMES:
    z = name + ".trz"
    out[name] = [us(inflate_path, z), us(tinyrt.load, z), us(tinyrt.load, name + ".trt")]
print(json.dumps(out))
"""


def measure_lossless(interpreter: str = "m0") -> list[dict]:
    files, rows = {}, []
    for name in LOSSLESS_MODELS:
        src = MODELS / f"{name}.tflite"
        g = import_tflite(src.read_bytes(), src.name)
        plain = writer.serialize(g)
        z = compress_graph(g)  # what convert --compress writes (SOFTMAX tables as params)
        g.strip_names()
        zs = compress_graph(g)
        files[f"{name}.trt"], files[f"{name}.trz"] = plain, z
        rows.append(dict(model=name, tflite_bytes=src.stat().st_size, trt_bytes=len(plain),
                         compressed_bytes=len(z), stripped_compressed_bytes=len(zs)))
    order = sorted(LOSSLESS_MODELS, key=lambda n: -len(files[n + ".trt"]))
    r = run(DECODE.replace("NAMES", json.dumps(order)), interpreter, files=files)
    if r.returncode != 0:
        raise RuntimeError(f"{interpreter}: {r.stderr[-2000:]}")
    t = json.loads(r.stdout.strip().splitlines()[-1])
    for row in rows:
        dec, load_z, load_p = (1000 * v for v in t[row["model"]])
        row.update(decode_instructions=dec, load_compressed_instructions=load_z,
                   load_plain_instructions=load_p, interpreter=interpreter)
    return rows


def lut_weight_bytes(g) -> int:
    return sum(t.nbytes for t in g.tensors if t.name.endswith(("/indices", "/codebook")))


def measure(interpreter: str = "unix") -> dict:
    src = MODELS / "digits_cnn_int8.tflite"
    io = np.load(MODELS / "digits_cnn_int8_io.npz")
    x, labels = io["x"], io["label"].astype(np.int64)
    g = import_tflite(src.read_bytes(), src.name)
    int8_weights = sum(g.tensors[op.inputs[1]].nbytes for op in g.ops
                       if op.name in ("FULLY_CONNECTED", "CONV_2D"))
    stripped = copy.deepcopy(g)
    io_ids = set(stripped.inputs) | set(stripped.outputs)
    for i, t in enumerate(stripped.tensors):
        if i not in io_ids:
            t.name = ""
    base = writer.serialize(g)
    res = dict(tflite_bytes=src.stat().st_size, trt_bytes=len(base),
               trt_stripped_bytes=len(writer.serialize(stripped)),
               int8_weight_bytes=int8_weights, accuracy=accuracy(base, x, labels, interpreter),
               n=len(labels), interpreter=interpreter, rows=[])
    for bits in range(cluster.MIN_BITS, cluster.MAX_BITS + 1):
        for mode, gg, mw in (("auto", g, None), ("all", stripped, 0)):
            c, sizes = cluster.cluster_graph(gg, bits, mw)
            b = writer.serialize(c)
            res["rows"].append(dict(
                bits=bits, mode=mode, stripped=gg is stripped, file_bytes=len(b),
                layers=[s.name or s.op for s in sizes],
                lut_bytes=sum(s.lut_bytes for s in sizes),
                int8_bytes_of_clustered=sum(s.int8_bytes for s in sizes),
                accuracy=accuracy(b, x, labels, interpreter)))
    return res


SPARSE_K = 16  # weights a sparse last-layer fine-tune may move (prune.sparse_fine_tune)


def measure_updates(epochs: int = 5, interpreter: str = "unix") -> dict:
    """Update bytes (tinyrt diff: the smaller of changed bytes and bytewise differences,
    deflated) for the demo CNN: its last layer fine-tuned on the training digits (the
    convolutions frozen: restored after every step) and quantized three ways: recalibrated
    (every scale of the layer moves), on the old file's grid (ptq.quantize(..., like=old)),
    and with only SPARSE_K weights moved (prune.sparse_fine_tune) on the old grid; and a full
    retrain from another seed. Against the plain and the compressed file, with each new
    model's accuracy on the 450 test digits."""
    from converter import float_model as fm
    from converter import prune, ptq
    from converter.compress import compress_graph
    from converter.compress_tables import compute_tables
    from converter.delta import make_update
    from converter.train import train
    from host_sim.demo import build_model, cache_dir, load_digits_split, trained_model

    xtr, xte, ytr, yte = load_digits_split()
    model, _ = trained_model("cnn_int8", xtr, ytr, cache_dir())
    old = ptq.quantize(model, xtr)
    xq = old.quantize_input(xte)
    tuned = copy.deepcopy(model)
    convs = [la.name for la in tuned.layers if isinstance(la, fm.Conv2D)]
    prune.fine_tune(tuned, xtr[::-1], ytr[::-1], None, epochs, lr=1e-3, seed=7, frozen=convs)
    sparse = prune.sparse_fine_tune(model, xtr[::-1], ytr[::-1], ["fc"], SPARSE_K, epochs,
                                    lr=1e-3, seed=7, like=old)
    retrained = train(build_model("cnn_int8", seed=1), xtr, ytr, epochs=30)
    # the files as the lossless encoding holds them decoded (SOFTMAX_EXP: no 2 KB table)
    base = writer.serialize(compute_tables(old.graph)[0])
    res = dict(old_bytes=len(base), old_compressed_bytes=len(compress_graph(old.graph)),
               old_accuracy=accuracy(base, xq, yte, interpreter), sparse_k=SPARSE_K,
               fc_weight_share=float(model.layer("fc").weights.size / sum(
                   la.weights.size for la in model.layers if hasattr(la, "weights"))))
    for key, qm in (("last_layer", ptq.quantize(tuned, xtr)),
                    ("last_layer_like", ptq.quantize(tuned, xtr, like=old)),
                    ("last_layer_sparse", ptq.quantize(sparse, xtr, like=old)),
                    ("retrain", ptq.quantize(retrained, xtr))):
        new = writer.serialize(compute_tables(qm.graph)[0])
        upd, stats = make_update(base, new)
        res[key] = dict(new_bytes=len(new), update_bytes=len(upd),
                        percent_of_file=100 * len(upd) / len(new),
                        percent_of_compressed=100 * len(upd) / len(compress_graph(qm.graph)),
                        encoding=stats.encoding, accuracy=accuracy(new, xq, yte, interpreter))
    return res


def plot(res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tfl = res["tflite_bytes"]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for mode, label in (("auto", "clustered where it shrinks the file, names kept"),
                        ("all", "every FC/CONV_2D clustered, names stripped")):
        rows = [r for r in res["rows"] if r["mode"] == mode]
        xs = [r["file_bytes"] / tfl for r in rows]
        ys = [100 * r["accuracy"] for r in rows]
        ax.plot(xs, ys, "o-", label=label)
        for r, xv, yv in zip(rows, xs, ys):
            ax.annotate(f"b={r['bits']}", (xv, yv), textcoords="offset points", xytext=(4, -10),
                        fontsize=8)
    ax.plot([res["trt_bytes"] / tfl], [100 * res["accuracy"]], "ks", label="int8 .trt")
    ax.axvline(GOAL_RATIO, color="grey", ls="--", lw=1)
    ax.axhline(100 * res["accuracy"] - GOAL_POINTS, color="grey", ls=":", lw=1)
    ax.text(GOAL_RATIO, 100 * res["accuracy"] - GOAL_POINTS - 1.5, " goal: <= 0.15x, <= 1 pt",
            fontsize=8, color="grey")
    ax.set_xlim(0, 1.1)
    ax.set_ylim(78, 97.5)
    ax.set_xlabel(f"file bytes / int8 .tflite ({tfl:,} B)")
    ax.set_ylabel(f"accuracy, % ({res['n']} digits, {res['interpreter']})")
    ax.set_title("digits CNN: weight sharing (b-bit indices + int8 codebook per layer)")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def print_lossless(rows: list[dict]) -> None:
    print(f"lossless (zlib, 2^{WBITS}-byte window); instructions on {rows[0]['interpreter']}: "
          "decode, load compressed, load plain (in place from ROMFS)")
    print(f"{'model':<24} {'.tflite':>7} {'.trt':>7} {'zlib':>7} {'/tflite':>7} {'stripped':>8} "
          f"{'/tflite':>7} {'decode':>10} {'load z':>10} {'load':>10}")
    for r in rows:
        t = r["tflite_bytes"]
        print(f"{r['model']:<24} {t:>7,} {r['trt_bytes']:>7,} {r['compressed_bytes']:>7,} "
              f"{r['compressed_bytes'] / t:>7.3f} {r['stripped_compressed_bytes']:>8,} "
              f"{r['stripped_compressed_bytes'] / t:>7.3f} {r['decode_instructions']:>10,} "
              f"{r['load_compressed_instructions']:>10,} {r['load_plain_instructions']:>10,}")
    for key in ("trt_bytes", "compressed_bytes", "stripped_compressed_bytes"):
        mean = np.mean([r[key] / r["tflite_bytes"] for r in rows])
        print(f"  mean {key} / .tflite bytes: {mean:.3f}")


def _save(**parts) -> dict:
    """Merge `parts` into compression.json (under a lock: parts may run in two processes)."""
    import fcntl

    path = OUT / "compression.json"
    with open("/tmp/tinyrt-compression.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        res = json.loads(path.read_text()) if path.exists() else {}
        clustered = parts.pop("clustered", None)
        if clustered is not None:
            res.update(clustered)
        res.update(parts)
        path.write_text(json.dumps(res, indent=1) + "\n")
    return res


PARTS = ("lossless", "pruned", "updates", "clustered")


def main(parts=PARTS) -> None:
    """Measure the given parts (all by default) and merge them into compression.json."""
    if "lossless" in parts:
        lossless = measure_lossless()
        print_lossless(lossless)
        _save(lossless=lossless)
    if "pruned" in parts:
        pruned = measure_pruned()
        plot_pruned(pruned, OUT / "compression_pruned.png")
        _save(pruned=pruned)
        print("best within the accuracy goal:", json.dumps(pruned.get("best")))
    if "updates" in parts:
        updates = measure_updates()
        print("updates of the demo CNN:", json.dumps(updates))
        _save(updates=updates)
    if "clustered" not in parts:
        return
    res = _save(clustered=measure())
    plot(res, OUT / "compression.png")
    tfl = res["tflite_bytes"]
    print(f"int8: .tflite {tfl:,} B, .trt {res['trt_bytes']:,} B (names stripped "
          f"{res['trt_stripped_bytes']:,}), weights {res['int8_weight_bytes']:,} B, accuracy "
          f"{res['accuracy']:.4f}")
    print(f"{'bits':>4} {'mode':<5} {'file B':>7} {'/tflite':>7} {'LUT B':>6} {'/int8 w':>7} "
          f"{'accuracy':>8} {'points':>6}")
    for r in res["rows"]:
        print(f"{r['bits']:>4} {r['mode']:<5} {r['file_bytes']:>7,} {r['file_bytes'] / tfl:>7.3f}"
              f" {r['lut_bytes']:>6,} {r['lut_bytes'] / r['int8_bytes_of_clustered']:>7.3f} "
              f"{r['accuracy']:>8.4f} {100 * (r['accuracy'] - res['accuracy']):>+6.2f}")


if __name__ == "__main__":
    import sys

    main(sys.argv[1:] or PARTS)
