"""Board profiles, `tinyrt fit` / `tinyrt convert --board`, and package.json for mip."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import boards
from boards.runtime import compile_runtime, package_json_text, sources
from converter.fit import fit
from tests.conftest import SHARED_MODELS
from tests.models import mlp_model
from tests.test_streaming import wide_mlp

REPO = Path(__file__).resolve().parents[1]


def test_every_board_is_profiled_with_sources():
    assert set(boards.names()) >= {"esp32", "esp32s3", "rp2040", "rp2350"}
    for name in boards.names():
        p = boards.get(name)
        for figure in boards.FIGURES:
            assert p.sources.get(figure), f"{name}: no source for {figure}"
        assert p.estimates <= set(boards.FIGURES)
        assert p.mpy_arch in boards.MPY_ARCHS
        assert 0 < p.max_alloc_bytes <= p.free_heap_bytes < p.ram_bytes
        assert 0 < p.fs_bytes < p.flash_bytes
    assert boards.get("pico") is boards.get("RP2040")
    assert boards.get("ESP32-S3").name == "esp32s3"
    with pytest.raises(KeyError, match="known boards: esp32, esp32s3, rp2040, rp2350"):
        boards.get("arduino-uno")


def test_boards_are_identified_by_what_they_report():
    assert boards.identify("rp2", "Raspberry Pi Pico with RP2040").name == "rp2040"
    assert boards.identify("rp2", "Raspberry Pi Pico2 with RP2350").name == "rp2350"
    assert boards.identify("rp2", "Raspberry Pi Pico2 with RP2350-RISCV") is None  # rv32imc
    assert boards.identify("esp32", "Generic ESP32 module with ESP32").name == "esp32"
    assert boards.identify("esp32", "Generic ESP32S3 module with Octal-SPIRAM with ESP32S3"
                           ).name == "esp32s3"
    assert boards.arch_of_mpy(2822) == "x64"  # the unix port's sys.implementation._mpy
    assert boards.arch_of_mpy((4 << 10) | (3 << 8) | 6) == "armv6m"


@pytest.mark.parametrize("name", ["esp32", "rp2040"])
def test_runtime_compiles_for_the_board(name):
    files, skipped = compile_runtime(boards.get(name).mpy_arch)
    assert {f.path for f in files} >= {"tinyrt/model.mpy", "tinyrt/stream.mpy",
                                       "tinyrt/kernels/fully_connected.mpy"}
    assert all(s.endswith(("_viper.py", "_asm.py")) for s in skipped)
    assert all(f.local.read_bytes()[:2] == b"M\x06" for f in files)


def tinyrt_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "host_sim.cli", *args], capture_output=True,
                          text=True, cwd=REPO, timeout=600)


def kws_trt(tmp_path: Path) -> Path:
    src = SHARED_MODELS / "kws_ref_model.tflite"
    if not src.exists():
        pytest.skip(f"{src} not present")
    out = tmp_path / "kws.trt"
    p = tinyrt_cli("convert", str(src), "-o", str(out))
    assert p.returncode == 0, p.stderr
    return out


def test_fit_kws_on_each_board(tmp_path):
    model = kws_trt(tmp_path)
    verdicts = {}
    for name in boards.names():
        p = tinyrt_cli("fit", str(model), "--board", name)
        print(p.stdout)
        assert p.returncode in (0, 1), p.stderr
        assert f"kws.trt on {name}: " in p.stdout
        assert "flash: filesystem" in p.stdout and "needed free heap" in p.stdout
        verdicts[name] = p.returncode
    assert verdicts["esp32s3"] == verdicts["rp2350"] == 0  # megabytes / 460 KB of heap
    assert verdicts["rp2040"] == 0  # by streaming at worst


def test_convert_with_board_reports_the_fit(tmp_path):
    src = SHARED_MODELS / "kws_ref_model.tflite"
    if not src.exists():
        pytest.skip(f"{src} not present")
    p = tinyrt_cli("convert", str(src), "-o", str(tmp_path / "k.trt"), "--board", "pico2")
    assert p.returncode == 0, p.stderr
    assert "converted" in p.stdout and "k.trt on rp2350" in p.stdout and "FITS" in p.stdout
    p = tinyrt_cli("convert", str(src), "-o", str(tmp_path / "k.trt"), "--board", "uno")
    assert p.returncode == 2 and "unknown board 'uno'" in p.stderr


def test_fit_picks_streaming_and_refuses_what_cannot_fit():
    rp2040 = boards.get("rp2040")
    big = fit(wide_mlp(), rp2040, "big.trt")
    assert big.verdict == ("fits", "streaming") and big.fits
    assert big.ram(False) == "no"
    assert "33,792 B scratch buffer" in big.report()
    small = fit(mlp_model(), rp2040, "mlp.trt")
    assert small.verdict == ("fits", "in RAM")
    esp32 = boards.get("esp32")
    huge = fit(wide_mlp(3, 300), esp32, "wide.trt")  # a 90 KB layer: no ESP32 allocation
    assert huge.verdict == ("no", None)
    assert any("single buffer" in p for p in huge.problems())
    assert "DOES NOT FIT" in huge.report()


def test_fit_refuses_a_file_that_is_not_a_model(tmp_path):
    bad = tmp_path / "x.trt"
    bad.write_bytes(b"not a model")
    p = tinyrt_cli("fit", str(bad), "--board", "rp2040")
    assert p.returncode == 2 and "not a valid model file" in p.stderr


def test_package_json_lists_the_runtime():
    text = (REPO / "package.json").read_text()
    assert text == package_json_text(), ("package.json is stale: regenerate it with "
                                         "`python -m boards.runtime > package.json`")
    assert len(sources()) >= 20


def test_mip_installs_from_package_json(tmp_path):
    """`mpremote mip install` of the repository's package.json onto a simulated board (a local
    path stands in for github:OWNER/REPO), then the model runs there."""
    root = tmp_path / "board"
    (root).mkdir()
    (root / "m.trt").write_bytes(mlp_model())
    proc = subprocess.Popen([sys.executable, "-m", "host_sim.serial_board", "--dir", str(root),
                             "--board", "rp2350"], stdout=subprocess.PIPE, text=True, cwd=REPO)
    port = proc.stdout.readline().split()[1]
    try:
        p = subprocess.run([sys.executable, "-m", "mpremote", "connect", port, "mip", "install",
                            str(REPO / "package.json")], capture_output=True, text=True,
                           timeout=300)
        assert p.returncode == 0, p.stdout + p.stderr
        assert (root / "lib" / "tinyrt" / "model.py").exists()
        p = subprocess.run([sys.executable, "-m", "mpremote", "connect", port, "exec",
                            "import tinyrt; print(tinyrt.load('m.trt').invoke([1] * 16)"
                            ".tolist())"], capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stdout + p.stderr
        assert len(eval(p.stdout)) == 4
    finally:
        proc.terminate()
        proc.wait(timeout=10)
