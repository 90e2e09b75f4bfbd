"""What `tinyrt search` writes: OUT/pareto.json (the list of every candidate, each with its
figures, config and whether it is on the front or chosen), OUT/search.json (the run's metadata
and the front), OUT/pareto.png, OUT/best.trt and OUT/best_report.txt (the chosen model's
per-layer report), and the table it prints."""

from __future__ import annotations

import json
from pathlib import Path

from . import search_space
from .search_run import FAST_AND_RIGHT, Limits, Search, choose, hypervolume, pareto_front

_KEEP = ("label", "config", "accuracy", "test_accuracy", "float_accuracy",
         "instructions_per_invoke", "instructions_predicted", "latency_ms_estimate",
         "flash_bytes", "flash_fs_bytes", "ram_bytes", "ram_streamed_bytes", "verdict", "macs",
         "arena_bytes", "seconds", "error")


def _row(r: dict, fronts: tuple[set[str], set[str]], chosen: dict | None,
         limits: Limits) -> dict:
    out = {k: r[k] for k in _KEEP if k in r}
    k = search_space.key(r["config"])
    out.update(key=k, on_front=k in fronts[0], on_speed_front=k in fronts[1],
               feasible=limits.feasible(r),
               chosen=chosen is not None and k == search_space.key(chosen["config"]))
    return out


def summary(s: Search, seconds: float, workers: int | None, tolerance: float) -> dict:
    """The run's figures: metadata, the front and every candidate (pareto.json holds the
    candidates, search.json the metadata and the front)."""
    res = s.results
    for r in res:
        if s.cost is not None and "error" not in r:
            r["instructions_predicted"] = s.cost.predict(r["layers"])
    feasible = [r for r in res if s.limits.feasible(r)]
    front = pareto_front(feasible)
    keys = ({search_space.key(r["config"]) for r in front},
            {search_space.key(r["config"]) for r in pareto_front(feasible, FAST_AND_RIGHT)})
    chosen = choose(res, s.limits, tolerance)
    ok = [r for r in res if "error" not in r]
    from .search_run import CALIBRATE

    meta = {
        "board": s.board, "dataset": s.data.name, "budget": s.budget, "seed": s.seed,
        "epochs": s.epochs, "strategy": s.strategy, "generation": s.generation,
        "evaluated": len(res), "failed": len(res) - len(ok), "feasible": len(feasible),
        "limits": {"ram_bytes": s.limits.ram_bytes, "flash_fs_bytes": s.limits.flash_bytes,
                   "latency_ms": s.limits.latency_ms},
        "accuracy": "validation split (20% of the training data), the model file on the "
                    "MicroPython unix port; test_accuracy: the held-out test split",
        "instructions_per_invoke": "measured on the emulated Cortex-M0 (m0, asm_thumb "
                                   "twins), heap locked, median",
        "latency_ms_estimate": "instructions / the board's clock, one instruction per cycle "
                               "(an estimate)",
        "ram_bytes": "boards.fit: free heap import + load + invoke need, loaded whole "
                     "(ram_streamed_bytes: streamed)",
        "flash_bytes": "model file bytes (flash_fs_bytes: with the runtime, in filesystem "
                       "blocks)",
        "cost_model": None if s.cost is None else {
            **s.cost.to_json(), "error_on_others": s.cost.error(ok[CALIBRATE:]),
            "error_on_calibration": s.cost.error(ok[:CALIBRATE])},
        "hypervolume": hypervolume(res, s.limits),
        "hypervolume_reference": {"accuracy": 0.8, "instructions": 1_000_000},
        "chosen_rule": f"fewest m0 instructions within {tolerance:.3f} of the best feasible "
                       "validation accuracy",
        "wall_seconds": seconds, "workers": workers,
    }
    return {"metadata": meta, "front": [_row(r, keys, chosen, s.limits) for r in front],
            "candidates": [_row(r, keys, chosen, s.limits) for r in res]}


def format_table(rows: list[dict]) -> str:
    head = (f"{'candidate':<28} {'acc':>6} {'test':>6} {'m0 instr':>11} {'ms':>7} "
            f"{'flash B':>8} {'RAM B':>8}")
    lines = [head, "-" * len(head)]
    for r in rows:
        star = " *" if r.get("chosen") else ""
        lines.append(f"{r['label']:<28} {r['accuracy']:>6.3f} {r['test_accuracy']:>6.3f} "
                     f"{r['instructions_per_invoke']:>11,} {r['latency_ms_estimate']:>7.3f} "
                     f"{r['flash_bytes']:>8,} {r['ram_bytes']:>8,}{star}")
    return "\n".join(lines)


