"""The converter's model graph: tensors with quantization, operators with integer params."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tinyrt import fileformat as ff
from tinyrt import opcodes

DTYPE_CODES = {"int8": ff.INT8, "int16": ff.INT16, "int32": ff.INT32, "float32": ff.FLOAT32,
               "packed": ff.PACKED}
NUMPY_DTYPES = {"int8": np.int8, "int16": np.int16, "int32": np.int32, "float32": np.float32,
                "packed": np.int32}


@dataclass
class Tensor:
    name: str
    shape: tuple[int, ...]
    dtype: str = "int8"
    scale: float = 1.0  # per-tensor scale, or the first channel's when per_channel
    zero_point: int = 0
    data: np.ndarray | None = None  # constant tensors only (stored bytes, see stored_bytes)
    per_channel: bool = False
    variable: bool = False  # state kept across invokes (LSTM): own arena space, reset to zp
    view_of: tuple[int, int] | None = None  # (arena tensor, byte offset): a range of its bytes

    @property
    def is_const(self) -> bool:
        return self.data is not None

    @property
    def nbytes(self) -> int:
        return ff.stored_bytes(DTYPE_CODES[self.dtype], tuple(self.shape))


@dataclass
class Op:
    opcode: int
    inputs: list[int]  # tensor indices; -1 for an absent optional input
    outputs: list[int]
    params: list[int] = field(default_factory=list)

    @property
    def name(self) -> str:
        return opcodes.name(self.opcode)


@dataclass
class Graph:
    tensors: list[Tensor] = field(default_factory=list)
    ops: list[Op] = field(default_factory=list)
    inputs: list[int] = field(default_factory=list)
    outputs: list[int] = field(default_factory=list)
    metadata: dict = field(default_factory=dict)

    def strip_names(self) -> None:
        """Drop every tensor name but the model inputs' and outputs' (names are RAM on a board:
        6 KB of kws_ref_model's file; summary() and info then show tensor indices)."""
        keep = set(self.inputs) | set(self.outputs)
        for i, t in enumerate(self.tensors):
            if i not in keep:
                t.name = ""

    def add_tensor(self, t: Tensor) -> int:
        if len(t.shape) > ff.MAX_DIMS:
            raise ValueError(f"tensor {t.name!r}: {len(t.shape)} dims, at most {ff.MAX_DIMS}")
        self.tensors.append(t)
        return len(self.tensors) - 1

    def add_activation(self, name: str, shape, scale: float, zero_point: int,
                       dtype: str = "int8") -> int:
        return self.add_tensor(Tensor(name, tuple(int(d) for d in shape), dtype,
                                      float(np.float32(scale)), int(zero_point)))

    def add_const(self, name: str, data: np.ndarray, dtype: str | None = None,
                  scale: float = 1.0, zero_point: int = 0, per_channel: bool = False) -> int:
        dtype = dtype or str(np.asarray(data).dtype)
        arr = np.ascontiguousarray(data, dtype=NUMPY_DTYPES[dtype])
        return self.add_tensor(Tensor(name, tuple(int(d) for d in arr.shape) or (1,), dtype,
                                      float(np.float32(scale)), int(zero_point), arr,
                                      per_channel))

    def add_op(self, opcode: int, inputs: list[int], outputs: list[int],
               params: list[int] | None = None) -> Op:
        op = Op(opcode, list(inputs), list(outputs), [int(p) for p in (params or [])])
        self.ops.append(op)
        return op
