"""Viper twins of the binary kernels (tinyrt.kernels.bconv_viper, bfully_connected_viper) ==
the reference kernels.bconv.bconv2d, bit for bit, on the unix port (real viper) and on CPython
(the twins as Python through the micropython shim).

Two ways:
- through models (tests.test_viper.run_twins: each model loaded with and without the twins,
  both invoked under heap_lock on the same inputs, outputs compared in the interpreter) over
  tests.test_binary's hypothesis-seeded cases: channels around and between the 32-bit words,
  SAME (both pad_values) and VALID, strides, dilations, every output mode (bit-packed, int8
  steps, int8 table);
- direct calls of the twin and the reference on buffers at an offset of 0..3 bytes, so that
  the twin's byte path (unaligned buffers: an M0 would fault on a word load) is compared too,
  and with int32 (wide) step tables and all-1 / all-0 data (words whose popcount is 32).
"""

from __future__ import annotations

import numpy as np
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from host_sim.interpreters import run
from tests.test_binary import bconv_case, bfc_case
from tests.test_viper import Case, run_twins

TWIN_INTERPRETERS = ("cpython", "unix")
SEEDS = st.integers(0, 2**32 - 1)
# hypothesis examples (= interpreter runs) and cases per run: the shim is ~50x slower
RUNS = {"cpython": (3, 15), "unix": (8, 40)}


def _cases(make_case, seed: int, n: int, what: str) -> list[Case]:
    cases = []
    for i in range(n):
        model, xs, _ = make_case(np.random.default_rng([seed, i]))
        cases.append(Case(f"{what} seed {seed} case {i}", model, [[x] for x in xs]))
    return cases


def _twins_over_models(make_case, what: str) -> None:
    counts = {}
    for interp in TWIN_INTERPRETERS:
        runs, per_run = RUNS[interp]
        counted = [0]

        @settings(max_examples=runs, phases=[Phase.explicit, Phase.generate], deadline=None,
                  database=None)
        @given(SEEDS)
        def check(seed):
            counted[0] += run_twins(_cases(make_case, seed, per_run, what), interp)

        check()
        counts[interp] = counted[0]
    print(f"{what}: examples compared, twin == reference: {counts}")


def test_bconv_twin_matches_reference():
    _twins_over_models(bconv_case, "BCONV_2D")


def test_bfully_connected_twin_matches_reference():
    _twins_over_models(bfc_case, "BFULLY_CONNECTED")


# Direct calls: reference and twin on the same random buffers placed 0..3 bytes into an
# array('b') (unaligned words take the twin's byte path), every output mode, int16 and int32
# step tables. One line per case: "ok" or what differed.
DIRECT = r"""
import json
from array import array
from tinyrt.kernels import bconv, bconv_viper, bfully_connected_viper


class OT:
    pass


def buf(vals, off):
    a = array("b", bytes(len(vals) + off))
    for i in range(len(vals)):
        a[off + i] = vals[i]
    return a, memoryview(a)[off:]


def i32(v):
    return array("i", v)


for line in open("cases.json"):
    c = json.loads(line)
    g = c["geo"]
    ot = OT()
    ot.mode = c["mode"]
    ot.thr = ot.start = ot.count = ot.base = ot.dir = ot.steps = ot.table = None
    ot.steps_wide = 0
    ot.table_row = c["a_max"] + 1
    if ot.mode == 0:
        ot.thr = i32(c["thr"])
    elif ot.mode == 1:
        ot.start = i32(c["start"])
        ot.count = i32(c["count"])
        ot.base = i32(c["base"])
        ot.dir = i32(c["dir"])
        ot.steps_wide = c["wide"]
        ot.steps = array("i" if c["wide"] else "h", c["steps"])
    else:
        ot.table = buf(c["table"], 0)[1]
    _, x = buf(c["x"], c["off"][0])
    _, w = buf(c["w"], c["off"][1])
    outs = []
    for fn in (bconv.bconv2d, bconv_viper.bconv2d, bfully_connected_viper.bconv2d):
        if fn is bfully_connected_viper.bconv2d and not c["dense"]:
            continue
        y0, y = buf([0] * c["ybytes"], c["off"][2])
        s0, scratch = buf([0] * c["scratch"], c["off"][3])
        pads = array("i", [0] * max(1, g[7] * g[8]))
        wpop = i32(c["wpop"]) if c["wpop"] else None
        fn(x, w, y, scratch, pads, wpop, *g, ot)
        outs.append(list(y))
    bad = [i for i in range(1, len(outs)) if outs[i] != outs[0]]
    print(json.dumps(["ok" if not bad else "differ", c["what"], bad]))
"""


