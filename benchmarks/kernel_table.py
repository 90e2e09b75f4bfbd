"""Per-kernel instructions per MAC on the Cortex-M0 and M3 (issue 16, must-show 2), before and
after, with the bit-exact case counts behind each kernel.

    python benchmarks/kernel_table.py               # measure "after", print the table
    python benchmarks/kernel_table.py --before      # measure and store the "before" column
    python benchmarks/kernel_table.py --markdown    # the table as markdown (for REPORT.md)

Counts are the machine code mpy-cross emits for each core (armv6m for m0, armv7m for m3: the
kernels choose as on that firmware), executed in Unicorn (host_sim.cortexm): every instruction
of one whole layer call, im2col, loop control and requantization included; the Python glue
between asm calls (a few hundred instructions per call on the board) is not in them. Random
int8 data; ReLU clamps off (act -128..127), so the requantization shortcuts rarely fire.
"weights in place" is what a board runs by default (tinyrt.fast.repack off: the weights stay
in flash or in the file's buffer); "repacked" copies them into RAM (fast.repack(True)).
Bit-exact cases: hypothesis examples per run of the tests that compare each kernel with the
reference kernel (tests/test_asm.py on the M0, tests/test_asm_m3.py on the M3,
tests/test_pool.py), read from their @settings(max_examples=...). The binary kernels are
armv6m code on both cores and are tested on the M0 only ("-" under m3).
"""

from __future__ import annotations

import argparse
import ast
import json
import random
import sys
from array import array
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(ROOT), str(ROOT / "mp_runtime")]

from host_sim import cortexm_bench  # noqa: E402
from host_sim.cortexm_bench import core  # noqa: E402

RESULTS = HERE / "kernel_results.json"
CPUS = ("m0", "m3")


def _rand(rnd, n, lo=-128, hi=127):
    return array("b", [rnd.randint(lo, hi) for _ in range(n)])


def _q(n):
    return (array("i", [40000] * n), array("i", [123] * n), array("i", [0] * n),
            array("i", [9] * n))


def fc(cpu, batches, n_in, n_out, copy, seed=0):
    rnd = random.Random(seed)
    x, w = _rand(rnd, batches * n_in), _rand(rnd, n_in * n_out, -127)
    bias = array("i", [rnd.randint(-4000, 4000) for _ in range(n_out)])
    y = array("b", [0] * (batches * n_out))
    args = (batches, n_in, n_out, -3, 5) + _q(n_out) + (-128, 127)
    with core(cpu) as m:
        from tinyrt.kernels import fully_connected_asm
        k = fully_connected_asm.prepare(x, w, bias, y, *args, copy=copy)
        m.count = 0
        k.fully_connected(x, w, bias, y, *args)
        return m.count, batches * n_in * n_out


def conv(cpu, h, wd, c, out_c, kh, kw, stride, pad, copy, seed=0):
    rnd = random.Random(seed)
    oh = (h + 2 * pad - kh) // stride + 1
    ow = (wd + 2 * pad - kw) // stride + 1
    x, w = _rand(rnd, h * wd * c), _rand(rnd, out_c * kh * kw * c, -127)
    bias = array("i", [rnd.randint(-4000, 4000) for _ in range(out_c)])
    y = array("b", [0] * (oh * ow * out_c))
    valid = sum(0 <= oy * stride - pad + fy < h and 0 <= ox * stride - pad + fx < wd
                for oy in range(oh) for ox in range(ow) for fy in range(kh) for fx in range(kw))
    with core(cpu) as m:
        from tinyrt.kernels import conv_asm
        k = conv_asm.prepare(x, w, bias, y, 1, h, wd, c, out_c, kh, kw, stride, stride, 1, 1,
                             pad, pad, oh, ow, -2, 1, *_q(out_c), -128, 127, copy)
        m.count = 0
        k.conv2d(*([None] * 22))
        return m.count, valid * c * out_c


def avg_pool(cpu, h, wd, c, fh, fw, stride, seed=0):
    """(instructions, taps) of one AVERAGE_POOL_2D call, or None without an asm twin."""
    rnd = random.Random(seed)
    oh, ow = (h - fh) // stride + 1, (wd - fw) // stride + 1
    x = _rand(rnd, h * wd * c)
    y = array("b", [0] * (oh * ow * c))
    with core(cpu) as m:
        try:
            from tinyrt.kernels import pool_asm
        except ImportError:
            return None
        k = pool_asm.prepare(x, y, 1, h, wd, c, oh, ow, fh, fw, stride, stride, 0, 0, -128,
                             127)
        if k is None:
            return None
        m.count = 0
        k.average_pool(*([None] * 16))
        return m.count, oh * ow * c * fh * fw


