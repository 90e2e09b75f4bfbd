"""The `tinyrt` command: every subcommand given bad input fails with one line and its documented
exit status (0 done, 1 the job failed, 2 usage or input error), never a traceback; eval's
accuracy and run's real inputs/outputs agree with TFLM's reference outputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from host_sim import cli, runner
from host_sim.cli_info import label_params, short_name

from .conftest import SHARED_MODELS

DIGITS = SHARED_MODELS / "digits_cnn_int8.tflite"
DIGITS_IO = SHARED_MODELS / "digits_cnn_int8_io.npz"
DIGITS_FLOAT = SHARED_MODELS / "digits_cnn_float.tflite"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("cli")
    trt = d / "digits.trt"
    assert cli.main(["convert", str(DIGITS), "-o", str(trt), "--board", "rp2040"]) == 0
    io = np.load(DIGITS_IO)
    data = trt.read_bytes()
    f = {"trt": trt, "dir": d, "missing": d / "missing.trt"}
    f.setdefault("corrupt_trt", d / "corrupt.trt").write_bytes(data[:16] + bytes(len(data) - 16))
    f.setdefault("short_trt", d / "short.trt").write_bytes(data[: len(data) // 2])
    tfl = DIGITS.read_bytes()
    f.setdefault("corrupt_tflite", d / "corrupt.tflite").write_bytes(tfl[: len(tfl) // 3])
    f.setdefault("junk_tflite", d / "junk.tflite").write_bytes(bytes(range(256)) * 8)
    np.save(f.setdefault("x", d / "x.npy"), io["x"][:6])
    np.save(f.setdefault("x_wrong", d / "x_wrong.npy"), np.zeros((3, 7, 7), np.int8))
    np.save(f.setdefault("x_float", d / "x_float.npy"), (io["x"][:6] + 128.0) / 255)
    np.save(f.setdefault("x_range", d / "x_range.npy"), np.full((2, 64), 300))
    np.save(f.setdefault("labels", d / "labels.npy"), io["label"][:6])
    np.save(f.setdefault("labels_short", d / "labels_short.npy"), io["label"][:4])
    np.save(f.setdefault("labels_big", d / "labels_big.npy"), io["label"][:6] + 10)
    np.save(f.setdefault("calib", d / "calib.npy"), (io["x"][:40] + 128.0) / 255)
    np.save(f.setdefault("calib_wrong", d / "calib_wrong.npy"), np.zeros((5, 7)))
    f.setdefault("text", d / "notes.npy").write_text("not an array")
    return f


# (argv with {placeholders} for `files`, exit status, a phrase of the one-line message)
BAD = [
    ("info {missing}", 2, "No such file"),
    ("info {dir}", 2, "directory"),
    ("info {corrupt_trt}", 2, "ModelError"),
    ("info {short_trt}", 2, "truncated"),
    ("info", 2, "required: model"),
    ("convert {missing}", 2, "No such file"),
    ("convert {dir}", 2, "directory"),
    ("convert {corrupt_tflite}", 2, "truncated or corrupt"),
    ("convert {junk_tflite}", 2, "not a .tflite file"),
    (f"convert {DIGITS_FLOAT}", 2, "tinyrt quantize"),
    (f"convert {DIGITS} -o {{dir}}/nodir/x.trt", 2, "no directory"),
    (f"convert {DIGITS} --board esp8266", 2, "unknown board 'esp8266'"),
    ("fit {trt} --board uno", 2, "unknown board 'uno'"),
    ("fit {missing} --board rp2040", 2, "No such file"),
    ("fit {corrupt_trt} --board rp2040", 2, ""),
    ("run {missing} --input {x}", 2, "No such file"),
    ("run {trt} --input {missing}", 2, "No such file"),
    ("run {trt} --input {text}", 2, "cannot read"),
    ("run {trt} --input {dir}", 2, "directory"),
    ("run {corrupt_trt} --input {x}", 2, "ModelError"),
    ("run {trt} --input {x_wrong}", 2, "has shape (7, 7)"),
    ("run {trt} --input {x_float}", 2, "--float-input"),
    ("run {trt} --input {x_range}", 2, "outside int8"),
    ("run {trt} --input {x} --heap -1", 2, "positive number of bytes"),
    ("run {trt} --input {x} --heap lots", 2, "not a number of bytes"),
    ("run {trt} --input {x} --interpreter pypy", 2, "invalid choice: 'pypy'"),
    ("run {trt} --input {x} --heap 1000", 1, "MemoryError"),
    ("eval {trt} --input {x} --labels {labels_short}", 2, "4 labels for 6 inputs"),
    ("eval {trt} --input {x} --labels {labels_big}", 2, "10 classes"),
    ("eval {trt} --input {x_wrong} --labels {labels}", 2, "has shape (7, 7)"),
    ("eval {trt} --input {x} --labels {missing}", 2, "No such file"),
    ("eval {trt} --input {x}", 2, "--labels"),
    ("quantize {missing} --calib {calib}", 2, "No such file"),
    (f"quantize {DIGITS_FLOAT} --calib {{calib_wrong}}", 2, "model input has shape (8, 8, 1)"),
    (f"quantize {DIGITS_FLOAT} --calib {{missing}}", 2, "No such file"),
    (f"quantize {DIGITS_FLOAT} --calib {{calib}} --binary conv3", 2, "no layer has that name"),
    (f"quantize {DIGITS_FLOAT} --calib {{calib}} --binary avgpool2d_2", 2, "is a AvgPool2D"),
    (f"quantize {DIGITS_FLOAT} --calib {{calib}} --input-range 1,0", 2, "LO < HI"),
    ("bench {missing}", 2, "No such file"),
    ("bench {dir}", 2, "directory"),
    ("bench {corrupt_trt}", 2, "ModelError"),
    ("bench {corrupt_tflite}", 2, "corrupt"),
    ("bench {trt} --heap 0", 2, "positive number of bytes"),
    ("bench {trt} --interpreter pypy", 2, "invalid choice"),
    ("bench {trt} --heap 1000", 1, "MemoryError"),
    ("demo --calibration best", 2, "invalid choice"),
    ("frobnicate", 2, "invalid choice"),
]


@pytest.mark.parametrize("argv,code,phrase", BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_one_line_and_an_exit_status(files, capsys, argv, code, phrase):
    args = argv.format(**files).split()
    try:
        rc = cli.main(args)
    except SystemExit as e:  # argparse's errors
        rc = e.code
    out, err = capsys.readouterr()
    assert rc == code, err
    assert "Traceback" not in out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("tinyrt"), lines[0]
    assert phrase in lines[0]


def test_the_installed_command_never_prints_a_traceback(files, tmp_path):
    """Through the entry point, with a private TMPDIR: one line, status 2, and no copy of the
    runtime (tinyrt-lib-*) left behind by a run on the unix port."""
    env = dict(os.environ, TMPDIR=str(tmp_path))
    for args, code in ((["info", str(files["dir"])], 2), (["info", str(files["missing"])], 2),
                       (["run", str(files["trt"]), "--input", str(files["x"])], 0)):
        p = subprocess.run([sys.executable, "-m", "host_sim.cli", *args], capture_output=True,
                           text=True, env=env, cwd=ROOT)
        assert p.returncode == code and "Traceback" not in p.stdout + p.stderr, p.stderr
    assert not list(tmp_path.glob("tinyrt-*"))


def test_exit_codes_in_every_help(capsys):
    for sub in ("info", "convert", "fit", "run", "eval", "quantize", "demo", "bench"):
        with pytest.raises(SystemExit) as e:
            cli.main([sub, "--help"])
        assert e.value.code == 0
        text = " ".join(capsys.readouterr().out.split())
        assert "exit status: 0" in text and "1 " in text and "2 usage" in text, sub


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--version"])
    import tinyrt

    assert e.value.code == 0 and capsys.readouterr().out.strip().startswith(
        f"tinyrt {tinyrt.__version__}")


def test_convert_with_a_board_it_does_not_fit_writes_then_exits_1(files, tmp_path, capsys):
    out = tmp_path / "kws.trt"
    rc = cli.main(["convert", str(SHARED_MODELS / "kws_ref_model.tflite"), "-o", str(out),
                   "--board", "esp32"])
    err = capsys.readouterr().err
    if rc == 0:
        pytest.skip("kws fits esp32 with this runtime")
    assert rc == 1 and out.exists() and "was written, but it does not fit esp32" in err


def _reference_accuracy() -> tuple[float, np.ndarray]:
    io = np.load(DIGITS_IO)
    pred = io["y"].reshape(len(io["y"]), -1).argmax(axis=1)
    m = np.zeros((10, 10), np.int64)
    np.add.at(m, (io["label"], pred), 1)
    return float(np.mean(pred == io["label"])), m


@pytest.mark.parametrize("float_input", [False, True])
def test_eval_accuracy_equals_tflm_reference(files, tmp_path, capsys, float_input):
    """All 450 digits through the converted model on the unix port: the accuracy and confusion
    matrix are those of TFLM's reference outputs (tinyrt is bit-exact)."""
    io = np.load(DIGITS_IO)
    x = str(DIGITS_IO)  # FILE.npz: key x by default, labels from key label
    if float_input:
        np.save(x := str(tmp_path / "real.npy"), (io["x"] + 128.0) / 255)  # scale 1/255, zp -128
    args = ["eval", str(files["trt"]), "--input", x, "--labels", str(DIGITS_IO), "--json"]
    assert cli.main(args + (["--float-input"] if float_input else [])) == 0
    r = json.loads(capsys.readouterr().out)
    acc, m = _reference_accuracy()
    assert r["accuracy"] == acc and r["n"] == 450 and r["correct"] == int(np.trace(m))
    assert np.array_equal(np.array(r["confusion"]), m)
    for c, row in enumerate(r["per_class"]):
        assert row["support"] == m[c].sum()
        assert row["recall"] == pytest.approx(m[c, c] / m[c].sum())
        assert row["precision"] == pytest.approx(m[c, c] / m[:, c].sum())


