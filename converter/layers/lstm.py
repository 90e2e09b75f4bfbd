"""UNIDIRECTIONAL_SEQUENCE_LSTM, int8 activations with int16 cell state, as TensorFlow Lite
Micro's integer LSTM computes it (kernels/lstm_eval.h, lstm_eval_common.cc): every multiplier,
shift, folded bias and clamp its Prepare derives from float scales is computed here, so the
kernel (mp_runtime/tinyrt/kernels/lstm.py) runs on integers only.

Device op (opcode 44, TFLite's):
  inputs  [x int8 (B, T, I) or time-major (T, B, I),
           w_in int8 (4, S, I)   gates in TFLite's order: input, forget, cell, output,
           w_rec int8 (4, S, S),
           bias int32 (8, S)     row 2g: gate g's bias with the input zero point folded in,
                                 bias - x_zp * sum_i w_in[g, o, i]; row 2g + 1: the hidden
                                 state's, -h_zp * sum_j w_rec[g, o, j] (TFLM's recurrent FC
                                 has no bias),
           requant int32 (11, 3) rows (M >> 15, M & 0x7FFF, shift): 2g the input FC of gate g,
                                 2g + 1 its recurrent FC (both to the gates' int16 Q3.12),
                                 8 forget x cell -> cell, 9 input x cell gate -> cell,
                                 10 tanh(cell) x output gate -> hidden (int8),
           table int32 (256,)    TFLM's sigmoid_table_uint16 (sigmoid and tanh interpolate it),
           h int8 (B, S) VARIABLE   hidden state (zero point h_zp), kept across invokes,
           c int16 (B, S) VARIABLE  cell state (zero point 0), kept across invokes]
  outputs [y int8 (x's leading dims, S): the hidden state after each step]
  params  [time_major, cell_clip (0: none, else the int16 clip bound), tanh_multiplier,
           tanh_shift (TFLM's tanh of the cell state, from its scale's power of two)]

TFLM supports only the standard LSTM in micro (lstm_eval.cc ValidateTensorStatus): no CIFG,
peephole, projection or layer norm; per-tensor weights (its gate FCs read the per-tensor
multiplier only). The importer refuses the rest.
"""

from __future__ import annotations

import math

import numpy as np

from tinyrt import opcodes

from ..graph import Graph
from ..quantization import SMALL_INT_LIMIT, quantize_multiplier, requant_rows
from .common import f32

GATES = ("input", "forget", "cell", "output")
GATE_SCALE = 2.0 ** -12  # TFLM: the gate FCs' int16 output is Q3.12 (sigmoid/tanh input)
ACT_SCALE = 2.0 ** -15  # and sigmoid/tanh give Q0.15
INT16_MIN, INT16_MAX = -32768, 32767

