# Text for people, imported the first time it is needed (so `import tinyrt` costs less RAM):
# the values repr() shows, and the errors of wrong calls of the public API, each saying what
# was expected and what was found. Every function returns the error; the caller raises it.
from .errors import ModelError, ShapeError
from .fileformat import DTYPES, PACKED
from .tensor import _WORDS, INPUT_SET, NO_RESULT, RESULT, _word

_SHOWN = 8  # values repr() shows


def shown(t):
    """The first few values of tensor t, or why there are none."""
    model = getattr(t, "model", None)
    if model is not None and t.index in model.file.outputs and model.state != RESULT:
        return "(no result: invoke() first)"
    d = t.data
    if d is None:
        return "(weights streamed from the file)"
    words = t.dtype in _WORDS
    n = len(d) >> 2 if words else len(d)
    vals = []
    for i in range(n if n < _SHOWN else _SHOWN):
        vals.append(_word(d, i << 2) if words else d[i])
    return "%s%s]" % (str(vals)[:-1], ", ..." if n > _SHOWN else "")


def _kind(v):
    """What v is: its type, and its value when that is short."""
    name = type(v).__name__
    if v is None or isinstance(v, (int, float, str)):
        return "%s %s" % (name, repr(v)[:40])
    return name


def _item(values, i):
    """values[i] (None when indexing is what failed)."""
    try:
        return values[i]
    except Exception:
        return None


def not_sequence(t, values, what):
    """values (for t) is not a sequence of `what`."""
    hint = ""
    if hasattr(values, "__next__") or type(values).__name__ == "generator":
        hint = " (list(...) it first: set() indexes its argument)"
    return ShapeError("tensor %r takes a sequence of %d %s (list, tuple or array), got %s%s"
                      % (t.name, t.size, what, _kind(values), hint))


def wrong_length(t, n):
    """t takes t.size values, n were given."""
    return ShapeError("tensor %r takes %d values (shape %r), got %d" % (t.name, t.size, t.shape,
                                                                         n))


def not_int8(t, values, i):
    """values[i] is not an int8 value."""
    v = _item(values, i)
    if isinstance(values, (bytes, bytearray)):
        return ShapeError("tensor %r takes int8 values in [-128, 127]; byte %d at %d of a %s "
                          "is not one: bytes and bytearray hold 0..255, give int8 values as "
                          "array('b', ...) or a list" % (t.name, v, i, type(values).__name__))
    if isinstance(v, int):
        return ShapeError("value %r at %d is outside int8 [-128, 127]" % (v, i))
    hint = ""
    if isinstance(v, float):
        hint = ": m.input(i).quantize(reals) sets a tensor from real numbers"
    return ShapeError("tensor %r takes int8 values (ints in [-128, 127]), got %s at %d%s"
                      % (t.name, _kind(v), i, hint))


def not_word(t, values, k):
    """values[k] is not an int32 word of t."""
    v = _item(values, k)
    if isinstance(v, int):
        if v < -2147483648 or v > 4294967295:
            return ShapeError("word %r at %d is outside int32 [-2^31, 2^32)" % (v, k))
        return ShapeError("word %d of packed tensor %r sets bits past channel %d of its row "
                          "(they must be 0)" % (k, t.name, t.shape[-1] - 1))
    hint = ""
    if t.dtype == DTYPES[PACKED][0]:
        hint = (": a packed tensor takes its channels' signs bit-packed into words "
                "(channel c -> bit c % 32 of word c // 32, bit 1 = -1)")
    return ShapeError("tensor %r (%s) takes int32 words (ints), got %s at %d%s"
                      % (t.name, t.dtype, _kind(v), k, hint))


def not_real(t, reals, i):
    """reals[i] is not a finite real number."""
    r = _item(reals, i)
    if isinstance(r, (int, float)):
        return ShapeError("tensor %r: quantize() takes finite real numbers, got %r at %d"
                          % (t.name, r, i))
    return ShapeError("tensor %r: quantize() takes real numbers (int or float), got %s at %d"
                      % (t.name, _kind(r), i))


def no_result(t):
    """Output t is read while its model's outputs hold no result of a completed invoke()."""
    state = t.model.state
    if state == NO_RESULT:
        why = "the model has not run yet: m.invoke() computes it"
    elif state == INPUT_SET:
        why = ("an input was set after the last invoke() (or invoke(x) refused its x) and may "
               "share the output's memory: m.invoke() computes it")
    else:
        why = ("the last invoke() failed (its error said why), so the values are stale or "
               "partial: invoke() again")
    return ModelError("output %r holds no result: %s" % (t.name, why))


def no_such(what, i, have):
    """input(i) / output(i) of a model whose tensors of that kind are `have`."""
    n = len(have)
    more = "" if n == 1 else " .. %s(%d)" % (what, n - 1)
    return ShapeError("the model has %d %s%s: %s(0)%s; got %s(%r)"
                      % (n, what, "" if n == 1 else "s", what, more, what, i))


def closed():
    """The model is closed and asked to run."""
    return ModelError("the model is closed (close() was called): tinyrt.load() it again to "
                      "run it")
