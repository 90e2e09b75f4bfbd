"""`tinyrt search` (issue 18): candidates as Dask tasks on a 2-worker LocalCluster.

- A tiny real search (4 candidates, 1 epoch, MLPs on the digits as X.npy,Y.npy) writes a valid
  pareto.json / pareto.png / best.trt; best.trt (the chosen configuration trained again on
  training + validation data) loads in tinyrt and classifies the test split with the accuracy
  pareto.json reports; a rerun (on a running scheduler, --scheduler) takes
  every candidate from OUT/cache.
- A fixed seed reproduces the proposals (strategy over a cheap deterministic stand-in for the
  evaluation), and training + quantizing a candidate twice gives the same model file.
- A candidate whose evaluation raises is logged and kept as failed; the search goes on.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

pytest.importorskip("sklearn")
distributed = pytest.importorskip("dask.distributed")

import cloudpickle  # noqa: E402

from host_sim import cli, search_eval, search_space  # noqa: E402
from host_sim.cli_search import dask_client  # noqa: E402
from host_sim.search_run import (CALIBRATE, Limits, Search, choose, hypervolume,  # noqa: E402
                                 pareto_front)

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers need not import tests


@pytest.fixture(scope="module")
def client():
    with dask_client(2, None) as c:
        yield c


@pytest.fixture(scope="module")
def flat_digits(tmp_path_factory):
    """The digits as flat (N, 64) features: an X.npy,Y.npy data set (MLPs only)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    p = tmp_path_factory.mktemp("digits")
    np.save(p / "x.npy", (d.data / 16).astype(np.float32))
    np.save(p / "y.npy", d.target)
    return f"{p / 'x.npy'},{p / 'y.npy'}"


