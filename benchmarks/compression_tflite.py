"""The int8 .tflite of a model quantized by tinyrt (converter.ptq): what the compression figures of
the demo CNN are measured against. The flatbuffer is written by the oracle's writer
(host_sim/oracle/tflm.py build_tflite: no signature defs or metadata, so it is smaller than
TensorFlow's converter would make it, and the ratios quoted against it are conservative);
tests run it under tflite-micro and compare with tinyrt's outputs."""

from __future__ import annotations

import numpy as np

from converter import float_model as fm
from converter.ptq import QuantizedModel
from host_sim.oracle import tflm


def to_tflite(qm: QuantizedModel) -> bytes:
    """Sequential int8 models of Conv2D, Dense, MaxPool2D / AvgPool2D, Flatten and Softmax."""
    tensors: list[tflm.TTensor] = []
    ops: list[tflm.TOp] = []

    def add(name, shape, dtype="int8", scale=None, zp=0, data=None) -> int:
        tensors.append(tflm.TTensor(name, tuple(shape), dtype, scale, zp, 0, data))
        return len(tensors) - 1

    s, zp = qm.input_params
    x = add("input", (1,) + qm.float_model.input_shape, scale=s, zp=zp)
    inputs = [x]
    shape = tensors[x].shape
    for st in qm.steps:
        la = st.layer
        act = (getattr(la, "activation", None) or "none").upper()
        s_in = tensors[x].scale
        if isinstance(la, (fm.Conv2D, fm.Dense)):
            w = st.w_q
            ws = [float(v) for v in st.w_scale]
            wi = add(f"{st.name}/weights", w.shape, scale=ws, zp=[0] * len(ws), data=w)
            bi = add(f"{st.name}/bias", (w.shape[0],), "int32",
                     [float(np.float32(s_in * v)) for v in ws], [0] * len(ws), st.b_q)
            if isinstance(la, fm.Dense):
                shape = (1, w.shape[0])
                opts = dict(fused_activation_function=act)
                op = "FULLY_CONNECTED"
            else:
                n, h, wd, _ = shape
                sh, sw = fm._pair(la.stride)
                dh, dw = fm._pair(la.dilation)
                oh = fm.out_size_and_pad(la.padding, h, w.shape[1], sh, dh)[0]
                ow = fm.out_size_and_pad(la.padding, wd, w.shape[2], sw, dw)[0]
                shape = (n, oh, ow, w.shape[0])
                opts = dict(padding=la.padding.upper(), stride_h=sh, stride_w=sw,
                            dilation_h_factor=dh, dilation_w_factor=dw,
                            fused_activation_function=act)
                op = "CONV_2D"
            y = add(st.name, shape, scale=st.scale, zp=st.zero_point)
            ops.append(tflm.TOp(op, [x, wi, bi], [y], opts))
        elif isinstance(la, fm.Pool2D):
            fh, fw = fm._pair(la.size)
            sh, sw = fm._pair(la.stride if la.stride is not None else la.size)
            n, h, wd, c = shape
            shape = (n, fm.out_size_and_pad(la.padding, h, fh, sh)[0],
                     fm.out_size_and_pad(la.padding, wd, fw, sw)[0], c)
            y = add(st.name, shape, scale=st.scale, zp=st.zero_point)
            ops.append(tflm.TOp("MAX_POOL_2D" if isinstance(la, fm.MaxPool2D)
                                else "AVERAGE_POOL_2D", [x], [y],
                                dict(padding=la.padding.upper(), stride_h=sh, stride_w=sw,
                                     filter_height=fh, filter_width=fw,
                                     fused_activation_function=act)))
        elif isinstance(la, fm.Flatten):
            shape = (1, int(np.prod(shape[1:])))
            si = add(f"{st.name}/shape", (2,), "int32", data=np.array(shape, np.int32))
            y = add(st.name, shape, scale=st.scale, zp=st.zero_point)
            ops.append(tflm.TOp("RESHAPE", [x, si], [y], dict(new_shape=list(shape))))
        elif isinstance(la, fm.Softmax):
            y = add(st.name, shape, scale=st.scale, zp=st.zero_point)
            ops.append(tflm.TOp("SOFTMAX", [x], [y], dict(beta=float(la.beta))))
        else:
            raise ValueError(f"{st.name}: {la.kind} is not exported")
        x = y
    return tflm.build_tflite(tensors, ops, inputs, [x])
