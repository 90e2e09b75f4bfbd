"""Benchmark report: tinyrt on the emulated boards, against TFLM's reference and CMSIS-NN kernels.

    python benchmarks/report.py                    # measure, write REPORT.md and the plots
    python benchmarks/report.py --from-json        # rewrite them from board_results.json

Every figure is what `tinyrt bench MODEL --interpreter m0|m3 --json` prints, run here once per
board, shared int8 model (../shared/models) and kernel mode:
- asm: the default choice (inline-Thumb twins where they exist, else viper), with --vs-tflm, so
  TFLM's reference and CMSIS-NN builds run the same inputs on the same emulated CPU;
- viper: the viper twins alone (what an ESP32 runs; its Xtensa code is not emulated here).
Under QEMU's -icount shift=0 an instruction is a tick: the counts are deterministic, and a
Cortex-M0+ at one instruction per cycle gives the RP2040 estimate (133 MHz).
The raw JSON goes to board_results.json; REPORT.md, models.png (whole model, grouped bars) and
kws_layers.png (per layer) are made from it (the plots need matplotlib: pip install
'tinyrt[dev]').
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import estimates  # noqa: E402  (benchmarks/estimates.py, run as a script beside this one)

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
MODELS_DIR = ROOT.parent / "shared" / "models"
MODELS = ["hello_world_int8", "micro_speech_quantized", "kws_ref_model", "digits_cnn_int8",
          "digits_mlp_int8"]
BOARDS = ("m0", "m3")
MODES = ("asm", "viper")
PER_LAYER_MODEL = "kws_ref_model"
RP2040_HZ = 133_000_000


# -- measuring ----------------------------------------------------------------------------------

def bench(model: str, board: str, mode: str) -> dict:
    """`tinyrt bench` of one shared model on one board in one kernel mode, as its JSON."""
    path = MODELS_DIR / f"{model}.tflite"
    cmd = [sys.executable, "-m", "host_sim.cli", "bench", str(path), "--interpreter", board,
           "--mode", mode, "--json"]
    if mode == "asm":
        cmd += ["--vs-tflm", str(path)]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[2:])}: exit {r.returncode}: {r.stderr.strip()}")
    return json.loads(r.stdout)


def measure(models: list[str], boards, jobs: int, log=print) -> dict:
    """{"results": {board: {model: {mode: bench JSON}}}, "generated": ..., "commit": ...}."""
    todo = [(m, b, k) for b in boards for m in models for k in MODES]
    out: dict = {b: {m: {} for m in models} for b in boards}
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for (m, b, k), r in zip(todo, pool.map(lambda a: bench(*a), todo)):
            out[b][m][k] = r
            log(f"  {b} {m} {k}: {r['instructions_per_invoke']:,} instructions")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip()
    return {"results": out, "generated": time.strftime("%Y-%m-%d %H:%M"), "commit": commit,
            "seconds": round(time.perf_counter() - t0)}


# -- the report ---------------------------------------------------------------------------------

def _n(v) -> str:
    return "-" if v is None else f"{v:,.0f}"


def _x(v) -> str:
    return "-" if v is None else f"{v:.2f}"


def main_table(data: dict) -> list[str]:
    lines = ["| board | model | MACs | tinyrt asm | tinyrt viper | TFLM ref | CMSIS-NN | "
             "asm / CMSIS-NN | asm / ref | asm instr/MAC | CMSIS-NN instr/MAC | RP2040 ms "
             "(asm) | bit-exact |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for board, models in data["results"].items():
        for model, r in models.items():
            a, v = r["asm"], r["viper"]
            ms = a["instructions_per_invoke"] / RP2040_HZ * 1000 if board == "m0" else None
            exact = {True: "yes", False: "**NO**", None: "-"}[a["outputs_match_tflm"]]
            lines.append(
                f"| {board} | {model} | {_n(a['macs'])} | {_n(a['instructions_per_invoke'])} | "
                f"{_n(v['instructions_per_invoke'])} | {_n(a['tflm_ref_instructions'])} | "
                f"{_n(a['tflm_cmsis_instructions'])} | **{_x(a['ratio'])}** | "
                f"{_x(a['ratio_ref'])} | {_x(a['instructions_per_mac'])} | "
                f"{_x(a['tflm_cmsis_instructions_per_mac'])} | "
                f"{'-' if ms is None else f'{ms:.2f}'} | {exact} |")
    return lines


def layer_table(data: dict, model: str) -> list[str]:
    boards = list(data["results"])
    head = "| # | op | MACs | " + " | ".join(
        f"{b} {k} ({'kernel, ' if k == 'asm' else ''}instructions)" for b in boards
        for k in MODES) + " | " + " | ".join(f"{b} asm instr/MAC" for b in boards) + " |"
    lines = [head, "|---|---|---:|" + "---:|" * (len(boards) * (len(MODES) + 1))]
    first = data["results"][boards[0]][model]["asm"]["layers"]
    for i, layer in enumerate(first):
        cells = []
        for b in boards:
            for k in MODES:
                lr = data["results"][b][model][k]["layers"][i]
                kern = f"{lr['kernel']}, " if k == "asm" else ""
                cells.append(f"{kern}{lr['instructions']:,}")
        ipm = [data["results"][b][model]["asm"]["layers"][i]["instructions_per_mac"]
               for b in boards]
        lines.append(f"| {i} | {layer['op']} | {_n(layer['macs']) if layer['macs'] else '-'} "
                     f"| {' | '.join(cells)} | {' | '.join(_x(v) for v in ipm)} |")
    return lines


def kernel_section() -> list[str]:
    """The per-kernel table (benchmarks/kernel_table.py's stored before/after figures)."""
    path = HERE / "kernel_results.json"
    if not path.exists():
        return []
    try:
        import kernel_table
    except ImportError:  # unicorn (the counting emulator) missing: no table
        return []
    k = json.loads(path.read_text())
    return ["## Per kernel: instructions per MAC, before and after", "",
            f"`python benchmarks/kernel_table.py` (Unicorn, the mpy-cross machine code of each "
            f"core, one whole layer call; random data, no ReLU): before at "
            f"{k.get('before_commit')}, after at {k.get('after_commit')}. "
            + (f"Before, {k['before_note']}. " if k.get("before_note") else "")
            + "The last columns: hypothesis cases per test run that compare the kernel with "
            "the reference kernel bit for bit.", "",
            *kernel_table.table(k.get("before", {}), k.get("after", {}), True), ""]


def write_report(data: dict, out: Path, plots: list[str]) -> None:
    res = data["results"]
    m0 = res.get("m0", {})
    summary = []
    if m0:
        ratios = {m: r["asm"]["ratio"] for m, r in m0.items()}
        best, worst = min(ratios, key=ratios.get), max(ratios, key=ratios.get)
        summary.append(f"On the Cortex-M0 (the RP2040's instruction set) tinyrt's default kernels "
                       f"run the shared models in {ratios[best]:.2f}x ({best}) to "
                       f"{ratios[worst]:.2f}x ({worst}) CMSIS-NN's instructions.")
    lines = [
        "# tinyrt benchmark report: the emulated boards",
        "",
        f"Generated {data['generated']} at commit {data['commit']} by `python "
        "benchmarks/report.py` (every figure is `tinyrt bench MODEL.tflite --interpreter "
        "m0|m3 --mode asm|viper --json`, asm with `--vs-tflm`; raw JSON in "
        "[board_results.json](board_results.json)). " + " ".join(summary),
        "",
        "- **m0**: MicroPython 1.29 firmware for a Cortex-M0 (armv6m), **m3**: for a Cortex-M3 "
        "(armv7m), under QEMU with `-icount shift=0`, the runtime imported as `.mpy` compiled for "
        "the board (what flash.sh installs): `ticks_us()` x 1000 = instructions executed, "
        "deterministic. The figures are instructions per `invoke()` with the heap "
        "locked, the empty timing loop subtracted (median of 5 runs).",
        "- **tinyrt asm**: the default kernel choice (inline-Thumb twins where they exist, else "
        "viper); **tinyrt viper**: viper twins alone (`--mode viper`, the ESP32 path; its "
        "Xtensa code itself is not emulated).",
        "- **TFLM ref / CMSIS-NN**: TensorFlow Lite Micro with its reference kernels and with "
        "CMSIS-NN, built for the same CPU and run on the same emulator with the same inputs "
        "(../shared/emulator/tflm); mean instructions per invoke. Ratios below 1: tinyrt runs "
        "fewer instructions.",
        "- **RP2040 ms**: m0 instructions at one per cycle at 133 MHz (a lower bound: flash "
        "wait states and bus stalls are not modelled); RP2350 and energy estimates in their "
        "own section below.",
        "- **bit-exact**: tinyrt's outputs equal TFLM's (both builds) on every input.",
        "",
        "## Whole models",
        "",
        *main_table(data),
        "",
    ]
    if "models.png" in plots:
        lines += ["![instructions per invoke, per model and board](models.png)", ""]
    if all(PER_LAYER_MODEL in r for r in res.values()):
        lines += [f"## Per layer: {PER_LAYER_MODEL}", "",
                  "Instructions of each layer's `eval()` alone, timed in blocks (ticks are "
                  "1,000 instructions, so small layers round to a few thousand); the asm "
                  "column names the kernel the layer ran.", "",
                  *layer_table(data, PER_LAYER_MODEL), ""]
        if "kws_layers.png" in plots:
            lines += [f"![instructions per layer of {PER_LAYER_MODEL}](kws_layers.png)", ""]
    lines += kernel_section()
    lines += estimates.section(data, data.get("extra"))
    lines += ["What was tried to get here, and what each step gained: "
              "[optimization_log.md](optimization_log.md).", ""]
    out.write_text("\n".join(lines))


# -- plots --------------------------------------------------------------------------------------

SERIES = (("tinyrt asm", lambda r: r["asm"]["instructions_per_invoke"], "#1f77b4"),
          ("tinyrt viper", lambda r: r["viper"]["instructions_per_invoke"], "#aec7e8"),
          ("TFLM reference", lambda r: r["asm"]["tflm_ref_instructions"], "#bbbbbb"),
          ("TFLM CMSIS-NN", lambda r: r["asm"]["tflm_cmsis_instructions"], "#ff7f0e"))


def plot_models(data: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    boards = list(data["results"])
    fig, axes = plt.subplots(len(boards), 1, figsize=(11, 4.2 * len(boards)), squeeze=False)
    for ax, board in zip(axes[:, 0], boards):
        res = data["results"][board]
        models = list(res)
        x = np.arange(len(models))
        w = 0.8 / len(SERIES)
        for j, (label, get, color) in enumerate(SERIES):
            vals = [get(res[m]) or 0 for m in models]
            bars = ax.bar(x + (j - (len(SERIES) - 1) / 2) * w, vals, w, label=label,
                          color=color, edgecolor="black", linewidth=0.4)
            ax.bar_label(bars, [f"{v / 1e6:.2f}M" if v >= 1e6 else f"{v / 1e3:.0f}k"
                                for v in vals], fontsize=7, rotation=90, padding=2)
        ax.set_yscale("log")
        ax.set_ylim(top=ax.get_ylim()[1] * 8)
        ax.set_xticks(x, [f"{m}\n{res[m]['asm']['macs']:,} MACs" for m in models], fontsize=9)
        ax.set_ylabel("instructions per invoke (log)")
        ax.set_title(f"{board}: whole-model instructions per invoke (lower is better)")
        ax.grid(axis="y", which="major", alpha=0.3)
        ax.legend(fontsize=8, ncol=4, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_layers(data: dict, model: str, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    boards = list(data["results"])
    first = data["results"][boards[0]][model]["asm"]["layers"]
    names = [f"{i} {lr['op']}" for i, lr in enumerate(first)]
    y = np.arange(len(names))
    series = [(b, k) for b in boards for k in MODES]
    colors = {("m0", "asm"): "#1f77b4", ("m0", "viper"): "#aec7e8",
              ("m3", "asm"): "#2ca02c", ("m3", "viper"): "#98df8a"}
    h = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(10, 0.55 * len(names) + 1.5))
    for j, (b, k) in enumerate(series):
        vals = [lr["instructions"] / 1e3 for lr in data["results"][b][model][k]["layers"]]
        ax.barh(y + (j - (len(series) - 1) / 2) * h, vals, h, label=f"{b} {k}",
                color=colors.get((b, k)), edgecolor="black", linewidth=0.3)
    ax.set_yticks(y, names, fontsize=9)
    ax.invert_yaxis()
    ax.set_xlabel("thousand instructions per layer eval()")
    ax.set_title(f"{model}: instructions per layer on the emulated boards")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plots(data: dict, outdir: Path, log=print) -> list[str]:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        log("matplotlib is not installed (pip install 'tinyrt[dev]'): no plots")
        return []
    made = []
    plot_models(data, outdir / "models.png")
    made.append("models.png")
    if all(PER_LAYER_MODEL in r for r in data["results"].values()):
        plot_layers(data, PER_LAYER_MODEL, outdir / "kws_layers.png")
        made.append("kws_layers.png")
    return made


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default=str(HERE / "REPORT.md"))
    p.add_argument("--json", default=str(HERE / "board_results.json"),
                   help="where the raw results go (or come from, with --from-json)")
    p.add_argument("--from-json", action="store_true", help="do not measure: rewrite the "
                   "report and plots from --json")
    p.add_argument("--boards", default=",".join(BOARDS))
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--jobs", type=int, default=2, help="bench runs at a time")
    a = p.parse_args(argv)
    if a.from_json:
        data = json.loads(Path(a.json).read_text())
    else:
        data = measure(a.models.split(","), a.boards.split(","), a.jobs)
        Path(a.json).write_text(json.dumps(data, indent=1) + "\n")
    out = Path(a.out)
    made = plots(data, out.parent)
    write_report(data, out, made)
    print(f"wrote {out}" + "".join(f", {out.parent / m}" for m in made))
    return 0


if __name__ == "__main__":
    sys.exit(main())
