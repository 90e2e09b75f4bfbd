"""16x8 ops (int16 activations, zero point 0) against tflite-micro, on every interpreter:
DEPTHWISE_CONV_2D 16x8 with an int64 bias (kernels/depthwise_conv16.py), AVERAGE_POOL_2D and
MAX_POOL_2D (pool16.py), LEAKY_RELU (leaky_relu16.py), ADD (add16.py), SOFTMAX (softmax16.py),
STRIDED_SLICE, SLICE and TRANSPOSE (copy16.py), QUANTIZE int8 -> int16, int16 -> int8 and
int16 -> int16 (quantize16.py), RESHAPE (reshape16.py), DEQUANTIZE int16 -> float32
(dequantize16.py: the float32 bits built from integers).

Each case is one op in a .tflite built by host_sim/oracle/tflm.py, converted by the importer;
TFLM's outputs on random inputs over the whole range are the reference. All cases of a file run
in one interpreter process (one boot on the emulated boards)."""

from __future__ import annotations

import json
from functools import cache

import numpy as np

from converter.tflite_import import import_tflite
from converter.writer import serialize
from host_sim.interpreters import run
from host_sim.oracle import tflm

from .test_int16 import Diff, _x16, check_against_tflm, make_cases
from .test_new_ops import _tflm_slice_shape
from .test_new_ops_more import DEQUANTIZE_SCRIPT

ACTS = ("NONE", "RELU", "RELU6", "RELU_N1_TO_1")


