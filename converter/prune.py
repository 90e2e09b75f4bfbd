"""Pruning of float models the numpy trainer trains (converter/train.py; the demo family):

- channel pruning: each Conv2D's output channels of smallest L1 norm are removed, with what reads
  them (a BatchNorm's entries, the next Conv2D's input channels, a Dense's flattened columns):
  the layers simply get smaller, in the file, in RAM and in MACs;
- magnitude pruning: in every Conv2D / Dense the given fraction of the weights of smallest
  magnitude is set to zero (unstructured). The file stores no sparse index: the zeros cost
  nearly nothing once the weights are clustered (a zero centroid) and the file is deflated
  (converter/compress.py);
- fine-tuning after each pruning step, by the trainer's own forward / backward / Adam, with the
  pruned weights held at zero after every step (masks).

    model = prune(model, x, labels, fraction=0.8, channels=0.25)
"""

from __future__ import annotations

import copy
import math

import numpy as np

from . import float_model as fm
from .train import _Trainer, recalibrate_batch_norm

_WEIGHTED = (fm.Conv2D, fm.Dense)


def _check_sequential(model: fm.FloatModel) -> None:
    for i, layer in enumerate(model.layers):
        if layer.input is not None and i > 0 or isinstance(layer, fm.Add):
            raise ValueError("pruning takes sequential models only (the trainer's)")


def prune_channels(model: fm.FloatModel, fraction: float) -> fm.FloatModel:
    """A copy of `model` with round(fraction * Cout) output channels of each Conv2D removed (the
    smallest L1 norms; at least one kept), and the inputs that read them."""
    _check_sequential(model)
    model = copy.deepcopy(model)
    layers = model.layers
    for i, layer in enumerate(layers):
        if isinstance(layer, fm.Conv2D) and not layer.binary and fraction > 0:
            cout = layer.weights.shape[0]
            n_keep = max(1, cout - round(fraction * cout))
            norms = np.abs(layer.weights).reshape(cout, -1).sum(axis=1)
            keep = np.sort(np.argsort(-norms, kind="stable")[:n_keep])
            layer.weights = layer.weights[keep]
            if layer.bias is not None:
                layer.bias = layer.bias[keep]
            _drop_inputs(layers[i + 1:], keep, cout)
    return model


def _drop_inputs(rest: list, keep: np.ndarray, cout: int) -> None:
    """Channels `keep` of `cout` survive: update the layers after the pruned one up to the next
    weighted layer, which loses the matching inputs."""
    for layer in rest:
        if isinstance(layer, fm.BatchNorm):
            for k in ("gamma", "beta", "mean", "var"):
                setattr(layer, k, getattr(layer, k)[keep])
        elif isinstance(layer, fm.Conv2D):
            layer.weights = layer.weights[..., keep]
            return
        elif isinstance(layer, fm.Dense):
            # flattened (h, w, c) -> (h * W + w) * C + c: keep the columns of surviving c
            spatial = layer.weights.shape[1] // cout  # H * W where it is flattened
            cols = (np.arange(spatial)[:, None] * cout + keep[None, :]).ravel()
            layer.weights = layer.weights[:, cols]
            return
        elif isinstance(layer, (fm.DepthwiseConv2D, fm.Add)):
            raise ValueError(f"{layer.name}: channel pruning does not go through {layer.kind}")


def magnitude_masks(model: fm.FloatModel, fraction) -> dict[str, np.ndarray]:
    """Per Conv2D / Dense layer: a 0/1 mask zeroing its `fraction` smallest-magnitude weights
    (`fraction` a number, or a dict of layer name -> fraction, 0 for a layer it does not
    name: a small first convolution loses more accuracy per pruned weight than the rest)."""
    masks = {}
    for layer in model.layers:
        if isinstance(layer, _WEIGHTED) and not layer.binary:
            w = np.abs(layer.weights).ravel()
            f = fraction.get(layer.name, 0.0) if isinstance(fraction, dict) else fraction
            n = int(round(f * w.size))
            mask = np.ones(w.size, np.float32)
            if n:
                mask[np.argsort(w, kind="stable")[:n]] = 0
            masks[layer.name] = mask.reshape(layer.weights.shape)
    return masks


def apply_masks(model: fm.FloatModel, masks: dict[str, np.ndarray]) -> None:
    for layer in model.layers:
        if layer.name in masks:
            layer.weights = (layer.weights * masks[layer.name]).astype(np.float32)


