"""Stand-in for MicroPython's `micropython` module under CPython (host simulator only)."""


def const(x):
    return x


def native(f):
    return f


def viper(f):
    return f


def heap_lock():
    return 0


def heap_unlock():
    return 0


def opt_level(level=None):
    return 0


def mem_info(*args):
    print("mem: CPython host simulator (no MicroPython heap)")