def pool_case(rnd: np.random.Generator, k: int) -> Diff:
    """AVERAGE_POOL_2D (even k) or MAX_POOL_2D: filter, strides, padding, activation drawn."""
    op = "AVERAGE_POOL_2D" if k % 2 == 0 else "MAX_POOL_2D"
    fh, fw = int(rnd.integers(1, 4)), int(rnd.integers(1, 4))
    h, w, c = int(rnd.integers(fh, 8)), int(rnd.integers(fw, 8)), int(rnd.integers(1, 5))
    sh, sw = int(rnd.integers(1, 3)), int(rnd.integers(1, 3))
    padding = "SAME" if (k // 2) % 2 else "VALID"
    act = ACTS[(k // 4) % 4]
    scale = float(rnd.uniform(1e-4, 1e-3))
    oh = -(-h // sh) if padding == "SAME" else (h - fh) // sh + 1
    ow = -(-w // sw) if padding == "SAME" else (w - fw) // sw + 1
    T = tflm.TTensor
    tensors = [T("x", (1, h, w, c), "int16", scale, 0), T("y", (1, oh, ow, c), "int16", scale, 0)]
    opts = {"padding": padding, "stride_h": sh, "stride_w": sw, "filter_height": fh,
            "filter_width": fw, "fused_activation_function": act}
    model = tflm.build_tflite(tensors, [tflm.TOp(op, [0], [1], opts)], [0], [1])
    return Diff(f"{op} {k}: x {(h, w, c)} f{(fh, fw)} s{(sh, sw)} {padding} {act}", model,
                [[_x16(rnd, (1, h, w, c))] for _ in range(2)])


def depthwise_case(rnd: np.random.Generator, k: int) -> Diff:
    """DEPTHWISE_CONV_2D 16x8: shapes, depth multiplier, strides, dilations, padding,
    activation, per-channel scales and an int64 bias (large in some cases)."""
    c, dm = int(rnd.integers(1, 4)), int(rnd.integers(1, 3))
    oc = c * dm
    kh, kw = int(rnd.integers(1, 4)), int(rnd.integers(1, 4))
    h, w = int(rnd.integers(kh, 7)), int(rnd.integers(kw, 7))
    stride = (int(rnd.integers(1, 3)), int(rnd.integers(1, 3)))
    dil = (1, 1) if k % 3 else (int(rnd.integers(1, 3)), int(rnd.integers(1, 3)))
    padding = "SAME" if k % 2 else "VALID"
    if padding == "VALID":
        h, w = max(h, (kh - 1) * dil[0] + 1), max(w, (kw - 1) * dil[1] + 1)
    act = ACTS[k % 4]
    x_scale = float(rnd.uniform(1e-4, 1e-2))
    w_scale = [float(s) for s in rnd.uniform(1e-3, 2e-2, size=oc)]
    y_scale = float(x_scale * max(w_scale) * np.sqrt(kh * kw) * rnd.uniform(2.0, 40.0))
    wts = rnd.integers(-127, 128, size=(1, kh, kw, oc), dtype=np.int64).astype(np.int8)
    bias_max = [1 << 20, 1 << 30, 1 << 40][k % 3]
    bias = rnd.integers(-bias_max, bias_max, size=oc, dtype=np.int64)
    T = tflm.TTensor
    tensors = [T("x", (1, h, w, c), "int16", x_scale, 0),
               T("w", wts.shape, "int8", w_scale, 0, 3, wts),
               T("b", (oc,), "int64", [x_scale * s for s in w_scale], 0, 0, bias)]
    oh = -(-h // stride[0]) if padding == "SAME" else (h - (kh - 1) * dil[0] - 1) // stride[0] + 1
    ow = -(-w // stride[1]) if padding == "SAME" else (w - (kw - 1) * dil[1] - 1) // stride[1] + 1
    tensors.append(T("y", (1, oh, ow, oc), "int16", y_scale, 0))
    opts = {"padding": padding, "stride_h": stride[0], "stride_w": stride[1],
            "dilation_h_factor": dil[0], "dilation_w_factor": dil[1], "depth_multiplier": dm,
            "fused_activation_function": act}
    model = tflm.build_tflite(tensors, [tflm.TOp("DEPTHWISE_CONV_2D", [0, 1, 2], [3], opts)],
                              [0], [3])
    return Diff(f"DEPTHWISE_CONV_2D {k}: x {(h, w, c)} w {wts.shape} {padding} s{stride} "
                f"d{dil} {act} |b|<{bias_max}", model,
                [[_x16(rnd, (1, h, w, c))] for _ in range(2)])


def quantize_case(rnd: np.random.Generator, k: int) -> Diff:
    """QUANTIZE int8 -> int16, int16 -> int8, int16 -> int16, with scale ratios around 1 and
    far from it (saturating ones included)."""
    src, dst = (("int8", "int16"), ("int16", "int8"), ("int16", "int16"))[k % 3]
    shape = tuple(int(d) for d in rnd.integers(1, 6, size=int(rnd.integers(1, 4))))
    x_scale = float(rnd.uniform(1e-4, 1e-2)) if src == "int16" else float(rnd.uniform(0.01, 0.1))
    ratio = float(np.exp(rnd.uniform(-4, 4)))
    if src == "int16" and dst == "int8":
        ratio = float(rnd.uniform(1e-3, 1e-1))
    elif src == "int8" and dst == "int16":
        ratio = float(rnd.uniform(10, 3000))
    y_scale = x_scale / ratio
    x_zp = int(rnd.integers(-128, 128)) if src == "int8" else 0
    y_zp = int(rnd.integers(-128, 128)) if dst == "int8" else 0
    T = tflm.TTensor
    tensors = [T("x", shape, src, x_scale, x_zp), T("y", shape, dst, y_scale, y_zp)]
    model = tflm.build_tflite(tensors, [tflm.TOp("QUANTIZE", [0], [1])], [0], [1])
    if src == "int16":
        xs = [[_x16(rnd, shape)] for _ in range(2)]
    else:
        xs = [[rnd.integers(-128, 128, size=shape).astype(np.int8)] for _ in range(2)]
    return Diff(f"QUANTIZE {k}: {src} -> {dst} {shape} ratio {ratio:.4g}", model, xs)


def leaky_relu_case(rnd: np.random.Generator, k: int) -> Diff:
    """LEAKY_RELU int16: alpha in [0, 1) (0 in one case), output scale around the input's."""
    shape = tuple(int(d) for d in rnd.integers(1, 6, size=int(rnd.integers(1, 4))))
    alpha = 0.0 if k == 0 else float(rnd.uniform(0.01, 0.99))
    x_scale = float(rnd.uniform(1e-4, 1e-2))
    y_scale = x_scale * float(np.exp(rnd.uniform(-1.5, 1.5)))
    T = tflm.TTensor
    tensors = [T("x", shape, "int16", x_scale, 0), T("y", shape, "int16", y_scale, 0)]
    model = tflm.build_tflite(tensors, [tflm.TOp("LEAKY_RELU", [0], [1], {"alpha": alpha})],
                              [0], [1])
    return Diff(f"LEAKY_RELU {k}: {shape} alpha {alpha:.3f} y/x {y_scale / x_scale:.3f}", model,
                [[_x16(rnd, shape)] for _ in range(2)])


def add_case(rnd: np.random.Generator, k: int) -> Diff:
    """ADD int16: equal shapes or broadcast ones, scales drawn (equal in some cases),
    activation drawn."""
    r = int(rnd.integers(1, 5))
    shape = tuple(int(d) for d in rnd.integers(1, 4, size=r))
    other = shape if k % 3 == 0 else tuple(1 if rnd.random() < 0.5 else d for d in shape)
    if k % 2:
        shape, other = other, shape
    out = tuple(int(d) for d in np.broadcast_shapes(shape, other))
    s1 = float(rnd.uniform(1e-4, 1e-3))
    s2 = s1 if k % 4 == 0 else float(rnd.uniform(1e-4, 1e-3))
    so = max(s1, s2) * float(rnd.uniform(0.5, 3.0))
    T = tflm.TTensor
    tensors = [T("a", shape, "int16", s1, 0), T("b", other, "int16", s2, 0),
               T("y", out, "int16", so, 0)]
    op = tflm.TOp("ADD", [0, 1], [2], {"fused_activation_function": ACTS[k % 4]})
    model = tflm.build_tflite(tensors, [op], [0, 1], [2])
    xs = [[_x16(rnd, shape), _x16(rnd, other)] for _ in range(2)]
    xs[0][0][...] = -32768  # the extremes: x * 2^15 = -2^30
    xs[0][1][...] = -32768
    return Diff(f"ADD {k}: {shape} + {other} {ACTS[k % 4]}", model, xs)


def softmax_case(rnd: np.random.Generator, k: int) -> Diff:
    """SOFTMAX int16 (output scale 1/32768): depth, input scale and beta drawn, inputs over
    the whole int16 range and (odd k) close together."""
    shape = (int(rnd.integers(1, 4)), int(rnd.integers(1, 40)))
    x_scale = float(rnd.uniform(1e-4, 2e-3))
    beta = 1.0 if k % 3 else float(rnd.uniform(0.3, 2.0))
    T = tflm.TTensor
    tensors = [T("x", shape, "int16", x_scale, 0), T("y", shape, "int16", 1.0 / 32768, 0)]
    model = tflm.build_tflite(tensors, [tflm.TOp("SOFTMAX", [0], [1], {"beta": beta})], [0],
                              [1])
    xs = [[_x16(rnd, shape)] for _ in range(2)]
    if k % 2:
        xs[1][0] = (xs[1][0] // 16).astype(np.int16)
    return Diff(f"SOFTMAX {k}: {shape} scale {x_scale:.2e} beta {beta:.2f}", model, xs)


def movement_case(rnd: np.random.Generator, k: int) -> Diff:
    """STRIDED_SLICE (masks, negative strides), SLICE and TRANSPOSE on int16 (kernels/copy16.py:
    the strided-copy kernel's moves on byte pairs)."""
    op = ("STRIDED_SLICE", "SLICE", "TRANSPOSE")[k % 3]
    x = tuple(int(d) for d in rnd.integers(1, 6, size=int(rnd.integers(1, 5))))
    ix = np.arange(int(np.prod(x))).reshape(x)
    opts: dict = {}
    if op == "TRANSPOSE":
        perm = [int(p) for p in rnd.permutation(len(x))]
        consts, y = [perm], np.transpose(ix, perm).shape
    elif op == "SLICE":
        begin = [int(rnd.integers(0, d)) for d in x]
        size = [int(rnd.integers(1, d - b + 1)) if rnd.random() < 0.7 else -1
                for b, d in zip(begin, x)]
        consts, y = [begin, size], tuple(d - b if z == -1 else z
                                         for b, z, d in zip(begin, size, x))
    else:
        while True:
            begin = [int(rnd.integers(-d - 1, d + 1)) for d in x]
            end = [int(rnd.integers(-d - 1, d + 2)) for d in x]
            strides = [int(rnd.choice([-2, -1, 1, 1, 2, 3])) for _ in x]
            bm, em, sm = (int(rnd.integers(0, 1 << len(x))) for _ in range(3))
            strides = [abs(v) if sm >> d & 1 else v for d, v in enumerate(strides)]
            y = _tflm_slice_shape(x, begin, end, strides, bm, em, sm)
            if y and min(y) > 0:
                break
        consts = [begin, end, strides]
        opts = {"begin_mask": bm, "end_mask": em, "shrink_axis_mask": sm}
    T = tflm.TTensor
    tensors = [T("x", x, "int16", 0.001, 0)]
    tensors += [T(f"c{i}", (len(c),), "int32", None, 0, 0, np.array(c, np.int32))
                for i, c in enumerate(consts)]
    tensors.append(T("y", tuple(y), "int16", 0.001, 0))
    n = len(tensors)
    model = tflm.build_tflite(tensors, [tflm.TOp(op, list(range(n - 1)), [n - 1], opts)], [0],
                              [n - 1])
    return Diff(f"{op} {k}: {x} -> {tuple(y)}", model, [[_x16(rnd, x)]])


def reshape_case(rnd: np.random.Generator, k: int) -> Diff:
    shape = tuple(int(d) for d in rnd.integers(1, 5, size=int(rnd.integers(1, 5))))
    n = int(np.prod(shape))
    new = (n,) if k % 2 else (1, n, 1)
    T = tflm.TTensor
    shp = np.array(new, np.int32)
    tensors = [T("x", shape, "int16", 0.001, 0), T("s", shp.shape, "int32", None, 0, 0, shp),
               T("y", new, "int16", 0.001, 0)]
    model = tflm.build_tflite(tensors, [tflm.TOp("RESHAPE", [0, 1], [2])], [0], [2])
    return Diff(f"RESHAPE {k}: {shape} -> {new}", model, [[_x16(rnd, shape)]])


CASES = {"POOL": (pool_case, 16), "QUANTIZE": (quantize_case, 12), "RESHAPE": (reshape_case, 4),
         "DEPTHWISE_CONV_2D": (depthwise_case, 18), "LEAKY_RELU": (leaky_relu_case, 8),
         "ADD": (add_case, 16), "SOFTMAX": (softmax_case, 12),
         "MOVEMENT": (movement_case, 18)}


@cache
def diff_cases() -> tuple[list[Diff], list[list[list[np.ndarray]]]]:
    return make_cases(CASES, 1614)


def test_int16_ops_match_tflite_micro(interpreter):
    counts = check_against_tflm(*diff_cases(), interpreter)
    assert counts == {"AVERAGE_POOL_2D": 8, "MAX_POOL_2D": 8, "QUANTIZE": 12, "RESHAPE": 4,
                      "DEPTHWISE_CONV_2D": 18, "LEAKY_RELU": 8, "ADD": 16,
                      "SOFTMAX": 12, "STRIDED_SLICE": 6, "SLICE": 6, "TRANSPOSE": 6}


def test_cases_reach_saturation_and_clamps():
    """The references are not trivial: QUANTIZE saturates in some cases and not in others."""
    cases, refs = diff_cases()
    sat = [bool(np.isin(np.asarray(r[0][0]), (-128, 127, -32768, 32767)).any())
           for c, r in zip(cases, refs) if c.what.startswith("QUANTIZE")]
    assert any(sat) and not all(sat)


@cache
def dequantize16_cases() -> tuple[dict, list[np.ndarray]]:
    """DEQUANTIZE int16 -> float32: scales over 1e-7..100, x = the extremes, 0, +-1 and random
    values (float32 rounding ties included: |x| * significand often has > 24 bits)."""
    rnd = np.random.default_rng(1615)
    files, wants = {}, []
    for k in range(6):
        scale = float(np.float32(np.exp(rnd.uniform(np.log(1e-7), np.log(100.0)))))
        x = np.concatenate([[-32768, 32767, 0, 1, -1], rnd.integers(-32768, 32768, 507)])
        x = x.astype(np.int16).reshape((2, 256) if k % 2 else (512,))
        T = tflm.TTensor
        tfl = tflm.build_tflite([T("x", x.shape, "int16", scale, 0), T("y", x.shape, "float32")],
                                [tflm.TOp("DEQUANTIZE", [0], [1])], [0], [1])
        wants.append(tflm.run_tflm(tfl, [x])[0].ravel())
        files[f"m{k}.trt"] = serialize(import_tflite(tfl))
        files[f"x{k}.json"] = str(x.ravel().tolist())
    return files, wants


def test_dequantize16_matches_tflm(interpreter):
    files, wants = dequantize16_cases()
    r = run(DEQUANTIZE_SCRIPT.replace("N", str(len(wants))), interpreter, files=files)
    lines = r.stdout.strip().split("\n")
    assert len(lines) == len(wants), r.stdout[-2000:] + r.stderr[-2000:]
    for line, want in zip(lines, wants):
        raw = json.loads(line)[0]
        got = np.array(raw, np.int64).astype(np.uint8).view("<i4")
        np.testing.assert_array_equal(got, want.view("<i4"), err_msg=interpreter)
