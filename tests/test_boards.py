"""Board profiles, `tinyrt fit` / `tinyrt convert --board`, and package.json for mip."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import boards
from boards.runtime import compile_runtime, package_json_text, sources
from boards import fit as fit_mod
from boards.fit import fit
from host_sim import cli
from host_sim.runner import convert
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


@pytest.fixture(scope="module")
def shared_trt(tmp_path_factory) -> dict[str, Path]:
    """The shared models converted to model files (host_sim.runner.convert)."""
    out = {}
    tmp = tmp_path_factory.mktemp("trt")
    for name in SHARED:
        src = SHARED_MODELS / f"{name}.tflite"
        if not src.exists():
            pytest.skip(f"{src} not present")
        out[name] = convert(src, tmp / f"{name}.trt").output
    return out


def too_large() -> bytes:
    """One 2100 x 2100 FULLY_CONNECTED layer: a 4.4 MB file, more than any board's filesystem
    holds or one allocation gets, even on the ESP32-S3's PSRAM."""
    return wide_mlp(1, 2100)


SHARED = ("hello_world_int8", "kws_ref_model", "micro_speech_quantized")
# Verdicts from RAM measured on the emulated m0 (32-bit MicroPython) plus the runtime's
# bytecode read from the filesystem (~29 KB for kws's modules, measured on m3): kws needs
# ~195 KB whole and ~164 KB streamed with asm twins (a Pico has ~210 KB free), ~180 KB /
# ~153 KB with viper twins on an ESP32 (~105 KB free); micro_speech ~106 KB there, just over.
VERDICTS = {
    ("hello_world_int8", "rp2040"): fit_mod.IN_RAM, ("hello_world_int8", "esp32"): fit_mod.IN_RAM,
    ("micro_speech_quantized", "rp2040"): fit_mod.IN_RAM,
    ("micro_speech_quantized", "esp32"): fit_mod.NO,
    # kws whole fits a Pico again since the depthwise padded images are planned into the arena
    # and their tables are built without garbage between them (session 3's clamp bounds and
    # wide-bias hooks had taken it ~12 KB past)
    ("kws_ref_model", "rp2040"): fit_mod.IN_RAM, ("kws_ref_model", "esp32"): fit_mod.NO,
}


@pytest.mark.parametrize("name", SHARED)
def test_fit_verdicts_of_the_shared_models(shared_trt, name):
    data = shared_trt[name].read_bytes()
    for board in ("rp2040", "esp32"):
        f = fit(data, boards.get(board), f"{name}.trt")
        print(f.report())
        assert f.verdict == VERDICTS[name, board], f.report()
        assert f.fits == (f.verdict != fit_mod.NO) and (f.short > 0) == (not f.fits)
        for streamed in (False, True):
            m = f.mode(streamed)
            assert m.basis == "measured"  # these load within m0's heap
            assert 10_000 < m.runtime < 60_000
            assert m.model >= f.layout.buffers(streamed)  # buffers are part of what it keeps
            assert m.runtime + m.model <= m.need <= f.measured.board_free
        assert f.measured.asm == (board == "rp2040")
        report = f.report()
        assert f"verdict: {f.verdict.upper()}" in report
        assert ("scaled to xtensawin" in report) == (board == "esp32")
        assert "may fit" not in report.lower()


def test_kws_fits_a_pico_whole_though_streaming_needs_less(shared_trt):
    rp2040 = boards.get("rp2040")
    kws = fit(shared_trt["kws_ref_model"].read_bytes(), rp2040)
    assert 150_000 < kws.ram_needed(False) < rp2040.free_heap_bytes
    assert 20_000 < kws.from_fs(False) < 40_000  # the runtime's bytecode, read into RAM
    assert kws.ram_needed(True) < kws.ram_needed(False)
    assert kws.verdict == fit_mod.IN_RAM  # whole fits, so it is not told to stream


def test_kws_does_not_fit_an_esp32_and_says_by_how_much(shared_trt):
    f = fit(shared_trt["kws_ref_model"].read_bytes(), boards.get("esp32"), "kws.trt")
    assert f.verdict == fit_mod.NO
    assert 0 < f.ram_short(True) < f.ram_short(False)
    assert f.short == f.ram_short(True)
    assert f"{f.ram_short(True):,} B short streaming" in f.report()