def share_weights(model: fm.FloatModel, bits: int,
                  masks: dict[str, np.ndarray] | None = None,
                  grid: int | None = None) -> dict[str, np.ndarray]:
    """Weight sharing in float (Deep Compression): per Conv2D / Dense layer, its unpruned
    weights in 2^bits - 1 clusters by 1-D k-means (the pruned ones are the zero level); returns
    each layer's cluster of every weight (-1: pruned) and sets the weights to the centroids
    (on `grid`, see project)."""
    masks = masks or {}
    groups = {}
    for layer in model.layers:
        if not isinstance(layer, _WEIGHTED) or layer.binary:
            continue
        w = layer.weights.ravel()
        live = masks[layer.name].ravel() > 0 if layer.name in masks else np.ones(w.size, bool)
        k = (1 << bits) - 1
        v = w[live].astype(np.float64)
        cent = np.quantile(v, (np.arange(k) + 0.5) / k) if v.size else np.zeros(k)
        for _ in range(30):
            a = np.argmin(np.abs(v[:, None] - cent[None, :]), axis=1)
            for j in range(k):
                if np.any(a == j):
                    cent[j] = v[a == j].mean()
        assign = np.full(w.size, -1, np.int64)
        assign[live] = a if v.size else []
        groups[layer.name] = assign.reshape(layer.weights.shape)
    project(model, groups, grid)
    return groups


def project(model: fm.FloatModel, groups: dict[str, np.ndarray], grid: int | None = None
            ) -> None:
    """Each shared weight set to its cluster's mean (pruned ones to 0): after a training step
    this is the step of the shared weight (the members' gradients averaged). grid: the means
    then rounded to multiples of max |mean| / grid (quantize_per_tensor(qm, top=grid) then
    stores them exactly as the integers -grid..grid: small weights, and small int32 biases as
    their scale is larger)."""
    for layer in model.layers:
        if layer.name not in groups:
            continue
        a = groups[layer.name].ravel()
        w = layer.weights.ravel().astype(np.float64)
        out = np.zeros_like(w)
        live = a >= 0
        sums = np.bincount(a[live], w[live], minlength=a.max() + 1)
        counts = np.bincount(a[live], minlength=a.max() + 1)
        means = sums / np.maximum(counts, 1)
        top = np.abs(means[counts > 0]).max() if np.any(counts) else 0.0
        if grid and top > 0:
            means = np.round(means / (top / grid)) * (top / grid)
        out[live] = means[a[live]]
        layer.weights = out.reshape(layer.weights.shape).astype(np.float32)


