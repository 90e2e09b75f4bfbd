# tinyrt: neural-network inference in pure MicroPython.
#   import tinyrt; m = tinyrt.load("model.trt"); m.summary(); y = m.invoke(x)
from .errors import (ArenaError, ModelError, ShapeError, TinyrtError, UnsupportedError,
                     UpdateError)
from .loader import load
from .model import Model

__version__ = "0.1.0"
__all__ = ["load", "Model", "TinyrtError", "ModelError", "ArenaError", "ShapeError",
           "UnsupportedError", "UpdateError", "update", "__version__"]


def update(model_path, update_path, progress=None):
    """Apply an update made by `tinyrt diff` to the model file at model_path (tinyrt.delta,
    imported on first use only; see its update() for the steps and what a power loss leaves).
    A plain function, not a module __getattr__: on MicroPython that hook would also answer
    `from . import X` inside the package and break it."""
    from .delta import update as apply

    return apply(model_path, update_path, progress)