def test_fit_streams_only_when_whole_does_not_fit():
    rp2040 = boards.get("rp2040")
    # 9 layers, a 310 KB file: more than m0's heap, and within m0's 512 KB ROMFS beside the
    # runtime's .mpy (the default 10 layers no longer are)
    big = fit(wide_mlp(9), rp2040, "big.trt")
    assert big.verdict == fit_mod.STREAMING and big.fits and big.short == 0
    assert big.ram_short(False) > 0 and big.ram_short(True) == 0
    assert big.mode(True).basis == "measured"
    assert big.mode(False).basis.startswith("extrapolated")
    report = big.report()
    assert "33,792 B scratch buffer" in report and "extrapolated" in report
    s3 = fit(wide_mlp(9), boards.get("esp32s3"), "big.trt")  # megabytes of PSRAM: whole
    assert s3.verdict == fit_mod.IN_RAM


def test_a_model_too_large_fits_nowhere():
    data = too_large()
    for name in boards.names():
        f = fit(data, boards.get(name), "huge.trt")
        assert f.verdict == fit_mod.NO and f.short > 0, name
        assert f"{f.short:,} B short" in f.report()


def test_measurements_are_cached_per_model_content(shared_trt, monkeypatch):
    data = shared_trt["micro_speech_quantized"].read_bytes()
    first = fit_mod.measure(data, True)
    assert fit_mod._cache_file(data, True).exists()
    fit_mod.measure.cache_clear()

    def no_board(*args):
        raise AssertionError("measured again on the board: the cache was not used")

    monkeypatch.setattr(fit_mod, "_measure_mode", no_board)
    monkeypatch.setattr(fit_mod, "_runtime_only", no_board)
    assert fit_mod.measure(data, True) == first
    assert fit_mod._cache_file(data + b"\0", True) != fit_mod._cache_file(data, True)


def test_fit_exit_codes(shared_trt, tmp_path, capsys):
    kws = str(shared_trt["kws_ref_model"])
    assert cli.main(["fit", kws, "--board", "pico"]) == 0
    assert "verdict: FITS IN RAM" in capsys.readouterr().out
    assert cli.main(["fit", kws, "--board", "esp32"]) == 1
    assert "verdict: DOES NOT FIT" in capsys.readouterr().out
    huge = tmp_path / "huge.trt"
    huge.write_bytes(too_large())
    assert cli.main(["fit", str(huge), "--board", "esp32s3"]) == 1
    # usage errors: found before anything is measured
    assert cli.main(["fit", kws, "--board", "arduino-uno"]) == 2
    assert "unknown board 'arduino-uno'" in capsys.readouterr().err
    assert cli.main(["fit", str(tmp_path / "missing.trt"), "--board", "rp2040"]) == 2
    assert "cannot read" in capsys.readouterr().err
    bad = tmp_path / "x.trt"
    bad.write_bytes(b"not a model")
    assert cli.main(["fit", str(bad), "--board", "rp2040"]) == 2
    assert "not a valid model file" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        cli.main(["fit", kws])  # --board is required
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        cli.main(["fit", "--help"])
    assert e.value.code == 0
    assert "1 it does not fit, 2 usage error" in " ".join(capsys.readouterr().out.split())


def test_convert_with_board_reports_the_fit(tmp_path):
    src = SHARED_MODELS / "kws_ref_model.tflite"
    if not src.exists():
        pytest.skip(f"{src} not present")
    p = tinyrt_cli("convert", str(src), "-o", str(tmp_path / "k.trt"), "--board", "pico2")
    assert p.returncode == 0, p.stderr
    assert "converted" in p.stdout and "k.trt on rp2350" in p.stdout
    assert "verdict: FITS IN RAM" in p.stdout
    p = tinyrt_cli("convert", str(src), "-o", str(tmp_path / "u.trt"), "--board", "uno")
    assert p.returncode == 2 and "unknown board 'uno'" in p.stderr
    assert not (tmp_path / "u.trt").exists()  # the board is checked before converting


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
