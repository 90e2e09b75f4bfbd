# tinyrt's errors, all in one place. Every message says what was expected and what was found.


class TinyrtError(Exception):
    """Base class of every error tinyrt raises on purpose."""


class ModelError(TinyrtError):
    """The model file is not one this runtime can read: truncated, corrupt, wrong magic,
    newer format version, or a field that points outside the file."""


class ArenaError(TinyrtError):
    """The model's memory does not fit: arena or weights larger than the free heap."""


class ShapeError(TinyrtError):
    """A tensor given to the model has the wrong shape, size or dtype."""


class UnsupportedError(TinyrtError):
    """The model uses an operator or a parameter this runtime does not implement."""
