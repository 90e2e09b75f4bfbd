"""A latency cost model for `tinyrt search`: instructions per invoke on the emulated Cortex-M0
predicted from a model file's layer shapes alone, before anything is trained.

Per operator kind (CONV_2D, FULLY_CONNECTED_LUT, BCONV_2D, MAX_POOL_2D, ...) the instructions
of one layer are fitted as a + b * MACs + c * output elements + d * input elements (least
squares, coefficients kept >= 0) on the per-layer counts of candidates measured on m0 (the
search measures every candidate there; the first ones calibrate). An operator kind never
measured falls back to a fit over all layers. The search uses the prediction to skip, before
training, children that would break the latency budget, and reports the model's error on the
candidates measured after calibration.
"""

from __future__ import annotations

import numpy as np

def _features(layer: dict) -> list[float]:
    return [1.0, float(layer["macs"]), float(layer["out"]), float(layer["in"])]


def _nnls(a: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least squares with coefficients >= 0 (active set by repeated clipping: 4 unknowns)."""
    free = np.ones(a.shape[1], bool)
    coef = np.zeros(a.shape[1])
    for _ in range(a.shape[1] + 1):
        c, *_ = np.linalg.lstsq(a[:, free], y, rcond=None)
        coef[:] = 0
        coef[free] = c
        if (c >= 0).all():
            break
        free[np.flatnonzero(free)[c < 0]] = False
    return coef


class CostModel:
    """Per-op linear models of m0 instructions; `overhead` is invoke()'s own cost."""

    def __init__(self, per_op: dict[str, np.ndarray], fallback: np.ndarray, overhead: float,
                 n_candidates: int):
        self.per_op, self.fallback, self.overhead = per_op, fallback, overhead
        self.n_candidates = n_candidates

    @classmethod
    def fit(cls, measured: list[dict]) -> CostModel:
        """Calibrate on candidates measured on m0 (each with "layers": op, macs, in, out,
        instructions, and "instructions_per_invoke")."""
        rows = [la for m in measured for la in m["layers"]]
        per_op = {}
        for op in sorted({la["op"] for la in rows}):
            mine = [la for la in rows if la["op"] == op]
            a = np.array([_features(la) for la in mine])
            per_op[op] = _nnls(a, np.array([la["instructions"] for la in mine], float))
        a = np.array([_features(la) for la in rows])
        fallback = _nnls(a, np.array([la["instructions"] for la in rows], float))
        over = [m["instructions_per_invoke"] - sum(la["instructions"] for la in m["layers"])
                for m in measured]
        return cls(per_op, fallback, float(np.median(over)) if over else 0.0, len(measured))

    def predict(self, layers: list[dict]) -> int:
        """Predicted instructions per invoke of a model with these layers (layer_shapes)."""
        total = self.overhead
        for la in layers:
            coef = self.per_op.get(la["op"], self.fallback)
            total += float(np.dot(coef, _features(la)))
        return int(round(total))

    def error(self, measured: list[dict]) -> dict:
        """Relative error of the predictions on candidates measured on m0."""
        if not measured:
            return {"n": 0, "mean_abs_pct": None, "max_abs_pct": None}
        rel = [abs(self.predict(m["layers"]) - m["instructions_per_invoke"])
               / m["instructions_per_invoke"] for m in measured]
        return {"n": len(rel), "mean_abs_pct": 100 * float(np.mean(rel)),
                "max_abs_pct": 100 * float(np.max(rel))}

    def to_json(self) -> dict:
        return {"calibrated_on": self.n_candidates, "overhead": self.overhead,
                "features": ["1", "macs", "out_elements", "in_elements"],
                "per_op": {k: [round(float(v), 4) for v in c] for k, c in self.per_op.items()}}
