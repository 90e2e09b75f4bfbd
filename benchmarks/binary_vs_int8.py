"""Binary (XNOR/popcount) layers vs int8 layers of the same shape: MAC/s and speed-up on the
MicroPython unix port and the 32-bit WASI build, and the weight bytes saved.

    python benchmarks/binary_vs_int8.py [--reps N] [--interpreters unix wasm]

Prints figures; asserts nothing. Times are measured inside the interpreter with
time.ticks_us / ticks_diff around `reps` invoke() calls (after one warm-up call); on wasm the
deterministic cost is also given as wasmtime fuel per invoke (fuel of a run with `reps` invokes
minus a run with none, divided by reps). One binary MAC is one 1-bit multiply-accumulate (one
bit of popcount(x XOR w)); one int8 MAC is one 8-bit multiply-accumulate. On the unix port both
the binary and the int8 kernels have viper twins (tinyrt.fast: kernels/bconv_viper.py,
bfully_connected_viper.py, conv_viper.py, fully_connected_viper.py); each is timed as viper and
as bytecode (fast.enable(False)), and the speed-up column is the int8 kernel's time over the
binary kernel's of the same kind (viper over viper, bytecode over bytecode). The WASI build
has no viper: bytecode only.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from converter import writer
from converter.graph import Graph
from converter.layers import binary
from converter.layers.conv import conv2d
from converter.layers.fully_connected import fully_connected
from host_sim.interpreters import run

TIMING = r"""
import json, tinyrt
try:
    from tinyrt import fast
    fast.enable(%(viper)s)
except ImportError:
    pass
from time import ticks_us, ticks_diff
m = tinyrt.load("model.trt")
reps = %(reps)d
if reps:
    m.invoke()
t0 = ticks_us()
for i in range(reps):
    m.invoke()
dt = ticks_diff(ticks_us(), t0)
print(json.dumps({"us": dt / reps if reps else 0}))
"""


def fc_models(n_in: int, n_out: int, rng) -> tuple[bytes, bytes, int, int]:
    """(binary model, int8 model, binary weight bytes, int8 weight bytes)."""
    g = Graph()
    x = g.add_activation("x", (1, n_in), 1.0, 0, "packed")
    g.inputs.append(x)
    signs = rng.integers(0, 2, (n_out, n_in)).astype(np.int8) * 2 - 1
    g.outputs.append(binary.bfully_connected(g, x, signs, thresholds=np.full(n_out, n_in // 2)))
    b_model = writer.serialize(g)
    g = Graph()
    x = g.add_activation("x", (1, n_in), 0.05, 0)
    g.inputs.append(x)
    g.outputs.append(fully_connected(g, x, rng.integers(-127, 128, (n_out, n_in)),
                                     np.full(n_out, 0.01), None, 0.5, 0))
    return b_model, writer.serialize(g), n_out * ((n_in + 31) // 32) * 4, n_out * n_in


def conv_models(hw: int, cin: int, cout: int, k: int, rng) -> tuple[bytes, bytes, int, int]:
    g = Graph()
    x = g.add_activation("x", (1, hw, hw, cin), 1.0, 0, "packed")
    g.inputs.append(x)
    signs = rng.integers(0, 2, (cout, k, k, cin)).astype(np.int8) * 2 - 1
    g.outputs.append(binary.bconv_2d(g, x, signs, padding="SAME", pad_values=1,
                                     thresholds=np.full(cout, k * k * cin // 2)))
    b_model = writer.serialize(g)
    g = Graph()
    x = g.add_activation("x", (1, hw, hw, cin), 0.05, 0)
    g.inputs.append(x)
    g.outputs.append(conv2d(g, x, rng.integers(-127, 128, (cout, k, k, cin)),
                            np.full(cout, 0.01), None, 0.5, 0, padding="SAME"))
    return (b_model, writer.serialize(g), cout * k * k * ((cin + 31) // 32) * 4,
            cout * k * k * cin)


def measure(model: bytes, interpreter: str, reps: int, viper: bool) -> tuple[float, float | None]:
    """(microseconds per invoke, wasm fuel per invoke or None)."""
    files = {"model.trt": model}
    r = run(TIMING % dict(reps=reps, viper=viper), interpreter, files=files)
    us = json.loads(r.stdout.strip().splitlines()[-1])["us"]
    fuel = None
    if interpreter == "wasm":
        r0 = run(TIMING % dict(reps=0, viper=viper), interpreter, files=files)
        fuel = (r.fuel - r0.fuel) / (reps + 1)  # + the warm-up invoke
    return us, fuel


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--interpreters", nargs="+", default=["unix", "wasm"])
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    layers = [
        ("FC 1024 -> 256", 1024 * 256, *fc_models(1024, 256, rng)),
        ("CONV 8x8x64 -> 64, 3x3 SAME", 8 * 8 * 64 * 9 * 64, *conv_models(8, 64, 64, 3, rng)),
    ]
    print("Weight bytes (filters only; the binary output transform adds 4 B per channel):")
    for name, _, b_model, i_model, b_w, i_w in layers:
        print(f"  {name:30s} binary {b_w:8,d} B  int8 {i_w:8,d} B  saved {i_w - b_w:8,d} B "
              f"({i_w / b_w:.1f}x)   model files {len(b_model):,} B vs {len(i_model):,} B")
    print()
    print(f"{'layer':30s} {'interp':6s} {'kernel':16s} {'ms/invoke':>10s} {'MAC/s':>12s} "
          f"{'fuel/invoke':>14s} {'binary speed-up':>16s}")
    summary = []
    for name, macs, b_model, i_model, _, _ in layers:
        for interp in args.interpreters:
            kinds = [True, False] if interp == "unix" else [False]
            times = {}
            for viper in kinds:
                tag = "viper" if viper else "bytecode"
                b_us, b_fuel = measure(b_model, interp, args.reps, viper)
                i_us, i_fuel = measure(i_model, interp, args.reps, viper)
                times[tag] = b_us
                for kernel, us, fuel in ((f"binary {tag}", b_us, b_fuel),
                                         (f"int8 {tag}", i_us, i_fuel)):
                    speed = ""
                    if kernel.startswith("int8"):
                        speed = f"{us / b_us:.1f}x"
                        if fuel is not None:
                            speed += f" ({fuel / b_fuel:.1f}x fuel)"
                    print(f"{name:30s} {interp:6s} {kernel:16s} {us / 1000:10.3f} "
                          f"{macs / (us * 1e-6):12.3g} "
                          f"{'' if fuel is None else f'{fuel:14.3g}':>14s} {speed:>16s}")
            if "viper" in times:
                gain = times["bytecode"] / times["viper"]
                summary.append(f"  {name} ({interp}): binary viper {gain:.1f}x faster than "
                               "binary bytecode")
    if summary:
        print()
        print("Binary viper twin vs the binary bytecode kernel:")
        print("\n".join(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
