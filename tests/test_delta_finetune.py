"""A last-layer fine-tune shipped as a small delta update: ptq.quantize(..., like=old) keeps the
old file's quantization (scales, zero points, requantization rows to the byte), so only the
tuned layer's weights and bias move, by a few int8 steps; prune.sparse_fine_tune lets only k
of them move; converter/delta.py carries the moves as ADD records (format 2)."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from converter import prune, ptq
from converter.delta import apply_update, make_update
from host_sim import run
from host_sim.demo import build_model, load_digits_split
from host_sim.device import invoke_models

CONVS = ["conv1", "conv2"]


@pytest.fixture(scope="module")
def digits():
    xtr, xte, ytr, yte = load_digits_split()
    return xtr[:600], xte[:60], ytr[:600], yte[:60]


@pytest.fixture(scope="module")
def trained(digits):
    from converter.train import train

    xtr, _, ytr, _ = digits
    return train(build_model("cnn_int8"), xtr, ytr, epochs=4, lr=3e-3)


@pytest.fixture(scope="module")
def old(trained, digits):
    return ptq.quantize(trained, digits[0])


def tensors(qm) -> dict[str, tuple]:
    return {t.name: (t.scale, t.zero_point, None if t.data is None else t.data.tobytes())
            for t in qm.graph.tensors}


def test_like_reproduces_the_old_quantization(trained, digits, old):
    """The unchanged model quantized like itself is the same file, to the byte."""
    assert ptq.quantize(trained, digits[0], like=old).model_bytes == old.model_bytes


def test_like_keeps_every_scale_and_moves_only_the_tuned_layer(trained, digits, old):
    xtr, _, ytr, _ = digits
    tuned = prune.fine_tune(copy.deepcopy(trained), xtr[::-1], ytr[::-1], None, 2, lr=1e-3,
                            seed=7, frozen=CONVS)
    new = ptq.quantize(tuned, xtr, like=old)
    recal = ptq.quantize(tuned, xtr)
    a, b = tensors(old), tensors(new)
    assert a.keys() == b.keys()
    moved = sorted(k for k in a if a[k] != b[k])
    assert moved == ["fc/bias", "fc/weights"], moved  # scales, requant rows, convs: as before
    assert tensors(recal)["fc/out"][:2] != a["fc/out"][:2]  # recalibrated: the scale moves
    fc_old = next(st for st in old.steps if st.name == "fc")
    fc_new = next(st for st in new.steps if st.name == "fc")
    want = np.clip(np.round(tuned.layer("fc").weights.astype(np.float64)
                            / fc_old.w_scale.astype(np.float64)[:, None]), -127, 127)
    np.testing.assert_array_equal(fc_new.w_q, want)
    d = np.abs(fc_new.w_q.astype(int) - fc_old.w_q)
    assert 0 < np.count_nonzero(d) and d.max() <= 12, d.max()
    # an update of the like= file is ADD records, smaller than the recalibrated one's
    u, st = make_update(old.model_bytes, new.model_bytes)
    ur, _ = make_update(old.model_bytes, recal.model_bytes)
    assert apply_update(old.model_bytes, u) == new.model_bytes
    assert st.encoding == "arithmetic" and len(u) < 0.8 * len(ur), (len(u), len(ur))


def test_sparse_fine_tune_moves_k_weights(trained, digits, old):
    xtr, xte, ytr, yte = digits
    k = 16
    tuned = prune.sparse_fine_tune(trained, xtr[::-1], ytr[::-1], ["fc"], k, epochs=2,
                                   seed=7, like=old)
    for name in CONVS:  # frozen, bit for bit
        np.testing.assert_array_equal(tuned.layer(name).weights, trained.layer(name).weights)
    changed = tuned.layer("fc").weights != trained.layer("fc").weights
    assert 1 <= np.count_nonzero(changed) <= k
    assert not np.array_equal(tuned.layer("fc").bias, trained.layer("fc").bias)
    new = ptq.quantize(tuned, xtr, like=old)
    fc_old = next(st for st in old.steps if st.name == "fc").w_q
    fc_new = next(st for st in new.steps if st.name == "fc").w_q
    assert np.count_nonzero(fc_new != fc_old) <= k
    u, st = make_update(old.model_bytes, new.model_bytes)
    assert apply_update(old.model_bytes, u) == new.model_bytes
    # 80 B of header (two sha256) + about 2 B a moved weight + the bias and CRC bytes
    assert st.update_bytes < 0.06 * st.new_bytes, st
    agree = np.mean(new.simulate(xte).argmax(axis=1) == old.simulate(xte).argmax(axis=1))
    assert agree >= 0.95, agree  # a fine-tune on the same digits changes few predictions


def test_like_refuses_another_architecture(trained, digits, old):
    pruned = prune.prune_channels(trained, 0.25)
    with pytest.raises(ValueError, match="'conv1' has weights"):
        ptq.quantize(pruned, digits[0], like=old)
    with pytest.raises(ValueError, match="like= keeps"):
        ptq.quantize(trained, digits[0], like=old, calibration="percentile")


# The old model written where the board can write, the update applied, the result run on the
# digits given (one per line of x.json): prints [applied, outputs].
APPLY = r"""
import json, sys, tinyrt
P = "/m.trt" if sys.platform == "qemu" else "m.trt"
src = open("old.trt", "rb"); dst = open(P, "wb"); dst.write(src.read()); dst.close(); src.close()
applied = tinyrt.update(P, "u.bin")
m = tinyrt.load(P)
outs = []
for x in json.load(open("x.json")):
    m.input(0).set(x)
    outs.append(m.invoke().tolist())
print(json.dumps([applied, outs]))
"""


def test_fine_tune_update_applies_on_the_board(interpreter, trained, digits, old):
    """The sparse last-layer update (format 2) turns the old demo CNN into the tuned one on
    the board: its outputs are the tuned file's, to the bit."""
    import json

    xtr, xte, ytr, _ = digits
    tuned = prune.sparse_fine_tune(trained, xtr[::-1], ytr[::-1], ["fc"], 16, epochs=2,
                                   seed=7, like=old)
    new = ptq.quantize(tuned, xtr, like=old).model_bytes
    u, st = make_update(old.model_bytes, new)
    assert st.encoding == "arithmetic"
    xq = old.quantize_input(xte[:6]).reshape(6, -1)
    r = run(APPLY, interpreter, files={"old.trt": old.model_bytes, "u.bin": u,
                                       "x.json": json.dumps(xq.tolist()).encode()})
    assert r.returncode == 0, r.stderr
    applied, outs = json.loads(r.stdout.splitlines()[-1])
    want = invoke_models([(new, [[x] for x in xq])], "cpython")[0]
    assert applied is True
    assert [list(w[0]) for w in want] == outs
