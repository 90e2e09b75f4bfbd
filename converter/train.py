"""A tiny numpy trainer for converter.float_model models: enough to train the demo's CNNs in
seconds, not a framework.

    model = train(model, x, labels, epochs=30)     # trains the model's arrays in place

Layers it trains: Dense, Conv2D (float or binary), BatchNorm, ReLU / ReLU6 and fused
activations, MaxPool2D / AvgPool2D with stride = size and "valid" padding, Flatten, and a final
Softmax (the loss is the cross-entropy of its input, the logits). Binary layers train their
latent float weights with the straight-through estimator, as Larq does: the forward pass uses
sign(x) and sign(w) (times the mean |w| of the output channel, what the converter folds), the
backward pass lets the gradient through sign(x) where |x| <= 1 and through sign(w) where
|w| <= 1, and the latent weights are clipped to [-1, 1] after each step.

Binary-aware training of chosen layers of a float model (what `tinyrt quantize --binary` needs:
a float model binarized after training predicts at chance on digits):

    model = train(model, x, labels, binary=["bconv2", "bconv3"])   # these layers train binary

makes the named Dense / Conv2D layers binary first (a fused activation moves to a ReLU / ReLU6
layer after it, as FloatModel.folded does), so the saved model carries binary=True and converts
as it was trained.
BatchNorm uses batch statistics while training; afterwards recalibrate_batch_norm sets each
one's mean and variance to the exact statistics of the training set, layer by layer.
Optimizer: Adam with a cosine learning-rate decay. Deterministic for a given seed.
"""

from __future__ import annotations

import math

import numpy as np

from . import float_model as fm


def _col2im(dp: np.ndarray, x_shape, kh, kw, stride, dilation, padding) -> np.ndarray:
    """The gradient of fm.patches: dp (N, OH, OW, KH, KW, C) -> dx (N, H, W, C)."""
    (sh, sw), (dh, dw) = fm._pair(stride), fm._pair(dilation)
    n, h, w, c = x_shape
    oh, pt, pb = fm.out_size_and_pad(padding, h, kh, sh, dh)
    ow, pl, pr = fm.out_size_and_pad(padding, w, kw, sw, dw)
    dx = np.zeros((n, h + pt + pb, w + pl + pr, c), dp.dtype)
    for i in range(kh):
        for j in range(kw):
            dx[:, i * dh: i * dh + (oh - 1) * sh + 1: sh,
               j * dw: j * dw + (ow - 1) * sw + 1: sw, :] += dp[:, :, :, i, j, :]
    return dx[:, pt: pt + h, pl: pl + w, :]


def _act_grad(y: np.ndarray, activation) -> np.ndarray | float:
    if activation == "relu":
        return (y > 0).astype(y.dtype)
    if activation == "relu6":
        return ((y > 0) & (y < 6)).astype(y.dtype)
    return 1.0


