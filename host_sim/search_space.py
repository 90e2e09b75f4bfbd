"""The space `tinyrt search` explores: the numpy trainer's family of small CNNs and MLPs
(converter.train), with per-layer precision, weight clustering and the input stem.

A candidate is a plain JSON-able dict (its `config`):

    {"family": "cnn", "layers": [8, 16], "binary": [false, true], "stem": "pool",
     "cluster": 0}
    {"family": "mlp", "layers": [64, 32], "binary": [false, true], "cluster": 4}

- layers: the hidden layers' widths (CNN: output channels of 3x3 "same" convolutions; MLP:
  units of Dense layers); a last Dense layer maps to the classes.
- binary: per hidden layer, whether it is binary (XNOR / popcount, trained with the
  straight-through estimator). The first layer reads the int8 input and stays int8, as in Larq;
  the classifier stays int8. A layer feeding a binary layer ends in a BatchNorm without ReLU
  (a ReLU would leave its sign nothing to see).
- stem (CNN only): "pool", a 2x2 max pool after each of the first two convolutions (the demo's
  CNN), or "stride", a stride-2 first convolution (4x fewer positions for the costliest layer,
  whose input has one channel) and a pool after the second.
- cluster: 0, or b in 2..6: the int8 weights of each layer clustered to 2^b shared values
  (converter.cluster, FULLY_CONNECTED_LUT / CONV_2D_LUT) where that makes the file smaller.

Loading whole or streamed is not searched: it is the runtime's choice at load time, and every
candidate gets both RAM figures from boards.fit.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np

from converter import float_model as fm

CNN_WIDTHS = (4, 6, 8, 12, 16, 24, 32)
MLP_WIDTHS = (16, 24, 32, 48, 64, 96, 128)
CNN_DEPTHS = (1, 2, 3)
MLP_DEPTHS = (1, 2, 3)
CLUSTER_BITS = (0, 2, 3, 4, 5, 6)
STEMS = ("pool", "stride")
P_BINARY = 0.3  # chance that a layer which may be binary is binary, when sampling
P_PLAIN = 0.5  # chance that a sampled candidate is not clustered


def key(config: dict) -> str:
    """A short stable hash of a config (the cache's file name, the duplicate check)."""
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]


def label(config: dict) -> str:
    """A compact one-line name: cnn/pool 8-16b cl4 (b: binary layer)."""
    layers = "-".join(f"{w}{'b' if b else ''}" for w, b in zip(config["layers"],
                                                                 config["binary"]))
    head = f"cnn/{config['stem']}" if config["family"] == "cnn" else "mlp"
    return f"{head} {layers}" + (f" cl{config['cluster']}" if config["cluster"] else "")


def _normal(config: dict) -> dict:
    """The config with its binary flags made legal (first layer int8) and sorted keys."""
    c = dict(config)
    c["binary"] = [False] + [bool(b) for b in c["binary"][1:len(c["layers"])]]
    if c["family"] != "cnn":
        c.pop("stem", None)
    return {k: c[k] for k in sorted(c)}


def sample(rng: np.random.Generator) -> dict:
    """A random config: family, depth, widths and stem uniform; each layer that may be binary
    is with P_BINARY; clustered with 1 - P_PLAIN, bits uniform."""
    family = ("cnn", "mlp")[rng.integers(2)]
    widths, depths = (CNN_WIDTHS, CNN_DEPTHS) if family == "cnn" else (MLP_WIDTHS, MLP_DEPTHS)
    depth = int(depths[rng.integers(len(depths))])
    c = {"family": family,
         "layers": [int(widths[rng.integers(len(widths))]) for _ in range(depth)],
         "binary": [bool(rng.random() < P_BINARY) for _ in range(depth)],
         "cluster": 0 if rng.random() < P_PLAIN else int(rng.choice(CLUSTER_BITS[1:]))}
    if family == "cnn":
        c["stem"] = STEMS[rng.integers(len(STEMS))]
    return _normal(c)