def test_eval_text(files, capsys):
    assert cli.main(["eval", str(files["trt"]), "--input", str(DIGITS_IO), "--labels",
                     str(DIGITS_IO)]) == 0
    out = capsys.readouterr().out.splitlines()
    acc, m = _reference_accuracy()
    assert out[0] == f"accuracy {acc:.3f} ({int(np.trace(m))}/450 on unix)"
    assert out[1].startswith("confusion matrix")
    assert [int(v) for v in out[3].split()[1:]] == m[0].tolist()


def test_run_float_input_and_dequantize(files, tmp_path, capsys):
    io = np.load(DIGITS_IO)
    y_raw, y_real = tmp_path / "raw.npy", tmp_path / "real.npy"
    assert cli.main(["run", str(files["trt"]), "--input", str(files["x"]), "--output",
                     str(y_raw)]) == 0
    assert cli.main(["run", str(files["trt"]), "--input", str(files["x_float"]),
                     "--float-input", "--dequantize", "--output", str(y_real)]) == 0
    raw = np.load(y_raw)
    assert np.array_equal(raw.reshape(6, -1), io["y"][:6])  # TFLM's outputs, bit-exact
    real = np.load(y_real)
    assert real.dtype == np.float32
    assert np.array_equal(real, ((raw.astype(np.float64) + 128) / 256).astype(np.float32))
    capsys.readouterr()
    assert cli.main(["run", str(files["trt"]), "--input", str(files["x"]), "--show", "1"]) == 0
    out = capsys.readouterr().out
    k = int(io["y"][0].argmax())
    assert f"argmax {k} p={(int(io['y'][0][k]) + 128) / 256:.3f}" in out  # SOFTMAX output
    assert "(5 more;" in out