def fine_tune(model: fm.FloatModel, x: np.ndarray, labels: np.ndarray,
              masks: dict[str, np.ndarray] | None = None, epochs: int = 10,
              batch_size: int = 32, lr: float = 1e-3, seed: int = 0,
              groups: dict[str, np.ndarray] | None = None, frozen=(),
              free: dict[str, np.ndarray] | None = None,
              targets: np.ndarray | None = None, grid: int | None = None) -> fm.FloatModel:
    """converter.train's loop (cross-entropy of the logits, Adam, cosine decay) with the masked
    weights put back to zero after every step, shared weights (`groups`) kept shared, the
    layers named in `frozen` put back as they were and, in a layer named in `free`, the
    weights where its 0/1 mask is 0 put back as they were (its bias trains). targets: class
    probabilities (N, classes) to fit instead of the labels (distillation); grid: the shared
    weights' (see project). Trains `model` in place and returns it."""
    masks = masks or {}
    keep = {la.name: {k: getattr(la, k) for k in la.ARRAYS} for la in model.layers
            if la.name in frozen}
    start = {la.name: la.weights.copy() for la in model.layers if la.name in (free or {})}
    x = np.asarray(x, np.float32).reshape((-1,) + model.input_shape)
    labels = np.asarray(labels)
    apply_masks(model, masks)
    tr = _Trainer(model)
    rng = np.random.default_rng(seed)
    steps = max(1, epochs * -(-len(x) // batch_size))
    done = 0
    for _ in range(epochs):
        order = rng.permutation(len(x))
        for i in range(0, len(x), batch_size):
            idx = order[i: i + batch_size]
            logits, caches = tr.forward(x[idx])
            p = np.exp(logits - logits.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            if targets is None:
                p[np.arange(len(idx)), labels[idx]] -= 1
            else:
                p -= targets[idx]
            grads = tr.backward((p / len(idx)).astype(np.float32), caches)
            tr.step(grads, 0.5 * lr * (1 + math.cos(math.pi * done / steps)))
            apply_masks(model, masks)
            if groups:
                project(model, groups, grid)
            for la in model.layers:
                for k, v in keep.get(la.name, {}).items():
                    setattr(la, k, v)
                if la.name in start:
                    la.weights = np.where(free[la.name] > 0, la.weights, start[la.name])
            done += 1
    recalibrate_batch_norm(model, x)
    return model


def sparse_fine_tune(model: fm.FloatModel, x: np.ndarray, labels: np.ndarray,
                     trainable, k: int, epochs: int = 5, lr: float = 1e-3, seed: int = 0,
                     like=None) -> fm.FloatModel:
    """A copy of `model` with only the layers named in `trainable` fine-tuned and, of their
    weights, only the k that move most: a fine-tune first trains them all (the other layers
    frozen), the k largest changes are chosen (in int8 steps of `like`'s weight scales, a
    converter.ptq QuantizedModel of `model`, when given; else in real units), then a second
    fine-tune from `model` trains those k and the layers' biases, every other weight held.
    A delta update (converter/delta.py) of the result quantized like the old model
    (ptq.quantize(..., like=)) carries about k changed weights."""
    names = set(trainable)
    layers = [la for la in model.layers if la.name in names]
    if not layers or any(not isinstance(la, _WEIGHTED) for la in layers):
        raise ValueError(f"trainable {sorted(names)}: expected Dense / Conv2D layers of the "
                         "model")
    frozen = [la.name for la in model.layers if la.ARRAYS and la.name not in names]
    dense = fine_tune(copy.deepcopy(model), x, labels, None, epochs, lr=lr, seed=seed,
                      frozen=frozen)
    steps = {st.name: st.w_scale for st in like.steps} if like is not None else {}
    moved = []
    for la in layers:
        d = np.abs(dense.layer(la.name).weights - la.weights).astype(np.float64)
        if la.name in steps:
            d /= np.asarray(steps[la.name], np.float64).reshape((-1,) + (1,) * (d.ndim - 1))
        moved.append(d.ravel())
    allm = np.concatenate(moved)
    top = np.zeros(allm.size, bool)
    top[np.argsort(-allm, kind="stable")[:max(0, k)]] = True
    free, at = {}, 0
    for la, d in zip(layers, moved):
        free[la.name] = top[at:at + d.size].reshape(la.weights.shape).astype(np.float32)
        at += d.size
    return fine_tune(copy.deepcopy(model), x, labels, None, epochs, lr=lr, seed=seed,
                     frozen=frozen, free=free)


def sparsity(model: fm.FloatModel) -> float:
    """Fraction of zero weights over the Conv2D / Dense layers."""
    ws = [la.weights for la in model.layers if isinstance(la, _WEIGHTED)]
    return float(sum(int(np.sum(w == 0)) for w in ws) / sum(w.size for w in ws))


def prune(model: fm.FloatModel, x: np.ndarray, labels: np.ndarray, fraction,
          channels: float = 0.0, epochs: int = 10, rounds: int = 3, lr: float = 1e-3,
          seed: int = 0, bits: int | None = None, distill: float = 0.0,
          grid: int | None = None) -> fm.FloatModel:
    """A pruned, fine-tuned copy of `model`: first `channels` of each Conv2D's channels removed
    (then fine-tuned), then the magnitude fraction raised to `fraction` (one for every layer,
    or a dict of layer name -> fraction) in `rounds` steps, each fine-tuned for `epochs` with
    the zeros held; with `bits`, then the weights shared in 2^bits - 1 levels + zero per layer
    and fine-tuned so (quantize it per tensor: quantize_per_tensor keeps the levels exact).
    distill: every fine-tune fits (1 - distill) * the labels + distill * the unpruned
    model's class probabilities (knowledge distillation). grid: the shared levels kept on a
    grid of integers -grid..grid (project)."""
    fractions = list(fraction.values()) if isinstance(fraction, dict) else [fraction]
    if not all(0 <= f < 1 for f in fractions) or not 0 <= channels < 1:
        raise ValueError(f"pruning fractions {fraction}, {channels}: expected 0 <= f < 1")
    _check_sequential(model)
    targets = None
    if distill:
        logits, _ = _Trainer(model).forward(  # the logits (no softmax)
            np.asarray(x, np.float32).reshape((-1,) + model.input_shape))
        logits = logits.reshape(len(logits), -1).astype(np.float64)
        soft = np.exp(logits - logits.max(axis=1, keepdims=True))
        soft /= soft.sum(axis=1, keepdims=True)
        targets = ((1 - distill) * np.eye(soft.shape[1])[np.asarray(labels)]
                   + distill * soft).astype(np.float32)
    model = prune_channels(model, channels) if channels else copy.deepcopy(model)
    if channels:
        fine_tune(model, x, labels, None, epochs, lr=lr, seed=seed, targets=targets)
    masks = None
    for r in range(1, rounds + 1 if any(fractions) else 1):
        masks = magnitude_masks(model, {k: f * r / rounds for k, f in fraction.items()}
                                if isinstance(fraction, dict) else fraction * r / rounds)
        fine_tune(model, x, labels, masks, epochs, lr=lr, seed=seed + r, targets=targets)
    if bits is not None:
        groups = share_weights(model, bits, masks, grid)
        fine_tune(model, x, labels, masks, epochs, lr=lr, seed=seed + rounds + 1, groups=groups,
                  targets=targets, grid=grid)
    return model


def quantize_per_tensor(qm, top: int = 127):
    """A converter.ptq QuantizedModel with its Conv2D / Dense weights requantized with one scale
    per layer (max |w| / top): shared float weights stay exactly 2^bits int8 levels (per-channel
    scales would split them), and every channel's requantization row is the same (one row in a
    compressed file: compress.slim_graph). A small `top` (weights shared on that grid: prune's
    grid=) makes the weights small integers, and the int32 biases smaller by 127 / top (their
    scale is the input's times the weights'): fewer distinct bytes to deflate. The graph is
    rebuilt; biases are requantized from the corrected float bias."""
    from .ptq import build_graph

    for st in qm.steps:
        if st.w_q is None or st.binary:
            continue
        w = np.asarray(st.layer.weights, np.float64)
        t = np.abs(w).max()
        s = np.float32(t / top if t > 0 else 1.0)
        st.w_scale = np.full(st.w_q.shape[0], s, np.float32)
        st.w_q = np.clip(np.round(w / np.float64(s)), -127, 127).astype(np.int8)
        st.bias_scale = np.float64(qm.qparams[st.srcs[0]][0]) * st.w_scale.astype(np.float64)
        if st.bias is not None:
            st.b_q = np.clip(np.round(st.bias / st.bias_scale), -(2**31), 2**31 - 1
                             ).astype(np.int32)
    qm.graph = build_graph(qm)
    return qm


def short_scales(qm, bits: int):
    """Round the activation scales of a converter.ptq QuantizedModel computed by its layers up
    to `bits` significant bits (each range grows by < 2^(1 - bits); zero points recomputed):
    float32 scales ending in zero bytes, which deflate, in the file's tensor records. The
    input's scale is the model's interface (how data is quantized for it): kept. Call before
    quantize_per_tensor, which rebuilds the weights' scales, the biases and the graph."""
    def up(s: float) -> float:
        step = 2.0 ** (math.floor(math.log2(s)) + 1 - bits)
        return float(np.float32(math.ceil(s / step) * step))

    q = qm.qparams
    for st in qm.steps:
        src = q.get(st.srcs[0])
        if st.mode == "int8":
            st.scale = up(st.scale)
            lo = min(float(st.lo), 0.0)
            st.zero_point = int(np.clip(round(-128 - lo / st.scale), -128, 127))
        elif st.mode == "same":
            st.scale, st.zero_point = src
        if st.mode != "packed":
            q[st.out] = (st.scale, st.zero_point)
    return qm


def compressed_demo_graph(model: fm.FloatModel, x: np.ndarray, labels: np.ndarray,
                          fraction, channels: float, bits: int | None,
                          epochs: int = 10, rounds: int = 4, lr: float = 3e-3,
                          distill: float = 0.0, grid: int | None = None,
                          scale_bits: int | None = None, seed: int = 0):
    """Prune (and share weights, on `grid`) `model`, quantize it (per tensor when shared, so
    the levels stay exact: the integers -grid..grid with a grid), its activation scales
    rounded to `scale_bits` (short_scales), and cluster its int8 weights to `bits`: the Graph
    to write (names kept) and the clustered layers' sizes (converter.cluster.LayerSize)."""
    from .cluster import cluster_graph
    from .ptq import quantize

    p = prune(model, x, labels, fraction, channels, epochs, rounds, lr, seed=seed, bits=bits,
              distill=distill, grid=grid if bits is not None else None)
    qm = quantize(p, x)
    if scale_bits:
        short_scales(qm, scale_bits)
    if bits is None:
        return (quantize_per_tensor(qm, grid).graph if grid else qm.graph), []
    return cluster_graph(quantize_per_tensor(qm, grid or 127).graph, bits, 0)
