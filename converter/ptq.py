"""Post-training quantization: a FloatModel and calibration inputs -> a tinyrt Graph of int8 and
binary layers, with a per-layer report.

    q = quantize(model, calib_x, calibration="minmax", binary=["conv2d_2"])
    open("model.trt", "wb").write(q.model_bytes)
    print(format_report(q.report))

The conventions are TFLite's int8 quantization spec, as its converter applies them:
- weights int8, symmetric per output channel (Dense / Conv2D axis 0, DepthwiseConv2D axis 3),
  narrow range [-127, 127], zero point 0: scale_c = max |w_c| / 127;
- bias int32 with scale s_in * s_w[c] and zero point 0;
- activations int8, asymmetric per tensor. The range [lo, hi] comes from calibration: the min
  and max of the values ("minmax"), or their `percentile` and 100 - percentile ("percentile");
  it is widened to hold 0, scale = (hi - lo) / 255 (float32), and the zero point is nudged to
  the integer nearest -128 - lo / scale so that real 0 is exact;
- pooling and reshapes keep their input's scale and zero point (TFLM requires it); SOFTMAX and
  LOGISTIC outputs are scale 1/256, zero point -128; fused ReLU / ReLU6 are clamps;
- binary layers (converter.layers.binary, Larq Compute Engine semantics): an int8 input is
  binarized against its zero point; the output is bit-packed when every reader is a binary layer
  (or a max pool read only by binary layers), else int8 with a calibrated range; a BatchNorm
  after a binary layer is folded into its output transform, and a ReLU / ReLU6 after it is the
  int8 saturation of the output range [0, max] / [0, 6].

Bias correction (on by default) runs the quantized model layer by layer in numpy (every tensor
rounded to its int8 grid) next to the float one and subtracts each int8 layer's mean output
error per channel from its bias (empirical bias correction, Nagel et al. 2019). Measured on the
digits models (held-out test images): the logits' SQNR rises by 0.7-2 dB and their mean error
drops 5-15x; accuracy moves by at most one image in 450.

The report has one row per quantized tensor: scale, zero point, calibrated range, the fraction of
the float values that fall outside the int8 grid (clipping) and the SQNR of the quantized
model's tensor against the original float model's (10 log10(sum f^2 / sum (f - q)^2), in dB:
for a layer binarized here, against the float layer as trained, not its binarized copy),
computed on up to `eval_samples` calibration inputs with that same numpy simulation.

Binarizing a float model's layer after training (`binary=`, `tinyrt quantize --binary`) throws
away what the layer learned: on the digits CNN any one layer binarized so predicts at chance.
quantize() then measures the damage on those `eval_samples` inputs: the accuracy against
`labels` when given, else how often the quantized model's argmax agrees with the float model's,
and flags the model (QuantizedModel.binary_check, a warning) when accuracy falls more than
BINARY_MAX_DROP below the float model's or agreement is below BINARY_MIN_AGREEMENT. Layers that
were trained binary (converter.train's straight-through mode; binary=True in the model) are
what they were trained as and are not flagged.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from . import float_model as fm
from . import layers, writer
from .graph import Graph
from .layers import binary as blayers
from .ptq_inputs import calibration_inputs, unscaled_input_warning

METHODS = ("minmax", "percentile")
BINARY_MIN_AGREEMENT = 0.95  # post-training binarization: argmax agreement with the float model
BINARY_MAX_DROP = 0.03  # ... or accuracy below the float model's by more than this (labels)
_WITH_WEIGHTS = (fm.Dense, fm.Conv2D, fm.DepthwiseConv2D)


# -- the plan: one step per tensor of the quantized graph ---------------------------------------

@dataclass
class Step:
    name: str  # the main layer's name
    out: str  # the float layer whose output this step produces (a BatchNorm / ReLU it absorbs)
    layer: fm.Layer
    srcs: list[str]  # the `out` of the steps it reads ("input": the model input)
    bn: fm.BatchNorm | None = None  # binary layers: the batch norm after it
    relu: str | None = None  # binary layers: 'relu' / 'relu6' after it (output saturation)
    mode: str = "int8"  # int8 | packed | same (input's quantization) | fixed (1/256, -128)
    scale: float = 1.0
    zero_point: int = 0
    lo: float = 0.0  # calibrated range
    hi: float = 0.0
    w_q: np.ndarray | None = None  # int8 weights, float layout
    w_scale: np.ndarray | None = None  # per output channel
    bias: np.ndarray | None = None  # float bias (after bias correction)
    bias_scale: np.ndarray | None = None  # s_in * w_scale (float64)
    b_q: np.ndarray | None = None  # int32

    @property
    def binary(self) -> bool:
        return bool(getattr(self.layer, "binary", False))

    @property
    def op(self) -> str:
        kind = {"Dense": "FULLY_CONNECTED", "Conv2D": "CONV_2D", "AvgPool2D": "AVERAGE_POOL_2D",
                "DepthwiseConv2D": "DEPTHWISE_CONV_2D", "MaxPool2D": "MAX_POOL_2D",
                "Flatten": "RESHAPE", "Reshape": "RESHAPE", "Softmax": "SOFTMAX",
                "Logistic": "LOGISTIC", "Add": "ADD"}[self.layer.kind]
        if self.binary:
            kind = "BFULLY_CONNECTED" if kind == "FULLY_CONNECTED" else "BCONV_2D"
        elif kind == "MAX_POOL_2D" and self.mode == "packed":
            kind = "BMAX_POOL_2D"
        act = getattr(self.layer, "activation", None) or self.relu
        return kind + (f"+{act.upper()}" if act else "")


def plan(model: fm.FloatModel) -> list[Step]:
    """The steps of a folded model (FloatModel.folded), output modes decided."""
    layers_ = model.layers
    srcs = {la.name: model.sources(i) for i, la in enumerate(layers_)}
    readers: dict[str, list[str]] = {}
    for la in layers_:
        for s in srcs[la.name]:
            readers.setdefault(s, []).append(la.name)
    by_name = {la.name: la for la in layers_}
    steps: list[Step] = []
    absorbed: set[str] = set()
    for la in layers_:
        if la.name in absorbed:
            continue
        if isinstance(la, (fm.BatchNorm, fm.ReLU, fm.ReLU6)):
            raise ValueError(f"layer {la.name!r} ({la.kind}) cannot be quantized where it is: "
                             "a BatchNorm must follow a Dense / conv without activation, a ReLU a "
                             "layer with a fused-activation slot, each read by nothing else")
        st = Step(la.name, la.name, la, srcs[la.name])
        if st.binary:
            nxt = readers.get(st.out, [])
            if len(nxt) == 1 and isinstance(by_name[nxt[0]], fm.BatchNorm):
                st.bn, st.out = by_name[nxt[0]], nxt[0]
                absorbed.add(st.out)
            nxt = readers.get(st.out, [])
            if len(nxt) == 1 and isinstance(by_name[nxt[0]], (fm.ReLU, fm.ReLU6)):
                st.relu = "relu" if isinstance(by_name[nxt[0]], fm.ReLU) else "relu6"
                st.out = nxt[0]
                absorbed.add(st.out)
        if isinstance(la, (fm.Pool2D, fm.Flatten, fm.Reshape)):
            st.mode = "same"
        elif isinstance(la, (fm.Softmax, fm.Logistic)):
            st.mode = "fixed"
        steps.append(st)
    readers_of = {st.out: [] for st in steps}
    readers_of["input"] = []
    for st in steps:
        for s in st.srcs:
            readers_of[s].append(st)
    shapes = {k: v.shape for k, v in model.forward(np.zeros((1,) + model.input_shape),
                                                    all_outputs=True).items()}

    def packed_ok(st: Step) -> bool:
        """Can `st`'s output stay bit-packed? Every reader must take packed input."""
        rs = readers_of[st.out]
        if not rs or st.out == steps[-1].out or st.relu:
            return False
        for r in rs:
            if r.binary and (isinstance(r.layer, fm.Conv2D) or len(shapes[st.out]) == 2):
                continue
            if isinstance(r.layer, fm.MaxPool2D) and not r.layer.activation and packed_ok(r):
                continue
            return False
        return True

    packed = set()
    for st in steps:
        if st.binary and packed_ok(st):
            st.mode = "packed"
            packed.add(st.out)
        elif isinstance(st.layer, fm.MaxPool2D) and st.srcs[0] in packed:
            st.mode = "packed"
            packed.add(st.out)
    return steps


