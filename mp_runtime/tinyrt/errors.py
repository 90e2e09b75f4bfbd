# tinyrt's errors, all in one place. Every message says what was expected and what was found.
#
# TinyrtError is a ValueError: each error is about a value a caller gave (a model file, a
# tensor's values, an index), so `except ValueError` keeps catching what it caught before
# tinyrt checked (a closed file, a float stored in an int8 array). MicroPython allows one
# built-in base per class, so the ValueError base is the root's, not each subclass's.


class TinyrtError(ValueError):
    """Base class of every error tinyrt raises on purpose."""


class ModelError(TinyrtError):
    """The model file is not one this runtime can read (truncated, corrupt, wrong magic, newer
    format version, a field that points outside the file, not a file at all), or the loaded
    model cannot do what was asked: it was closed, or its outputs hold no result."""


class ArenaError(TinyrtError):
    """The model's memory does not fit: arena or weights larger than the free heap."""


class ShapeError(TinyrtError):
    """A tensor given to the model has the wrong shape, size, dtype or values, or a tensor
    asked for is not one the model has (input(5) of a one-input model)."""


class UnsupportedError(TinyrtError):
    """The model uses an operator or a parameter this runtime does not implement."""


class UpdateError(TinyrtError):
    """An update file that is not one, is for another model (its hash of the old model does
    not match the file's), or whose result does not hash as the update promised."""
