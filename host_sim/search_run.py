"""`tinyrt search`'s strategy and its Dask scheduling.

Strategy "evolve" (the default): a first generation sampled at random, then generations of
children, each a mutation (search_space.mutate) of a parent drawn from the current Pareto
front of the feasible candidates (accuracy up; instructions, RAM and flash down), three times
in four from its accuracy x instructions front (what the chosen model is picked by). Children the
cost model (search_cost, calibrated on the first candidates measured on m0) predicts to break
the latency budget are skipped before training. Strategy "random" samples every candidate
independently (in generations too, so the same latency pre-screen applies): the baseline
benchmarks/search_vs_random.py compares against.

Generations have a fixed size (not tied to the number of workers) and are proposed from the
results in submission order, so a seed reproduces a run on any cluster. Each candidate is one
Dask task (search_eval.evaluate); a failed one is logged and kept as failed; results are
cached in OUT/cache/<key>.json (+ .trt) so a rerun resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import search_eval, search_space
from .search_cost import CostModel

CALIBRATE = 8  # candidates measured on m0 that calibrate the cost model
HV_REF = (0.8, 1_000_000)  # hypervolume reference point: (accuracy, m0 instructions)
OBJECTIVES = ("accuracy", "instructions_per_invoke", "ram_bytes", "flash_bytes")
FAST_AND_RIGHT = OBJECTIVES[:2]  # what the chosen model is picked by
PRESCREEN_SLACK = 1.5  # skip before training only what the cost model puts 1.5x over budget
P_SPEED_PARENT = 0.75  # chance a parent comes from the accuracy x instructions front


@dataclass
class Limits:
    """The board budget: bytes and milliseconds (None: no latency limit)."""

    ram_bytes: int
    flash_bytes: int
    latency_ms: float | None = None
    clock_hz: int = 125_000_000

    @property
    def instructions(self) -> float:
        return float("inf") if self.latency_ms is None else self.latency_ms * self.clock_hz / 1e3

    def feasible(self, r: dict) -> bool:
        if "error" in r:
            return False
        ram = min(v for v in (r["ram_bytes"], r["ram_streamed_bytes"]) if v is not None)
        return (ram <= self.ram_bytes and r["flash_fs_bytes"] <= self.flash_bytes
                and r["instructions_per_invoke"] <= self.instructions)


@dataclass
class Search:
    data: search_eval.Dataset
    board: str
    limits: Limits
    budget: int = 40
    seed: int = 0
    epochs: int = 15
    strategy: str = "evolve"
    generation: int = 8
    cache: Path | None = None
    log: object = print
    evaluate: object = search_eval.evaluate  # (config, data, seed, epochs, board) -> dict
    results: list[dict] = field(default_factory=list)
    cost: CostModel | None = None

    # -- cache ------------------------------------------------------------------------------
    def _key(self, config: dict) -> str:
        return hashlib.sha256(json.dumps(
            [search_eval.EVAL_VERSION, config, self.data.fingerprint(), self.seed, self.epochs,
             self.board], sort_keys=True).encode()).hexdigest()[:24]

    def _cached(self, config: dict) -> dict | None:
        if self.cache is None:
            return None
        p = self.cache / f"{self._key(config)}.json"
        try:
            r = json.loads(p.read_text())
            r["model"] = p.with_suffix(".trt").read_bytes()
            return r
        except (OSError, ValueError):
            return None

    def _store(self, r: dict) -> None:
        if self.cache is None:
            return
        self.cache.mkdir(parents=True, exist_ok=True)
        k = self._key(r["config"])
        (self.cache / f"{k}.trt").write_bytes(r["model"])
        tmp = self.cache / f"{k}.json.part"
        tmp.write_text(json.dumps({a: b for a, b in r.items() if a != "model"}))
        tmp.replace(self.cache / f"{k}.json")  # the .json last: a reader sees all or nothing

    def best(self, client, chosen: dict) -> dict:
        """The final model: `chosen`'s config trained again on all the training data (the
        search's training and validation splits), then measured like a candidate, with its
        full report (quantization, fit). Its test accuracy is the honest figure (its
        validation accuracy is on data it trained on). Cached in OUT/cache."""
        final = search_eval.with_validation_trained(self.data)
        k = self._key(chosen["config"]) + "-final"
        p = self.cache / f"{k}.json" if self.cache else None
        if p is not None and p.exists():
            try:
                return {**json.loads(p.read_text()),
                        "model": p.with_suffix(".trt").read_bytes()}
            except (OSError, ValueError):
                pass
        r = client.submit(self.evaluate, chosen["config"], final, self.seed, self.epochs,
                          self.board, full_report=True, pure=False).result()
        if p is not None:
            p.with_suffix(".trt").write_bytes(r["model"])
            p.write_text(json.dumps({a: b for a, b in r.items() if a != "model"}))
        return r

    # -- proposals ----------------------------------------------------------------------------
    def _sample(self, rng: np.random.Generator) -> dict:
        while True:
            c = search_space.sample(rng)
            if self.data.image or c["family"] == "mlp":
                return c

    def _predicted_ok(self, config: dict) -> bool:
        if self.cost is None or self.limits.latency_ms is None:
            return True
        _, _, model = search_eval.quantized(config, self.data, self.seed, 0)
        predicted = self.cost.predict(search_eval.layer_shapes(model))
        return predicted <= PRESCREEN_SLACK * self.limits.instructions

    def _propose(self, rng: np.random.Generator, n: int, seen: set[str]) -> list[dict]:
        feasible = [r for r in self.results if self.limits.feasible(r)]
        front, speed = pareto_front(feasible), pareto_front(feasible, FAST_AND_RIGHT)
        out: list[dict] = []
        for _ in range(200 * n):
            if len(out) == n:
                break
            if self.strategy == "evolve" and front:
                pool = speed if rng.random() < P_SPEED_PARENT else front
                parent = pool[int(rng.integers(len(pool)))]["config"]
                c = search_space.mutate(parent, rng)
            else:
                c = self._sample(rng)
            k = search_space.key(c)
            if k in seen or not self._predicted_ok(c):
                seen.add(k)
                continue
            seen.add(k)
            out.append(c)
        return out

    # -- running ------------------------------------------------------------------------------
    def run(self, client) -> list[dict]:
        """Evaluate `budget` candidates on the Dask client; the results in submission order."""
        from dask.distributed import as_completed

        rng = np.random.default_rng(self.seed)
        seen: set[str] = set()
        data = client.scatter(self.data, broadcast=True)
        t0 = time.perf_counter()
        while len(self.results) < self.budget:
            n = min(self.generation, self.budget - len(self.results))
            configs = self._propose(rng, n, seen)
            if not configs:
                self.log("search: no new candidate left to propose")
                break
            done: dict[int, dict] = {}
            futures = {}
            for i, c in enumerate(configs):
                r = self._cached(c)
                if r is not None:
                    done[i] = r
                    self._progress(len(self.results) + len(done), r, t0, cached=True)
                else:
                    futures[client.submit(self.evaluate, c, data, self.seed, self.epochs,
                                          self.board, pure=False)] = i
            for fut in as_completed(list(futures)):
                i = futures[fut]
                try:
                    r = fut.result()
                    self._store(r)
                except Exception as e:  # noqa: BLE001 - one candidate's failure is not fatal
                    tb = "".join(traceback.format_exception_only(type(e), e)).strip()
                    r = {"config": configs[i], "label": search_space.label(configs[i]),
                         "error": tb.splitlines()[-1] if tb else type(e).__name__}
                done[i] = r
                self._progress(len(self.results) + len(done), r, t0)
            self.results += [done[i] for i in range(len(configs))]
            self._calibrate()
        return self.results

    def _calibrate(self) -> None:
        ok = [r for r in self.results if "error" not in r]
        if self.cost is None and len(ok) >= CALIBRATE:
            self.cost = CostModel.fit(ok[:CALIBRATE])
            e = self.cost.error(ok[CALIBRATE:])
            self.log(f"cost model calibrated on {CALIBRATE} candidates measured on m0"
                     + (f"; error on {e['n']} others: mean {e['mean_abs_pct']:.1f}%, max "
                        f"{e['max_abs_pct']:.1f}%" if e["n"] else ""))

    def _progress(self, k: int, r: dict, t0: float, cached: bool = False) -> None:
        where = "cache" if cached else f"{time.perf_counter() - t0:.0f} s"
        if "error" in r:
            self.log(f"[{k}/{self.budget}] {r['label']}: FAILED ({r['error']})")
            return
        mark = "" if self.limits.feasible(r) else "  (does not fit)"
        self.log(f"[{k}/{self.budget}] {r['label']:<28} acc {r['accuracy']:.3f}  m0 "
                 f"{r['instructions_per_invoke']:>9,} instr  flash {r['flash_bytes']:>6,} B  "
                 f"RAM {r['ram_bytes']:>7,} B  [{where}]{mark}")


def dominates(a: dict, b: dict, keys=OBJECTIVES) -> bool:
    """a is no worse than b in every objective (accuracy up, the others down), better in
    one."""
    ka = tuple(-a[k] if k == "accuracy" else a[k] for k in keys)
    kb = tuple(-b[k] if k == "accuracy" else b[k] for k in keys)
    return all(x <= y for x, y in zip(ka, kb)) and ka != kb


def pareto_front(results: list[dict], keys=OBJECTIVES) -> list[dict]:
    """The candidates no other one dominates, by instructions."""
    ok = [r for r in results if "error" not in r]
    front = [r for r in ok if not any(dominates(o, r, keys) for o in ok)]
    return sorted(front, key=lambda r: (r["instructions_per_invoke"], -r["accuracy"]))


def choose(results: list[dict], limits: Limits, tolerance: float = 0.01) -> dict | None:
    """The fastest feasible candidate within `tolerance` of the best feasible accuracy
    (ties: fewer flash bytes)."""
    ok = [r for r in results if limits.feasible(r)]
    if not ok:
        return None
    best = max(r["accuracy"] for r in ok)
    near = [r for r in ok if r["accuracy"] >= best - tolerance - 1e-12]
    return min(near, key=lambda r: (r["instructions_per_invoke"], r["flash_bytes"]))


def hypervolume(results: list[dict], limits: Limits | None = None,
                ref: tuple[float, float] = HV_REF) -> float:
    """Area dominated by the candidates in (accuracy, instructions) up to `ref`: accuracy
    from ref[0] to 1 times instructions from 0 to ref[1], normalised to 1."""
    pts = sorted((r["instructions_per_invoke"], r["accuracy"]) for r in results
                 if "error" not in r and (limits is None or limits.feasible(r)))
    area, best = 0.0, ref[0]
    for i, (instr, acc) in enumerate(pts):
        if instr >= ref[1]:
            break
        best = max(best, acc)
        nxt = min(pts[i + 1][0], ref[1]) if i + 1 < len(pts) else ref[1]
        area += (best - ref[0]) * (nxt - instr)
    return area / ((1 - ref[0]) * ref[1])
