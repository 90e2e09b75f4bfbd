"""`tinyrt bench --interpreter m0`: instruction counts on the emulated Cortex-M0 firmware
(host_sim/bench.py), and TFLM's reference / CMSIS-NN builds on the same emulated CPU."""

import json
from pathlib import Path

import pytest

from host_sim import cli
from host_sim.emulated import EmulatorError, emulator_dir, qemu
from host_sim.runner import convert, op_macs

MODELS = Path(__file__).resolve().parents[2] / "shared" / "models"
MAC_OPS = ("FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D")
# Model.invoke() runs the kernels in a Python loop: its own cost (the loop, the call, the
# output lookup) is what the per-layer timings leave out; instructions per layer at most
# (digits CNN on m0: ~1,460 per layer before the clamp-bound and wide-bias kernels, ~2,600
# after: the invoke loop is unchanged, the call into the bigger kernel objects is not).
INVOKE_GLUE = 3_000


def _board_ready() -> None:
    try:
        emulator_dir()
        qemu()
    except EmulatorError as e:
        pytest.skip(str(e))


def _bench(capsys, *args: str) -> dict:
    assert cli.main(["bench", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    _board_ready()
    out = tmp_path_factory.mktemp("bench") / "digits_cnn_int8.trt"
    return convert(MODELS / "digits_cnn_int8.tflite", out)


def test_bench_m0_counts_instructions(digits, capsys):
    r = _bench(capsys, str(digits.output), "--interpreter", "m0", "--runs", "3")
    assert r["interpreter"] == "m0"
    assert r["heap_locked"] is True
    ipi = r["instructions_per_invoke"]
    assert ipi > 0
    layers = r["layers"]
    assert [lr["op"] for lr in layers] == [o["name"] for o in digits.info["operators"]]
    total = sum(lr["instructions"] for lr in layers)
    assert total == r["layers_instructions"]
    # the layers, each timed alone, add up to the invoke less Model.invoke's own loop
    assert 0 <= ipi - total <= INVOKE_GLUE * len(layers), (ipi, total)
    assert r["macs"] == sum(op_macs(digits.info)) > 0
    assert r["instructions_per_mac"] == ipi / r["macs"]
    for lr in layers:
        if lr["op"] in MAC_OPS:
            assert lr["kernel"] == "asm", lr
    assert r["kernels"] == "asm"
    assert 10_000 < r["heap_free_after_load"] < 200_000
    assert r["load_instructions"] > 0
    assert r["streamed"] is False


def test_bench_m0_viper_mode(digits, capsys):
    r = _bench(capsys, str(digits.output), "--interpreter", "m0", "--runs", "1",
               "--mode", "viper")
    assert r["mode"] == "viper"
    kernels = {lr["kernel"] for lr in r["layers"]}
    assert "asm" not in kernels and "viper" in kernels
    assert r["instructions_per_invoke"] > 0


def test_bench_m0_vs_tflm(tmp_path, capsys):
    _board_ready()
    tflite = MODELS / "hello_world_int8.tflite"
    trt = convert(tflite, tmp_path / "hello_world_int8.trt").output
    r = _bench(capsys, str(trt), "--interpreter", "m0", "--vs-tflm", str(tflite))
    assert r["tflm_cmsis_instructions"] > 0
    assert r["tflm_ref_instructions"] > r["tflm_cmsis_instructions"]
    assert r["ratio"] == r["instructions_per_invoke"] / r["tflm_cmsis_instructions"]
    assert r["outputs_match_tflm"] is True
    assert cli.main(["bench", str(trt), "--interpreter", "m0", "--runs", "1",
                     "--vs-tflm", str(tflite)]) == 0
    text = capsys.readouterr().out
    assert "CMSIS-NN" in text and "instructions" in text and "FULLY_CONNECTED" in text
