"""`tinyrt demo` end to end, in a fast variant: fresh training into an empty cache directory,
quantization, all 450 test images on the unix port (the accuracy), 60 on the host simulator and
16 on the WASI build (bit-exactness), two timed invokes per model. One test function, so that
pytest-xdist runs the demo once."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("sklearn")

from converter import float_model as fm  # noqa: E402
from converter.train import _Trainer  # noqa: E402
from host_sim import demo  # noqa: E402


def test_trainer_gradients_match_finite_differences():
    """converter.train's backward pass (float layers, batch norm, pools) in float64."""
    rng = np.random.default_rng(1)

    def w(*shape):
        return rng.normal(0, 0.5, shape)

    model = fm.FloatModel((6, 6, 2), [
        fm.Conv2D(w(3, 3, 3, 2), w(3), activation="relu"),
        fm.BatchNorm(1 + w(3), w(3), np.zeros(3), np.ones(3)), fm.MaxPool2D(2),
        fm.Conv2D(w(4, 3, 3, 3), None, padding="valid"), fm.ReLU6(), fm.AvgPool2D(1),
        fm.Flatten(), fm.Dense(w(5, 4), w(5)), fm.Softmax()])
    for layer in model.layers:
        for k in layer.ARRAYS:
            if getattr(layer, k) is not None:
                setattr(layer, k, getattr(layer, k).astype(np.float64))
    x, labels = rng.normal(size=(4, 6, 6, 2)), rng.integers(0, 5, 4)
    tr = _Trainer(model)

    def loss_and_dlogits():
        logits, caches = tr.forward(x)
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        loss = -np.log(p[np.arange(4), labels]).mean()
        p[np.arange(4), labels] -= 1
        return loss, p / 4, caches

    _, d, caches = loss_and_dlogits()
    grads = tr.backward(d, caches)
    for layer, k in tr.params:
        a = getattr(layer, k)
        idx = tuple(int(rng.integers(0, n)) for n in a.shape)
        old = a[idx]
        a[idx] = old + 1e-6
        up = loss_and_dlogits()[0]
        a[idx] = old - 1e-6
        down = loss_and_dlogits()[0]
        a[idx] = old
        assert grads[(id(layer), k)][idx] == pytest.approx((up - down) / 2e-6, rel=1e-4,
                                                           abs=1e-8), (layer.kind, k)


def test_demo_end_to_end(tmp_path, capsys):
    r = demo.run_demo(n_cpython=60, n_wasm=16, cache=tmp_path, latency_runs=2, latency_us=0,
                      log=lambda line: None)
    models = {m.name: m for m in r["models"]}

    # int8: trained now (not read from the cache), within one point of float on the device
    m = models["cnn_int8"]
    assert m.train_seconds is not None
    assert m.float_acc >= 0.95
    assert abs(m.device_acc - m.float_acc) <= 0.01
    assert abs(m.sim_acc - m.device_acc) <= 0.01

    # the binary variant: binary ops, 1 bit per weight, accuracy close to its float model
    b = models["cnn_binary"]
    assert b.device_acc >= 0.93 and abs(b.device_acc - b.float_acc) <= 0.02
    assert "BCONV_2D" in b.info["ops"] and "BINARIZE" in b.info["ops"]
    packed, int8 = b.binary_weight_bytes
    assert 0 < packed * 7 < int8 and b.macs[1] > 0

    # MicroPython (unix, wasm) gave the host simulator's outputs to the bit
    for m in r["models"]:
        assert len(m.outputs["unix"]) == r["n_test"] == 450
        assert len(m.outputs["cpython"]) == 60 and len(m.outputs["wasm"]) == 16
        assert demo.bit_exact(m) == {"unix": True, "wasm": True}
        assert m.latency_us["unix"] > 0 and m.latency_us["wasm"] > 0 and m.heap_used > 0

    # what it prints
    demo.print_results(r)
    out = capsys.readouterr().out
    assert r["ok"]
    for text in ("quantization report, cnn_int8", "SQNR dB", "test accuracy on 450 images",
                 "bit-exact cnn_binary", "unix us", "arena B", "file B"):
        assert text in out

    # the next run reuses the cached weights
    assert (tmp_path / "demo_cnn_int8.trt").read_bytes() == models["cnn_int8"].model_bytes
    xtr, _, ytr, _ = demo.load_digits_split()
    cached, seconds = demo.trained_model("cnn_int8", xtr, ytr, tmp_path)
    assert seconds is None
    for a, b in zip(cached.layers, models["cnn_int8"].float_model.layers):
        for k in a.ARRAYS:
            va, vb = getattr(a, k), getattr(b, k)
            assert (va is None and vb is None) or np.array_equal(va, vb)
