"""SVDF, int8 (kernel mp_runtime/tinyrt/kernels/svdf.py; TFLM svdf.cc ->
EvalIntegerSvdfReference): a feature projection into a state that slides over time, then a
time projection summed over `rank` filters per unit.

  inputs  [x int8 (B, I), weights_feature int8 (F, I), weights_time int16 | int8 (F, M),
           bias int32 (U) or absent, state int16 | int8 (B, F M) (variable: kept across
           invoke()s, zero point at reset), requant int32 (2, 3)]
          F = U * rank; the state's dtype is weights_time's (TFLM reads both as T)
  outputs [y int8 (B, U)]
  params  [rank]
requant rows (M >> 15, M & 0x7FFF, shift) of QuantizeMultiplier(double(float32(s_x s_wf / s_st)))
and QuantizeMultiplier(double(float32(s_st s_wt / s_y))), the float32 products TFLM's Prepare
forms. Per invoke, as TFLM:
  state[b, f, :] shifts one step left; state[b, f, M - 1] = T(zp_st + clamp_T(MBQM(sum_i
      wf[f, i] (x[b, i] - zp_x), M1)))           (T() wraps, as TFLM's cast)
  y[b, u] = clamp8(MBQM(wrap32(bias[u] + sum_{k < rank} sum_m wt[f, m] (state[b, f, m]
      - zp_st)), M2) + zp_y),  f = u rank + k
"""

from __future__ import annotations

import numpy as np

from tinyrt import opcodes

from ..graph import Graph
from ..quantization import SMALL_INT_LIMIT, requant_rows
from .elementwise import check_zero_point

TERMS_LIMIT = 127  # rank * M products per output: the kernel's limb sums stay below 2^30


def svdf(g: Graph, x: int, weights_feature: np.ndarray, wf_scale: float,
         weights_time: np.ndarray, wt_scale: float, bias: np.ndarray | None, rank: int,
         state_scale: float, state_zero_point: int, state_dtype: str, out_scale: float,
         out_zero_point: int, name: str = "svdf") -> int:
    xt = g.tensors[x]
    wf = np.asarray(weights_feature, np.int8)
    wt = np.asarray(weights_time, np.int16 if state_dtype == "int16" else np.int8)
    if len(xt.shape) != 2 or wf.ndim != 2 or wf.shape[1] != xt.shape[1] or wt.ndim != 2 \
            or wt.shape[0] != wf.shape[0] or rank < 1 or wf.shape[0] % rank:
        raise ValueError(f"{name}: input {xt.shape}, weights_feature {wf.shape}, weights_time "
                         f"{wt.shape}, rank {rank}: expected (B, I), (F, I), (F, M), F % rank 0")
    if state_dtype not in ("int8", "int16"):
        raise ValueError(f"{name}: state is {state_dtype}, expected int8 or int16")
    check_zero_point(out_zero_point, name)
    lim = 1 << (15 if state_dtype == "int16" else 7)
    if not -lim <= state_zero_point < lim:
        raise ValueError(f"{name}: state zero point {state_zero_point} is no {state_dtype}")
    b, n_in = xt.shape
    f, m = wt.shape
    units = f // rank
    if n_in * 255 * 128 >= SMALL_INT_LIMIT or rank * m > TERMS_LIMIT:
        raise ValueError(f"{name}: {n_in} inputs or rank * memory {rank * m} beyond the "
                         f"kernel's 31-bit bounds ({SMALL_INT_LIMIT // 32640}, {TERMS_LIMIT})")
    f32 = np.float32
    s1 = float(f32(f32(xt.scale) * f32(wf_scale)) / f32(state_scale))
    s2 = float(f32(f32(state_scale) * f32(wt_scale)) / f32(out_scale))
    rows = np.concatenate([requant_rows([s1]), requant_rows([s2])])
    wfi = g.add_const(name + "/weights_feature", wf, "int8", wf_scale)
    wti = g.add_const(name + "/weights_time", wt, state_dtype, wt_scale)
    bi = -1
    if bias is not None:
        bv = np.asarray(bias, np.int32).ravel()
        if bv.size != units:
            raise ValueError(f"{name}: bias has {bv.size} values for {units} units")
        bi = g.add_const(name + "/bias", bv, "int32")
    qi = g.add_const(name + "/requant", rows, "int32")
    st = g.add_activation(name + "/state", (b, f * m), state_scale, state_zero_point,
                          state_dtype)
    g.tensors[st].variable = True
    y = g.add_activation(name + "/out", (b, units), out_scale, out_zero_point)
    g.add_op(opcodes.SVDF, [x, wfi, wti, bi, st, qi], [y], [rank])
    return y