def mutate(config: dict, rng: np.random.Generator) -> dict:
    """A neighbour of `config`: one or two of its choices changed by one step."""
    c = json.loads(json.dumps(config))
    widths, depths = (CNN_WIDTHS, CNN_DEPTHS) if c["family"] == "cnn" else (MLP_WIDTHS,
                                                                           MLP_DEPTHS)
    for _ in range(1 + int(rng.random() < 0.3)):
        what = ("width", "depth", "binary", "cluster", "stem")[rng.integers(5)]
        n = len(c["layers"])
        if what == "width":
            i = int(rng.integers(n))
            j = widths.index(c["layers"][i]) + (1 if rng.random() < 0.5 else -1)
            c["layers"][i] = widths[min(max(j, 0), len(widths) - 1)]
        elif what == "depth":
            if n < max(depths) and (n == min(depths) or rng.random() < 0.5):
                i = int(rng.integers(n + 1))
                c["layers"].insert(i, c["layers"][min(i, n - 1)])
                c["binary"].insert(i, False)
            elif n > min(depths):
                i = int(rng.integers(n))
                del c["layers"][i]
                del c["binary"][i]
        elif what == "binary" and n > 1:
            i = 1 + int(rng.integers(n - 1))
            c["binary"][i] = not c["binary"][i]
        elif what == "cluster":
            j = CLUSTER_BITS.index(c["cluster"]) + (1 if rng.random() < 0.5 else -1)
            c["cluster"] = CLUSTER_BITS[j % len(CLUSTER_BITS)]
        elif what == "stem" and c["family"] == "cnn":
            c["stem"] = "stride" if c["stem"] == "pool" else "pool"
    return _normal(c)


def _bn(c: int, name: str) -> fm.BatchNorm:
    one, zero = np.ones(c, np.float32), np.zeros(c, np.float32)
    return fm.BatchNorm(one, zero, zero.copy(), one.copy(), name=name)


def build(config: dict, input_shape: tuple[int, ...], n_classes: int, seed: int
          ) -> fm.FloatModel:
    """The untrained float model of `config` (Glorot weights from `seed`)."""
    from converter.train import glorot

    rng = np.random.default_rng(seed)

    def w(shape):
        fan_in = int(np.prod(shape[1:]))
        return glorot(rng, shape, fan_in, shape[0] * fan_in // shape[-1])

    widths, binary = config["layers"], config["binary"]
    cnn = config["family"] == "cnn"
    layers: list = [] if cnn else [fm.Flatten(name="flatten")]
    c_in = input_shape[-1] if cnn else int(np.prod(input_shape))
    hw = list(input_shape[:2]) if cnn else []
    for i, (c, b) in enumerate(zip(widths, binary)):
        feeds_binary = i + 1 < len(widths) and binary[i + 1]
        plain = b or feeds_binary  # ends in a BatchNorm, no ReLU
        act = None if plain else "relu"
        bias = None if plain else np.zeros(c, np.float32)
        name = f"{'conv' if cnn else 'fc'}{i + 1}"
        if cnn:
            stride = 2 if (i == 0 and config["stem"] == "stride" and min(hw) > 1) else 1
            layers.append(fm.Conv2D(w((c, 3, 3, c_in)), bias, stride=stride, activation=act,
                                    binary=b, name=name))
            hw = [-(-d // stride) for d in hw]
        else:
            layers.append(fm.Dense(w((c, c_in)), bias, activation=act, binary=b, name=name))
        if plain:
            layers.append(_bn(c, f"{name}/bn"))
        pooled = (0, 1) if cnn and config["stem"] == "pool" else (1,) if cnn else ()
        if i in pooled and min(hw) >= 2:
            layers.append(fm.MaxPool2D(2, name=f"pool{i + 1}"))
            hw = [d // 2 for d in hw]
        c_in = c
    if cnn:
        layers.append(fm.Flatten(name="flatten"))
        c_in = int(np.prod(hw)) * c_in
    layers += [fm.Dense(w((n_classes, c_in)), np.zeros(n_classes, np.float32), name="fc"),
               fm.Softmax(name="softmax")]
    return fm.FloatModel(tuple(input_shape), layers, [str(k) for k in range(n_classes)],
                         f"tinyrt search: {label(config)}")
