"""Memory figures of issue 15, printed (no asserts):

1. activation arena: tinyrt (greedy planner, and with the first stage patched in row bands,
   converter.patch) vs TFLM's non-persistent arena (its allocator's head), for every shared
   model and the MobileNetV1 96x96 family (host_sim.mobilenet);
2. on m0 and m3: `import tinyrt`, each kernel module (with the twin it loads), kws_ref_model
   held after load from /rom (in place; arena and shared working memory) and whole, and what
   each layer's prepare() keeps;
3. on m0: a MobileNet patched and not, instructions per invoke (ticks_us x 1000 under icount)
   and heap held after load; the ~300 KB-weights member in place and streamed.

Usage: .venv/bin/python benchmarks/memory.py [--no-board]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from converter import patch, writer  # noqa: E402
from converter.tflite_import import import_tflite  # noqa: E402
from host_sim import run  # noqa: E402
from host_sim import mobilenet as mn  # noqa: E402
from host_sim.oracle.tflm import run_tflm, tflm_activation_arena_bytes  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "models"


def arena_table() -> None:
    print("activation arena (bytes): tinyrt | patched (bands, +MACs) | TFLM non-persistent | "
          "ratios")
    models = {p.stem: p.read_bytes() for p in sorted(SHARED.glob("*.tflite"))}
    models.update({s.name: mn.mobilenet_v1(s) for s in mn.FAMILY + (mn.BIG, mn.SHALLOW)})
    for name, tfl in models.items():
        try:
            g = import_tflite(tfl)
            tflm = tflm_activation_arena_bytes(tfl)
        except Exception as e:  # a float model, or one TFLM refuses
            print(f"  {name}: skipped ({type(e).__name__})")
            continue
        ours = writer.plan(g)[1]
        p = patch.best_plan(g)
        total = sum(patch.macs(g, op) for op in g.ops) or 1
        banded = p.arena if p else ours
        how = f"({p.bands} bands ops {p.start}-{p.end}, {p.extra_macs / total:+.1%})" if p \
            else "(no plan)"
        print(f"  {name}: {ours:,} | {banded:,} {how} | {tflm:,} | "
              f"{ours / tflm:.2f}x, patched {banded / tflm:.2f}x")


RAM = r"""
import gc, sys
gc.collect(); f0 = gc.mem_free()
import tinyrt
gc.collect(); f1 = gc.mem_free()
print("RAM import_tinyrt", f0 - f1)
import tinyrt.fast
for name in ("conv", "depthwise_conv", "fully_connected", "pool", "reshape", "softmax"):
    gc.collect(); a = gc.mem_free()
    mod = __import__("tinyrt.kernels." + name, None, None, (name,))
    tinyrt.fast.preload(mod)
    gc.collect()
    print("RAM kernel_" + name, a - gc.mem_free())
for k in list(sys.modules):
    if k.startswith("tinyrt.kernels."):
        del sys.modules[k]
gc.collect(); a = gc.mem_free()
m = tinyrt.load("kws.trt")
gc.collect()
print("RAM kws_held_after_load", a - gc.mem_free(), m.mode, len(m.arena),
      len(m.work) if m.work else 0)
m.close(); m = None
gc.collect(); a = gc.mem_free()
m = tinyrt.load("kws.trt", stream=False)
gc.collect()
print("RAM kws_held_whole_modules_imported", a - gc.mem_free())
m.close(); m = None
# each layer's prepare(): the heap its kernel keeps (tables), in place, modules imported
figs = []
for name in ("conv", "depthwise_conv", "fully_connected", "pool", "reshape", "softmax"):
    mod = __import__("tinyrt.kernels." + name, None, None, (name,))
    def prepare(model, op, orig=mod.prepare, name=name):
        gc.collect(); b = gc.mem_free()
        k = orig(model, op)
        gc.collect(); figs.append("%s %d" % (name, b - gc.mem_free()))
        return k
    mod.prepare = prepare
m = tinyrt.load("kws.trt")
print("RAM kws_layers", ", ".join(figs))
"""


MODEL = r"""
import gc, json, micropython, time, tinyrt, tinyrt.fast
tinyrt.fast.arch[0] = ARCH
time.ticks_us()
for name, stream in json.loads(open("cases.json").read()):
    if stream:  # onto the writable filesystem (FAT at /) first, 4 KB at a time
        src = open(name, "rb"); dst = open("/" + name, "wb"); buf = bytearray(4096)
        while True:
            n = src.readinto(buf)
            if not n:
                break
            dst.write(buf[:n] if n < 4096 else buf)
        src.close(); dst.close(); del buf
        name = "/" + name
    gc.collect(); f0 = gc.mem_free()
    try:
        m = tinyrt.load(name, stream=stream)
    except Exception as e:
        print("RUN", json.dumps([name, "failed", str(e)[:120]]))
        continue
    gc.collect(); held = f0 - gc.mem_free()
    f = open(name.lstrip("/") + ".x", "rb"); f.readinto(m.input(0).data); f.close()
    micropython.heap_lock()
    try:
        t = time.ticks_us(); m.invoke(); t = time.ticks_diff(time.ticks_us(), t)
    finally:
        micropython.heap_unlock()
    print("RUN", json.dumps([name, m.mode, held, t * 1000, m.output(0).tolist()]))
    m.close(); del m
"""


def member(spec, patched, stream, arch, board="m0"):
    tfl = mn.mobilenet_v1(spec)
    g = import_tflite(tfl)
    if patched:
        g, _ = patch.patch(g)
    x = mn.sample_input(spec)
    files = {"m.trt": writer.serialize(g), "m.trt.x": x.tobytes(),
             "cases.json": json.dumps([["m.trt", stream]])}
    want = run_tflm(tfl, [x])[0].ravel().tolist()
    out = run(MODEL.replace("ARCH", str(arch)), board, files=files).stdout
    for line in out.splitlines():
        if line.startswith("RUN "):
            r = json.loads(line[4:])
            ok = r[-1] == want if len(r) == 5 else None
            print(f"  {board} {spec.name} patched={patched} stream={stream} "
                  f"{'asm' if arch else 'viper'}: {r[1:4] if ok is not None else r[1:]}"
                  f"{'' if ok is None else ' bit-exact' if ok else ' MISMATCH'}")


def board_figures() -> None:
    kws = writer.serialize(import_tflite((SHARED / "kws_ref_model.tflite").read_bytes()))
    for board in ("m0", "m3"):
        out = run(RAM, board, files={"kws.trt": kws}).stdout
        for line in out.splitlines():
            if line.startswith("RAM "):
                print(f"  {board}", line[4:])
    arm = 4  # armv6m: asm twins chosen; 0: viper twins (their tables are smaller)
    for patched in (False, True):
        member(mn.SHALLOW, patched, None, 0)
    member(mn.SHALLOW, True, None, arm)
    # the ~300 KB-weights member and the runtime exceed m0's 512 KB ROMFS, and m0's writable
    # disk holds 14.5 KB: m3 (the same 200,000-byte heap, 4 MB ROMFS, 1 MB FAT disk)
    for stream in (None, True):
        member(mn.BIG, True, stream, 0, "m3")


if __name__ == "__main__":
    if "--big" in sys.argv:
        for stream in (None, True):
            member(mn.BIG, True, stream, 0, "m3")
        sys.exit()
    arena_table()
    if "--no-board" not in sys.argv:
        board_figures()
