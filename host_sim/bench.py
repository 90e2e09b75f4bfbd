"""`tinyrt bench`: latency, spin-up, MAC/s per layer, memory; optionally against TFLM.

tinyrt is timed inside the interpreter (ticks_us): the model is loaded once, then every run
feeds the next of a few distinct inputs (so no branch history is learnt across runs) and
times a block of invokes (one invoke, or enough to fill ~2 ms for tiny models); the latency is
the median over runs. A second pass times each layer's eval() alone (a block of evals of one
layer, then the next), median over runs.
MACs come from the shapes on the host (runner.op_macs). With a .tflite, tflite-micro (the
PyPI package's reference kernels) runs the same inputs in this process, timed the same way:
one interpreter, a block of invokes per run, median; the ratio is tinyrt / TFLM.

On the emulated boards m0 / m3 (QEMU, -icount shift=0) ticks_us() x 1000 counts instructions:
the same script reports instructions per invoke, per MAC and per layer (the cost of the empty
timing loop subtracted), tinyrt.load's instructions and gc.mem_free() after load. Counts are
deterministic for one run of the script, but MicroPython's heap allocations inside calls make
one invoke's cost depend a little on the heap's state: the median of the runs is reported.
With a .tflite, TFLM's reference and CMSIS-NN builds run the same inputs on the same emulated
CPU (../shared/emulator/tflm/run_tflm.py, mean over the inputs); the ratio is tinyrt /
CMSIS-NN.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from .emulated import EMULATED, EmulatorError, emulator_dir
from .interpreters import INTERPRETERS, InterpreterError, run

BLOCK_US = 2000  # a timed block of invokes lasts at least this long (tiny models)
MAX_BLOCK = 1000  # invokes per block at most
N_INPUTS = 8  # distinct inputs cycled through the runs
BOARD_RUNS = 5  # default runs on an emulated board (its counts are deterministic)
MODES = ("asm", "viper", "reference")  # kernel choice; asm falls back to viper off ARM
# a board of each emulated CPU, for a latency estimate at one instruction per cycle
BOARD_CLOCK = {"m0": ("RP2040", 133_000_000)}
TFLM_TIMEOUT = 1200.0  # seconds for one run_tflm.py run

# Prints one JSON object. Heap figures are gc.mem_alloc() deltas on MicroPython (no collection
# on the WASI build, whose collector must not run mid-call), null on CPython.
SCRIPT = r"""
import gc, json, sys, tinyrt, tinyrt.fast
from tinyrt.buffers import ticks_us, ticks_diff
MP = sys.implementation.name == "micropython"
COLLECT = MP and getattr(sys.implementation, "_build", "") != "wasi"
tinyrt.fast.enable(FAST)
if MODE == "viper":
    tinyrt.fast.arch[0] = 0
def alloc():
    if not MP:
        return None
    if COLLECT:
        gc.collect()
    return gc.mem_alloc()
def feed(m, ex):
    for i in range(len(ex)):
        m.input(i).set(ex[i])
a0 = alloc()
t = ticks_us()
m = tinyrt.load("model.trt")
load_us = ticks_diff(ticks_us(), t)
a1 = alloc()
free = gc.mem_free() if COLLECT else None
f = open("inputs.json")
xs = json.loads(f.read())
f.close()
feed(m, xs[0])
t = ticks_us()
m.invoke()
first_us = ticks_diff(ticks_us(), t)
outs = []
for j in range(m.n_outputs):
    outs.append(m.output(j).tolist())
every = []  # the outputs of xs[0], xs[1], ... (all outputs of one input, concatenated)
b0 = gc.mem_alloc() if MP else 0
m.invoke()
invoke_alloc = (gc.mem_alloc() - b0) if MP else None
block = FIXED
if block < 1:
    block = 1
    if first_us * MAXB < BLOCK_US:
        block = MAXB
    elif first_us < BLOCK_US:
        block = BLOCK_US // max(first_us, 1) + 1