class _Trainer:
    """Forward in training mode with caches, backward, Adam."""

    def __init__(self, model: fm.FloatModel):
        self.model, self.t = model, 0
        self.params = []  # (layer, field)
        for layer in model.layers:
            for k in layer.ARRAYS:
                if k in ("mean", "var"):
                    continue
                if getattr(layer, k) is None and k == "bias":
                    continue
                self.params.append((layer, k))
        self.m = [np.zeros_like(getattr(la, k)) for la, k in self.params]
        self.v = [np.zeros_like(getattr(la, k)) for la, k in self.params]
        for i, layer in enumerate(model.layers):
            if isinstance(layer, fm.Add) or (layer.input is not None and i > 0):
                raise NotImplementedError("the trainer takes sequential models only")
            if isinstance(layer, fm.Pool2D) and (layer.padding != "valid" or (
                    layer.stride is not None and fm._pair(layer.stride)
                    != fm._pair(layer.size))):
                raise NotImplementedError(f"{layer.name}: pools with stride = size, valid")
            if isinstance(layer, fm.DepthwiseConv2D) or (
                    isinstance(layer, fm.Softmax) and i != len(model.layers) - 1):
                raise NotImplementedError(f"{layer.name}: {layer.kind} is not trainable here")

    # -- forward / backward per layer ---------------------------------------------------------
    def forward(self, x: np.ndarray) -> tuple[np.ndarray, list]:
        caches = []
        for layer in self.model.layers:
            if isinstance(layer, fm.Softmax):
                break  # the loss takes the logits
            x, cache = self._forward(layer, x)
            caches.append(cache)
        return x, caches

    def _forward(self, layer, x):
        if isinstance(layer, (fm.Dense, fm.Conv2D)):
            w = layer.weights
            if layer.binary:
                signs, alpha = fm.binary_weights(w)
                w_eff = signs * alpha.reshape((-1,) + (1,) * (w.ndim - 1))
                xin, pad = fm.binary_sign(x), 1.0
            else:
                w_eff, xin, pad = w, x, 0.0
            if isinstance(layer, fm.Dense):
                p = xin.reshape(len(x), -1)
                y = p @ w_eff.T
            else:
                cout, kh, kw, _ = w.shape
                pv = fm.patches(xin, kh, kw, layer.stride, layer.dilation, layer.padding, pad)
                p = pv.reshape(-1, kh * kw * w.shape[3])
                y = (p @ w_eff.reshape(cout, -1).T).reshape(pv.shape[:3] + (cout,))
            if layer.bias is not None:
                y = y + layer.bias
            y = fm.apply_activation(y, layer.activation)
            return y, (x, p, w_eff, y)
        if isinstance(layer, fm.BatchNorm):
            axes = tuple(range(x.ndim - 1))
            mu, var = x.mean(axis=axes), x.var(axis=axes)
            layer.mean = (0.9 * layer.mean + 0.1 * mu).astype(np.float32)
            layer.var = (0.9 * layer.var + 0.1 * var).astype(np.float32)
            inv = 1.0 / np.sqrt(var + layer.eps)
            xhat = (x - mu) * inv
            return (layer.gamma * xhat + layer.beta).astype(x.dtype), (xhat, inv)
        if isinstance(layer, fm.Pool2D):
            fh, fw = fm._pair(layer.size)
            n, h, w, c = x.shape
            oh, ow = h // fh, w // fw
            xr = x[:, : oh * fh, : ow * fw].reshape(n, oh, fh, ow, fw, c)
            if isinstance(layer, fm.MaxPool2D):
                y = xr.max(axis=(2, 4))
                mask = xr == y[:, :, None, :, None]
                mask = mask / mask.sum(axis=(2, 4), keepdims=True)
            else:
                y = xr.mean(axis=(2, 4))
                mask = None
            y = fm.apply_activation(y, layer.activation)
            return y, (x.shape, mask, y)
        if isinstance(layer, (fm.Flatten, fm.Reshape)):
            return fm.layer_forward(layer, x), x.shape
        if isinstance(layer, (fm.ReLU, fm.ReLU6)):
            y = fm.layer_forward(layer, x)
            return y, y
        raise NotImplementedError(f"{layer.name}: {layer.kind} is not trainable here")

    def backward(self, dy: np.ndarray, caches: list) -> dict:
        grads = {}
        layers = [la for la in self.model.layers if not isinstance(la, fm.Softmax)]
        for layer, cache in zip(reversed(layers), reversed(caches)):
            dy = self._backward(layer, dy, cache, grads)
        return grads

    def _backward(self, layer, dy, cache, grads):
        if isinstance(layer, (fm.Dense, fm.Conv2D)):
            x, p, w_eff, y = cache
            dy = dy * _act_grad(y, layer.activation)
            d2 = dy.reshape(-1, dy.shape[-1])
            if layer.bias is not None:
                grads[(id(layer), "bias")] = d2.sum(axis=0)
            dw = (d2.T @ p).reshape(layer.weights.shape)
            if layer.binary:  # straight-through: sign(w) passes where |w| <= 1
                dw = dw * (np.abs(layer.weights) <= 1)
            grads[(id(layer), "weights")] = dw
            dp = d2 @ w_eff.reshape(w_eff.shape[0], -1)
            if isinstance(layer, fm.Dense):
                dx = dp.reshape(x.shape)
            else:
                _, kh, kw, c = layer.weights.shape
                dp = dp.reshape(dy.shape[:3] + (kh, kw, c))
                dx = _col2im(dp, x.shape, kh, kw, layer.stride, layer.dilation, layer.padding)
            return dx * (np.abs(x) <= 1) if layer.binary else dx
        if isinstance(layer, fm.BatchNorm):
            xhat, inv = cache
            axes = tuple(range(dy.ndim - 1))
            grads[(id(layer), "gamma")] = (dy * xhat).sum(axis=axes)
            grads[(id(layer), "beta")] = dy.sum(axis=axes)
            dxhat = dy * layer.gamma
            m = dy.size // dy.shape[-1]
            return inv / m * (m * dxhat - dxhat.sum(axis=axes) - xhat * (dxhat * xhat).sum(
                axis=axes))
        if isinstance(layer, fm.Pool2D):
            shape, mask, y = cache
            dy = dy * _act_grad(y, layer.activation)
            fh, fw = fm._pair(layer.size)
            n, oh, ow, c = dy.shape
            if mask is None:
                mask = np.full((1, 1, fh, 1, fw, 1), 1.0 / (fh * fw), dy.dtype)
            dxr = dy[:, :, None, :, None, :] * mask
            dx = np.zeros(shape, dy.dtype)
            dx[:, : oh * fh, : ow * fw] = dxr.reshape(n, oh * fh, ow * fw, c)
            return dx
        if isinstance(layer, (fm.Flatten, fm.Reshape)):
            return dy.reshape(cache)
        if isinstance(layer, (fm.ReLU, fm.ReLU6)):
            return dy * _act_grad(cache, "relu" if isinstance(layer, fm.ReLU) else "relu6")
        raise NotImplementedError(layer.kind)

    def step(self, grads: dict, lr: float, b1=0.9, b2=0.999, eps=1e-8) -> None:
        self.t += 1
        for i, (layer, k) in enumerate(self.params):
            g = grads[(id(layer), k)]
            self.m[i] = b1 * self.m[i] + (1 - b1) * g
            self.v[i] = b2 * self.v[i] + (1 - b2) * g * g
            mh = self.m[i] / (1 - b1 ** self.t)
            vh = self.v[i] / (1 - b2 ** self.t)
            new = getattr(layer, k) - lr * mh / (np.sqrt(vh) + eps)
            if k == "weights" and getattr(layer, "binary", False):
                new = np.clip(new, -1, 1)
            setattr(layer, k, new.astype(np.float32))