# (row name, what the MAC column counts, function(cpu) -> (instructions, MACs) or None,
#  bit-exact test functions on m0, on m3)
CASES = [
    ("conv 1x1 25x5x64->64 (kws), in place", "MAC",
     lambda c: conv(c, 25, 5, 64, 64, 1, 1, 1, 0, False),
     ["test_conv_asm_bit_exact"], ["test_conv_m3_bit_exact"]),
    ("conv 1x1 25x5x64->64 (kws), repacked", "MAC",
     lambda c: conv(c, 25, 5, 64, 64, 1, 1, 1, 0, True),
     ["test_conv_asm_bit_exact"], ["test_conv_m3_bit_exact"]),
    ("conv 10x4 s2 pad 1 49x10x1->64 (kws-like first), in place", "MAC",
     lambda c: conv(c, 49, 10, 1, 64, 10, 4, 2, 1, False),
     ["test_conv_asm_bit_exact"], ["test_conv_m3_bit_exact"]),
    ("conv 3x3 8x8x16->16 pad 1, in place", "MAC",
     lambda c: conv(c, 8, 8, 16, 16, 3, 3, 1, 1, False),
     ["test_conv_asm_bit_exact"], ["test_conv_m3_bit_exact"]),
    ("conv 3x3 8x8x1->8 pad 1 (digits first), in place", "MAC",
     lambda c: conv(c, 8, 8, 1, 8, 3, 3, 1, 1, False),
     ["test_conv_asm_bit_exact"], ["test_conv_m3_bit_exact"]),
    ("depthwise 3x3 25x5x64 pad 1 (kws)", "MAC",
     lambda c: cortexm_bench.depthwise_count(c, 25, 5, 64, 1, 3, 3, 1, 1),
     ["test_depthwise_conv_asm_bit_exact"], ["test_depthwise_m3_bit_exact"]),
    ("FC 64->64, in place", "MAC", lambda c: fc(c, 1, 64, 64, False),
     ["test_fully_connected_asm_bit_exact"], ["test_fully_connected_m3_bit_exact"]),
    ("FC 64->12 (kws), in place", "MAC", lambda c: fc(c, 1, 64, 12, False),
     ["test_fully_connected_asm_bit_exact"], ["test_fully_connected_m3_bit_exact"]),
    ("FC 4000->4 (micro_speech), in place", "MAC", lambda c: fc(c, 1, 4000, 4, False),
     ["test_fully_connected_asm_bit_exact"], ["test_fully_connected_m3_bit_exact"]),
    ("binary FC 1024->256", "binary MAC", lambda c: cortexm_bench.bfc_count(c, 1, 1024, 256),
     ["test_bfully_connected_asm_bit_exact"], []),
    ("binary conv core: xor-popcount 64x2048", "binary MAC",
     lambda c: cortexm_bench.xor_popcount_count(c, 64, 64),
     ["test_xor_popcount_asm_bit_exact"], []),
    ("avg pool 25x5 global, 64 ch (kws)", "tap", lambda c: avg_pool(c, 25, 5, 64, 25, 5, 1),
     ["test_average_pool_asm_bit_exact"], ["test_average_pool_asm_bit_exact"]),
    ("avg pool 2x2 s2 8x8x8 (digits)", "tap", lambda c: avg_pool(c, 8, 8, 8, 2, 2, 2),
     ["test_average_pool_asm_bit_exact"], ["test_average_pool_asm_bit_exact"]),
]


def case_counts() -> dict[str, int]:
    """test function name -> hypothesis examples per run (its @settings(max_examples=N)) x
    the cores it loops over, from the test files' source."""
    out: dict[str, int] = {}
    for f in sorted((ROOT / "tests").glob("test_*.py")):
        if not f.name.startswith(("test_asm", "test_pool")):
            continue
        src = f.read_text()
        for d in ast.parse(src).body:
            if not isinstance(d, ast.FunctionDef):
                continue
            for dec in d.decorator_list:
                if isinstance(dec, ast.Call) and ast.unparse(dec.func) == "settings":
                    for kw in dec.keywords:
                        if kw.arg == "max_examples":
                            out[d.name] = out.get(d.name, 0) + ast.literal_eval(kw.value)
    return out


def measure() -> dict:
    res: dict = {}
    for name, unit, fn, _, _ in CASES:
        res[name] = {}
        for cpu in CPUS:
            r = fn(cpu)
            res[name][cpu] = None if r is None else round(r[0] / r[1], 3)
        print("  %-48s %s" % (name, res[name]), file=sys.stderr)
    return res


def _cell(v):
    return "-" if v is None else "%.3f" % v


def table(before: dict, after: dict, markdown: bool) -> list[str]:
    counts = case_counts()
    head = ["kernel", "per", "m0 before", "m0 after", "m3 before", "m3 after",
            "bit-exact cases m0", "bit-exact cases m3"]
    rows = []
    for name, unit, _, t0, t3 in CASES:
        b, a = before.get(name, {}), after.get(name, {})
        n0 = sum(counts.get(t, 0) for t in t0)
        n3 = sum(counts.get(t, 0) for t in t3)
        rows.append([name, unit, _cell(b.get("m0")), _cell(a.get("m0")), _cell(b.get("m3")),
                     _cell(a.get("m3")), "%d (%s)" % (n0, ", ".join(t0)) if n0 else "-",
                     "%d (%s)" % (n3, ", ".join(t3)) if n3 else "-"])
    if markdown:
        return (["| " + " | ".join(head) + " |", "|---|---|" + "---:|" * 4 + "---|---|"]
                + ["| " + " | ".join(r) + " |" for r in rows])
    w = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
    return ["  ".join(c.ljust(w[i]) for i, c in enumerate(r)) for r in [head] + rows]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--before", action="store_true", help="store this measurement as before")
    p.add_argument("--markdown", action="store_true")
    p.add_argument("--from-json", action="store_true", help="do not measure")
    a = p.parse_args(argv)
    data = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    if not a.from_json:
        import subprocess

        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                                capture_output=True, text=True).stdout.strip()
        key = "before" if a.before else "after"
        data[key] = measure()
        data[key + "_commit"] = commit
        RESULTS.write_text(json.dumps(data, indent=1) + "\n")
    print("instructions per MAC (per binary MAC, per tap for pooling); before at %s, after at %s"
          % (data.get("before_commit"), data.get("after_commit")))
    if data.get("before_note"):
        print("before: " + data["before_note"])
    print("\n".join(table(data.get("before", {}), data.get("after", {}), a.markdown)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