def test_progress_chunks_give_the_same_outputs(files, monkeypatch):
    """A run that looks long goes in chunks (one process each, a progress bar on a terminal):
    the outputs are those of one batch."""
    io = np.load(DIGITS_IO)
    x = io["x"][:40]
    whole, _ = runner.run(files["trt"], x, "unix")
    monkeypatch.setattr(runner, "PROGRESS_AFTER", 0.0)
    calls = []
    real = runner.invoke_batch
    monkeypatch.setattr(runner, "invoke_batch",
                        lambda m, ex, *a, **k: calls.append(len(ex)) or real(m, ex, *a, **k))
    chunked, _ = runner.run(files["trt"], x, "unix", progress=True)
    assert np.array_equal(whole[0], chunked[0]) and sum(calls) == 40 and len(calls) >= 2


def test_quantize_warns_on_unscaled_inputs_and_reports_full_names(files, tmp_path, capsys):
    io = np.load(DIGITS_IO)
    np.save(raw := tmp_path / "raw16.npy", np.round((io["x"][:40] + 128.0) / 255 * 16))
    rc = cli.main(["quantize", str(DIGITS_FLOAT), "--calib", str(raw), "-o",
                   str(tmp_path / "q.trt"), "--report"])
    out, err = capsys.readouterr()
    assert rc == 0 and "whole numbers in [0, 16]" in err
    assert "\ndepthwiseconv2d_1 " in out  # 17 characters: the report used to cut it
    assert cli.main(["quantize", str(DIGITS_FLOAT), "--calib", str(files["calib"]), "-o",
                     str(tmp_path / "q.trt")]) == 0
    assert "whole numbers" not in capsys.readouterr().err


