# tinyrt: neural-network inference in pure MicroPython.
#   import tinyrt; m = tinyrt.load("model.trt"); m.summary(); y = m.invoke(x)
from .errors import ArenaError, ModelError, ShapeError, TinyrtError, UnsupportedError
from .model import Model, load

__version__ = "0.1.0"
__all__ = ["load", "Model", "TinyrtError", "ModelError", "ArenaError", "ShapeError",
           "UnsupportedError", "__version__"]
