"""TFLM's LUT-compressed models: the TFLM_DECODE custom operator (tflite-micro's compression
tooling, tensorflow/lite/micro/compression; kernels/decode_state_lut.cc) decoded at import.

A DECODE op reads pairs (encoded tensor, ancillary tensor) and writes one decoded tensor per pair.
The ancillary tensor starts with the 16-byte DECODE Common Metadata: byte 0 decode type (0 LUT,
1 Huffman, 2 pruning), byte 1 DCM version (1); for LUT byte 4 the LUT version (1), byte 5 the
index width (low 3 bits, 1..7), byte 6 the value-table stride (entries per channel); the value
tables follow from byte 16, one per channel, in the output's dtype (little-endian). Indices are
packed MSB-first (big-endian bit order), one after the other across channels. Channels are
those of the output's quantization: axis 0 (elements_per_channel = count / channels, each
channel's run uses its own table), or the last axis (each element's channel cycles), as the
kernel does; an unquantized or per-tensor output uses the one table.

Every encoded constant is expanded to its values here, so the model then converts as any int8
model and runs bit-exact with TFLM; `tinyrt compress --cluster B` stores it again as B-bit
indices + codebook per layer, losslessly when each layer has at most 2^B distinct values.
"""

from __future__ import annotations

import numpy as np

from .tflite_reader import TflModel, UnsupportedModelError

DECODE_OP = "CUSTOM(TFLM_DECODE)"
DCM_BYTES = 16
_TYPES = {0: "LUT", 1: "Huffman", 2: "pruning"}


def decode_lut(encoded: np.ndarray, ancillary: np.ndarray, shape: tuple[int, ...],
               dtype: str, channels: int, last_axis: bool) -> np.ndarray:
    """TFLM DecodeStateLut: the decoded tensor (shape, dtype) from its encoded indices and
    ancillary data (uint8 arrays)."""
    anc = np.asarray(ancillary, np.uint8).ravel()
    if anc.size < DCM_BYTES:
        raise ValueError(f"ancillary data of {anc.size} bytes, the DCM alone has {DCM_BYTES}")
    kind, version = int(anc[0]), int(anc[1])
    if kind != 0:
        raise ValueError(f"decode type {kind} ({_TYPES.get(kind, 'custom')}): tinyrt imports "
                         "LUT (type 0) only")
    if version != 1 or anc[4] != 1:
        raise ValueError(f"DCM version {version}, LUT version {anc[4]}: expected 1 and 1")
    bits, stride = int(anc[5]) & 7, int(anc[6])
    if bits == 0:
        raise ValueError("LUT index width 0")
    np_dtype = np.dtype(dtype).newbyteorder("<")
    n = int(np.prod(shape))
    tables = np.frombuffer(anc[DCM_BYTES:].tobytes(), np_dtype,
                           count=(anc.size - DCM_BYTES) // np_dtype.itemsize)
    packed = np.unpackbits(np.asarray(encoded, np.uint8).ravel())  # MSB first
    if packed.size < n * bits:
        raise ValueError(f"{n} indices of {bits} bits need {(n * bits + 7) // 8} bytes, the "
                         f"encoded tensor has {packed.size // 8}")
    idx = packed[: n * bits].reshape(n, bits) @ (1 << np.arange(bits - 1, -1, -1))
    pos = np.arange(n)
    chan = pos % channels if last_axis else pos // max(1, n // channels)
    entry = chan * stride + idx
    if idx.max(initial=0) >= max(stride, 1) or entry.max(initial=0) >= tables.size:
        raise ValueError(f"an index points past its value table ({stride} entries per "
                         f"channel, {tables.size} in all)")
    return tables[entry].astype(np_dtype.newbyteorder("=")).reshape(shape)


def decode_tflm_ops(m: TflModel) -> int:
    """Expand every TFLM_DECODE op of `m` into constant data of its outputs (the ops are
    removed). Returns how many ops there were. Raises UnsupportedModelError."""
    kept, n = [], 0
    for op in m.ops:
        if op.name != DECODE_OP:
            kept.append(op)
            continue
        n += 1
        if len(op.inputs) != 2 * len(op.outputs) or not op.outputs:
            raise UnsupportedModelError(f"{op.describe()}: {len(op.inputs)} inputs for "
                                        f"{len(op.outputs)} outputs, expected 2 per output")
        for k, out in enumerate(op.outputs):
            enc, anc, t = (m.tensors[op.inputs[2 * k]], m.tensors[op.inputs[2 * k + 1]],
                           m.tensors[out])
            if enc.data is None or anc.data is None:
                raise UnsupportedModelError(f"{op.describe()}: encoded tensor {enc.index} "
                                            "and its ancillary data must be constant")
            channels = t.scales.size if t.scales is not None else 1
            last = channels > 1 and t.quantized_dimension == len(t.shape) - 1
            if channels > 1 and not last and t.quantized_dimension != 0:
                raise UnsupportedModelError(f"{t.describe()}: channels on axis "
                                            f"{t.quantized_dimension}, TFLM decodes axis 0 or "
                                            "the last")
            try:
                t.data = decode_lut(enc.data.view(np.uint8), anc.data.view(np.uint8),
                                    t.shape, t.dtype, channels, last)
            except (ValueError, TypeError) as e:
                raise UnsupportedModelError(f"{op.describe()}: {t.describe()}: {e}") from None
    m.ops = kept
    return n
