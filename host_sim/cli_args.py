"""What every `tinyrt` subcommand shares: exit codes, one-line errors, argument types and
reading .npy / .npz arrays."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

EXIT_OK = 0  # the job was done
EXIT_FAILED = 1  # the job ran and failed: does not fit, out of memory, an internal error
EXIT_USAGE = 2  # bad arguments or input: missing or invalid file, wrong shapes, unknown names

EXIT_CODES = ("exit status: 0 done; 1 the job failed (e.g. the model does not fit, the "
              "interpreter ran out of memory, an internal error); 2 usage or input error (bad "
              "arguments, missing or invalid file, wrong array shape, unknown board or "
              "interpreter). Every failure prints one line on stderr.")


class CliParser(argparse.ArgumentParser):
    """argparse with a one-line error (`tinyrt run: error: ... (tinyrt run -h)`), exit 2."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} -h)\n")


def fail(message: str, code: int = EXIT_USAGE) -> int:
    """Print `tinyrt: error: message` on stderr and return the exit status."""
    print(f"tinyrt: error: {message}", file=sys.stderr)
    return code


def warn(message: str) -> None:
    print(f"tinyrt: warning: {message}", file=sys.stderr)


def heap_bytes(text: str) -> int:
    """An argparse type: a MicroPython heap size, a positive whole number of bytes (1_000 and
    64k / 192K forms accepted)."""
    t = text.strip().lower().replace("_", "").replace(",", "")
    mult = 1024 if t.endswith("k") else 1
    try:
        n = int(t[:-1] if mult > 1 else t) * mult
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of bytes") from None
    if n <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: the heap must be a positive number of "
                                         "bytes")
    return n


class InputError(Exception):
    """Bad input from the command line: one line, exit 2."""


def load_array(spec: str, keys: tuple[str, ...] = ()) -> np.ndarray:
    """The array in `FILE.npy`, or in `FILE.npz[:KEY]` (without KEY: the first of `keys` the
    archive holds, or its only array)."""
    path, _, key = spec.partition(":") if spec.count(":") == 1 and not Path(spec).exists() \
        else (spec, "", "")
    p = Path(path)
    if p.is_dir():
        raise InputError(f"{path} is a directory, expected a .npy or .npz file")
    try:
        data = np.load(p, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        why = e.strerror if isinstance(e, OSError) and e.strerror else str(e).splitlines()[0]
        raise InputError(f"cannot read {path} as a .npy or .npz array: {why}") from None
    if isinstance(data, np.ndarray):
        if key:
            raise InputError(f"{path} is a .npy file: it has no array named {key!r}")
        return data
    with data:
        names = list(data.keys())
        if not key:
            key = next((k for k in keys if k in names), names[0] if len(names) == 1 else "")
        if key not in names:
            raise InputError(f"{path} holds arrays {names}: name one as {path}:NAME")
        return data[key]
