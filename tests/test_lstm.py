"""UNIDIRECTIONAL_SEQUENCE_LSTM (issue 13): TFLM's integer LSTM, state kept across invoke()
until Model.reset().

On every interpreter, in one run each (the emulated boards boot once for all cases):
- trained_lstm_int8 (../shared/models): y and the softmax input (y_logits) of all 20 reference
  inputs, reset before each, equal TFLM's recorded outputs;
- a sequence of its inputs without reset equals tflite-micro run the same way (one
  interpreter, no Reset between invokes), and reset() then the same sequence again gives the
  same outputs;
- synthetic LSTMs written with host_sim.oracle.tflm.build_tflite (batch, time-major, cell
  scales, clip, sigmoid cell gate, hidden zero point; T = 1 is streaming, a step per invoke)
  equal tflite-micro over a sequence with a reset in the middle;
every invoke() runs under micropython.heap_lock() (it allocates nothing). Variants TFLM does
not run (CIFG, peephole, projection, layer norm) are refused listing every missing piece.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from tinyrt import fileformat as ff
from tinyrt import opcodes

from converter.graph import Graph
from converter.tflite_import import UnsupportedModelError, import_tflite
from converter.writer import serialize
from host_sim.device import invoke_models_with_kernels
from host_sim.oracle.tflm import TOp, TTensor, build_tflite

from .conftest import SHARED_MODELS
from .kernel_harness import fast_kernel

NAME = "trained_lstm_int8"
SEQUENCE = 6  # reference inputs run as one sequence without reset, then again after reset()

def run_cases(cases: list[tuple[bytes, list[tuple[bool, list[np.ndarray]]]]], interpreter: str
              ) -> tuple[list[list[list[np.ndarray]]], list[list[str]]]:
    """Each (model, [(reset?, inputs)]) on `interpreter` in one process (host_sim.device: the
    heap locked around every invoke): the outputs of every example and each layer's kernel."""
    return invoke_models_with_kernels([(m, [xs for _, xs in ex]) for m, ex in cases],
                                      interpreter, reset=[[r for r, _ in ex] for _, ex in cases])


def tflm_sequence(tflite: bytes, examples: list[tuple[bool, list[np.ndarray]]]
                  ) -> list[list[np.ndarray]]:
    """tflite-micro on the examples in one interpreter: Reset() where asked, else the state
    carries over (TFLM keeps variable tensors between invokes)."""
    from tflite_micro.python.tflite_micro import runtime

    interp = runtime.Interpreter.from_bytes(tflite, arena_size=1 << 20)
    outs = []
    for reset, xs in examples:
        if reset:
            interp.reset()
        for i, x in enumerate(xs):
            interp.set_input(np.asarray(x, np.int8).reshape(
                interp.get_input_details(i)["shape"]), i)
        interp.invoke()
        outs.append([np.array(interp.get_output(0), np.int64).ravel()])
    return outs


# -- the shared model ---------------------------------------------------------------------------


@cache
def shared() -> tuple[bytes, bytes, dict[str, np.ndarray]]:
    """(.tflite, the converted model with the SOFTMAX input as a second output, references)."""
    p = SHARED_MODELS / f"{NAME}.tflite"
    if not p.exists():
        pytest.skip(f"{p} not present")
    tflite = p.read_bytes()
    g: Graph = import_tflite(tflite)
    soft = [op for op in g.ops if op.opcode == opcodes.SOFTMAX]
    g.outputs.append(soft[-1].inputs[0])
    with np.load(SHARED_MODELS / f"{NAME}_io.npz") as z:
        ref = {k: z[k] for k in z.files}
    return tflite, serialize(g), ref


def shared_cases() -> tuple[list, list]:
    """The shared model's examples and what each must give: ("ref", i) TFLM's recorded output
    of input i (reset before), ("seq", k) output k of the sequence without reset."""
    _, _, ref = shared()
    x = ref["x"]
    examples, want = [], []
    for i in range(len(x)):
        examples.append((True, [x[i]]))
        want.append(("ref", i))
    for again in range(2):  # the sequence, then reset() and the same sequence again
        for k in range(SEQUENCE):
            examples.append((k == 0, [x[k]]))
            want.append(("seq", k))
    return examples, want