# -- calibration ----------------------------------------------------------------------------------

class _Progress:
    """tqdm when it is installed, else one self-rewriting line on stderr."""

    def __init__(self, total: int, desc: str, enabled: bool):
        self.total, self.desc, self.enabled, self.n = total, desc, enabled, 0
        self.t0 = self.shown = time.perf_counter()
        self.bar = None
        if enabled:
            try:
                from tqdm import tqdm
                self.bar = tqdm(total=total, desc=desc, unit="batch", leave=False)
            except ImportError:
                pass

    def update(self, k: int = 1) -> None:
        self.n += k
        if self.bar is not None:
            self.bar.update(k)
        elif self.enabled and (time.perf_counter() - self.shown > 0.1 or self.n == self.total):
            self.shown = time.perf_counter()
            sys.stderr.write(f"\r{self.desc}: {self.n}/{self.total} batches "
                             f"({100 * self.n // max(self.total, 1)}%) "
                             f"{self.shown - self.t0:.1f} s")
            sys.stderr.flush()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elif self.enabled:
            sys.stderr.write("\r" + " " * 60 + "\r")


class RangeStats:
    """Running min / max of a tensor's values, and a bounded random sample for percentiles."""

    def __init__(self, per_batch: int, rng: np.random.Generator):
        self.lo, self.hi = math.inf, -math.inf
        self.per_batch, self.rng, self.samples = per_batch, rng, []

    def update(self, v: np.ndarray) -> None:
        v = v.ravel()
        self.lo, self.hi = min(self.lo, float(v.min())), max(self.hi, float(v.max()))
        if self.per_batch:
            k = min(self.per_batch, v.size)
            self.samples.append(v if k == v.size else v[self.rng.integers(0, v.size, k)])

    def range(self, method: str, percentile: float) -> tuple[float, float]:
        if method == "minmax":
            return self.lo, self.hi
        s = np.concatenate(self.samples)
        return float(np.percentile(s, 100 - percentile)), float(np.percentile(s, percentile))


