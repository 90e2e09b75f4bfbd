"""tinyrt's host simulator: runs the device package on CPython, the MicroPython unix port and
the 32-bit MicroPython WASI build."""

from .interpreters import INTERPRETERS, InterpreterError, Result, run

__all__ = ["INTERPRETERS", "InterpreterError", "Result", "run"]
