"""UNIDIRECTIONAL_SEQUENCE_LSTM from a .tflite model: the handler tflite_import registers.

TFLite's op has 24 inputs (lstm_shared.h): 0 x; 1-4 input-to-{input, forget, cell, output}
weights; 5-8 recurrent-to-* weights; 9-11 peephole (cell-to-*) weights; 12-15 gate biases;
16-17 projection weights and bias; 18 the hidden ("output") state and 19 the cell state, both
VARIABLE tensors; 20-23 layer-norm coefficients. Its `intermediates` (FLOAT32 or int8 tensors
of shape [0]) only carry quantization for TFLite's own kernel: TFLM ignores them (its gates
are fixed Q3.12 -> Q0.15), and so does tinyrt.

TFLM runs only the standard LSTM (lstm_eval.cc ValidateTensorStatus): every variant is refused
here with the list of everything missing at once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from .tflite_reader import ACTIVATIONS, TflOp, UnsupportedModelError

if TYPE_CHECKING:
    from .tflite_import import _Importer

_VARIANTS = (  # (TFLite input indices, what they make) TFLM refuses
    ((1, 5), "CIFG (no input gate weights)"),
    ((9, 10, 11), "peephole connections (cell-to-gate weights)"),
    ((16, 17), "projection"),
    ((20, 21, 22, 23), "layer normalization"),
)


def _present(op: TflOp, k: int) -> bool:
    return k < len(op.inputs) and op.inputs[k] >= 0


def unidirectional_sequence_lstm(im: _Importer, op: TflOp, name: str, build: Callable) -> int:
    problems = []
    if len(op.inputs) != 24:
        raise UnsupportedModelError(f"{op.describe()}: {len(op.inputs)} inputs, TFLM's LSTM "
                                    "takes 24")
    for ids, what in _VARIANTS:
        given = [k for k in ids if _present(op, k)]
        if what.startswith("CIFG"):
            if len(given) < len(ids):
                problems.append(what)
        elif given:
            problems.append(f"{what}: inputs {given}")
    o = op.options
    act = ACTIVATIONS.get(o.FusedActivationFunction(), "?") if o is not None else "NONE"
    if act != "TANH":  # (the schema cannot say SIGMOID, TFLM's other choice)
        problems.append(f"cell gate activation {act} (TFLM's LSTM takes TANH)")
    if o is not None and o.ProjClip() > 0:
        problems.append(f"proj_clip {o.ProjClip()}")
    x_t = im.t(op.inputs[0])
    if x_t.dtype != "int8":
        problems.append(f"input {x_t.describe()} is {x_t.dtype}; tinyrt runs the int8 LSTM "
                        "(int8 activations, int16 cell state), not the float or 16x8 one")
    for k, role in ((18, "hidden state"), (19, "cell state")):
        if not _present(op, k):
            problems.append(f"{role} (input {k}) is missing")
            continue
        t = im.t(op.inputs[k])
        want = "int8" if k == 18 else "int16"
        if not t.variable or t.dtype != want or not t.quantized:
            problems.append(f"{role} {t.describe()} is {'a variable' if t.variable else 'no'}"
                            f" {t.dtype} tensor{'' if t.quantized else ' without scales'}; "
                            f"expected a quantized VARIABLE {want} tensor")
        elif k == 19 and t.zero_points[0] != 0:
            problems.append(f"cell state {t.describe()} has zero point {t.zero_points[0]}, "
                            "expected 0")
    if problems:
        raise UnsupportedModelError(f"{op.describe()}: tinyrt runs TFLM's standard integer "
                                    "LSTM; this one has " + "; ".join(problems))
    x = im.x(op, 0)
    w_in, w_rec, s_in, s_rec, biases = [], [], [], [], []
    for gate in range(4):
        for k, ws, ss in ((1 + gate, w_in, s_in), (5 + gate, w_rec, s_rec)):
            w, scales = im.weights(op, k, axis=0)
            if scales.size != 1:
                raise UnsupportedModelError(
                    f"{op.describe()}: weights {im.t(op.inputs[k]).describe()} are quantized "
                    "per channel; TFLM's LSTM requantizes its gates per tensor")
            ws.append(w)
            ss.append(float(scales[0]))
        b = im.bias(op, 12 + gate, w_in[-1].shape[0])
        if b is None:
            raise UnsupportedModelError(f"{op.describe()}: gate bias (input {12 + gate}) is "
                                        "missing; TFLM's LSTM needs all four")
        biases.append(b)
    try:
        w_in_a, w_rec_a = np.stack(w_in), np.stack(w_rec)
    except ValueError:
        raise UnsupportedModelError(f"{op.describe()}: gate weights of different shapes "
                                    f"{[w.shape for w in w_in + w_rec]}") from None
    h_t, c_t = im.t(op.inputs[18]), im.t(op.inputs[19])
    n_state = w_in_a.shape[1]
    time_major = bool(o.TimeMajor()) if o is not None else False
    xs = x_t.shape
    if len(xs) != 3 or h_t.shape[-1:] != (n_state,) or int(np.prod(h_t.shape)) != n_state * (
            xs[1] if time_major else xs[0]) or int(np.prod(c_t.shape)) != int(
            np.prod(h_t.shape)):
        raise UnsupportedModelError(f"{op.describe()}: input shape {xs}, state shapes "
                                    f"{h_t.shape}, {c_t.shape} for {n_state} cells; expected "
                                    "(B, T, I) and (B, S) states")
    scale, zp = im.out(op)
    y = build(im.g, x, w_in_a, s_in, w_rec_a, s_rec, np.stack(biases),
              float(h_t.scales[0]), int(h_t.zero_points[0]), float(c_t.scales[0]), scale, zp,
              cell_clip=float(o.CellClip()) if o is not None else 0.0, time_major=time_major,
              state_names=(h_t.name, c_t.name), name=name)
    im.tmap[op.inputs[18]] = y - 2  # the state tensors, made just before y
    im.tmap[op.inputs[19]] = y - 1
    return y