def locked(f, n):
    # us per call of f() n times, the heap locked: the VM's call frames then go on the C
    # stack (no per-call heap allocation whose cost varies with the heap's state)
    i = 0
    micropython.heap_lock()
    try:
        t = ticks_us()
        while i < n:
            f()
            i += 1
        t = ticks_diff(ticks_us(), t)
    finally:
        micropython.heap_unlock()
    return t / n
def loop(n):
    i = 0
    t = ticks_us()
    while i < n:
        i += 1
    return ticks_diff(ticks_us(), t) / n
loop_us = None
lock_us = None
lock_layer_us = None
lock_error = None
if BOARD:
    import micropython
    loop_us = loop(block)
    lock_us = []
    lock_layer_us = []
    try:
        inv = m.invoke
        for r in range(RUNS):
            feed(m, xs[r % len(xs)])
            lock_us.append(locked(inv, block))
        # each layer timed on the input an invoke gives it: the layers before it run first
        # (a later layer may have overwritten its input in the arena, and the kernels'
        # clamp shortcuts make a layer's time depend on its data); a layer never writes its
        # own input, so repeating it keeps the input
        for i in range(len(m.kernels)):
            feed(m, xs[0])
            for k in m.kernels[:i]:
                k.eval()
            lock_layer_us.append(locked(m.kernels[i].eval, block))
    except MemoryError as e:
        lock_error = "MemoryError with the heap locked: %s" % e
        lock_us = None
        lock_layer_us = None
runs = []
for r in range(RUNS):
    feed(m, xs[r % len(xs)])
    t = ticks_us()
    for _ in range(block):
        m.invoke()
    runs.append(ticks_diff(ticks_us(), t) / block)
    if BOARD and r < len(xs) and len(every) == r:
        # the block's later invokes may find their input overwritten (the arena reuses it)
        feed(m, xs[r])
        m.reset()  # from zero state (an LSTM's), as TFLM's harness Reset()s per sample
        m.invoke()
        o = []
        for j in range(m.n_outputs):
            o.extend(m.output(j).tolist())
        every.append(o)
ks = m.kernels
per = []
for k in ks:
    per.append([])
for r in range(RUNS):
    feed(m, xs[r % len(xs)])
    for i in range(len(ks)):
        k = ks[i]
        t = ticks_us()
        for _ in range(block):
            k.eval()
        per[i].append(ticks_diff(ticks_us(), t) / block)
