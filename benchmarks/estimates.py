"""Estimated latency and energy per inference on RP2040 / RP2350 silicon (issue 16, must-show 4).

    python benchmarks/estimates.py                  # from benchmarks/board_results.json
    python benchmarks/estimates.py --json OTHER.json

ESTIMATES, not measurements: nothing here ran on a Pico. The inputs are the instruction counts
of the emulated boards (QEMU -icount, board_results.json, written by report.py):
- RP2040 (Cortex-M0+, armv6m, 133 MHz): the m0 counts (the same instruction set).
- RP2350 (Cortex-M33, armv8-m mainline, 150 MHz): the m3 counts. No emulated M33 runs
  MicroPython here; armv7m (M3) is the nearest ISA (the M33 runs every armv7m instruction the
  kernels use, and tinyrt picks the same Thumb-2 twins there: fast.arch >= 5), so the m3 count
  stands in for it.
ms = instructions / clock, i.e. one instruction per cycle: a lower bound (on an M0+ loads and
taken branches take 2 cycles; flash XIP misses add more). A second column scales by the one
silicon anchor there is: TFLM + CMSIS-NN person detection takes 83.7 M instructions on the m0
emulator (../shared/emulator/tflm/README.md) and 823 ms on an RP2040 at 133 MHz (pico-tflmicro,
published), i.e. 1.31 cycles per instruction for that C code: "x1.31" applies it to tinyrt
(whose asm kernels are as load- and multiply-heavy).
Energy = supply voltage x active current x time, with the datasheet typical figures below
(quoted from memory of the RP2040 / RP2350 datasheets' power tables: no internet access here,
so check them against the current datasheets before relying on them).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

# chip: (emulated board whose counts stand in, clock Hz, supply V, active mA, where the
# figures come from)
CHIPS = {
    "RP2040": ("m0", 133_000_000, 3.3, 25.0,
               "Cortex-M0+ at 133 MHz; ~25 mA from the 3.3 V supply with one core busy "
               "(RP2040 datasheet typical, core via the on-chip LDO), from memory"),
    "RP2350": ("m3", 150_000_000, 3.3, 20.0,
               "Cortex-M33 at 150 MHz; ~20 mA from the 3.3 V supply with one core busy "
               "(RP2350 datasheet typical, core via the on-chip switching regulator), from "
               "memory; m3 (armv7m) counts stand in for armv8-m"),
}
# TFLM + CMSIS-NN person detection: m0 emulator instructions and RP2040 silicon milliseconds
ANCHOR_INSTRUCTIONS = 83_700_000
ANCHOR_MS = 823.0
ANCHOR_HZ = 133_000_000
CPI = ANCHOR_MS * 1e-3 * ANCHOR_HZ / ANCHOR_INSTRUCTIONS  # cycles per instruction, ~1.31
# TFLM + CMSIS-NN on TFLM's person-detection model, from the same emulators (tflm/README.md)
PERSON_DETECTION = {"m0": {"person_detection (TFLM's)": {"TFLM CMSIS-NN": 83_700_000}},
                    "m3": {"person_detection (TFLM's)": {"TFLM CMSIS-NN": 30_300_000}}}
# published silicon figures for person detection (96x96 MobileNet), for comparison
PUBLISHED = (("RP2040, pico-tflmicro + CMSIS-NN", 823.0),
             ("ESP32, TFLM reference kernels", 4084.0),
             ("ESP32, TFLM + ESP-NN", 380.0))


def estimate(instructions: float, chip: str) -> dict:
    """ms at 1 instruction per cycle and at the anchor's CPI; energy (mJ) for both."""
    _, hz, volts, ma, _ = CHIPS[chip]
    ms = instructions / hz * 1e3
    watts = volts * ma * 1e-3
    return {"ms": ms, "ms_cpi": ms * CPI, "mj": watts * ms, "mj_cpi": watts * ms * CPI}


