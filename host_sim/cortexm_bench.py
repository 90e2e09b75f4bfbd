"""Cortex-M instruction counts of tinyrt's asm kernels (Unicorn, real mpy-cross machine code)
and an estimate of one kws_ref_model inference on the asm path and on the viper path.

    python -m host_sim.cortexm_bench [--cpus m0,m3,m33] [--model PATH]

asm figures are counted: every instruction the kernels execute in the emulated core, including
im2col, loop control and requantization. Viper figures are static: mpy-cross's armv6m viper
code cannot run outside the firmware (it calls the runtime through a function table), so its
innermost multiply loop is read from the .mpy and its instructions per multiply are counted
(a lower bound of the viper path: outer loops and requantization excluded). Python-level cost
of each asm call (the glue between calls) is not executed by the emulator; it is estimated
as CALL_COST instructions per call and shown separately.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import tempfile
from array import array
from pathlib import Path

from . import cortexm, mpy

KERNELS = Path(__file__).resolve().parents[1] / "mp_runtime" / "tinyrt" / "kernels"
KWS = Path(__file__).resolve().parents[2] / "shared" / "models" / "kws_ref_model.tflite"
CALL_COST = 1000  # assumed M0 instructions of MicroPython work per Python->asm call (glue)
MAC_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")


# per emulated core: tinyrt.fast.arch of its firmware and the mpy-cross -march its package is
# compiled for (the M33 runs the armv7m kernels: armv8-m mainline has every Thumb-2 one used)
CORES = {"m0": (4, "armv6m"), "m3": (5, "armv7m"), "m33": (5, "armv7m")}


@contextlib.contextmanager
def core(cpu):
    """cortexm.emulated_asm for `cpu`, with the kernels choosing as on that core's firmware
    (tinyrt.fast.arch set while inside); yields the Machine."""
    arch, march = CORES[cpu]
    with cortexm.emulated_asm(cpu, march) as m:
        from tinyrt import fast

        fast.arch[0] = arch
        try:
            yield m
        finally:
            fast.arch[0] = fast.native_arch()


def _rand_fc(rnd, batches, n_in, n_out):
    x = array("b", [rnd.randint(-128, 127) for _ in range(batches * n_in)])
    w = array("b", [rnd.randint(-127, 127) for _ in range(n_out * n_in)])
    bias = array("i", [rnd.randint(-4000, 4000) for _ in range(n_out)])
    q = (array("i", [rnd.randint(1 << 15, 0xFFFF) for _ in range(n_out)]),
         array("i", [rnd.randint(0, 0x7FFF) for _ in range(n_out)]),
         array("i", [0] * n_out), array("i", [rnd.randint(6, 10) for _ in range(n_out)]))
    return x, w, bias, q


def fc_count(cpu, batches, n_in, n_out, seed=0):
    """(instructions, MACs) of one asm fully_connected call."""
    rnd = random.Random(seed)
    x, w, bias, q = _rand_fc(rnd, batches, n_in, n_out)
    y = array("b", [0] * (batches * n_out))
    args = (batches, n_in, n_out, -3, 5) + q + (-128, 127)
    with core(cpu) as m:
        from tinyrt.kernels import fully_connected_asm
        k = fully_connected_asm.prepare(x, w, bias, y, *args)
        m.count = 0
        k.fully_connected(x, w, bias, y, *args)
        return m.count, batches * n_in * n_out


def conv_count(cpu, h, wd, c, out_c, kh, kw, stride, pad, seed=0):
    """(instructions, MACs counted as the reference does: valid taps only) of one conv."""
    rnd = random.Random(seed)
    oh = (h + 2 * pad - kh) // stride + 1
    ow = (wd + 2 * pad - kw) // stride + 1
    x = array("b", [rnd.randint(-128, 127) for _ in range(h * wd * c)])
    w = array("b", [rnd.randint(-127, 127) for _ in range(out_c * kh * kw * c)])
    bias = array("i", [0] * out_c)
    q = (array("i", [40000] * out_c), array("i", [0] * out_c), array("i", [0] * out_c),
         array("i", [8] * out_c))
    y = array("b", [0] * (oh * ow * out_c))
    valid = 0
    for oy in range(oh):
        for ox in range(ow):
            for fy in range(kh):
                for fx in range(kw):
                    iy, ix = oy * stride - pad + fy, ox * stride - pad + fx
                    valid += 0 <= iy < h and 0 <= ix < wd
    with core(cpu) as m:
        from tinyrt.kernels import conv_asm
        k = conv_asm.prepare(x, w, bias, y, 1, h, wd, c, out_c, kh, kw, stride, stride, 1, 1,
                             pad, pad, oh, ow, -2, 1, *q, -128, 127)
        m.count = 0
        k.conv2d(*([None] * 22))
        return m.count, valid * c * out_c


def depthwise_count(cpu, h, wd, c, dm, kh, kw, stride, pad, seed=0):
    """(instructions, MACs counted as tinyrt's Model.macs does: every tap of every output) of
    one asm depthwise conv (depth multiplier dm), padded copy of the input included."""
    rnd = random.Random(seed)
    oc = c * dm
    oh = (h + 2 * pad - kh) // stride + 1
    ow = (wd + 2 * pad - kw) // stride + 1
    x = array("b", [rnd.randint(-128, 127) for _ in range(h * wd * c)])
    w = array("b", [rnd.randint(-127, 127) for _ in range(kh * kw * oc)])
    bias = array("i", [rnd.randint(-4000, 4000) for _ in range(oc)])
    q = (array("i", [40000] * oc), array("i", [0] * oc), array("i", [0] * oc),
         array("i", [8] * oc))
    y = array("b", [0] * (oh * ow * oc))
    with core(cpu) as m:
        from tinyrt.kernels import depthwise_conv_asm
        work = bytearray(depthwise_conv_asm.work_bytes(h, wd, c, kh, kw, stride, stride, 1, 1,
                                                         oh, ow))
        k = depthwise_conv_asm.prepare(x, w, bias, y, 1, h, wd, c, dm, kh, kw, stride, stride,
                                       1, 1, pad, pad, oh, ow, -2, 1, *q, -128, 127, work)
        m.count = 0
        k.depthwise_conv2d(*([None] * 22))
        return m.count, oh * ow * oc * kh * kw


def xor_popcount_count(cpu, words, rows, seed=0):
    """(instructions, binary MACs) of one asm xor-popcount over rows x words*32 bits."""
    rnd = random.Random(seed)
    src = array("b", [rnd.randint(-128, 127) for _ in range(4 * words)])
    w = array("b", [rnd.randint(-128, 127) for _ in range(4 * words * rows)])
    acc = array("i", [0] * rows)
    with core(cpu) as m:
        from tinyrt.kernels import bxor_popcount_asm
        m.count = 0
        bxor_popcount_asm.xor_popcount(src, w, words, rows, acc)
        return m.count, 32 * words * rows


def bfc_count(cpu, rows, n_in, n_out, mode=0, seed=0):
    """(instructions, binary MACs) of one asm BFULLY_CONNECTED call (rows x n_in -> n_out):
    the machine code executed (xor-popcount of every row and channel, loop control); the
    output transform runs in Python on the board and is not in the count."""
    rnd = random.Random(seed)
    wb = (n_in + 31) // 32 * 4
    x = array("b", [rnd.randint(-128, 127) for _ in range(rows * wb)])
    w = array("b", [rnd.randint(-128, 127) for _ in range(n_out * wb)])

    class OT:
        pass

    ot = OT()
    ot.mode = mode
    ot.thr = ot.start = ot.count = ot.base = ot.dir = ot.steps = ot.table = None
    ot.table_row = wb * 8 + 1
    if mode == 0:
        ot.thr = array("i", [n_in // 2] * n_out)
    elif mode == 1:
        ot.start = array("i", [0] * n_out)
        ot.count = array("i", [1] * n_out)
        ot.base = array("i", [0] * n_out)
        ot.dir = array("i", [1] * n_out)
        ot.steps = array("h", [wb * 4])
    else:
        ot.table = array("b", [1] * (n_out * ot.table_row))
    y = array("b", [0] * (rows * (((n_out + 31) >> 5) << 2 if mode == 0 else n_out)))
    with core(cpu) as m:
        from tinyrt.kernels import bfully_connected_asm
        k = bfully_connected_asm.prepare(x, w, y, rows, wb, n_out, n_in, ot)
        m.count = 0
        k.bconv2d(*([None] * 23), ot)
        return m.count, rows * n_in * n_out


def thumb_instructions(code: bytes):
    """(offset, first halfword, length) of each Thumb instruction of a code block."""
    out = []
    pos = 0
    while pos + 2 <= len(code):
        hw = code[pos] | code[pos + 1] << 8
        n = cortexm.thumb_length(hw)
        out.append((pos, hw, n))
        pos += n
    return out


def _branch_target(pos, hw, n, code):
    if n == 2 and hw & 0xF000 == 0xD000 and (hw >> 8) & 0xF < 0xE:  # b<cond> imm8
        off = hw & 0xFF
        return pos + 4 + ((off - 256 if off & 0x80 else off) << 1)
    if n == 2 and hw & 0xF800 == 0xE000:  # b imm11
        off = hw & 0x7FF
        return pos + 4 + ((off - 2048 if off & 0x400 else off) << 1)
    if n == 4 and hw & 0xF800 == 0xF000:  # b.w / b<cond>.w (T3/T4), not bl
        hw2 = code[pos + 2] | code[pos + 3] << 8
        if hw2 & 0xD000 == 0x9000:  # T4
            s = (hw >> 10) & 1
            j1, j2 = (hw2 >> 13) & 1, (hw2 >> 11) & 1
            i1, i2 = 1 - (j1 ^ s), 1 - (j2 ^ s)
            off = (s << 24) | (i1 << 23) | (i2 << 22) | ((hw & 0x3FF) << 12) | ((hw2 & 0x7FF) << 1)
            return pos + 4 + (off - (1 << 25) if s else off)
        if hw2 & 0xD000 == 0x8000 and (hw >> 6) & 0xF < 0xE:  # T3
            s = (hw >> 10) & 1
            off = (s << 20) | (((hw2 >> 11) & 1) << 19) | (((hw2 >> 13) & 1) << 18) | \
                ((hw & 0x3F) << 12) | ((hw2 & 0x7FF) << 1)
            return pos + 4 + (off - (1 << 21) if s else off)
    return None


def is_mul(hw, n):
    return n == 2 and hw & 0xFFC0 == 0x4340  # muls rd, rm


def viper_loop_cost(source: Path, arch: str = "armv6m"):
    """(instructions, multiplies) of the innermost loop with the most multiplies in the viper
    functions of `source`, read from mpy-cross's machine code."""
    with tempfile.TemporaryDirectory() as d:
        f = mpy.parse(mpy.compile_mpy(source, arch, Path(d) / "v.mpy"))
    best = (0, 0)
    for rc in f.module.children:
        if rc.kind != "viper":
            continue
        ins = thumb_instructions(rc.code)
        loops = []
        for pos, hw, n in ins:
            t = _branch_target(pos, hw, n, rc.code)
            if t is not None and t <= pos:
                loops.append((t, pos))
        for t, end in loops:
            if any(t < t2 <= e2 < end or t <= t2 <= e2 < end and (t2, e2) != (t, end)
                   for t2, e2 in loops):
                continue  # not innermost
            body = [(p, hw, n) for p, hw, n in ins if t <= p <= end]
            muls = sum(is_mul(hw, n) for _, hw, n in body)
            if muls > best[1] or muls == best[1] and muls and len(body) < best[0]:
                best = (len(body), muls)
    return best


def kws_layers(model_path: Path, cpu: str = "m0"):
    """Per layer of the converted model: (op name, MACs, asm instructions or None)."""
    import numpy as np

    from converter.tflite_import import import_tflite
    from converter.writer import serialize

    blob = serialize(import_tflite(model_path.read_bytes()))
    rows = []
    with core(cpu) as m:
        import tinyrt
        from tinyrt import opcodes

        mod = tinyrt.load(bytearray(blob))
        mod.input(0).set([int(v) for v in np.zeros(mod.input(0).size, dtype=np.int8)])
        for i, k in enumerate(mod.kernels):
            c0, n0 = m.count, m.calls
            k.eval()
            impl = getattr(k, "impl", "reference")
            name = opcodes.name(mod.file.ops[i].opcode)
            rows.append((name, mod.macs(i), impl,
                         m.count - c0 if impl == "asm" else None, m.calls - n0))
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="tinyrt bench --cortex-m",
                                 description=__doc__.split("\n")[0])
    ap.add_argument("--cpus", default="m0,m3,m33")
    ap.add_argument("--model", type=Path, default=KWS)
    a = ap.parse_args(argv)
    cpus = a.cpus.split(",")
    print("asm kernels, instructions per MAC (counted; whole call incl. requantization)")
    cases = [("FC 64->64", lambda c: fc_count(c, 1, 64, 64)),
             ("FC 256->12", lambda c: fc_count(c, 1, 256, 12)),
             ("conv 1x1 5x5x64->64", lambda c: conv_count(c, 5, 5, 64, 64, 1, 1, 1, 0)),
             ("conv 3x3 8x8x16->16 pad 1", lambda c: conv_count(c, 8, 8, 16, 16, 3, 3, 1, 1)),
             ("depthwise 3x3 25x5x64 pad 1",
              lambda c: depthwise_count(c, 25, 5, 64, 1, 3, 3, 1, 1)),
             ("depthwise 3x3 8x8x16 x2 s2", lambda c: depthwise_count(c, 8, 8, 16, 2, 3, 3, 2, 1)),
             ("depthwise 5x5 12x12x32 pad 2",
              lambda c: depthwise_count(c, 12, 12, 32, 1, 5, 5, 1, 2)),
             ("binary xor-popcount 64x2048", lambda c: xor_popcount_count(c, 64, 64)),
             ("binary xor-popcount 16x256", lambda c: xor_popcount_count(c, 8, 16)),
             ("binary FC 1024->256", lambda c: bfc_count(c, 1, 1024, 256)),
             ("binary FC 2x256->64 (int8 out)", lambda c: bfc_count(c, 2, 256, 64, 1)),
             ("binary FC 65->33", lambda c: bfc_count(c, 1, 65, 33))]
    print("  %-28s" % "kernel" + "".join("%12s" % c for c in cpus))
    for name, fn in cases:
        vals = []
        for c in cpus:
            n, macs = fn(c)
            vals.append("%12.3f" % (n / macs))
        print("  %-28s" % name + "".join(vals))
    print("  inner loops: m0 int8_rows 104 instructions / 32 MACs = 3.25 (8 channels x 4 k),"
          " int8_rows4 14 / 4 = 3.5; depthwise dw_rows 44 / 12 MACs = 3.67 (4 channels x 3"
          " taps, dm 1), 54 / 12 = 4.5 (any dm); xor-popcount 62 / 128 binary MACs = 0.484;"
          " m3 int8_pairs 30 / 24 = 1.25 (2 rows x 3 channels x 4 k, SMLAL), dw_rows7 32 / 12"
          " = 2.67 (LDM + MLA)")
    viper = {}
    for op, mod in (("CONV_2D", "conv_viper"), ("DEPTHWISE_CONV_2D", "depthwise_conv_viper"),
                    ("FULLY_CONNECTED", "fully_connected_viper")):
        src = KERNELS / (mod + ".py")
        if src.exists():
            n, muls = viper_loop_cost(src)
            viper[op] = n / muls if muls else None
            print("viper %-20s innermost multiply loop: %d instructions / %d MACs = %.2f"
                  % (mod, n, muls, n / muls if muls else float("nan")))
    if not a.model.exists():
        print("model %s not found" % a.model)
        return 0
    rows = kws_layers(a.model)
    print("\n%s, estimated M0 instructions per inference" % a.model.name)
    print("  %-20s %9s %7s %14s %14s" % ("layer", "MACs", "impl", "asm path", "viper path"))
    tot_a = tot_v = macs_all = calls = 0
    for name, macs, impl, count, ncalls in rows:
        if name not in MAC_OPS:
            continue
        v = macs * viper[name] if viper.get(name) else 0
        if count is None:  # no asm twin: the asm path runs the viper kernel
            count = v
            impl = impl + "*"
        else:
            calls += ncalls
        tot_a += count
        tot_v += v
        macs_all += macs
        print("  %-20s %9d %7s %14d %14d" % (name, macs, impl, count, v))
    glue = calls * CALL_COST
    print("  %-20s %9s %7s %14d %14s" % ("asm call glue (est.)", "", "%d" % calls, glue, ""))
    tot_a += glue
    print("  %-20s %9d %7s %14d %14d" % ("total", macs_all, "", tot_a, tot_v))
    print("  %-20s %9s %7s %14.2f %14.2f" % ("per MAC", "", "", tot_a / macs_all,
                                             tot_v / macs_all))
    print("  (* no asm twin: counted at the viper estimate; viper figures are innermost-loop"
          " lower bounds)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
