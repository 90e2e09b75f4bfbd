"""`tinyrt search` on digits for the rp2040 profile: the evolutionary search against random
sampling at the same budget (hypervolume in accuracy x m0 instructions, best accuracy, the
chosen model), the chosen model against the demo's CNNs, and wall time with 1 vs 2 workers.

    .venv/bin/python benchmarks/search_vs_random.py [--budget 40] [--seeds 0] [--epochs 15]
        [--workers 2] [--latency-ms 10] [--out benchmarks/search] [--wall-budget 6]

Writes OUT/<strategy>-seed<S>/ (pareto.json, search.json, pareto.png, best.trt,
best_report.txt) and OUT/summary.json; prints the figures. Candidates are cached in
OUT/cache (shared by the strategies: a configuration both propose is trained and measured
once); the wall-time runs use no cache.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
M0_RUNS = 5  # the headline comparison: median of 5 runs on m0 (a candidate's figure: 1 run)
sys.path.insert(0, str(ROOT))

from boards import get  # noqa: E402
from host_sim import search_eval, search_output  # noqa: E402
from host_sim.cli_search import dask_client  # noqa: E402
from host_sim.search_run import Limits, Search, choose, hypervolume  # noqa: E402


def demo_baselines(data) -> dict:
    """The demo's float CNN test accuracy and its int8 model's m0 instructions per invoke."""
    from converter import ptq
    from host_sim.bench import benchmark
    from host_sim.demo import cache_dir, load_digits_split, trained_model

    xtr, xte, ytr, yte = load_digits_split()
    fmodel, _ = trained_model("cnn_int8", xtr, ytr, cache_dir(), log=lambda *a: None)
    q = ptq.quantize(fmodel, xtr, input_range=(0.0, 1.0), report=False)
    b = benchmark(q.model_bytes, "m0", runs=M0_RUNS)
    return {"float_test_accuracy": float(np.mean(fmodel.predict(xte) == yte)),
            "int8_test_accuracy_sim": float(np.mean(q.simulate(xte).argmax(1) == yte)),
            "int8_m0_instructions": int(b["instructions_per_invoke"]),
            "int8_flash_bytes": len(q.model_bytes)}


def run_one(strategy: str, seed: int, args, data, limits, client, cache: Path | None,
            out: Path | None, log=print) -> tuple[Search, float]:
    s = Search(data, "rp2040", limits, budget=args.budget, seed=seed, epochs=args.epochs,
               strategy=strategy, cache=cache, log=log)
    t = time.perf_counter()
    s.run(client)
    seconds = time.perf_counter() - t
    best = None
    if out is not None:
        chosen = choose(s.results, limits)
        if chosen is not None:
            best = s.best(client, chosen)
        search_output.write(out, s, seconds, args.workers, best=best)
    return s, seconds, best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budget", type=int, default=40)
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--latency-ms", type=float, default=10.0, help="latency budget on the "
                    "board (m0 instructions / its clock); 0: none")
    ap.add_argument("--wall-budget", type=int, default=6, help="candidates of the 1-vs-2 "
                    "workers runs (0: skip them)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "search"))
    args = ap.parse_args()
    out = Path(args.out)
    data = search_eval.load_dataset("digits")
    board = get("rp2040")
    limits = Limits(board.free_heap_bytes, board.fs_bytes, args.latency_ms or None,
                    board.clock_hz)
    summary: dict = {"budget": args.budget, "epochs": args.epochs,
                     "latency_ms": args.latency_ms, "runs": []}
    base = demo_baselines(data)
    summary["demo"] = base
    print(f"demo CNN (conv3x3x8-pool-conv3x3x16-pool-fc10, 30 epochs): float test accuracy "
          f"{base['float_test_accuracy']:.4f}; int8 on m0 {base['int8_m0_instructions']:,} "
          f"instructions per invoke (median of {M0_RUNS})")
    with dask_client(args.workers, None) as client:
        for seed in [int(s) for s in args.seeds.split(",")]:
            for strategy in ("evolve", "random"):
                print(f"\n== {strategy}, seed {seed}, budget {args.budget}")
                s, secs, best = run_one(strategy, seed, args, data, limits, client, out / "cache",
                                  out / f"{strategy}-seed{seed}")
                c = choose(s.results, limits)
                ok = [r for r in s.results if "error" not in r]
                row = {"strategy": strategy, "seed": seed, "seconds": secs,
                       "hypervolume": hypervolume(s.results, limits),
                       "best_accuracy": max(r["accuracy"] for r in ok),
                       "failed": len(s.results) - len(ok),
                       "chosen": None if c is None else {
                           k: c[k] for k in ("label", "config", "accuracy", "test_accuracy",
                                             "instructions_per_invoke", "flash_bytes",
                                             "ram_bytes")}}
                if best is not None:
                    from host_sim.bench import benchmark

                    row["final"] = {k: best[k] for k in ("label", "test_accuracy",
                                                         "instructions_per_invoke",
                                                         "flash_bytes", "ram_bytes")}
                    row["final"]["m0_instructions_median5"] = int(benchmark(
                        best["model"], "m0", runs=M0_RUNS)["instructions_per_invoke"])
                summary["runs"].append(row)
                print(f"-> hypervolume {row['hypervolume']:.4f}, best validation accuracy "
                      f"{row['best_accuracy']:.4f}, {secs:.0f} s")
    if args.wall_budget:
        summary["wall"] = {}
        for w in (1, 2):
            a = argparse.Namespace(**{**vars(args), "budget": args.wall_budget, "workers": w})
            # fresh temporary directories: no run reuses boards.fit's RAM cache of another
            os.environ["TMPDIR"] = tempfile.mkdtemp(prefix=f"search-wall{w}-")
            with dask_client(w, None) as client:
                _, secs, _ = run_one("random", 1000, a, data, limits, client, None, None,
                                  log=lambda *x: None)
            summary["wall"][w] = secs
            print(f"wall time, {args.wall_budget} candidates, {w} worker(s): {secs:.1f} s")
    elif (out / "summary.json").exists():  # keep the last measured wall times
        summary["wall"] = json.loads((out / "summary.json").read_text()).get("wall")
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print("\nstrategy  seed  hypervolume  best acc  chosen (val / test acc, m0 instructions)")
    for r in summary["runs"]:
        c = r["chosen"] or {}
        print(f"{r['strategy']:<8} {r['seed']:>5}  {r['hypervolume']:>11.4f}  "
              f"{r['best_accuracy']:>8.4f}  {c.get('label', '-')} ({c.get('accuracy', 0):.4f} / "
              f"{c.get('test_accuracy', 0):.4f}, {c.get('instructions_per_invoke', 0):,})")
    for r in summary["runs"]:
        if r["strategy"] == "evolve" and r.get("final"):
            c = r["final"]
            ratio = c["m0_instructions_median5"] / base["int8_m0_instructions"]
            print(f"evolve seed {r['seed']}: best.trt ({c['label']}, trained on train + "
                  f"validation)\n  test accuracy {c['test_accuracy']:.4f} vs "
                  f"demo float CNN {base['float_test_accuracy']:.4f} "
                  f"({100 * (c['test_accuracy'] - base['float_test_accuracy']):+.2f} points); "
                  f"m0 instructions {c['m0_instructions_median5']:,} (median of {M0_RUNS}), "
                  f"{ratio:.3f}x the demo int8 CNN's")
    return 0


if __name__ == "__main__":
    sys.exit(main())