def make_binary(model: fm.FloatModel, names) -> fm.FloatModel:
    """Make the named Dense / Conv2D layers binary in place, for straight-through training:
    their weights become the latent weights (clipped to [-1, 1]); a fused activation moves to
    a ReLU / ReLU6 layer after the layer. Returns the model."""
    for name in names:
        layer = model.layer(name)
        if not isinstance(layer, (fm.Dense, fm.Conv2D)):
            raise ValueError(f"binary layer {name!r} is a {layer.kind}: only Dense and Conv2D "
                             "layers can be binary")
        layer.binary = True
        layer.weights = np.clip(layer.weights, -1, 1).astype(np.float32)
        if layer.activation:
            act = (fm.ReLU if layer.activation == "relu" else fm.ReLU6)(
                name=f"{name}/{layer.activation}")
            layer.activation = None
            model.layers.insert(model.layers.index(layer) + 1, act)
    return model


def train(model: fm.FloatModel, x: np.ndarray, labels: np.ndarray, epochs: int = 30,
          batch_size: int = 32, lr: float = 3e-3, seed: int = 0, binary=(),
          log=None) -> fm.FloatModel:
    """Minimize the cross-entropy of the model's logits on (x, labels); returns the model.
    binary: names of Dense / Conv2D layers to train binary (straight-through estimator)."""
    make_binary(model, binary)
    x = np.asarray(x, np.float32).reshape((-1,) + model.input_shape)
    labels = np.asarray(labels)
    tr = _Trainer(model)
    rng = np.random.default_rng(seed)
    steps = epochs * -(-len(x) // batch_size)
    done = 0
    for epoch in range(epochs):
        order = rng.permutation(len(x))
        loss_sum = 0.0
        for i in range(0, len(x), batch_size):
            idx = order[i: i + batch_size]
            logits, caches = tr.forward(x[idx])
            z = logits - logits.max(axis=1, keepdims=True)
            p = np.exp(z)
            p /= p.sum(axis=1, keepdims=True)
            loss_sum += float(-np.log(p[np.arange(len(idx)), labels[idx]] + 1e-12).sum())
            p[np.arange(len(idx)), labels[idx]] -= 1
            grads = tr.backward((p / len(idx)).astype(np.float32), caches)
            lr_now = 0.5 * lr * (1 + math.cos(math.pi * done / steps))
            tr.step(grads, lr_now)
            done += 1
        if log:
            log(f"epoch {epoch + 1}/{epochs}: loss {loss_sum / len(x):.4f}")
    recalibrate_batch_norm(model, x)
    return model


def recalibrate_batch_norm(model: fm.FloatModel, x: np.ndarray) -> None:
    """Set each BatchNorm's mean and variance to the exact statistics of its input over x
    (inference mode upstream), in layer order."""
    for i, layer in enumerate(model.layers):
        if not isinstance(layer, fm.BatchNorm):
            continue
        src = model.sources(i)[0]
        v = np.concatenate([model.forward(x[k: k + 512], all_outputs=True)[src]
                            for k in range(0, len(x), 512)])
        axes = tuple(range(v.ndim - 1))
        layer.mean = v.mean(axis=axes).astype(np.float32)
        layer.var = v.var(axis=axes).astype(np.float32)


def glorot(rng: np.random.Generator, shape, fan_in: int, fan_out: int) -> np.ndarray:
    """Glorot-uniform initial weights."""
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, shape).astype(np.float32)