def test_info_shortens_names_and_labels_params(tmp_path, capsys):
    assert short_name("a" * 10) == "a" * 10
    long = "functional_1/activation/Relu;" * 8 + "functional_1/conv2d/Conv2D"
    s = short_name(long)
    assert len(s) == 36 and s.startswith("…") and long.endswith(s[1:])
    assert label_params("CONV_2D", [2, 2, 1, 1, 4, 1, 25, 5, -128, 127]) == (
        "stride=(2,2) dilation=(1,1) pad=(4,1) out=(25,5) clamp=(-128,127)")
    assert label_params("CONV_2D", [1, 2]) == "params [1, 2]"  # not the layout: raw
    assert label_params("MEAN", [1, 2]) == "axes=(1,2)" and label_params("RESHAPE", []) == ""
    trt = tmp_path / "kws.trt"
    assert cli.main(["convert", str(SHARED_MODELS / "kws_ref_model.tflite"), "-o",
                     str(trt)]) == 0
    capsys.readouterr()
    assert cli.main(["info", str(trt)]) == 0
    lines = capsys.readouterr().out.splitlines()
    tensors = lines[lines.index("  45 tensors:") + 1:]
    assert len(tensors) == 45 and max(map(len, tensors)) < 100
    assert any("stride=(2,2)" in ln for ln in lines)


def test_convert_strip_names_keeps_io_names_and_results(tmp_path, capsys):
    """--strip-names: a smaller file (names are RAM on a board), the inputs' and outputs'
    names kept, the same outputs bit for bit."""
    import tinyrt
    from converter.inspect_model import describe

    full, bare = tmp_path / "full.trt", tmp_path / "bare.trt"
    assert cli.main(["convert", str(DIGITS), "-o", str(full)]) == 0
    assert cli.main(["convert", str(DIGITS), "-o", str(bare), "--strip-names"]) == 0
    capsys.readouterr()
    a, b = describe(full.read_bytes()), describe(bare.read_bytes())
    assert b["file_bytes"] < a["file_bytes"]
    assert [t["name"] for t in b["inputs"] + b["outputs"]] == \
        [t["name"] for t in a["inputs"] + a["outputs"]]
    assert sum(1 for t in b["tensors"] if t["name"]) == len(b["inputs"]) + len(b["outputs"])
    x = np.load(DIGITS_IO)["x"]
    for i in range(5):
        ys = []
        for path in (full, bare):
            m = tinyrt.load(path.read_bytes())
            ys.append(m.invoke(x[i].ravel().astype(int).tolist()).tolist())
        assert ys[0] == ys[1]
