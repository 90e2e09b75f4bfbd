"""Pieces the kernel test files share: an in-process invoke and loading bad models on a
device interpreter."""

from __future__ import annotations

import numpy as np

import tinyrt
from host_sim import run
from host_sim.emulated import EMULATED
from host_sim.probes import load_script


def tinyrt_local(model: bytes, xs: list[np.ndarray]) -> list[np.ndarray]:
    """One invoke of tinyrt in this process (CPython)."""
    m = tinyrt.load(model)
    for i, x in enumerate(xs):
        m.input(i).set(np.asarray(x).ravel().tolist())
    m.invoke()
    return [np.array(m.output(j).tolist()) for j in range(m.n_outputs)]


def load_verdicts(models: list[bytes], interpreter: str) -> list[str]:
    """The class of the error tinyrt.load raises for each model on `interpreter` ("ok" when
    it loads)."""
    files = {f"bad{i}.trt": m for i, m in enumerate(models)}
    out = run(load_script(list(files)), interpreter, files=files).stdout.rstrip("\n")
    return [line.split(":")[0] for line in out.split("\n")]


def fast_kernel(interpreter: str) -> str:
    """The kernel tinyrt.fast must choose on `interpreter` for a layer that has an asm and a
    viper twin (CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED): asm on the ARM boards, viper
    where the emitter exists (the unix port; emulated on CPython), else the reference."""
    if interpreter in EMULATED:
        return "asm"
    return "reference" if interpreter == "wasm" else "viper"