@cache
def shared_sequence_reference() -> list[list[np.ndarray]]:
    tflite, _, ref = shared()
    return tflm_sequence(tflite, [(k == 0, [ref["x"][k]]) for k in range(SEQUENCE)])


def check_shared(rows: list[list[np.ndarray]], interpreter: str) -> None:
    _, _, ref = shared()
    _, want = shared_cases()
    seq = shared_sequence_reference()
    exact = 0
    for (kind, i), row in zip(want, rows, strict=True):
        if kind == "ref":
            assert row[0].tolist() == ref["y"][i].ravel().tolist(), (interpreter, i)
            assert row[1].tolist() == ref["y_logits"][i].ravel().tolist(), (interpreter, i)
            exact += 1
        else:
            assert row[0].tolist() == seq[i][0].tolist(), (interpreter, "sequence", i)
    assert exact == len(ref["x"])
    # the sequence really carries state: step k differs from input k run from zero state
    assert any(seq[k][0].tolist() != ref["y"][k].ravel().tolist() for k in range(1, SEQUENCE))


# -- synthetic LSTMs ----------------------------------------------------------------------------


def lstm_tflite(seed: int, batch: int, steps: int, n_in: int, n_s: int, time_major: bool,
                cell_pow: int, clip: float, h_zp: int, bias_max: int = 30000,
                sx: float | None = None) -> bytes:
    """One int8 UNIDIRECTIONAL_SEQUENCE_LSTM as TFLite's converter writes it: 24 inputs,
    variable hidden (int8) and cell (int16, scale 2^cell_pow) state tensors."""
    rng = np.random.default_rng(seed)
    sx = 0.02 + 0.01 * rng.random() if sx is None else sx
    sh = 1 / 128 * (0.5 + rng.random())
    x_shape = (steps, batch, n_in) if time_major else (batch, steps, n_in)
    t = [TTensor("x", x_shape, "int8", sx, int(rng.integers(-20, 20)))]
    for k in range(8):
        cols = n_in if k < 4 else n_s
        t.append(TTensor(f"w{k}", (n_s, cols), "int8", float(0.004 + 0.03 * rng.random()),
                         data=rng.integers(-127, 128, (n_s, cols))))
    for k in range(4):
        t.append(TTensor(f"b{k}", (n_s,), "int32", sx * 0.01,
                         data=rng.integers(-bias_max, bias_max + 1, n_s)))
    t.append(TTensor("h", (batch, n_s), "int8", sh, h_zp, variable=True))
    t.append(TTensor("c", (batch, n_s), "int16", 2.0 ** cell_pow, 0, variable=True))
    t.append(TTensor("y", x_shape[:2] + (n_s,), "int8", sh, h_zp))
    ins = [0, 1, 2, 3, 4, 5, 6, 7, 8, -1, -1, -1, 9, 10, 11, 12, -1, -1, 13, 14,
           -1, -1, -1, -1]
    op = TOp("UNIDIRECTIONAL_SEQUENCE_LSTM", ins, [15],
             {"fused_activation_function": "TANH", "cell_clip": clip,
              "time_major": time_major})
    return build_tflite(t, [op], [0], [15])


SYNTHETIC = [  # seed, batch, steps, n_in, n_s, time_major, cell_pow, clip, h_zp
    (1, 1, 3, 5, 4, False, -12, 0.0, 0),
    (2, 2, 2, 7, 3, False, -11, 1.5, 5),
    (3, 2, 3, 4, 5, True, -13, 0.0, -7),
    (4, 1, 1, 9, 6, False, -10, 0.25, 0),  # T = 1: streaming, one step per invoke
    (5, 3, 1, 3, 2, True, -15, 0.0, 12),
    (6, 1, 4, 16, 9, False, -12, 10.0, -3),
]

def _random_case(k: int) -> tuple:
    r = np.random.default_rng(500 + k)
    return (500 + k, int(r.integers(1, 4)), int(r.integers(1, 5)), int(r.integers(1, 13)),
            int(r.integers(1, 11)), bool(r.integers(2)), int(r.integers(-16, -7)),
            float(r.choice([0.0, 0.1, 0.7, 3.0])), int(r.integers(-40, 41)),
            int(r.choice([0, 3000, 300000, 3000000])), float(r.uniform(0.001, 0.08)))