def rows(data: dict, extra: dict | None = None) -> list[tuple]:
    """(chip, model, kind, instructions, estimate) for tinyrt asm, viper and TFLM CMSIS-NN of
    each model in board_results.json (+ extra: {board: {model: {kind: instructions}}})."""
    out = []
    res = data["results"]
    for chip, (board, *_rest) in CHIPS.items():
        models = dict(res.get(board, {}))
        for model, r in models.items():
            a = r["asm"]
            kinds = [("tinyrt asm", a["instructions_per_invoke"]),
                     ("tinyrt viper", r.get("viper", {}).get("instructions_per_invoke")),
                     ("TFLM CMSIS-NN", a.get("tflm_cmsis_instructions"))]
            for kind, n in kinds:
                if n:
                    out.append((chip, model, kind, n, estimate(n, chip)))
        more = {**PERSON_DETECTION.get(board, {}), **(extra or {}).get(board, {})}
        for model, kinds in more.items():
            for kind, n in kinds.items():
                out.append((chip, model, kind, n, estimate(n, chip)))
    return out


def table(data: dict, extra: dict | None = None) -> list[str]:
    lines = ["| chip | model | kernels | instructions | ms (1 instr/cycle) | ms (x%.2f CPI) | "
             "energy mJ (1 instr/cycle) | energy mJ (x%.2f) |" % (CPI, CPI),
             "|---|---|---|---:|---:|---:|---:|---:|"]
    for chip, model, kind, n, e in rows(data, extra):
        lines.append("| %s | %s | %s | %s | %.2f | %.2f | %.3f | %.3f |"
                     % (chip, model, kind, f"{n:,.0f}", e["ms"], e["ms_cpi"], e["mj"],
                        e["mj_cpi"]))
    return lines


def section(data: dict, extra: dict | None = None) -> list[str]:
    """The REPORT.md section (markdown lines)."""
    lines = ["## Estimated RP2040 / RP2350 latency and energy per inference (estimates)", "",
             "**Estimates, not measurements** (`python benchmarks/estimates.py`): instructions "
             "per invoke from the emulated boards divided by the clock, energy = supply "
             "voltage x active current x time. Assumed figures (datasheet typical, quoted from "
             "memory: no internet here, check them):", ""]
    for chip, (board, hz, volts, ma, src) in CHIPS.items():
        lines.append(f"- **{chip}**: {board} counts, {hz / 1e6:.0f} MHz, {volts} V x {ma} mA "
                     f"= {volts * ma:.0f} mW. {src}.")
    lines += [f"- 1 instruction per cycle is a lower bound. The x{CPI:.2f} columns apply the "
              f"cycles per instruction of the one silicon anchor: TFLM + CMSIS-NN person "
              f"detection, {ANCHOR_INSTRUCTIONS / 1e6:.1f} M instructions on the m0 emulator, "
              f"{ANCHOR_MS:.0f} ms on an RP2040 at 133 MHz (pico-tflmicro, published).",
              "- The RP2350 figures use the Cortex-M3 (armv7m) counts as the nearest ISA: no "
              "emulated Cortex-M33 runs MicroPython here; tinyrt runs the same Thumb-2 twins "
              "on both (fast.arch >= 5).", "",
              *table(data, extra), "",
              "Published silicon figures for person detection (96x96 MobileNet, for scale): "
              + "; ".join(f"{who} {ms:,.0f} ms" for who, ms in PUBLISHED) + ". "
              "tinyrt's own 96x96 MobileNet (host_sim/mobilenet.py, width 0.25) has no row: "
              "unpatched it does not load on the emulated boards (`tinyrt bench` on m3: "
              "ArenaError, a 75,664-byte arena in a fragmented 147 KB free heap).", ""]
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--json", default=str(HERE / "board_results.json"))
    a = p.parse_args(argv)
    data = json.loads(Path(a.json).read_text())
    print("\n".join(section(data, data.get("extra"))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