# TFLM's sigmoid_table_uint16 (tensorflow/lite/kernels/internal/common.h): sigmoid(i / 24) in
# 0.16 fixed point, tuned for linear interpolation, so not a rounding of the formula; the int16
# LOGISTIC and TANH kernels interpolate in it.
SIGMOID_TABLE = (
    32768, 33451, 34133, 34813, 35493, 36169, 36843, 37513, 38180, 38841, 39498, 40149, 40794,
    41432, 42064, 42688, 43304, 43912, 44511, 45102, 45683, 46255, 46817, 47369, 47911, 48443,
    48964, 49475, 49975, 50464, 50942, 51409, 51865, 52311, 52745, 53169, 53581, 53983, 54374,
    54755, 55125, 55485, 55834, 56174, 56503, 56823, 57133, 57433, 57724, 58007, 58280, 58544,
    58800, 59048, 59288, 59519, 59743, 59959, 60168, 60370, 60565, 60753, 60935, 61110, 61279,
    61441, 61599, 61750, 61896, 62036, 62172, 62302, 62428, 62549, 62666, 62778, 62886, 62990,
    63090, 63186, 63279, 63368, 63454, 63536, 63615, 63691, 63765, 63835, 63903, 63968, 64030,
    64090, 64148, 64204, 64257, 64308, 64357, 64405, 64450, 64494, 64536, 64576, 64614, 64652,
    64687, 64721, 64754, 64786, 64816, 64845, 64873, 64900, 64926, 64950, 64974, 64997, 65019,
    65039, 65060, 65079, 65097, 65115, 65132, 65149, 65164, 65179, 65194, 65208, 65221, 65234,
    65246, 65258, 65269, 65280, 65291, 65301, 65310, 65319, 65328, 65337, 65345, 65352, 65360,
    65367, 65374, 65381, 65387, 65393, 65399, 65404, 65410, 65415, 65420, 65425, 65429, 65433,
    65438, 65442, 65445, 65449, 65453, 65456, 65459, 65462, 65465, 65468, 65471, 65474, 65476,
    65479, 65481, 65483, 65485, 65488, 65489, 65491, 65493, 65495, 65497, 65498, 65500, 65501,
    65503, 65504, 65505, 65507, 65508, 65509, 65510, 65511, 65512, 65513, 65514, 65515, 65516,
    65517, 65517, 65518, 65519, 65520, 65520, 65521, 65522, 65522, 65523, 65523, 65524, 65524,
    65525, 65525, 65526, 65526, 65526, 65527, 65527, 65528, 65528, 65528, 65529, 65529, 65529,
    65529, 65530, 65530, 65530, 65530, 65531, 65531, 65531, 65531, 65531, 65532, 65532, 65532,
    65532, 65532, 65532, 65533, 65533, 65533, 65533, 65533, 65533, 65533, 65533, 65534, 65534,
    65534, 65534, 65534, 65534, 65534, 65534, 65534, 65534, 65535)


def _fc_row(name: str, in_scale: float, w_scale: float, bias: np.ndarray, k: int,
            what: str) -> tuple[int, int, int]:
    """TFLM's gate FC multiplier: GetQuantizedConvolutionMultipler forms the input x weight
    scale product in float32, then divides in double by the Q3.12 output scale. The int32
    accumulator (|bias| + k * 128 * 128) << left must stay a 31-bit small int."""
    real = float(np.float32(in_scale) * np.float32(w_scale)) / GATE_SCALE
    row = tuple(int(v) for v in requant_rows([real])[0])
    bound = (int(np.max(np.abs(bias))) + k * 128 * 128) << max(row[2], 0)
    if bound >= SMALL_INT_LIMIT:
        raise ValueError(f"{name}: {what} accumulator bound {bound} does not fit 31-bit small "
                         "ints on 32-bit boards")
    return row


def _mul_row(name: str, s1: float, s2: float, out: float, what: str) -> tuple[int, int, int]:
    """CreateInterGateMulParams: double(s1) * double(s2) / double(out). The kernel multiplies
    two int16 values (|product| <= 2^30 - 2^15) and needs no left shift."""
    real = float(f32(s1)) * float(f32(s2)) / float(f32(out))
    m, shift = quantize_multiplier(real)
    if shift > 0:
        raise ValueError(f"{name}: {what} multiplier {real} > 1 (cell state scale too small)")
    return (m >> 15, m & 0x7FFF, shift)


def cell_scale_power(cell_scale: float) -> int:
    """TFLM's CheckedLog2 of the cell state scale, in float32 (rounded; not checked exact)."""
    x = np.float32(np.log(np.float32(cell_scale))) * np.float32(1.0 / math.log(2.0))
    r = float(np.float32(x))
    return int(math.floor(abs(r) + 0.5)) * (1 if r >= 0 else -1)