RANDOM = [_random_case(k) for k in range(12)]  # as SYNTHETIC, then bias_max and x scale


def sequence_examples(seed: int, batch: int, steps: int, n_in: int, time_major: bool
                      ) -> list[tuple[bool, list[np.ndarray]]]:
    """3 invokes from zero state (state carried), then reset() and the first input again."""
    rng = np.random.default_rng(100 + seed)
    shape = (steps, batch, n_in) if time_major else (batch, steps, n_in)
    xs = [rng.integers(-128, 128, shape) for _ in range(3)]
    return [(k == 0, [x]) for k, x in enumerate(xs)] + [(True, [xs[0]])]


@cache
def synthetic() -> list[tuple[bytes, bytes, list, list]]:
    """(.tflite, converted model, examples, TFLM's outputs) per SYNTHETIC and RANDOM case."""
    out = []
    for case in SYNTHETIC + RANDOM:
        tflite = lstm_tflite(*case)
        examples = sequence_examples(case[0], case[1], case[2], case[3], case[5])
        out.append((tflite, serialize(import_tflite(tflite)), examples,
                    tflm_sequence(tflite, examples)))
    return out


def test_lstm_on_every_interpreter(interpreter: str) -> None:
    _, model, _ = shared()
    examples, _ = shared_cases()
    syn = synthetic()
    cases = [(model, examples)] + [(m, ex) for _, m, ex, _ in syn]
    results, kernels = run_cases(cases, interpreter)
    check_shared(results[0], interpreter)
    want = "reference" if fast_kernel(interpreter) == "reference" else "viper"
    assert kernels[0][0] == want, (interpreter, kernels[0])
    for case, (_, _, _, ref), rows in zip(SYNTHETIC + RANDOM, syn, results[1:], strict=True):
        got = [r[0].tolist() for r in rows]
        assert got == [r[0].tolist() for r in ref], (interpreter, case)
        assert got[-1] == got[0]  # reset() then the first input: the first output again


def test_synthetic_sequences_carry_state() -> None:
    """TFLM's outputs of the synthetic sequences depend on the state (else the test above
    would pass with a kernel that forgets it)."""
    for case, (tflite, _, examples, ref) in zip(SYNTHETIC, synthetic(), strict=False):
        fresh = tflm_sequence(tflite, [(True, xs) for _, xs in examples])
        assert any(a[0].tolist() != b[0].tolist() for a, b in zip(fresh, ref)), case


def test_state_tensors_in_the_file() -> None:
    """The hidden and cell state are arena tensors flagged VARIABLE whose bytes no other
    tensor shares; load() sets them to their zero point."""
    import tinyrt

    _, model, _ = shared()
    mf = ff.read_model(model)
    recs = list(mf.tensors)
    state = [r for r in recs if r.flags & ff.VARIABLE]
    assert [(r.dtype, r.shape) for r in state] == [(ff.INT8, (1, 20)), (ff.INT16, (1, 20))]
    for s in state:
        for r in recs:
            if r.index != s.index and r.storage == ff.ARENA:
                assert (r.offset + r.nbytes <= s.offset or s.offset + s.nbytes <= r.offset), (
                    s.index, r.index)
    m = tinyrt.load(model)
    for s in state:
        t = m.tensors[s.index]
        assert t.tolist() == [t.zero_point] * 20
        m.invoke()
        assert t.tolist() != [t.zero_point] * 20
        m.reset()
        assert t.tolist() == [t.zero_point] * 20


def _variant(drop: tuple[int, ...] = (), add: dict[int, int] | None = None) -> bytes:
    """The first synthetic LSTM with some of its inputs removed or extra ones added."""
    data = lstm_tflite(*SYNTHETIC[0])
    from converter.tflite_reader import read_tflite

    m = read_tflite(data)
    tensors = [TTensor(t.name, t.shape, t.dtype, None if t.scales is None else
                       float(t.scales[0]), 0 if t.zero_points is None else
                       int(t.zero_points[0]), data=t.data, variable=t.variable)
               for t in m.tensors]
    ins = list(m.ops[0].inputs)
    for k in drop:
        ins[k] = -1
    for k, shape in (add or {}).items():
        tensors.append(TTensor(f"extra{k}", shape, "int8" if k in (9, 10, 11, 16) else
                               "int32", 0.01, data=np.ones(shape)))
        ins[k] = len(tensors) - 1
    op = TOp("UNIDIRECTIONAL_SEQUENCE_LSTM", ins, [15], {"fused_activation_function": "RELU"})
    return build_tflite(tensors, [op], [0], [15])