def calibrate(model: fm.FloatModel, names: list[str], x: np.ndarray, method: str = "minmax",
              percentile: float = 99.99, batch_size: int = 256, max_samples: int = 200_000,
              progress: bool | None = None) -> dict[str, tuple[float, float]]:
    """The calibrated range (lo, hi) of each named tensor of `model` over the inputs x."""
    if method not in METHODS:
        raise ValueError(f"calibration {method!r}, expected one of {METHODS}")
    if not 50 < percentile <= 100:
        raise ValueError(f"percentile {percentile}, expected in (50, 100]")
    n_batches = -(-len(x) // batch_size)
    per_batch = -(-max_samples // n_batches) if method == "percentile" else 0
    rng = np.random.default_rng(0)
    stats = {n: RangeStats(per_batch, rng) for n in names}
    if progress is None:
        progress = n_batches >= 8 and sys.stderr.isatty()
    bar = _Progress(n_batches, f"calibrating on {len(x)} inputs", progress)
    try:
        for i in range(0, len(x), batch_size):
            outs = model.forward(x[i: i + batch_size], all_outputs=True)
            for n in names:
                stats[n].update(outs[n])
            bar.update()
    finally:
        bar.close()
    return {n: s.range(method, percentile) for n, s in stats.items()}


def activation_params(lo: float, hi: float) -> tuple[float, int]:
    """int8 (scale, zero point) of the real range [lo, hi], widened to hold 0, zero point
    nudged (TFLite's GetAsymmetricQuantizationParams)."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    if hi - lo < 1e-8:
        hi = lo + 1.0  # a constant-zero tensor: any scale represents it
    scale = float(np.float32((hi - lo) / 255.0))
    zp_from_min = -128 - lo / scale
    zp = -128 if zp_from_min < -128 else 127 if zp_from_min > 127 else int(round(zp_from_min))
    return scale, zp


def weight_params(w: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """(int8 weights, float32 scale per channel along `axis`): symmetric, [-127, 127]."""
    w = np.asarray(w, np.float64)
    wc = np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1)
    m = np.abs(wc).max(axis=1)
    fallback = m.max() if m.max() > 0 else 1.0
    scale = np.float32(np.where(m > 0, m, fallback) / 127.0)
    shape = [1] * w.ndim
    shape[axis] = -1
    q = np.clip(np.round(w / scale.astype(np.float64).reshape(shape)), -127, 127)
    return q.astype(np.int8), scale.astype(np.float32)


# -- numpy simulation of the quantized model --------------------------------------------------

def _fq(v: np.ndarray, scale: float, zp: int, lo: int = -128, hi: int = 127) -> np.ndarray:
    """Round to the int8 grid (scale, zp), clamp to [lo, hi], back to real values."""
    q = np.clip(np.round(v / scale) + zp, lo, hi)
    return ((q - zp) * scale).astype(np.float32)


def _weight_axis(layer: fm.Layer) -> int:
    return 2 if isinstance(layer, fm.DepthwiseConv2D) else 0


def _linear(layer: fm.Layer, x: np.ndarray, w: np.ndarray, b) -> np.ndarray:
    """The pre-activation output of a Dense / conv with weights w and bias b."""
    if isinstance(layer, fm.Dense):
        y = x.reshape(len(x), -1) @ w.T
        return y if b is None else y + b
    if isinstance(layer, fm.Conv2D):
        return fm.conv2d(x, w, b, layer.stride, layer.padding, layer.dilation)
    return fm.depthwise_conv2d(x, w, b, layer.stride, layer.padding, layer.dilation)


def _bn_tuple(bn: fm.BatchNorm | None):
    return None if bn is None else (bn.gamma, bn.beta, bn.mean, bn.var, bn.eps)


def _binary_out(st: Step, x: np.ndarray) -> np.ndarray:
    """y = multiplier * (sign(x) . sign(w)) + bias, multiplier and bias as the builder folds
    them (alpha and the batch norm)."""
    signs, alpha = fm.binary_weights(st.layer.weights)
    mul, add = blayers.fold_batch_norm(alpha, st.layer.bias, _bn_tuple(st.bn))
    la = st.layer
    if isinstance(la, fm.Dense):
        dot = fm.binary_sign(x.reshape(len(x), -1)) @ signs.T
    else:
        dot = fm.conv2d(fm.binary_sign(x), signs, None, la.stride, la.padding, la.dilation,
                        pad_value=1.0)
    return (dot * mul + add).astype(np.float32)


def _dequantized(st: Step) -> tuple[np.ndarray, np.ndarray | None]:
    shape = [1] * st.w_q.ndim
    shape[_weight_axis(st.layer)] = -1
    w_scale = st.w_scale.astype(np.float64).reshape(shape)
    w = (st.w_q * w_scale).astype(np.float32)
    return w, None if st.b_q is None else (st.b_q * st.bias_scale).astype(np.float32)


def simulate_step(st: Step, xs: list[np.ndarray], q: dict[str, tuple[float, int]]):
    """The step's output in the quantized model (real values on its int8 grid; the float y
    of a packed step), from the quantized inputs xs."""
    la, x = st.layer, xs[0]
    if st.binary:
        y = _binary_out(st, x)
        return y if st.mode == "packed" else _fq(y, st.scale, st.zero_point)
    if isinstance(la, _WITH_WEIGHTS):
        w, b = _dequantized(st)
        y = fm.apply_activation(_linear(la, x, w, b), la.activation)
    elif isinstance(la, fm.Add):
        y = fm.apply_activation(x + xs[1], la.activation)
    elif isinstance(la, (fm.Softmax, fm.Logistic)):
        y = fm.layer_forward(la, x)
    else:  # pools and reshapes: in the input's quantization
        y = fm.layer_forward(la, x)
        if st.mode == "packed" or isinstance(la, (fm.MaxPool2D, fm.Flatten, fm.Reshape)):
            return y
    return _fq(y, st.scale, st.zero_point)


# -- quantization -----------------------------------------------------------------------------

@dataclass
class LayerReport:
    name: str  # the layer (the model input: "input")
    op: str  # TFLite-style op name, +RELU / +RELU6 when fused
    dtype: str  # int8 | packed
    scale: float | None
    zero_point: int | None
    lo: float | None  # calibrated range of the float tensor
    hi: float | None
    weight_scale: tuple[float, float] | None  # (min, max) over output channels
    clip_fraction: float  # float values outside the int8 grid's range
    sqnr_db: float  # the quantized tensor vs the original float one (packed: y before sign)


@dataclass
class BinaryCheck:
    """What binarizing float-trained layers after training did, measured on n inputs."""
    layers: list[str]
    n: int
    agreement: float  # the quantized model's argmax = the float model's, fraction of inputs
    accuracy: float | None = None  # with labels: the quantized model's accuracy ...
    float_accuracy: float | None = None  # ... and the float model's
    flagged: bool = False  # the damage is beyond BINARY_MIN_AGREEMENT / BINARY_MAX_DROP

    def message(self) -> str:
        names = ", ".join(repr(n) for n in self.layers)
        what = (f"accuracy {self.accuracy:.3f} vs {self.float_accuracy:.3f} for the float model"
                if self.accuracy is not None else
                f"its predictions agree with the float model's on {self.agreement:.3f} of them")
        head = (f"layer{'s' if len(self.layers) > 1 else ''} {names} binarized after float "
                f"training: on {self.n} calibration inputs {what}")
        if not self.flagged:
            return head
        return (head + "; a binary layer needs binary-aware training (converter.train.train("
                f"model, x, labels, binary=[{names}]), the straight-through estimator)")


@dataclass
class QuantizedModel:
    graph: Graph
    steps: list[Step]
    float_model: fm.FloatModel  # the folded float model the steps come from
    qparams: dict[str, tuple[float, int]]  # tensor (float layer name) -> (scale, zero point)
    report: list[LayerReport] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    binary_check: BinaryCheck | None = None  # layers binarized here (not trained binary)

    @property
    def model_bytes(self) -> bytes:
        return writer.serialize(self.graph)

    @property
    def input_params(self) -> tuple[float, int]:
        return self.qparams["input"]

    @property
    def output_params(self) -> tuple[float, int]:
        return self.qparams[self.steps[-1].out]

    def quantize_input(self, x: np.ndarray) -> np.ndarray:
        """Real inputs (N, *input_shape) -> int8 values for the model's input tensor."""
        s, zp = self.input_params
        return np.clip(np.round(np.asarray(x, np.float64) / s) + zp, -128, 127).astype(np.int8)

    def dequantize_output(self, y: np.ndarray) -> np.ndarray:
        s, zp = self.output_params
        return ((np.asarray(y, np.float64) - zp) * s).astype(np.float32)

    def simulate(self, x: np.ndarray, all_outputs: bool = False):
        """The quantized model in numpy (every tensor on its int8 grid): a close, fast
        stand-in for the integer model (not bit-exact: use the runtime for that)."""
        s, zp = self.input_params
        outs = {"input": _fq(np.asarray(x, np.float32).reshape(
            (-1,) + self.float_model.input_shape), s, zp)}
        for st in self.steps:
            outs[st.out] = simulate_step(st, [outs[n] for n in st.srcs], self.qparams)
        return outs if all_outputs else outs[self.steps[-1].out]


def quantize(model: fm.FloatModel, calib: np.ndarray, *, calibration: str = "minmax",
             percentile: float = 99.99, binary=(), bias_correction: bool = True,
             input_range: tuple[float, float] | None = None, eval_samples: int = 1000,
             batch_size: int = 256, progress: bool | None = None,
             report: bool = True, labels=None,
             like: QuantizedModel | None = None) -> QuantizedModel:
    """Quantize `model` with ranges calibrated on `calib` (real inputs, batch on axis 0).

    binary: names of Dense / Conv2D layers to make binary. input_range: the real range of the
    input (e.g. (0, 1) for pixels) instead of its calibrated one. labels: the class of each
    calibration input, to measure the accuracy of layers binarized here. like: a quantized
    model of the same architecture (an earlier version of `model`) whose quantization is kept
    (quantize_like: no calibration; `calib` serves bias correction and the report)."""
    if like is not None:
        if binary or input_range is not None or calibration != "minmax":
            raise ValueError("like= keeps the old model's quantization: binary, input_range "
                             "and calibration do not apply")
        return quantize_like(model, calib, like, bias_correction=bias_correction,
                             eval_samples=eval_samples, report=report)
    folded = model.folded(binary)
    late = [n for n in binary if not getattr(model.layer(n), "binary", False)]
    original = model.folded() if late else folded
    steps = plan(folded)
    calib = calibration_inputs(calib, folded.input_shape)
    names = ["input"] + [st.out for st in steps if st.mode == "int8"]
    names += [st.srcs[0] for st in steps if st.binary and st.srcs[0] not in names]
    ranges = calibrate(folded, names, calib, calibration, percentile, batch_size,
                       progress=progress)
    if input_range is not None:
        ranges["input"] = tuple(float(v) for v in input_range)
    q: dict[str, tuple[float, int]] = {"input": activation_params(*ranges["input"])}
    for st in steps:
        src = q.get(st.srcs[0])
        if st.mode == "int8":
            st.lo, st.hi = ranges[st.out]
            if st.relu == "relu6":
                st.lo, st.hi = 0.0, 6.0
            elif st.relu == "relu":
                st.lo = 0.0
            st.scale, st.zero_point = activation_params(st.lo, st.hi)
        elif st.mode == "fixed":
            st.scale, st.zero_point = layers.activations.OUT_SCALE, \
                layers.activations.OUT_ZERO_POINT
        elif st.mode == "same":
            st.scale, st.zero_point = src
        if st.mode != "packed":
            q[st.out] = (st.scale, st.zero_point)
        if isinstance(st.layer, _WITH_WEIGHTS) and not st.binary:
            st.w_q, st.w_scale = weight_params(st.layer.weights, _weight_axis(st.layer))
            st.bias_scale = np.float64(src[0]) * st.w_scale.astype(np.float64)
            st.bias = None if st.layer.bias is None else np.asarray(st.layer.bias, np.float64)
            _quantize_bias(st)
    qm = QuantizedModel(Graph(), steps, folded, q)
    if input_range is None and (w := unscaled_input_warning(calib)):
        qm.warnings.append(w)
    for st in steps:
        src = st.srcs[0]
        if st.binary and src in ranges and ranges[src][0] >= 0:
            qm.warnings.append(f"binary layer {st.name!r} reads {src!r}, whose calibrated values "
                               "are all >= 0: every input bit is +1 (a ReLU before a binary "
                               "layer leaves it nothing to see; use a BatchNorm without ReLU)")
    n = min(len(calib), eval_samples)
    if bias_correction or report:
        qm.report = _correct_and_report(qm, calib[:n], bias_correction, original)
    if late:
        y = None if labels is None else np.asarray(labels).reshape(-1)[:len(calib)][:n]
        qm.binary_check = check_binarized(qm, original, calib[:n], late, y)
        qm.warnings.append(qm.binary_check.message())
    qm.graph = build_graph(qm)
    return qm


def quantize_like(model: fm.FloatModel, calib: np.ndarray, like: QuantizedModel, *,
                  bias_correction: bool = True, eval_samples: int = 1000,
                  report: bool = True) -> QuantizedModel:
    """`model` (e.g. `like`'s float model with some layers fine-tuned) quantized on `like`'s
    grid: every tensor keeps its scale and zero point, every weight tensor its per-channel
    scales (the weights rounded onto them, clipped to [-127, 127]), biases are requantized
    with the old bias scales. The requantization rows are then the old ones to the byte and a
    weight that did not move is the old int8 value, so a delta update (converter/delta.py)
    carries only what training changed. ValueError when the layers do not match."""
    folded = model.folded()
    steps = plan(folded)
    old = like.steps
    key = [(st.name, st.mode, st.op, st.srcs) for st in steps]
    old_key = [(st.name, st.mode, st.op, st.srcs) for st in old]
    if key != old_key:
        raise ValueError(f"like=: the model's layers {[k[:3] for k in key]} are not the old "
                         f"model's {[k[:3] for k in old_key]}")
    q = dict(like.qparams)
    for st, o in zip(steps, old):
        st.scale, st.zero_point, st.lo, st.hi = o.scale, o.zero_point, o.lo, o.hi
        if isinstance(st.layer, _WITH_WEIGHTS) and not st.binary:
            w = np.asarray(st.layer.weights, np.float64)
            if w.shape != o.w_q.shape:
                raise ValueError(f"like=: layer {st.name!r} has weights {w.shape}, the old "
                                 f"model's {o.w_q.shape}")
            shape = [1] * w.ndim
            shape[_weight_axis(st.layer)] = -1
            st.w_scale = o.w_scale.copy()
            st.w_q = np.clip(np.round(w / st.w_scale.astype(np.float64).reshape(shape)),
                             -127, 127).astype(np.int8)
            st.bias_scale = o.bias_scale.copy()
            st.bias = None if st.layer.bias is None else np.asarray(st.layer.bias, np.float64)
            _quantize_bias(st)
    qm = QuantizedModel(Graph(), steps, folded, q)
    calib = calibration_inputs(calib, folded.input_shape)
    if bias_correction or report:
        qm.report = _correct_and_report(qm, calib[:min(len(calib), eval_samples)],
                                        bias_correction)
    qm.graph = build_graph(qm)
    return qm


def check_binarized(qm: QuantizedModel, original: fm.FloatModel, x: np.ndarray, names,
                    labels=None) -> BinaryCheck:
    """Measure what binarizing the float-trained layers `names` did (see the module doc)."""
    f = original.forward(x).reshape(len(x), -1).argmax(axis=1)
    q = qm.simulate(x).reshape(len(x), -1).argmax(axis=1)
    c = BinaryCheck(list(names), len(x), float(np.mean(f == q)))
    if labels is not None:
        c.accuracy, c.float_accuracy = float(np.mean(q == labels)), float(np.mean(f == labels))
        c.flagged = c.accuracy < c.float_accuracy - BINARY_MAX_DROP
    else:
        c.flagged = c.agreement < BINARY_MIN_AGREEMENT
    return c


def _quantize_bias(st: Step) -> None:
    if st.bias is None:
        st.b_q = None
        return
    b = np.round(st.bias / st.bias_scale)
    st.b_q = np.clip(b, -(2**31), 2**31 - 1).astype(np.int32)


def _sqnr(f: np.ndarray, e: np.ndarray) -> float:
    signal, noise = float(np.sum(np.square(f, dtype=np.float64))), float(np.sum(np.square(
        f.astype(np.float64) - e)))
    if noise == 0:
        return math.inf
    return 10 * math.log10(signal / noise) if signal > 0 else -math.inf


def _clip_fraction(f: np.ndarray, scale: float, zp: int) -> float:
    lo, hi = (-128.5 - zp) * scale, (127.5 - zp) * scale
    return float(np.mean((f < lo) | (f > hi)))


def _correct_and_report(qm: QuantizedModel, x: np.ndarray, correct: bool,
                        original: fm.FloatModel | None = None) -> list[LayerReport]:
    """Simulate the quantized model layer by layer next to the float one on x; with `correct`,
    first remove each int8 layer's mean output error per channel through its bias (against
    qm.float_model, binarized layers included). The SQNR compares with `original` (the float
    model before any layer was binarized here; its tensor of a step is the step's output or,
    where the step kept a BatchNorm / ReLU the original folded, its main layer's)."""
    ref = qm.float_model.forward(x, all_outputs=True)
    orig = ref if original is None or original is qm.float_model else \
        original.forward(x, all_outputs=True)
    s, zp = qm.input_params
    sim = {"input": _fq(ref["input"], s, zp)}
    rows = [LayerReport("input", "INPUT", "int8", s, zp, float(ref["input"].min()),
                        float(ref["input"].max()), None, _clip_fraction(ref["input"], s, zp),
                        _sqnr(ref["input"], sim["input"]))]
    for st in qm.steps:
        xs = [sim[n] for n in st.srcs]
        if correct and st.w_q is not None:
            w, _ = _dequantized(st)
            err = _linear(st.layer, xs[0], w, None) - _linear(
                st.layer, ref[st.srcs[0]], st.layer.weights, None)
            delta = err.reshape(-1, err.shape[-1]).mean(axis=0)
            st.bias = (0.0 if st.bias is None else st.bias) - delta
            _quantize_bias(st)
        sim[st.out] = simulate_step(st, xs, qm.qparams)
        f = ref[st.out]  # what was calibrated
        f0 = orig[st.out] if st.out in orig else orig[st.name]
        packed = st.mode == "packed"
        ws = None if st.w_scale is None else (float(st.w_scale.min()), float(st.w_scale.max()))
        clip = 0.0 if packed else _clip_fraction(f, st.scale, st.zero_point)
        rows.append(LayerReport(st.name, st.op, "packed" if packed else "int8",
                                None if packed else st.scale, None if packed else st.zero_point,
                                float(f.min()), float(f.max()), ws, clip, _sqnr(f0, sim[st.out])))
    return rows


def format_report(rows: list[LayerReport]) -> str:
    """The report as a table; the name and op columns are as wide as their longest entry."""
    nw = max([16] + [len(r.name) for r in rows])
    ow = max([22] + [len(r.op) for r in rows])
    head = (f"{'layer':<{nw}} {'op':<{ow}} {'out':<6} {'float range':<20} {'scale':>10} "
            f"{'zp':>5} {'weight scales':<19} {'clip %':>7} {'SQNR dB':>8}")
    lines = [head, "-" * len(head)]
    for r in rows:
        rng = f"[{r.lo:.3g}, {r.hi:.3g}]" if r.lo is not None else ""
        scale = f"{r.scale:.4g}" if r.scale is not None else "-"
        zp = str(r.zero_point) if r.zero_point is not None else "-"
        ws = f"{r.weight_scale[0]:.2g}..{r.weight_scale[1]:.2g}" if r.weight_scale else ""
        lines.append(f"{r.name:<{nw}} {r.op:<{ow}} {r.dtype:<6} {rng:<20} {scale:>10} "
                     f"{zp:>5} {ws:<19} {100 * r.clip_fraction:>7.3f} {r.sqnr_db:>8.1f}")
    return "\n".join(lines)


# -- the graph ----------------------------------------------------------------------------------

def build_graph(qm: QuantizedModel) -> Graph:
    """The tinyrt Graph of the quantized steps (converter.layers builders)."""
    m = qm.float_model
    g = Graph(metadata={"description": m.name or "quantized by tinyrt ptq",
                        "converter_path": "float model + post-training quantization"})
    if m.labels:
        g.metadata["labels"] = list(m.labels)
    s, zp = qm.input_params
    t = {"input": g.add_activation("input", (1,) + m.input_shape, s, zp)}
    g.inputs.append(t["input"])
    packed_of: dict[int, int] = {}  # int8 tensor -> its binarized twin
    for st in qm.steps:
        t[st.out] = _add_step(g, st, [t[n] for n in st.srcs], packed_of)
    g.outputs.append(t[qm.steps[-1].out])
    return g


def _add_step(g: Graph, st: Step, xs: list[int], packed_of: dict[int, int]) -> int:
    la, x, name = st.layer, xs[0], st.name
    act = (getattr(la, "activation", None) or "none").upper()
    if st.binary:
        if g.tensors[x].dtype == "int8":
            if isinstance(la, fm.Dense) and len(g.tensors[x].shape) > 2:
                x = layers.reshape(g, x, (1, -1), name=f"{name}/flatten")
            if x not in packed_of:
                packed_of[x] = blayers.binarize(g, x, name=f"{name}/binarize")
            x = packed_of[x]
        out = dict(out_scale=None if st.mode == "packed" else st.scale,
                   out_zero_point=0 if st.mode == "packed" else st.zero_point, name=name)
        if isinstance(la, fm.Dense):
            return blayers.binary_dense(g, x, la.weights, la.bias, _bn_tuple(st.bn), **out)
        return blayers.binary_conv_2d(g, x, la.weights, la.bias, _bn_tuple(st.bn),
                                      stride=la.stride, dilation=la.dilation,
                                      padding=la.padding.upper(), **out)
    if isinstance(la, fm.Dense):
        return layers.fully_connected(g, x, st.w_q, st.w_scale, st.b_q, st.scale,
                                      st.zero_point, act, name)
    if isinstance(la, fm.Conv2D):
        return layers.conv2d(g, x, st.w_q, st.w_scale, st.b_q, st.scale, st.zero_point,
                             la.stride, la.dilation, la.padding.upper(), act, name)
    if isinstance(la, fm.DepthwiseConv2D):
        dm = la.weights.shape[2] // g.tensors[x].shape[3]
        return layers.depthwise_conv2d(g, x, st.w_q[None], st.w_scale, st.b_q, st.scale,
                                       st.zero_point, dm, la.stride, la.dilation,
                                       la.padding.upper(), act, name)
    if isinstance(la, fm.Pool2D):
        stride = la.stride if la.stride is not None else la.size
        if st.mode == "packed":
            return blayers.bmax_pool_2d(g, x, la.size, stride, la.padding.upper(), name)
        pool = layers.max_pool2d if isinstance(la, fm.MaxPool2D) else layers.average_pool2d
        return pool(g, x, la.size, stride, la.padding.upper(), act, name)
    if isinstance(la, (fm.Flatten, fm.Reshape)):
        shape = (-1,) if isinstance(la, fm.Flatten) else tuple(la.shape)
        return layers.reshape(g, x, (1,) + shape, name)
    if isinstance(la, fm.Softmax):
        return layers.softmax(g, x, la.beta, name)
    if isinstance(la, fm.Logistic):
        return layers.logistic(g, x, name)
    if isinstance(la, fm.Add):
        return layers.add(g, x, xs[1], st.scale, st.zero_point, act, name)
    raise ValueError(f"layer {name!r}: {la.kind} cannot be quantized")


def load_float_model(path) -> fm.FloatModel:
    """A float model from an .npz (FloatModel.save) or a float32 .tflite file."""
    if str(path).endswith(".tflite"):
        from .float_tflite import load_float_tflite
        return load_float_tflite(path)
    return fm.FloatModel.load(path)
