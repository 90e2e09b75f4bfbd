"""What load() does with a model in every heap size, and whether repeated loads leak.

    python benchmarks/heap_sweep.py [--model kws_ref_model] [--interpreters unix m0]
                                    [--cycles 1000] [--cycle-model digits_cnn_int8]

Sweep: for each free heap from 60 KB to 260 KB in 10 KB steps (m0 stops at what its firmware
has, ~190 KB) and each mode (auto, whole, streamed), one fresh interpreter imports tinyrt, loads
the model and invokes it once; the table says "whole" / "streamed" (it loaded, in that mode),
the class of the error, or "import fails" where `import tinyrt` itself does not fit. Every
outcome must be a load or an ArenaError: anything else is a bug.
Heap sizes: unix, -X heapsize (the whole heap); the boards, the free heap left by a ballast
before `import tinyrt`.
Cycles: load and close one model N times in one interpreter, printing gc.mem_free() after
cycles 1, 10, 100 and N. Prints figures; asserts nothing (tests/test_boards_emulated.py and
tests/test_memory.py assert bounded versions).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from host_sim.emulated import EMULATED
from host_sim.interpreters import run
from host_sim.runner import convert

SHARED = Path(__file__).resolve().parents[2] / "shared" / "models"

SWEEP = r"""
try:
    import tinyrt
except MemoryError:
    print("import fails")  # the heap does not even hold the runtime: not load()'s to report
    raise SystemExit
try:
    m = tinyrt.load("m.trt", stream=STREAM)
    m.invoke()
    print("streamed" if m.stream is not None else "whole")
except Exception as e:
    print(type(e).__name__ + ": " + str(e))
"""

CYCLES = r"""
import gc, tinyrt

def once():
    m = tinyrt.load("m.trt")
    m.invoke()
    m.close()

for i in range(1, N + 1):
    once()
    if i in (1, 10, 100, N):
        gc.collect()
        print(i, gc.mem_free())
"""


def model_file(name: str) -> Path:
    out = Path("/tmp") / f"tinyrt-bench-{name}.trt"
    if not out.exists():
        convert(SHARED / f"{name}.tflite", out)
    return out


def sweep(model: Path, interpreter: str) -> list[tuple[int, dict[str, str]]]:
    rows = []
    top = 190_000 if interpreter in EMULATED else 260_000
    for heap in range(60_000, top + 1, 10_000):
        cells = {}
        for mode, stream in (("auto", None), ("whole", False), ("streamed", True)):
            # unix: -X heapsize is the whole heap; the run's own objects come off it first
            r = run(SWEEP.replace("STREAM", str(stream)), interpreter, heap=heap,
                    files={"m.trt": model}, check=False)
            line = (r.stdout.strip().splitlines() or [r.stderr.strip()[-120:]])[-1]
            cells[mode] = line if ":" not in line else line.split(":")[0]
        rows.append((heap, cells))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="kws_ref_model")
    ap.add_argument("--interpreters", nargs="+", default=["unix", "m0"])
    ap.add_argument("--cycles", type=int, default=1000)
    ap.add_argument("--cycle-model", default="digits_cnn_int8")
    a = ap.parse_args()
    model = model_file(a.model)
    for interp in a.interpreters:
        print(f"\n{a.model} on {interp}: free heap before import -> outcome per mode\n")
        print("| heap | auto | whole | streamed |\n|---:|---|---|---|")
        for heap, cells in sweep(model, interp):
            print(f"| {heap:,} | {cells['auto']} | {cells['whole']} | {cells['streamed']} |")
    if a.cycles:
        cyc = model_file(a.cycle_model)
        for interp in a.interpreters:
            out = run(CYCLES.replace("N", str(a.cycles)), interp, files={"m.trt": cyc},
                      timeout=3600).stdout.split()
            pairs = ", ".join(f"after {out[i]}: {int(out[i + 1]):,} B"
                              for i in range(0, len(out), 2))
            print(f"\n{a.cycle_model}: {a.cycles} load/close cycles on {interp}, gc.mem_free() "
                  f"{pairs}")


if __name__ == "__main__":
    main()