def plot(summary_: dict, path: Path, title: str) -> None:
    """Accuracy vs m0 instructions: every candidate, the front, the chosen one."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    c = [r for r in summary_["candidates"] if "error" not in r]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for fits, colour, name in ((True, "#999", "candidates"), (False, "#e99", "over budget")):
        pts = [r for r in c if r["feasible"] == fits]
        if pts:
            ax.scatter([r["instructions_per_invoke"] for r in pts],
                       [r["accuracy"] for r in pts], s=14, c=colour, label=name)
    f = [r for r in summary_["front"] if not r["on_speed_front"]]
    ax.scatter([r["instructions_per_invoke"] for r in f], [r["accuracy"] for r in f], s=40,
               facecolors="none", edgecolors="#1f77b4",
               label="Pareto front (smaller RAM or flash)")
    f = sorted((r for r in c if r["on_speed_front"]), key=lambda r: r["instructions_per_invoke"])
    ax.step([r["instructions_per_invoke"] for r in f], [r["accuracy"] for r in f], "o-",
            where="post", c="#1f77b4", ms=5, label="Pareto front: accuracy x instructions")
    for r in c:
        if r["chosen"]:
            ax.scatter([r["instructions_per_invoke"]], [r["accuracy"]], marker="*", s=260,
                       c="#d62728", zorder=5, label=f"chosen: {r['label']}")
    ax.set_xscale("log")
    ax.set_xlabel("instructions per invoke on the emulated Cortex-M0 (log)")
    ax.set_ylabel("validation accuracy")
    lo = min([r["accuracy"] for r in c] + [0.8])
    ax.set_ylim(max(lo - 0.02, 0), 1.0)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def layer_table(r: dict) -> str:
    lines = [f"  {'#':>2} {'op':<22} {'MACs':>8} {'m0 instr':>10} {'instr/MAC':>9}"]
    for i, la in enumerate(r["layers"]):
        per = f"{la['instructions'] / la['macs']:.2f}" if la["macs"] else "-"
        lines.append(f"  {i:>2} {la['op']:<22} {la['macs']:>8,} {la['instructions']:>10,} "
                     f"{per:>9}")
    return "\n".join(lines)


def write(out: Path, s: Search, seconds: float, workers: int | None,
          tolerance: float = 0.01, best: dict | None = None) -> dict:
    """Write pareto.json, search.json, pareto.png and, when a candidate fits, best.trt and its
    report
    (`best`: Search.best, the chosen configuration trained on all the training data)."""
    out.mkdir(parents=True, exist_ok=True)
    sm = summary(s, seconds, workers, tolerance)
    chosen = next((r for r in sm["candidates"] if r["chosen"]), None)
    if best is not None:
        sm["metadata"]["final"] = {
            **{k: best[k] for k in ("label", "config", "test_accuracy", "instructions_per_invoke",
                                    "latency_ms_estimate", "flash_bytes", "ram_bytes",
                                    "ram_streamed_bytes", "verdict") if k in best},
            "trained_on": "training + validation splits (best.trt)"}
    (out / "pareto.json").write_text(json.dumps(sm["candidates"], indent=1))
    (out / "search.json").write_text(json.dumps({"metadata": sm["metadata"],
                                                 "front": sm["front"]}, indent=1))
    plot(sm, out / "pareto.png", f"tinyrt search: {s.data.name} on {s.board}, "
         f"{len(s.results)} candidates ({s.strategy}, seed {s.seed})")
    if best is not None:
        (out / "best.trt").write_bytes(best["model"])
        rep = best.get("report", {})
        text = [f"chosen: {best['label']}  config {json.dumps(best['config'])}",
                "best.trt: the chosen configuration trained again on the training and "
                "validation splits",
                f"test accuracy {best['test_accuracy']:.4f} (the search's candidate: "
                f"{chosen['test_accuracy']:.4f}; validation {chosen['accuracy']:.4f})",
                f"m0 instructions per invoke {best['instructions_per_invoke']:,} (measured); "
                f"~{best['latency_ms_estimate']:.3f} ms on {s.board} (estimate)", "",
                "per layer on the emulated Cortex-M0:", layer_table(best), "",
                "quantization (per layer):", rep.get("quantization", "-"), "",
                rep.get("fit", "")]
        (out / "best_report.txt").write_text("\n".join(text) + "\n")
    return sm
