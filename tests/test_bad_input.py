"""Bad model files: each raises a tinyrt error that says what was wrong, on every interpreter."""

from __future__ import annotations

import random
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinyrt

from host_sim import run
from host_sim.probes import load_script
from tests.models import mlp_model, patch_entry, patch_section, section_index, table_entry
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


def _mutations(seed: int, n: int) -> list[bytes]:
    """Bit flips, byte overwrites, truncations, splices and duplications of valid files."""
    rng = random.Random(seed)
    donors = [mlp_model(s, n_in=rng.choice([4, 16, 33])) for s in range(3)]
    out = []
    for _ in range(n):
        b = bytearray(rng.choice(donors))
        kind = rng.randrange(5)
        if kind == 0:
            for _ in range(rng.randint(1, 4)):
                i = rng.randrange(len(b))
                b[i] ^= 1 << rng.randrange(8)
        elif kind == 1:
            i = rng.randrange(len(b))
            b[i] = rng.randrange(256)
        elif kind == 2:
            b = b[: rng.randrange(len(b))]
        elif kind == 3:
            other = rng.choice(donors)
            i, j = rng.randrange(len(b)), rng.randrange(len(other))
            b = b[:i] + other[j:]
        else:
            i, j = sorted(rng.randrange(len(b)) for _ in range(2))
            b = b[:j] + b[i:j] + b[j:]
        out.append(bytes(b))
    return out


# (m0's ROMFS partition holds ~400 mutated files beside the runtime)
FUZZ_FILES = {"cpython": 3000, "unix": 3000, "wasm": 1000, "m0": 400, "m3": 400}


@pytest.mark.parametrize("seed", [1])
def test_fuzzed_files_never_escape_tinyrt_errors(interpreter, seed):
    files = {f"f{i}.bin": b for i, b in enumerate(_mutations(seed, FUZZ_FILES[interpreter]))}
    names = [f"f{i}.bin" for i in range(len(files))]
    lines = run(load_script(names), interpreter, files=files,
                timeout=600).stdout.rstrip("\n").split("\n")
    assert len(lines) == len(files)
    unexpected = [(n, line) for n, line in zip(names, lines) if line.startswith("UNEXPECTED")]
    assert not unexpected, unexpected[:5]
    verdicts = [line.split(":")[0] for line in lines]
    # a flip inside the zero padding between sections is harmless; everything else is caught
    assert verdicts.count("ModelError") >= 0.9 * len(lines)
    assert set(verdicts) <= {"ok", "ModelError", "UnsupportedError"}
    print(f"{interpreter}: {len(lines)} mutated files: "
          + ", ".join(f"{v} {verdicts.count(v)}" for v in sorted(set(verdicts))))


@given(st.data())
@settings(max_examples=300)
def test_hypothesis_mutations_in_process(data):
    """The same property with hypothesis choosing the damage (CPython, in process)."""
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
    try:
        tinyrt.load(bytes(b))
    except tinyrt.TinyrtError:
        pass
