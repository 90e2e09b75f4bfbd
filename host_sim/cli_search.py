"""`tinyrt search --dataset digits --board rp2040 --out DIR`: the best model that fits a board,
found by training, quantizing, converting and measuring candidates as Dask tasks."""

from __future__ import annotations

import argparse
import logging
import time
from contextlib import contextmanager
from pathlib import Path

from .cli_args import EXIT_FAILED, EXIT_OK, InputError, fail


def _limits(args: argparse.Namespace, profile):
    from .search_run import Limits

    return Limits(
        ram_bytes=int(args.ram_kb * 1024) if args.ram_kb else profile.free_heap_bytes,
        flash_bytes=int(args.flash_kb * 1024) if args.flash_kb else profile.fs_bytes,
        latency_ms=args.latency_ms, clock_hz=profile.clock_hz)


@contextmanager
def dask_client(workers: int, scheduler: str | None):
    """A dask.distributed Client: on the scheduler at `scheduler`, else on a LocalCluster of
    `workers` single-threaded worker processes."""
    from dask.distributed import Client, LocalCluster

    if scheduler:
        with Client(scheduler) as client:
            yield client
        return
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      dashboard_address=None, silence_logs=logging.ERROR) as cluster, \
            Client(cluster) as client:
        yield client


def search(args: argparse.Namespace, evaluate=None, log=print) -> int:
    """The command's work (tests call it with their own `evaluate`)."""
    try:
        import dask.distributed  # noqa: F401
        import matplotlib  # noqa: F401
    except ImportError as e:
        return fail(f"tinyrt search needs {e.name}: pip install 'tinyrt[search]'")
    from boards import get

    from . import search_eval, search_output
    from .search_run import Search

    try:
        profile = get(args.board)
    except KeyError as e:
        return fail(str(e.args[0]))
    try:
        data = search_eval.load_dataset(args.dataset)
    except InputError as e:
        return fail(str(e))
    out = Path(args.out)
    s = Search(data, profile.name, _limits(args, profile), budget=args.budget, seed=args.seed,
               epochs=args.epochs, strategy=args.strategy, generation=args.generation,
               cache=None if args.no_cache else out / "cache", log=log)
    if evaluate is not None:
        s.evaluate = evaluate
    where = args.scheduler or f"a LocalCluster of {args.workers} worker processes"
    log(f"tinyrt search: {args.budget} candidates ({args.strategy}, seed {args.seed}, "
        f"{args.epochs} epochs each) for {profile.name} on {where}; {len(data.x_train)} "
        f"training / {len(data.x_val)} validation / {len(data.x_test)} test inputs")
    t0 = time.perf_counter()
    with dask_client(args.workers, args.scheduler) as client:
        s.run(client)
        seconds = time.perf_counter() - t0
        from .search_run import choose

        chosen = choose(s.results, s.limits, args.tolerance)
        best = None
        if chosen is not None:
            try:
                best = s.best(client, chosen)
            except Exception as e:  # noqa: BLE001 - the search's figures still stand
                log(f"tinyrt search: the chosen model's report failed: {e}")
                best = chosen
    sm = search_output.write(out, s, seconds, None if args.scheduler else args.workers,
                             args.tolerance, best)
    log("")
    log(f"Pareto front ({len(sm['front'])} of {sm['metadata']['feasible']} feasible, "
        f"{sm['metadata']['failed']} failed; * chosen):")
    log(search_output.format_table(sm["front"]))
    cm = sm["metadata"]["cost_model"]
    if cm and cm["error_on_others"]["n"]:
        e = cm["error_on_others"]
        log(f"cost model (m0 instructions from layer shapes, calibrated on "
            f"{cm['calibrated_on']}): mean error {e['mean_abs_pct']:.1f}%, max "
            f"{e['max_abs_pct']:.1f}% on {e['n']} other candidates")
    log(f"hypervolume {sm['metadata']['hypervolume']:.4f}; {seconds:.0f} s; wrote "
        f"{out}/pareto.json, pareto.png" + (", best.trt, best_report.txt" if best else ""))
    if best is not None and "report" in best:
        log(f"best.trt: {best['label']} trained again on the training + validation splits: "
            f"test accuracy {best['test_accuracy']:.4f}, m0 {best['instructions_per_invoke']:,}"
            f" instructions per invoke (~{best['latency_ms_estimate']:.3f} ms on "
            f"{profile.name}, an estimate), flash {best['flash_bytes']:,} B, RAM "
            f"{best['ram_bytes']:,} B")
    if best is None:
        log("tinyrt search: no candidate fits the budget")
        return EXIT_FAILED
    return EXIT_OK


def _above_zero(kind: type, what: str):
    """An argparse type: a number of `kind` (float or int) greater than 0."""
    def parse(text: str):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if v <= 0:
            raise argparse.ArgumentTypeError(f"{text!r}: expected {what} above 0")
        return v
    return parse


_positive = _above_zero(float, "a number")
_count = _above_zero(int, "a whole number")


def add_parser(add) -> None:
    p = add("search", "the best model for a board: trains, quantizes and measures candidates "
            "(CNN/MLP width and depth, int8/binary layers, clustering) on Dask, writes the "
            "Pareto front and the chosen model",
            description=__doc__)
    p.add_argument("--dataset", required=True, help="digits (scikit-learn's) or X.npy,Y.npy")
    p.add_argument("--board", required=True, help="board profile (tinyrt fit --help)")
    p.add_argument("--out", required=True, help="output directory (its cache/ resumes a run)")
    p.add_argument("--latency-ms", type=_positive, help="latency budget: m0 instructions / "
                   "the board's clock (an estimate)")
    p.add_argument("--ram-kb", type=_positive, help="free heap budget (default: the board's)")
    p.add_argument("--flash-kb", type=_positive, help="filesystem budget for model + runtime "
                   "(default: the board's)")
    p.add_argument("--budget", type=_count, default=40, help="candidates evaluated (40)")
    p.add_argument("--workers", type=_count, default=2, help="LocalCluster worker processes")
    p.add_argument("--scheduler", help="address of a running Dask scheduler (tcp://host:8786) "
                   "instead of a LocalCluster; its workers need tinyrt and the emulator")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=_count, default=15, help="training epochs per candidate")
    p.add_argument("--strategy", choices=("evolve", "random"), default="evolve")
    p.add_argument("--generation", type=_count, default=8, help="candidates per generation")
    p.add_argument("--tolerance", type=float, default=0.01, help="accuracy the chosen model "
                   "may give up for speed (0.01: one point)")
    p.add_argument("--no-cache", action="store_true", help="ignore and write no OUT/cache")
    p.set_defaults(func=search)