def unidirectional_sequence_lstm(
        g: Graph, x: int, w_in: np.ndarray, w_in_scales, w_rec: np.ndarray, w_rec_scales,
        bias: np.ndarray, h_scale: float, h_zero_point: int, c_scale: float, out_scale: float,
        out_zero_point: int, cell_clip: float = 0.0, time_major: bool = False,
        state_names: tuple[str, str] = ("h", "c"), name: str = "lstm") -> int:
    """Add the LSTM; returns its output tensor. w_in int8 (4, S, I), w_rec int8 (4, S, S),
    scales one float32 per gate, bias int32 (4, S); gates in TFLite's order (GATES)."""
    xt = g.tensors[x]
    w_in = np.asarray(w_in, np.int8)
    w_rec = np.asarray(w_rec, np.int8)
    if xt.dtype != "int8" or len(xt.shape) != 3:
        raise ValueError(f"{name}: input {xt.dtype} {xt.shape}, expected int8 (B, T, I)")
    n_in = xt.shape[2]
    if w_in.ndim != 3 or w_in.shape[0] != 4 or w_in.shape[2] != n_in:
        raise ValueError(f"{name}: input weights {w_in.shape}, expected (4, S, {n_in})")
    s = w_in.shape[1]
    if w_rec.shape != (4, s, s):
        raise ValueError(f"{name}: recurrent weights {w_rec.shape}, expected (4, {s}, {s})")
    bias = np.asarray(bias, np.int64)
    if bias.shape != (4, s):
        raise ValueError(f"{name}: biases {bias.shape}, expected (4, {s})")
    batch = xt.shape[1] if time_major else xt.shape[0]
    folded = np.zeros((8, s), np.int64)
    rows = []
    for k in range(4):
        folded[2 * k] = bias[k] - xt.zero_point * w_in[k].astype(np.int64).sum(axis=1)
        folded[2 * k + 1] = -int(h_zero_point) * w_rec[k].astype(np.int64).sum(axis=1)
        rows.append(_fc_row(name, xt.scale, w_in_scales[k], folded[2 * k], n_in,
                            f"{GATES[k]} gate input"))
        rows.append(_fc_row(name, h_scale, w_rec_scales[k], folded[2 * k + 1], s,
                            f"{GATES[k]} gate recurrent"))
    rows.append(_mul_row(name, ACT_SCALE, c_scale, c_scale, "forget x cell"))
    rows.append(_mul_row(name, ACT_SCALE, ACT_SCALE, c_scale, "input x cell gate"))
    rows.append(_mul_row(name, ACT_SCALE, ACT_SCALE, h_scale, "tanh(cell) x output gate"))
    power = cell_scale_power(c_scale)
    shift = 15 + power - 3  # lstm_internal::Tanh: the cell state to Q3.12 for the table
    multiplier = 0
    if shift < 0:
        shift, multiplier = -shift, 3
    if multiplier == 0:  # reference_integer_ops::Tanh's power-of-two case
        multiplier, shift = 3 << shift, 0
    if shift > 13 or multiplier > 3 << 13:  # |c * multiplier| < 2^30
        raise ValueError(f"{name}: cell state scale {c_scale} (2^{power}) is outside what "
                         "TFLM's int16 tanh takes")
    clip = 0
    if cell_clip > 0:
        clip = int(min(max(float(np.float32(cell_clip)) / float(f32(c_scale)), -32768.0),
                       32767.0))  # static_cast<int16_t>: toward zero
    wi = g.add_const(name + "/input_weights", w_in, "int8", float(w_in_scales[0]))
    wr = g.add_const(name + "/recurrent_weights", w_rec, "int8", float(w_rec_scales[0]))
    bi = g.add_const(name + "/gate_biases", folded.astype(np.int32), "int32")
    qi = g.add_const(name + "/requant", np.array(rows, np.int32), "int32")
    ti = g.add_const(name + "/sigmoid_table", np.array(SIGMOID_TABLE, np.int32), "int32")
    h = g.add_activation(state_names[0], (batch, s), h_scale, h_zero_point)
    c = g.add_activation(state_names[1], (batch, s), c_scale, 0, "int16")
    g.tensors[h].variable = True
    g.tensors[c].variable = True
    y = g.add_activation(name, xt.shape[:2] + (s,), out_scale, out_zero_point)
    g.add_op(opcodes.UNIDIRECTIONAL_SEQUENCE_LSTM, [x, wi, wr, bi, qi, ti, h, c], [y],
             [int(time_major), clip, multiplier, shift])
    return y
