"""The .tflite handlers of issue 13's ops (registered in tflite_import._OPS): each reads the op's
options and constant inputs and calls its builder (converter/layers/movement.py, resize.py,
arith.py, matmul.py). Handlers take (importer, op, layer name, builder) as tflite_import's."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from tinyrt import opcodes

from .tflite_reader import TflOp, UnsupportedModelError


def _ints(im: Any, op: TflOp, k: int, what: str) -> list[int]:
    return [int(v) for v in np.asarray(im.value(op, k, what)).ravel()]


def _outs(im: Any, op: TflOp) -> list[tuple[float, int]]:
    return [im.out(op, k) for k in range(len(op.outputs))]


def strided_slice(im: Any, op: TflOp, name: str, build: Callable) -> int:
    o = op.options
    if o.EllipsisMask() or o.NewAxisMask() or (hasattr(o, "Offset") and o.Offset()):
        raise UnsupportedModelError(f"{op.describe()}: ellipsis_mask, new_axis_mask and offset "
                                    "are not supported (begin, end, shrink_axis masks are)")
    begin, end, strides = (_ints(im, op, k, w) for k, w in ((1, "begin"), (2, "end"),
                                                           (3, "strides")))
    return build(im.g, im.x(op, 0), begin, end, strides, o.BeginMask(), o.EndMask(),
                 o.ShrinkAxisMask(), quant=im.out(op), name=name)


def slice_(im: Any, op: TflOp, name: str, build: Callable) -> int:
    return build(im.g, im.x(op, 0), _ints(im, op, 1, "begin"), _ints(im, op, 2, "size"),
                 quant=im.out(op), name=name)


def transpose(im: Any, op: TflOp, name: str, build: Callable) -> int:
    return build(im.g, im.x(op, 0), _ints(im, op, 1, "perm"), quant=im.out(op), name=name)


def split(im: Any, op: TflOp, name: str, build: Callable) -> list[int]:
    if op.name == "SPLIT":  # inputs: axis, x
        (axis,) = _ints(im, op, 0, "axis")
        x = im.x(op, 1)
        n = len(op.outputs)
        dim = im.g.tensors[x].shape[axis]
        if dim % n:
            raise UnsupportedModelError(f"{op.describe()}: dim {dim} does not split in {n}")
        return build(im.g, x, axis, [dim // n] * n, _outs(im, op), name=name)
    (axis,) = _ints(im, op, 2, "axis")  # SPLIT_V: x, size_splits, axis
    return build(im.g, im.x(op, 0), axis, _ints(im, op, 1, "size_splits"), _outs(im, op),
                 opcode=opcodes.SPLIT_V, name=name)


def pack(im: Any, op: TflOp, name: str, build: Callable) -> int:
    xs = [im.x(op, k, f"input {k}") for k in range(len(op.inputs))]
    return build(im.g, xs, int(op.options.Axis()), quant=im.out(op), name=name)


def unpack(im: Any, op: TflOp, name: str, build: Callable) -> list[int]:
    return build(im.g, im.x(op, 0), int(op.options.Axis()), _outs(im, op), name=name)


def gather(im: Any, op: TflOp, name: str, build: Callable) -> int:
    o = op.options
    i = op.inputs[1] if len(op.inputs) > 1 else -1
    if i < 0 or i not in im.const:
        raise UnsupportedModelError(f"{op.describe()}: its indices must be a constant tensor; "
                                    "indices computed at run time are not supported")
    idx = np.asarray(im.const[i]).astype(np.int64)
    return build(im.g, im.x(op, 0), idx, int(o.Axis()) if o else 0,
                 int(o.BatchDims()) if o else 0, quant=im.out(op), name=name)


def space_depth(im: Any, op: TflOp, name: str, build: Callable) -> int:
    return build(im.g, im.x(op, 0), int(op.options.BlockSize()), quant=im.out(op), name=name)


def resize(im: Any, op: TflOp, name: str, build: Callable) -> int:
    o = op.options
    size = _ints(im, op, 1, "size")
    if len(size) != 2:
        raise UnsupportedModelError(f"{op.describe()}: size {size}, expected (height, width)")
    return build(im.g, im.x(op, 0), size, bool(o.AlignCorners()) if o else False,
                 bool(o.HalfPixelCenters()) if o else False, name=name)


def squared_difference(im: Any, op: TflOp, name: str, build: Callable) -> int:
    if len(op.inputs) != 2:
        raise UnsupportedModelError(f"{op.describe()}: {len(op.inputs)} inputs, expected 2")
    x1, x2 = im.x(op, 0, "input 0"), im.x(op, 1, "input 1")
    return build(im.g, x1, x2, *im.out(op), name=name)


def unary(im: Any, op: TflOp, name: str, build: Callable) -> int:
    x = im.x(op, 0)
    return build(im.g, x, *im.out(op), name=name)


def batch_matmul(im: Any, op: TflOp, name: str, build: Callable) -> int:
    o = op.options
    lhs, rhs = im.x(op, 0, "lhs"), im.x(op, 1, "rhs")
    return build(im.g, lhs, rhs, *im.out(op), adj_x=bool(o.AdjX()) if o else False,
                 adj_y=bool(o.AdjY()) if o else False, name=name)


def transpose_conv(im: Any, op: TflOp, name: str, build: Callable) -> int:
    """inputs: output_shape (constant), filter, x, bias (optional)."""
    o = op.options
    out_shape = _ints(im, op, 0, "output_shape")
    w, scales = im.weights(op, 1, axis=0)
    x = im.x(op, 2)
    b = im.bias(op, 3, w.shape[0])
    act = im.activation(op) if o is not None and hasattr(o, "FusedActivationFunction") \
        else "NONE"
    padding = {0: "SAME", 1: "VALID"}.get(o.Padding() if o else 0, "?")
    return build(im.g, x, w, scales, b, out_shape, *im.out(op),
                 stride=(o.StrideH(), o.StrideW()) if o else (1, 1), padding=padding,
                 activation=act, name=name)


def dequantize(im: Any, op: TflOp, name: str, build: Callable) -> int:
    y = im.t(op.outputs[0])
    if y.dtype != "float32":
        raise UnsupportedModelError(f"{op.describe()}: output {y.describe()} is {y.dtype}; "
                                    "tinyrt's DEQUANTIZE makes float32 from int8")
    if im.t(op.inputs[0]).dtype == "int16":  # 16x8 mode
        from .layers.int16_ops import dequantize_16

        return dequantize_16(im.g, im.x(op, 0), name=name)
    return build(im.g, im.x(op, 0), name=name)


def svdf(im: Any, op: TflOp, name: str, build: Callable) -> int:
    """inputs: x, weights_feature, weights_time, bias (optional), activation_state (a
    variable tensor: the builder makes tinyrt's own, kept across invokes)."""
    if len(op.inputs) != 5 or op.inputs[4] < 0:
        raise UnsupportedModelError(f"{op.describe()}: {len(op.inputs)} inputs, expected 5 "
                                    "(x, weights_feature, weights_time, bias, state)")
    x = im.x(op, 0)
    wf, wt = im.value(op, 1, "weights_feature"), im.value(op, 2, "weights_time")
    tf, tt, ts = (im.t(op.inputs[k]) for k in (1, 2, 4))
    if not ts.variable or ts.dtype not in ("int8", "int16") or tt.dtype != ts.dtype \
            or tf.dtype != "int8" or not (tf.quantized and tt.quantized and ts.quantized):
        raise UnsupportedModelError(
            f"{op.describe()}: weights_feature {tf.dtype}, weights_time {tt.dtype}, state "
            f"{ts.dtype}{'' if ts.variable else ' (not variable)'}: TFLM's int8 SVDF takes "
            "int8 features and a variable int16 or int8 state of weights_time's type, all "
            "quantized")
    b = im.bias(op, 3, tf.shape[0] // max(int(op.options.Rank()), 1))
    y = build(im.g, x, wf, float(tf.scales[0]), wt, float(tt.scales[0]), b,
              int(op.options.Rank()), float(ts.scales[0]), int(ts.zero_points[0]), ts.dtype,
              *im.out(op), name=name)
    im.tmap[op.inputs[4]] = im.g.ops[-1].inputs[4]  # the state tensor
    return y


def reverse(im: Any, op: TflOp, name: str, build: Callable) -> int:
    return build(im.g, im.x(op, 0), _ints(im, op, 1, "axis"), quant=im.out(op), name=name)


def mirror_pad(im: Any, op: TflOp, name: str, build: Callable) -> int:
    mode = {0: "reflect", 1: "symmetric"}.get(op.options.Mode() if op.options else 0)
    paddings = np.asarray(im.value(op, 1, "paddings"))
    return build(im.g, im.x(op, 0), paddings, mode, quant=im.out(op), name=name)


def batch_to_space_nd(im: Any, op: TflOp, name: str, build: Callable) -> int:
    return build(im.g, im.x(op, 0), _ints(im, op, 1, "block_shape"),
                 np.asarray(im.value(op, 2, "crops")), quant=im.out(op), name=name)


def broadcast_to(im: Any, op: TflOp, name: str, build: Callable) -> int:
    return build(im.g, im.x(op, 0), _ints(im, op, 1, "shape"), quant=im.out(op), name=name)


def gather_nd(im: Any, op: TflOp, name: str, build: Callable) -> int:
    i = op.inputs[1] if len(op.inputs) > 1 else -1
    if i < 0 or i not in im.const:
        raise UnsupportedModelError(f"{op.describe()}: its indices must be a constant tensor; "
                                    "indices computed at run time are not supported")
    return build(im.g, im.x(op, 0), np.asarray(im.const[i]), quant=im.out(op), name=name)


def reduce_extreme(im: Any, op: TflOp, name: str, build: Callable) -> int:
    x = im.x(op, 0)
    scale, zp = im.out(op)
    xt = im.t(op.inputs[0])
    if np.float32(scale) != xt.scales[0] or zp != int(xt.zero_points[0]):
        raise UnsupportedModelError(f"{op.describe()}: input and output quantization differ; "
                                    f"TFLM's int8 {op.name} needs them equal")
    keep = bool(op.options.KeepDims()) if op.options is not None else False
    return build(im.g, x, _ints(im, op, 1, "axes"), keep_dims=keep,
                 maximum=op.name == "REDUCE_MAX", name=name)


def prelu(im: Any, op: TflOp, name: str, build: Callable) -> int:
    x, alpha = im.x(op, 0, "input"), im.x(op, 1, "alpha")
    return build(im.g, x, alpha, *im.out(op), name=name)