def _direct_case(rng: np.random.Generator, what: str) -> dict:
    dense = rng.random() < 0.3
    cin = int(rng.choice([1, 31, 32, 33, 64, 65, 97, 128, 129, int(rng.integers(1, 300))]))
    cout = int(rng.integers(1, 20))
    if dense:
        kh = kw = sh = sw = dh = dw = 1
        n, h, w = int(rng.integers(1, 4)), 1, 1
        pt = pl = 0
        zero_pad = 0
        oh, ow = 1, 1
    else:
        kh, kw, sh, sw = (int(v) for v in rng.integers(1, [4, 4, 3, 3]))
        dh, dw = (int(v) for v in rng.integers(1, 3, 2))
        n, h, w = int(rng.integers(1, 3)), int(rng.integers(3, 7)), int(rng.integers(3, 7))
        same = rng.random() < 0.6 and kh * kw > 1
        eh, ew = (kh - 1) * dh + 1, (kw - 1) * dw + 1
        h, w = max(h, eh), max(w, ew)
        if same:
            oh, ow = -(-h // sh), -(-w // sw)
            pt = max(0, ((oh - 1) * sh + eh - h) // 2)
            pl = max(0, ((ow - 1) * sw + ew - w) // 2)
            zero_pad = int(rng.integers(0, 2))
        else:
            oh, ow = (h - eh) // sh + 1, (w - ew) // sw + 1
            pt = pl = 0
            zero_pad = 0
        pt, pl = min(pt, eh - 1), min(pl, ew - 1)
    wb = ((cin + 31) // 32) * 4
    taps = kh * kw
    k = taps * cin
    a_max = k * (2 if zero_pad else 1)

    def packed(rows):  # random, all-1 or all-0 bits (full words), unused bits 0, int8 bytes
        kind = rng.choice(["random", "random", "ones", "zeros"])
        bits = (rng.integers(0, 2, (rows, wb * 8)) if kind == "random"
                else np.full((rows, wb * 8), int(kind == "ones"))).astype(np.uint8)
        bits[:, cin:] = 0
        return np.packbits(bits, axis=1, bitorder="little").view(np.int8).ravel().tolist()

    wvals = packed(cout * taps)
    wbytes = np.array(wvals, np.int8).view(np.uint8)
    wpop = ([int(np.unpackbits(wbytes[i * wb:(i + 1) * wb]).sum()) for i in range(cout * taps)]
            if zero_pad else [])
    mode = int(rng.integers(0, 3))
    c = dict(what=what, dense=dense, mode=mode, a_max=a_max, x=packed(n * h * w), w=wvals,
             wpop=wpop, off=[int(v) for v in rng.integers(0, 4, 4)],
             scratch=taps * wb, geo=[n, h, w, wb, oh, ow, cout, kh, kw, sh, sw, dh, dw, pt, pl,
                                     zero_pad, cin])
    if mode == 0:
        c["thr"] = [int(v) for v in rng.integers(-1, a_max + 1, cout)]
        c["ybytes"] = n * oh * ow * ((cout + 31) // 32) * 4
    else:
        c["ybytes"] = n * oh * ow * cout
        if mode == 2:
            c["table"] = [int(v) for v in rng.integers(-128, 128, cout * (a_max + 1))]
        else:
            wide = int(rng.random() < 0.5)
            steps, start, count, base, dirs = [], [], [], [], []
            for _ in range(cout):
                cnt = int(rng.integers(0, 12))
                start.append(len(steps))
                count.append(cnt)
                d = int(rng.choice([-1, 1]))
                b = int(rng.integers(-128 + cnt, 128 - cnt))
                base.append(b)
                dirs.append(d)
                steps += sorted(int(v) for v in rng.integers(0, a_max + 1, cnt))
            if wide:  # int32 steps: push some past 32767 (values the kernel never reaches)
                steps = [s + 40000 if rng.random() < 0.2 else s for s in steps]
                for i0, cnt in zip(start, count, strict=True):
                    steps[i0:i0 + cnt] = sorted(steps[i0:i0 + cnt])
            c.update(steps=steps, start=start, count=count, base=base, dir=dirs, wide=wide)
    return c


@settings(max_examples=3, phases=[Phase.explicit, Phase.generate], deadline=None)
@given(SEEDS)
def test_direct_calls_aligned_and_unaligned(seed):
    import json

    rng = np.random.default_rng(seed)
    cases = [_direct_case(rng, f"direct {seed} {i}") for i in range(30)]
    files = {"cases.json": "\n".join(json.dumps(c) for c in cases) + "\n"}
    for interp in TWIN_INTERPRETERS:
        out = run(DIRECT, interp, files=files).stdout.strip().splitlines()
        assert len(out) == len(cases), out[-3:]
        for line, c in zip(out, cases, strict=True):
            ok, what, bad = json.loads(line)
            assert ok == "ok", f"{interp}: {what} differs ({bad}): {c['geo']} mode {c['mode']}"