def test_tiny_search_writes_front_and_a_model_that_runs(tmp_path, flat_digits, capsys,
                                                        client):
    from host_sim.device import invoke_batch

    out = tmp_path / "out"
    argv = ["search", "--dataset", flat_digits, "--board", "rp2040", "--budget", "4",
            "--epochs", "1", "--generation", "2", "--workers", "2", "--seed", "1",
            "--out", str(out)]
    assert cli.main(argv) == 0
    log = capsys.readouterr().out
    sm = json.loads((out / "search.json").read_text())
    sm["candidates"] = json.loads((out / "pareto.json").read_text())  # a list, as documented
    assert isinstance(sm["candidates"], list)
    assert sm["metadata"]["evaluated"] == 4 and sm["metadata"]["board"] == "rp2040"
    assert len(sm["candidates"]) == 4 and sm["front"]
    assert sorted(r["key"] for r in sm["candidates"] if r["on_front"]) == sorted(
        r["key"] for r in sm["front"])
    for r in sm["candidates"]:
        assert r["config"]["family"] == "mlp"  # flat features: no CNN is proposed
        assert 0 <= r["accuracy"] <= 1 and r["instructions_per_invoke"] > 0
        assert r["ram_bytes"] > r["flash_bytes"] > 0
    assert (out / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    chosen = [r for r in sm["candidates"] if r["chosen"]]
    assert len(chosen) == 1 and chosen[0]["on_front"]
    report = (out / "best_report.txt").read_text()
    assert "per layer on the emulated Cortex-M0" in report and chosen[0]["label"] in report

    # best.trt: the chosen configuration trained on training + validation data; tinyrt runs
    # it to the accuracy reported
    final = sm["metadata"]["final"]
    assert final["config"] == chosen[0]["config"]
    data = search_eval.with_validation_trained(search_eval.load_dataset(flat_digits))
    model = (out / "best.trt").read_bytes()
    _, q, again = search_eval.quantized(chosen[0]["config"], data, 1, 1)
    assert again == model  # training and conversion are deterministic
    rows = invoke_batch(model, [[x] for x in q.quantize_input(data.x_test)], "unix")
    acc = np.mean([int(np.argmax(r[0])) == y for r, y in zip(rows, data.y_test)])
    assert acc == pytest.approx(final["test_accuracy"])
    assert log.count("[cache]") == 0

    # a rerun resumes from OUT/cache: no candidate is evaluated again (on a running
    # scheduler this time: --scheduler ADDRESS)
    assert cli.main(argv + ["--scheduler", client.scheduler.address]) == 0
    log = capsys.readouterr().out
    assert log.count("[cache]") == 4
    assert json.loads((out / "pareto.json").read_text()) == sm["candidates"]


# -- the strategy, over a cheap deterministic stand-in for training and measuring ------------

def _fake_evaluate(config, data, seed, epochs, board, full_report=False):
    width = sum(config["layers"]) * (1 if config["family"] == "mlp" else 3)
    binary = sum(config["binary"])
    instr = 1000 * width // (1 + 3 * binary) + (50_000 * bool(config["cluster"]))
    acc = 0.99 - 5.0 / (width + 20) - 0.02 * binary - 0.01 * (config["cluster"] == 2)
    flash = 40 * width // (1 + binary) // (1 + bool(config["cluster"]))
    return {"config": config, "label": search_space.label(config), "accuracy": acc,
            "test_accuracy": acc, "instructions_per_invoke": instr, "flash_bytes": flash,
            "flash_fs_bytes": flash, "ram_bytes": 70_000 + flash, "ram_streamed_bytes": None,
            "layers": [{"op": "FULLY_CONNECTED", "macs": width, "in": 64, "out": 10,
                        "instructions": instr}], "model": b""}


def _failing_evaluate(config, data, seed, epochs, board, full_report=False):
    if config["layers"][0] >= 64:
        raise RuntimeError(f"{search_space.label(config)}: out of memory on m0")
    return _fake_evaluate(config, data, seed, epochs, board)


def _search(strategy="evolve", seed=0, evaluate=_fake_evaluate, budget=16, log=None):
    data = search_eval.load_dataset("digits")
    return Search(data, "rp2040", Limits(200_000, 1_000_000), budget=budget, seed=seed,
                  epochs=1, strategy=strategy, generation=4, evaluate=evaluate,
                  log=log or (lambda *a: None))


def test_seed_reproduces_and_evolution_searches_the_front(client):
    a = _search(seed=3)
    a.run(client)
    b = _search(seed=3)
    b.run(client)
    keys = [search_space.key(r["config"]) for r in a.results]
    assert keys == [search_space.key(r["config"]) for r in b.results]
    assert len(set(keys)) == 16  # no candidate twice
    c = _search(seed=4)
    c.run(client)
    assert keys != [search_space.key(r["config"]) for r in c.results]
    # children (after the first generation) are mutations of front members
    assert a.cost is not None and a.cost.n_candidates == CALIBRATE
    front = pareto_front(a.results)
    assert front and choose(a.results, a.limits) in front
    assert 0 < hypervolume(a.results) <= 1


def test_failed_candidate_is_logged_not_fatal(client):
    lines = []
    s = _search(strategy="random", seed=5, evaluate=_failing_evaluate, budget=12,
                log=lines.append)
    s.run(client)
    failed = [r for r in s.results if "error" in r]
    assert len(s.results) == 12 and failed and len(failed) < 12
    assert all("out of memory on m0" in r["error"] for r in failed)
    assert sum("FAILED" in ln for ln in lines) == len(failed)
    assert all(not s.limits.feasible(r) for r in failed)
    assert choose(s.results, s.limits) is not None


@pytest.mark.parametrize("extra, why", [
    (["--dataset", "nope.npy"], "expected digits or X.npy,Y.npy"),
    (["--dataset", "nope.npy,y.npy"], "cannot read nope.npy"),
    (["--dataset", "digits", "--board", "nosuch"], "unknown board"),
])
def test_bad_input_is_one_line_and_exit_2(extra, why, tmp_path, capsys):
    argv = ["search", "--dataset", "digits", "--board", "rp2040", "--out", str(tmp_path)]
    assert cli.main(argv + extra) == 2
    err = capsys.readouterr().err.strip()
    assert why in err and len(err.splitlines()) == 1