def test_variants_refused_with_every_missing_piece() -> None:
    data = _variant(drop=(1, 5), add={9: (4,), 16: (4, 4), 17: (4,)})
    with pytest.raises(UnsupportedModelError) as e:
        import_tflite(data)
    msg = str(e.value)
    assert "op 0 (UNIDIRECTIONAL_SEQUENCE_LSTM)" in msg
    for piece in ("CIFG", "peephole", "projection: inputs [16, 17]", "activation RELU"):
        assert piece in msg, msg


def test_cli_run_independent_samples_or_one_sequence(tmp_path, capsys) -> None:
    """`tinyrt run` resets the state before each x[i] (TFLM's recorded y), unless --sequence
    (then it equals tflite-micro invoked on x[0], x[1], ... without Reset)."""
    from host_sim import cli

    tflite, _, ref = shared()
    src = SHARED_MODELS / f"{NAME}.tflite"
    model = tmp_path / "lstm.trt"
    assert cli.main(["convert", str(src), "-o", str(model)]) == 0
    npz = str(SHARED_MODELS / f"{NAME}_io.npz")
    got = {}
    for seq in (False, True):
        out = tmp_path / f"y{int(seq)}.npy"
        assert cli.main(["run", str(model), "--input", npz, "--interpreter", "cpython",
                         "--output", str(out)] + (["--sequence"] if seq else [])) == 0
        got[seq] = np.load(out).reshape(len(ref["x"]), -1)
    assert got[False].tolist() == ref["y"].reshape(len(ref["x"]), -1).tolist()
    seq_ref = tflm_sequence(tflite, [(k == 0, [x]) for k, x in enumerate(ref["x"])])
    assert got[True].tolist() == [r[0].tolist() for r in seq_ref]
    assert got[True].tolist() != got[False].tolist()
    capsys.readouterr()


def test_summary_shows_macs_and_state(capsys) -> None:
    import tinyrt

    _, model, _ = shared()
    tinyrt.load(model).summary()
    text = capsys.readouterr().out
    assert "UNIDIRECTIONAL_SEQUENCE_LSTM" in text
    assert " 107520 " in text  # 28 steps x 20 cells x 4 gates x (28 + 20) products
    assert text.count("state: kept across invoke(), reset()") == 2


@given(seed=st.integers(0, 2**31), batch=st.integers(1, 3), steps=st.integers(1, 4),
       n_in=st.integers(1, 12), n_s=st.integers(1, 10), time_major=st.booleans(),
       cell_pow=st.integers(-16, -8), clip=st.sampled_from([0.0, 0.1, 0.7, 3.0, 100.0]),
       h_zp=st.integers(-40, 40), bias_max=st.sampled_from([0, 3000, 300000, 3000000]),
       sx=st.floats(0.001, 0.08))
def test_random_lstms_match_tflm(seed, batch, steps, n_in, n_s, time_major, cell_pow, clip,
                                 h_zp, bias_max, sx):
    """Random LSTMs (biases up to saturating the gates) over 3 invokes (state carried), then
    reset() and the first input again: the reference kernel, in this process, equals TFLM (the
    viper twin runs the RANDOM cases on every interpreter above)."""
    import tinyrt
    import tinyrt.fast

    tflite = lstm_tflite(seed, batch, steps, n_in, n_s, time_major, cell_pow, clip, h_zp,
                         bias_max, sx)
    examples = sequence_examples(seed, batch, steps, n_in, time_major)
    want = [r[0].tolist() for r in tflm_sequence(tflite, examples)]
    model = serialize(import_tflite(tflite))
    tinyrt.fast.enable(False)
    try:
        m = tinyrt.load(model)
    finally:
        tinyrt.fast.enable(True)
    got = []
    for reset, (x,) in examples:
        if reset:
            m.reset()
        got.append(m.invoke(x.ravel().tolist()).tolist())
    assert got == want