med = []
impl = []
for i in range(len(ks)):
    p = sorted(per[i])
    med.append(p[len(p) // 2])
    impl.append(getattr(ks[i], "impl", "reference"))
print(json.dumps({"load_us": load_us, "first_invoke_us": first_us, "heap_load_bytes":
                  (a1 - a0) if MP else None, "invoke_alloc_bytes": invoke_alloc,
                  "invoke_us": runs, "block": block, "layer_us": med, "impl": impl,
                  "arena_bytes": m.file.arena_bytes, "outputs": outs, "every": every,
                  "loop_us": loop_us, "lock_us": lock_us, "lock_layer_us": lock_layer_us,
                  "lock_error": lock_error, "heap_free": free,
                  "streamed": m.scratch is not None}))
"""


class BenchError(Exception):
    """A user-facing failure: the message is one line."""


def examples_for(d: dict, n: int = N_INPUTS, seed: int = 0,
                 sparsity: float = 0.0) -> list[list[np.ndarray]]:
    """n random int8 inputs for a described model; a fraction `sparsity` of the values at
    the input's zero point (as a ReLU leaves them)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        ex = []
        for r in d["inputs"]:
            if r["dtype"] != "int8":
                raise BenchError(f"input {r['name']!r} is {r['dtype']}; bench feeds int8 "
                                 "inputs only")
            x = rng.integers(-128, 128, r["shape"], dtype=np.int8)
            if sparsity:
                x[rng.random(r["shape"]) < sparsity] = r["zero_point"]
            ex.append(x)
        out.append(ex)
    return out


def model_bytes(path: str | Path) -> bytes:
    """A model file's bytes; a .tflite is converted first (converter.tflite_import)."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise BenchError(f"cannot read {p}: {e.strerror or e}") from None
    if p.suffix == ".tflite":
        from converter.tflite_import import import_tflite
        from converter.writer import serialize

        try:
            return serialize(import_tflite(data, source_name=p.name))
        except Exception as e:  # noqa: BLE001 - one line for the user
            raise BenchError(f"{p}: cannot convert: {type(e).__name__}: {e}") from None
    return data


def run_tinyrt(model: bytes, examples: list[list[np.ndarray]], interpreter: str = "unix",
               runs: int = 20, fast: bool = True, heap: int | None = None,
               block: int = 0, mode: str | None = None) -> dict:
    """Run SCRIPT on one interpreter; the raw figures it printed (plus wasm fuel). block:
    invokes per timed run (0: enough for ~2 ms). mode "viper" hides the ARM architecture
    from tinyrt.fast (no asm twins), "reference" is fast=False."""
    payload = json.dumps([[np.asarray(a).ravel().astype(int).tolist() for a in ex]
                          for ex in examples])
    code = (SCRIPT.replace("FAST", str(bool(fast))).replace("RUNS", str(int(runs)))
            .replace("MAXB", str(MAX_BLOCK)).replace("BLOCK_US", str(BLOCK_US))
            .replace("FIXED", str(int(block))).replace("MODE", repr(mode))
            .replace("BOARD", str(interpreter in EMULATED)))
    r = run(code, interpreter, heap=heap, files={"model.trt": model, "inputs.json": payload})
    line = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else ""
    try:
        out = json.loads(line)
    except ValueError:
        raise BenchError(f"{interpreter}: no result:\n{r.stdout[-1000:]}{r.stderr[-1000:]}")
    out["fuel"] = r.fuel
    return out


def _n_outputs(tflite: bytes) -> int:
    import tflite as tfl

    return tfl.Model.GetRootAsModel(tflite, 0).Subgraphs(0).OutputsLength()


def run_tflm(tflite: bytes, examples: list[list[np.ndarray]], runs: int = 20) -> dict:
    """Time tflite-micro in this process: one interpreter, a block of invokes per run."""
    from tflite_micro.python.tflite_micro import runtime

    try:
        interp = runtime.Interpreter.from_bytes(bytes(tflite), arena_size=4 << 20)
    except Exception as e:  # noqa: BLE001 - TFLM refused the model
        raise BenchError(f"TFLM rejected the model: {type(e).__name__}: {e}") from None
    shapes = [tuple(interp.get_input_details(i)["shape"]) for i in range(len(examples[0]))]

    def feed(ex: list[np.ndarray]) -> None:
        for i, a in enumerate(ex):
            interp.set_input(np.asarray(a, np.int8).reshape(shapes[i]), i)

    feed(examples[0])
    t = time.perf_counter_ns()
    interp.invoke()
    first = (time.perf_counter_ns() - t) / 1000
    outs = [np.array(interp.get_output(i), copy=True).ravel().tolist()
            for i in range(_n_outputs(tflite))]
    block = 1 if first >= BLOCK_US else min(MAX_BLOCK, int(BLOCK_US // max(first, 0.05)) + 1)
    times = []
    for r in range(runs):
        feed(examples[r % len(examples)])
        t = time.perf_counter_ns()
        for _ in range(block):
            interp.invoke()
        times.append((time.perf_counter_ns() - t) / 1000 / block)
    return {"invoke_us": times, "block": block, "outputs": outs, "first_invoke_us": first}


def run_tflm_board(tflite: bytes, examples: list[list[np.ndarray]], board: str,
                   kernels: str, expect: list[list[int]] | None = None) -> dict:
    """TFLM (kernels "ref" or "cmsis") on the emulated board: run_tflm.py's summary (its mean
    instructions per invoke over the inputs); bit_exact compares with `expect`, one flat list
    of output values per input."""
    import subprocess
    import tempfile

    try:
        script = emulator_dir() / "tflm" / "run_tflm.py"
    except EmulatorError as e:
        raise BenchError(str(e)) from None
    if not script.exists():
        raise BenchError(f"no {script}: --vs-tflm on {board} needs ../shared/emulator/tflm")
    with tempfile.TemporaryDirectory(prefix="tinyrt-tflm-") as tmp:
        d = Path(tmp)
        (d / "model.tflite").write_bytes(tflite)
        x = np.stack([np.concatenate([np.asarray(a, np.int8).ravel() for a in ex])
                      for ex in examples])
        np.save(d / "x.npy", x)
        cmd = [sys.executable, str(script), "--board", board, "--kernels", kernels,
               str(d / "model.tflite"), str(d / "x.npy"), "--json", str(d / "out.json"),
               "-q", "--timeout", str(TFLM_TIMEOUT)]
        if expect is not None and len(expect) == len(examples):
            np.save(d / "y.npy", np.array(expect, np.int64))
            cmd += ["--expect", str(d / "y.npy")]
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=TFLM_TIMEOUT + 60)
        except subprocess.TimeoutExpired:
            raise BenchError(f"TFLM ({kernels}) on {board} timed out") from None
        if r.returncode not in (0, 3) or not (d / "out.json").exists():
            tail = (r.stderr or r.stdout).strip().splitlines()
            raise BenchError(f"TFLM ({kernels}) on {board} failed: "
                             f"{tail[-1] if tail else 'exit ' + str(r.returncode)}")
        return json.loads((d / "out.json").read_text())


def _kernels(impl: list[str]) -> str:
    for kind in ("asm", "viper"):
        if kind in impl:
            return kind
    return "reference"


def board_figures(t: dict, d: dict, macs: list[int], interpreter: str) -> dict:
    """The instruction counts of a run on an emulated board (ticks_us x 1000 = instructions),
    the empty timing loop's cost subtracted. The headline figures are timed with the heap
    locked (as examples/measure.py of the emulator does); the unlocked median and range are
    kept beside them."""
    loop = t["loop_us"]
    unlocked = [round((u - loop) * 1000) for u in t["invoke_us"]]
    lock = t["lock_us"] is not None
    per_run = [round((u - loop) * 1000) for u in t["lock_us"]] if lock else unlocked
    layer_us = t["lock_layer_us"] if lock else t["layer_us"]
    ipi = round(statistics.median(per_run))
    total_macs = int(sum(macs))
    layers = []
    for i, o in enumerate(d["operators"]):
        n = round((layer_us[i] - loop) * 1000)
        layers.append({"op": o["name"], "kernel": t["impl"][i], "instructions": n,
                       "macs": int(macs[i]),
                       "instructions_per_mac": n / macs[i] if macs[i] else None})
    out = {
        "instructions_per_invoke": ipi,
        "instructions_per_invoke_min": min(per_run),
        "instructions_per_invoke_max": max(per_run),
        "heap_locked": lock, "heap_lock_error": t["lock_error"],
        "instructions_per_invoke_unlocked": round(statistics.median(unlocked)),
        "instructions_per_invoke_unlocked_min": min(unlocked),
        "instructions_per_invoke_unlocked_max": max(unlocked),
        "instructions_per_mac": ipi / total_macs if total_macs else None,
        "first_invoke_instructions": round(t["first_invoke_us"] * 1000),
        "load_instructions": round(t["load_us"] * 1000),
        "heap_free_after_load": t["heap_free"],
        "streamed": t["streamed"],
        "layers": layers,
        "layers_instructions": sum(lr["instructions"] for lr in layers),
        "loop_instructions": round(loop * 1000),
        "estimate_board": None, "estimate_ms": None,
        "tflm_ref_instructions": None, "tflm_cmsis_instructions": None,
        "tflm_ref_instructions_per_mac": None, "tflm_cmsis_instructions_per_mac": None,
        "ratio_ref": None,
    }
    if interpreter in BOARD_CLOCK:
        name, hz = BOARD_CLOCK[interpreter]
        out["estimate_board"] = f"{name} at {hz / 1e6:g} MHz, one instruction per cycle"
        out["estimate_ms"] = ipi / hz * 1000
    return out


def benchmark(model: bytes, interpreter: str = "unix", runs: int | None = None,
              tflite: bytes | None = None, fast: bool = True, seed: int = 0,
              heap: int | None = None, sparsity: float = 0.0,
              mode: str | None = None) -> dict:
    """Everything `tinyrt bench` reports, as one dict (the --json object). runs: None is
    20 on the host interpreters, BOARD_RUNS on the emulated boards."""
    from converter.inspect_model import describe

    from .runner import op_macs

    import tinyrt

    try:
        tinyrt.fileformat.read_model(model)
        d = describe(model)
    except tinyrt.TinyrtError as e:
        raise BenchError(f"not a valid model file: {type(e).__name__}: {e}") from None
    macs = op_macs(d)
    board = interpreter in EMULATED
    if runs is None:
        runs = BOARD_RUNS if board else 20
    if mode == "reference":
        fast = False
    # on a board every input is run (and its outputs kept, for TFLM's bit-exactness check)
    examples = examples_for(d, min(N_INPUTS, runs) if board else N_INPUTS, seed, sparsity)
    t = run_tinyrt(model, examples, interpreter, runs, fast, heap, mode=mode)
    latency = statistics.median(t["invoke_us"])
    total_macs = int(sum(macs))
    layers = []
    for i, o in enumerate(d["operators"]):
        us = t["layer_us"][i]
        layers.append({"op": o["name"], "impl": t["impl"][i], "us": us, "macs": int(macs[i]),
                       "mac_per_s": (macs[i] / us * 1e6) if us and macs[i] else None})
    out = {
        "interpreter": interpreter, "mode": mode,
        "kernels": _kernels(t["impl"]),
        "runs": runs, "block": t["block"],
        "latency_us": latency, "latency_min_us": min(t["invoke_us"]),
        "load_us": t["load_us"], "first_invoke_us": t["first_invoke_us"],
        "spin_up_us": t["load_us"] + t["first_invoke_us"],
        "macs": total_macs, "mac_per_s": total_macs / latency * 1e6 if latency else None,
        "arena_bytes": t["arena_bytes"], "file_bytes": len(model),
        "heap_load_bytes": t["heap_load_bytes"], "invoke_alloc_bytes": t["invoke_alloc_bytes"],
        "wasm_fuel": t["fuel"], "per_layer": layers,
        "tflm_latency_us": None, "ratio": None, "tflm_arena_bytes": None,
        "outputs_match_tflm": None,
    }
    if board:
        out.update(board_figures(t, d, macs, interpreter))
        if tflite is not None:
            ref = run_tflm_board(tflite, examples, interpreter, "ref", t["every"])
            cm = run_tflm_board(tflite, examples, interpreter, "cmsis", t["every"])
            out["tflm_ref_instructions"] = round(ref["instr_per_invoke_mean"])
            out["tflm_cmsis_instructions"] = round(cm["instr_per_invoke_mean"])
            out["tflm_ref_instructions_per_mac"] = ref["instr_per_mac"]
            out["tflm_cmsis_instructions_per_mac"] = cm["instr_per_mac"]
            out["tflm_arena_bytes"] = cm["arena_used_bytes"]
            out["tflm_ref_arena_bytes"] = ref["arena_used_bytes"]
            out["tflm_samples"] = cm["samples"]
            ipi = out["instructions_per_invoke"]
            out["ratio"] = ipi / out["tflm_cmsis_instructions"]
            out["ratio_ref"] = ipi / out["tflm_ref_instructions"]
            exact = (ref["bit_exact"], cm["bit_exact"])
            out["outputs_match_tflm"] = None if None in exact else all(exact)
    elif tflite is not None:
        f = run_tflm(tflite, examples, runs)
        out["tflm_latency_us"] = statistics.median(f["invoke_us"])
        out["tflm_latency_min_us"] = min(f["invoke_us"])
        out["tflm_block"] = f["block"]
        out["ratio"] = latency / out["tflm_latency_us"] if out["tflm_latency_us"] else None
        out["outputs_match_tflm"] = ([list(map(int, o)) for o in t["outputs"]]
                                     == [list(map(int, o)) for o in f["outputs"]])
        try:
            from .oracle.tflm import tflm_arena_bytes

            out["tflm_arena_bytes"] = tflm_arena_bytes(tflite)
        except Exception:  # noqa: BLE001 - the arena figure is optional
            pass
    return out


def _fmt(v: float | None, unit: str = "") -> str:
    if v is None:
        return "-"
    return f"{v:,.0f}{unit}" if v >= 100 else f"{v:.1f}{unit}"


def print_report(r: dict, name: str) -> None:
    kernels = r["kernels"] + " kernels"
    if r["interpreter"] == "cpython" and r["kernels"] == "viper":
        kernels = "viper twins run as Python by the shim"
    print(f"tinyrt bench {name} on {r['interpreter']} ({kernels}), "
          f"{r['runs']} runs of {r['block']} invoke(s)")
    print(f"  latency   {_fmt(r['latency_us'])} us median (min {_fmt(r['latency_min_us'])}), "
          f"{r['macs']:,} MACs, {_fmt((r['mac_per_s'] or 0) / 1e6)} MMAC/s")
    print(f"  spin-up   {_fmt(r['spin_up_us'])} us (load {_fmt(r['load_us'])} us + first "
          f"invoke {_fmt(r['first_invoke_us'])} us)")
    heap = r["heap_load_bytes"]
    alloc = r["invoke_alloc_bytes"]
    print(f"  memory    arena {r['arena_bytes']:,} B, heap after load "
          f"{'-' if heap is None else format(heap, ',')} B, invoke allocates "
          f"{'-' if alloc is None else format(alloc, ',')} B")
    if r["wasm_fuel"]:
        print(f"  wasm fuel {r['wasm_fuel']:,} (whole run)")
    if r["tflm_latency_us"] is not None:
        print(f"  TFLM      {_fmt(r['tflm_latency_us'])} us median (tflite-micro reference "
              f"kernels, this process), arena {r['tflm_arena_bytes'] or '-'} B")
        print(f"  ratio     tinyrt / TFLM = {r['ratio']:.2f}; outputs "
              f"{'match' if r['outputs_match_tflm'] else 'DIFFER'}")
    total = sum(lr["us"] for lr in r["per_layer"]) or 1
    print("  per layer (each eval timed alone, median):")
    print(f"    {'#':>3} {'op':<20} {'kernel':<10} {'us':>9} {'MACs':>11} {'MMAC/s':>8} "
          f"{'share':>6}")
    for i, lr in enumerate(r["per_layer"]):
        mps = _fmt(lr["mac_per_s"] / 1e6) if lr["mac_per_s"] else ""
        print(f"    {i:>3} {lr['op']:<20} {lr['impl']:<10} {_fmt(lr['us']):>9} "
              f"{lr['macs'] or '':>11} {mps:>8} {100 * lr['us'] / total:>5.1f}%")


def _n(v: int | None) -> str:
    return "-" if v is None else f"{v:,}"


def print_board_report(r: dict, name: str) -> None:
    """The human report of a run on an emulated board: instruction counts."""
    mode = r["mode"] or "the board's choice"
    print(f"tinyrt bench {name} on {r['interpreter']} (emulated, instructions = ticks_us x "
          f"1000), kernels: {mode} -> {r['kernels']}, {r['runs']} runs of {r['block']} "
          "invoke(s)")
    ipm = r["instructions_per_mac"]
    lock = "heap locked" if r["heap_locked"] else "heap NOT locked: " + r["heap_lock_error"]
    print(f"  invoke    {_n(r['instructions_per_invoke'])} instructions (median, {lock}; runs "
          f"{_n(r['instructions_per_invoke_min'])}..{_n(r['instructions_per_invoke_max'])}), "
          f"{r['macs']:,} MACs, {'-' if ipm is None else format(ipm, '.2f')} instructions/MAC")
    print(f"            heap unlocked: {_n(r['instructions_per_invoke_unlocked'])} (runs "
          f"{_n(r['instructions_per_invoke_unlocked_min'])}.."
          f"{_n(r['instructions_per_invoke_unlocked_max'])}; the VM allocates call frames on "
          "the heap)")
    if r["estimate_ms"] is not None:
        print(f"            ~{r['estimate_ms']:.2f} ms estimated ({r['estimate_board']})")
    print(f"  spin-up   tinyrt.load {_n(r['load_instructions'])} instructions, first invoke "
          f"{_n(r['first_invoke_instructions'])}")
    alloc = r["invoke_alloc_bytes"]
    print(f"  memory    heap free after load {_n(r['heap_free_after_load'])} B, weights "
          f"{'streamed from the file' if r['streamed'] else 'in RAM'}, arena "
          f"{r['arena_bytes']:,} B, invoke allocates {_n(alloc)} B")
    if r["tflm_cmsis_instructions"] is not None:
        match = {True: "match", False: "DIFFER", None: "not compared"}[r["outputs_match_tflm"]]
        print(f"  TFLM      reference kernels {_n(r['tflm_ref_instructions'])}, CMSIS-NN "
              f"{_n(r['tflm_cmsis_instructions'])} instructions/invoke (mean of "
              f"{r['tflm_samples']} inputs, same emulated CPU), arena "
              f"{_n(r['tflm_arena_bytes'])} B")
        print(f"  ratio     tinyrt / CMSIS-NN = {r['ratio']:.2f}, tinyrt / TFLM reference = "
              f"{r['ratio_ref']:.2f}; outputs {match}")
    total = r["layers_instructions"] or 1
    print(f"  per layer (each eval timed alone, median; sum {_n(r['layers_instructions'])}):")
    print(f"    {'#':>3} {'op':<20} {'kernel':<10} {'instructions':>13} {'MACs':>11} "
          f"{'instr/MAC':>9} {'share':>6}")
    for i, lr in enumerate(r["layers"]):
        ipm = lr["instructions_per_mac"]
        print(f"    {i:>3} {lr['op']:<20} {lr['kernel']:<10} {lr['instructions']:>13,} "
              f"{lr['macs'] or '':>11} {'' if ipm is None else format(ipm, '.2f'):>9} "
              f"{100 * lr['instructions'] / total:>5.1f}%")


def main(argv: list[str] | None = None) -> int:
    from .cli_args import EXIT_CODES, CliParser, heap_bytes
    from .runner import failure_line

    p = CliParser(prog="tinyrt bench", description=__doc__.split("\n")[0], epilog=EXIT_CODES)
    p.add_argument("model", help="model file (.trt; a .tflite is converted first)")
    p.add_argument("--interpreter", choices=INTERPRETERS, default="unix")
    p.add_argument("--vs-tflm", metavar="MODEL.tflite", help="time tflite-micro on the same "
                   "inputs in the same run and print the ratio (on m0/m3: TFLM's reference "
                   "and CMSIS-NN builds on the same emulated CPU)")
    p.add_argument("--runs", type=int, help=f"timed runs (median), default 20 "
                   f"({BOARD_RUNS} on m0/m3)")
    p.add_argument("--mode", choices=MODES, help="kernels: asm (the default choice: asm "
                   "twins on ARM, else viper), viper (no asm twins), reference (neither)")
    p.add_argument("--reference", action="store_true", help="same as --mode reference")
    p.add_argument("--heap", type=heap_bytes, help="MicroPython heap bytes (a board's size)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random int8 inputs")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    a = p.parse_args(argv)
    if a.runs is not None and a.runs < 1:
        p.error("--runs must be >= 1")
    if a.reference:
        a.mode = "reference"
    try:
        model = model_bytes(a.model)
        tflite = None
        if a.vs_tflm:
            try:
                tflite = Path(a.vs_tflm).read_bytes()
            except OSError as e:
                raise BenchError(f"cannot read {a.vs_tflm}: {e.strerror or e}") from None
        r = benchmark(model, a.interpreter, a.runs, tflite, fast=a.mode != "reference",
                      seed=a.seed, heap=a.heap, mode=a.mode)
    except BenchError as e:
        print(f"tinyrt bench: error: {str(e).strip().splitlines()[0]}", file=sys.stderr)
        return 2
    except InterpreterError as e:  # the job failed there: say why in one line
        print(f"tinyrt bench: error: {a.interpreter}: {failure_line(e, a.heap)}",
              file=sys.stderr)
        return 1
    if a.json:
        print(json.dumps(r))
    elif a.interpreter in EMULATED:
        print_board_report(r, Path(a.model).name)
    else:
        print_report(r, Path(a.model).name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
