"""Bad model files: each raises a tinyrt error that says what was wrong, on every interpreter."""

from __future__ import annotations

import os
import struct
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinyrt

from host_sim import run
from host_sim.probes import fuzz_script, load_script
from tests.models import mlp_model, patch_entry, patch_section, recompute_crcs, section_index, \
    table_entry
from tests.mutations import mutations
from tinyrt import fileformat as ff

GOOD = mlp_model()


def _cases() -> dict[str, tuple[bytes, str, str]]:
    """name -> (file bytes, expected error class, a phrase the message must contain)."""
    meta = section_index(GOOD, ff.META)
    tens = section_index(GOOD, ff.TENSORS)
    _, t_off, t_len, _ = table_entry(GOOD, tens)
    newer = bytearray(GOOD)
    struct.pack_into("<H", newer, 4, ff.FORMAT_VERSION + 1)
    flipped = bytearray(GOOD)
    flipped[t_off + 5] ^= 0x10
    return {
        "empty": (b"", "ModelError", "truncated"),
        "truncated header": (GOOD[:10], "ModelError", "truncated"),
        "truncated body": (GOOD[: len(GOOD) // 2], "ModelError", "truncated"),
        "trailing bytes": (GOOD + b"\0" * 16, "ModelError", "wrong length"),
        "wrong magic": (b"TFL3" + GOOD[4:], "ModelError", "magic"),
        "newer version": (bytes(newer), "ModelError", "format version 2"),
        "table crc": (GOOD[:20] + bytes([GOOD[20] ^ 1]) + GOOD[21:], "ModelError", "CRC"),
        "section crc": (bytes(flipped), "ModelError", "TENSORS CRC"),
        "section outside file": (patch_entry(GOOD, meta, offset=len(GOOD) + 64), "ModelError",
                                 "outside the file"),
        "section length huge": (patch_entry(GOOD, tens, length=2**32 - 1), "ModelError",
                                "outside the file"),
        "unknown section kind": (patch_entry(GOOD, meta, kind=77), "ModelError",
                                 "unknown kind 77"),
        "duplicate section": (patch_entry(GOOD, meta, kind=ff.OPS), "ModelError", "twice"),
        "absurd tensor count": (patch_section(GOOD, ff.META, 8, "<H", 0xFFFF), "ModelError",
                                "expected 2359260 for 65535 tensors"),
        "absurd op count": (patch_section(GOOD, ff.META, 10, "<H", 0xFFFF), "ModelError",
                            "ends inside operator"),
        "absurd arena": (patch_section(GOOD, ff.META, 0, "<I", 2**31), "ArenaError",
                         "arena needs 2147483648 bytes"),
        "tensor outside arena": (patch_section(GOOD, ff.TENSORS, 4, "<I", 2**31), "ModelError",
                                 "lies outside the arena"),
        "tensor shape vs bytes": (patch_section(GOOD, ff.TENSORS, 12, "<I", 3), "ModelError",
                                  "shape (3, 16) of int8 needs 48 bytes, record says 16"),
        "unknown dtype": (patch_section(GOOD, ff.TENSORS, 0, "<B", 99), "ModelError",
                          "unknown dtype code 99"),
        "op names missing tensor": (patch_section(GOOD, ff.OPS, 8, "<H", 999), "ModelError",
                                    "names tensor 999"),
        "unknown opcode": (patch_section(GOOD, ff.OPS, 0, "<H", 150), "UnsupportedError",
                           "opcode 150"),
        "too many sections": (GOOD[:6] + struct.pack("<H", 0xFFFF) + GOOD[8:], "ModelError",
                              "section count 65535"),
        "input index out of range": (patch_section(GOOD, ff.META, 16, "<H", 500), "ModelError",
                                     "out of range"),
    } | ({"tensor table short": (patch_entry(GOOD, tens, length=t_len - 36), "ModelError",
                                 "section TENSORS")})


def test_each_bad_file_gives_a_precise_error(interpreter):
    cases = _cases()
    files = {f"f{i}.bin": b for i, (b, _, _) in enumerate(cases.values())}
    lines = run(load_script(sorted(files, key=lambda n: int(n[1:-4]))), interpreter,
                files=files).stdout.rstrip("\n").split("\n")
    assert len(lines) == len(cases)
    for (name, (_, cls, phrase)), line in zip(cases.items(), lines):
        assert line.startswith(cls + ": "), (name, line)
        assert phrase in line, (name, line)


def _role_cases() -> dict[str, bytes]:
    """Files with valid CRCs whose operator 0 would write constant data (the file buffer)."""
    mf = ff.read_model(GOOD)
    op = mf.ops[0]
    y, w = op.outputs[0], op.inputs[1]
    at_output = ff.OP_HEAD_SIZE + 2 * len(op.inputs)  # op 0's output index in OPS
    return {
        "output storage flipped to constant": patch_section(
            GOOD, ff.TENSORS, y * ff.TENSOR_SIZE + 2, "<B", ff.CONST),
        "output index at a constant tensor": patch_section(GOOD, ff.OPS, at_output, "<H", w),
        "output index at its own input": patch_section(GOOD, ff.OPS, at_output, "<H",
                                                       op.inputs[0]),
        "model input flipped to constant": patch_section(
            GOOD, ff.TENSORS, mf.inputs[0] * ff.TENSOR_SIZE + 2, "<B", ff.CONST),
    }


# Loads each file from a buffer, then from its path with the weights streamed.
_LOAD_BOTH = r"""
import tinyrt
for name in NAMES:
    f = open(name, "rb")
    raw = f.read()
    f.close()
    for src, stream in ((raw, None), (name, True)):
        try:
            tinyrt.load(src, stream=stream).invoke()
            print("ok")
        except tinyrt.TinyrtError as e:
            print(type(e).__name__ + ": " + str(e))
        except Exception as e:
            print("UNEXPECTED " + type(e).__name__ + ": " + str(e))
"""


def test_an_operator_never_writes_constant_data(interpreter):
    """Issue 19: a file with valid CRCs could make invoke() write into the weights (and,
    streamed, fail with a TypeError). Refused at load, in both modes, naming op and tensor."""
    cases = _role_cases()
    files = {f"r{i}.bin": b for i, b in enumerate(cases.values())}
    out = run(f"NAMES = {list(files)!r}\n" + _LOAD_BOTH, interpreter, files=files).stdout
    lines = out.rstrip("\n").split("\n")
    assert len(lines) == 2 * len(cases), out
    for k, name in enumerate(cases):
        for line in lines[2 * k: 2 * k + 2]:
            assert line.startswith("ModelError: "), (name, line)
            if name.startswith("output"):
                assert "operator 0 (FULLY_CONNECTED) output tensor" in line, (name, line)
            else:
                assert "model input/output tensor" in line, (name, line)


# Files per interpreter and run, bounded for CI time (m0's ROMFS partition holds ~400 KB of
# files beside the runtime: the boards get the small donors). TINYRT_FUZZ_SCALE=N multiplies
# the counts for a campaign outside CI (the boards then run batches of 400 files).
FUZZ_FILES = {"cpython": 3000, "unix": 3000, "wasm": 1000, "m0": 400, "m3": 400}
# Files per interpreter process. The WASI build's collector can free live objects (see
# DESIGN.md): its batches run in host_sim's default 32 MiB wasm heap, large enough that no
# collection happens (~12 KB of garbage per file; with 4 MiB the collector ran and trapped
# after ~340 files).
_BATCH = {"m0": 250, "m3": 400, "wasm": 1000}  # m0: its ROMFS partition (512 KiB)
_OUTCOMES = ("ok", "ModelError", "ArenaError", "UnsupportedError", "ShapeError")


def fuzz_outcomes(interpreter: str, seed: int, n: int) -> tuple[Counter, Counter]:
    """Damaged files loaded and, when they load, invoked on `interpreter`: outcome counts of
    the files with CRCs recomputed and of the others. Fails on any exception that is not a
    tinyrt error and on any write to the file buffer."""
    damaged = mutations(seed, n, small=interpreter in ("m0", "m3"))
    step = _BATCH.get(interpreter, len(damaged))
    fixed: Counter = Counter()
    plain: Counter = Counter()
    for at in range(0, len(damaged), step):
        part = damaged[at: at + step]
        files = {f"f{i}.bin": b for i, (b, _) in enumerate(part)}
        lines = run(fuzz_script(len(files)), interpreter, files=files,
                    timeout=600).stdout.rstrip("\n").split("\n")
        assert len(lines) == len(part), lines[-3:]
        bad = [(at + i, line) for i, line in enumerate(lines)
               if line.split(":")[0] not in _OUTCOMES]
        assert not bad, bad[:5]
        for (_, was_fixed), line in zip(part, lines):
            (fixed if was_fixed else plain)[line.split(":")[0]] += 1
    return fixed, plain


@pytest.mark.parametrize("seed", [1])
def test_fuzzed_files_never_escape_tinyrt_errors(interpreter, seed):
    """Damaged files, most with their CRCs recomputed: each loads and runs without touching the
    file buffer, or raises a tinyrt error; nothing else escapes."""
    scale = int(os.environ.get("TINYRT_FUZZ_SCALE", "1"))
    n = FUZZ_FILES[interpreter] * scale
    fixed, plain = fuzz_outcomes(interpreter, seed, n)
    assert sum(fixed.values()) >= n // 2
    # without recomputed CRCs only a change in zero padding gets past the reader
    assert plain["ModelError"] >= 0.9 * sum(plain.values())
    both = fixed + plain
    print(f"{interpreter}: {n} damaged files, {sum(fixed.values())} with CRCs recomputed: "
          + ", ".join(f"{v} {both[v]}" for v in _OUTCOMES)
          + " | recomputed: " + ", ".join(f"{v} {fixed[v]}" for v in _OUTCOMES))


@given(st.data())
@settings(max_examples=300)
def test_hypothesis_mutations_in_process(data):
    """The same property with hypothesis choosing the damage (CPython, in process), half the
    files with CRCs recomputed."""
    b = bytearray(GOOD)
    for _ in range(data.draw(st.integers(1, 3))):
        op = data.draw(st.sampled_from(["flip", "set", "cut", "insert"]))
        i = data.draw(st.integers(0, max(len(b) - 1, 0)))
        if op == "flip" and b:
            b[i] ^= 1 << data.draw(st.integers(0, 7))
        elif op == "set" and b:
            b[i] = data.draw(st.integers(0, 255))
        elif op == "cut":
            b = b[:i]
        else:
            b[i:i] = data.draw(st.binary(min_size=1, max_size=8))
    if data.draw(st.booleans()):
        b = bytearray(recompute_crcs(b))
    try:
        m = tinyrt.load(bytes(b))
        t = m.input(0)
        before = bytes(m.file.buf)
        m.invoke([0] * (len(t.data) >> 2 if t.dtype in ("int32", "packed") else t.size))
        assert bytes(m.file.buf) == before, "invoke() wrote outside the arena"
    except tinyrt.TinyrtError:
        pass


TFLITE_PROBE = r"""
import tinyrt
try:
    tinyrt.load("model.tflite")
except tinyrt.ModelError as e:
    print("ModelError: " + str(e))
"""


def test_a_tflite_file_is_named_and_the_fix_given(interpreter):
    from tests.conftest import SHARED_MODELS

    tflite = (SHARED_MODELS / "hello_world_int8.tflite").read_bytes()
    out = run(TFLITE_PROBE, interpreter, files={"model.tflite": tflite}).stdout.strip()
    assert out.startswith("ModelError: not a tinyrt model"), out
    assert "TensorFlow Lite model (.tflite)" in out and "`tinyrt convert MODEL.tflite`" in out
