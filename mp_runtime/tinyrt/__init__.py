# tinyrt: neural-network inference in pure MicroPython.
#   import tinyrt; m = tinyrt.load("model.trt"); m.summary(); y = m.invoke(x)
from .errors import (ArenaError, ModelError, ShapeError, TinyrtError, UnsupportedError,
                     UpdateError)
from .model import Model, load

__version__ = "0.1.0"
__all__ = ["load", "Model", "TinyrtError", "ModelError", "ArenaError", "ShapeError",
           "UnsupportedError", "UpdateError", "update", "__version__"]


def __getattr__(name):
    # tinyrt.update(model_path, update_path): tinyrt.delta is imported on first use only
    if name == "update":
        from .delta import update

        return update
    raise AttributeError(name)
