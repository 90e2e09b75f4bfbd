# Streaming weights: for models whose file does not fit the heap. Only the file's tables stay
# in RAM; before each operator runs, its constant tensors are read from the open file into ONE
# scratch buffer shared by all operators (file.readinto into memoryview slices made at load).
#
# Layout: an operator's constant tensors are grouped into runs of nearby bytes of the DATA
# section (tensors closer than ALIGN bytes apart: only padding between them), one readinto per
# run. Runs sit in the scratch at ALIGN multiples, so a tensor keeps its in-file alignment
# (ptr32 loads of int32 tables stay aligned). scratch bytes = max over operators of the runs'
# extent; the converter stores that figure in META (scratch_bytes) with this same function.
from .errors import ModelError
from .fileformat import ALIGN, CONST, NO_TENSOR, crc32

_CHECK_CHUNK = 512  # bytes read per step when checking DATA's CRC with no larger scratch


def plan_reads(spans):
    """Runs [(offset, length, scratch_offset)] covering (offset, nbytes) spans, and the scratch
    bytes they need. Offsets are DATA-relative; spans may repeat or overlap."""
    order = sorted(spans)
    runs = []
    need = 0
    i = 0
    while i < len(order):
        start = order[i][0]
        end = start + order[i][1]
        i += 1
        while i < len(order) and order[i][0] < end + ALIGN:
            if order[i][0] + order[i][1] > end:
                end = order[i][0] + order[i][1]
            i += 1
        at = (need + ALIGN - 1) // ALIGN * ALIGN
        runs.append((start, end - start, at))
        need = at + end - start
    return runs, need


def op_constants(mf, op):
    """Indices of the operator's constant input tensors, each once."""
    out = []
    for t in op.inputs:
        if t != NO_TENSOR and mf.tensors[t].storage == CONST and t not in out:
            out.append(t)
    return out


def op_spans(mf, op):
    spans = []
    for t in op_constants(mf, op):
        spans.append((mf.tensors[t].offset, mf.tensors[t].nbytes))
    return spans


def scratch_bytes(mf):
    """Bytes of the one scratch buffer streaming needs: the largest operator's constants."""
    need = 0
    for op in mf.ops:
        n = plan_reads(op_spans(mf, op))[1]
        if n > need:
            need = n
    return need


def bind(model, op, scratch):
    """Point the operator's constant tensors into the scratch buffer and return its reads
    ((file offset, scratch view, length), ...). Call before the operator's prepare(): kernels
    keep the views they are given, so an operator sharing a tensor gets its own view."""
    mf = model.file
    runs = plan_reads(op_spans(mf, op))[0]
    reads = []
    for off, n, at in runs:
        reads.append((mf.data_offset + off, scratch[at : at + n], n))
    for t in op_constants(mf, op):
        rec = mf.tensors[t]
        for off, n, at in runs:
            if off <= rec.offset < off + n:
                d = at + rec.offset - off
                model.tensors[t].data = scratch[d : d + rec.nbytes]
                break
    return tuple(reads)


def read_into(f, reads):
    """Fill the views of `reads` from the file. Allocates nothing (seek and readinto into a
    view made at load), so it runs inside invoke() under heap_lock."""
    for r in reads:
        f.seek(r[0])
        if f.readinto(r[1]) != r[2]:
            raise ModelError("the model file is shorter than when it was loaded")


def check_data(f, mf, chunk):
    """Check the DATA section's CRC, reading the file through `chunk` (an int8 buffer)."""
    if len(chunk) < _CHECK_CHUNK:
        chunk = bytearray(_CHECK_CHUNK)
    mv = memoryview(chunk)
    f.seek(mf.data_offset)
    left = mf.data_length
    crc = 0
    while left:
        n = left if left < len(mv) else len(mv)
        if f.readinto(mv[:n]) != n:
            raise ModelError("truncated: section DATA ends past the end of the file")
        crc = crc32(mv[:n], crc)
        left -= n
    if crc != mf.data_crc:
        raise ModelError("section DATA CRC mismatch: the file is corrupt")


class StreamedKernel:
    """A prepared kernel whose constant tensors are read from the open model file into the
    scratch buffer before each eval()."""

    def __init__(self, f, reads, kernel):
        self.f = f
        self.reads = reads
        self.kernel = kernel
        self.impl = getattr(kernel, "impl", "reference")

    def eval(self):
        read_into(self.f, self.reads)
        self.kernel.eval()
