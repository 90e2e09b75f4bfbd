"""Scripts that run on the device interpreters and print JSON the host can compare.

They import only `tinyrt` and MicroPython-compatible builtins, so the same text runs on
CPython, the unix port and the WASI build.
"""

# Reads every model file listed in NAMES with the board reader and prints one JSON line each:
# the same fields converter.inspect_model.describe() gives (scales as float32 bit patterns),
# or {"error": class name, "message": text} when the reader refuses the file.
DESCRIBE = r"""
import json, struct
import tinyrt
from tinyrt import fileformat as ff
from tinyrt import opcodes

def bits(x):
    return struct.unpack("<I", struct.pack("<f", x))[0]

def describe(buf):
    mf = ff.read_model(buf)
    tensors = []
    for i, r in enumerate(mf.tensors):
        tensors.append({"index": i, "name": r.name, "dtype": ff.DTYPES[r.dtype][0],
                        "shape": list(r.shape),
                        "storage": "const" if r.storage == ff.CONST else "arena",
                        "flags": r.flags, "offset": r.offset, "nbytes": r.nbytes,
                        "scale_bits": bits(r.scale), "zero_point": r.zero_point})
    ops = []
    for o in mf.ops:
        ops.append({"opcode": o.opcode, "name": opcodes.name(o.opcode),
                    "inputs": [-1 if t == ff.NO_TENSOR else t for t in o.inputs],
                    "outputs": list(o.outputs), "params": list(o.params)})
    sections = []
    for kind, off, length, crc in mf.sections:
        sections.append({"kind": ff.SECTION_NAMES[kind], "offset": off, "length": length,
                         "crc32": crc})
    return {"format_version": mf.version, "file_bytes": len(buf),
            "arena_bytes": mf.arena_bytes, "scratch_bytes": mf.scratch_bytes,
            "data_bytes": mf.data_length, "inputs": list(mf.inputs),
            "outputs": list(mf.outputs), "tensors": tensors, "operators": ops,
            "sections": sections, "metadata": ff.read_metadata(mf)}

for name in NAMES:
    f = open(name, "rb")
    raw = f.read()
    f.close()
    try:
        d = describe(raw)
    except tinyrt.TinyrtError as e:
        d = {"error": type(e).__name__, "message": str(e)}
    except Exception as e:
        d = {"error": "UNEXPECTED " + type(e).__name__, "message": str(e)}
    print(json.dumps(d))
"""


def describe_script(names: list[str]) -> str:
    return f"NAMES = {names!r}\n" + DESCRIBE


# Loads every file in NAMES with tinyrt.load and prints one line each: "ok", or the error's
# class and message. Anything but a TinyrtError is reported as UNEXPECTED.
LOAD = r"""
import tinyrt
for name in NAMES:
    f = open(name, "rb")
    raw = f.read()
    f.close()
    try:
        m = tinyrt.load(raw)
        m = None
        print("ok")
    except tinyrt.TinyrtError as e:
        print(type(e).__name__ + ": " + str(e).replace("\\n", " "))
    except Exception as e:
        print("UNEXPECTED " + type(e).__name__ + ": " + str(e).replace("\\n", " "))
"""


def load_script(names: list[str]) -> str:
    return f"NAMES = {names!r}\n" + LOAD


# Loads the files f0.bin .. f{N-1}.bin and, when one loads, invokes it once with a zero input,
# comparing the model's file buffer before and after: one line each, "ok", the TinyrtError's
# class and message, "WRITE: ..." when invoke() changed the file buffer (a write outside the
# arena), or "UNEXPECTED ..." for any other exception. (The names are made on the device: the
# WASI build misruns a script holding a list of a thousand names.)
FUZZ = r"""
import tinyrt
for i in range(N):
    f = open("f%d.bin" % i, "rb")
    raw = f.read()
    f.close()
    m = None
    try:
        m = tinyrt.load(raw)
        raw = None
        t = m.input(0)
        x = [0] * ((len(t.data) >> 2) if t.dtype in ("int32", "packed") else t.size)
        before = bytes(m.file.buf)
        m.invoke(x)
        if bytes(m.file.buf) != before:
            print("WRITE: invoke() changed the model's file buffer")
        else:
            print("ok")
    except tinyrt.TinyrtError as e:
        print(type(e).__name__ + ": " + str(e).replace("\\n", " "))
    except Exception as e:
        print("UNEXPECTED " + type(e).__name__ + ": " + str(e).replace("\\n", " "))
    m = None
    x = None
    before = None
"""


def fuzz_script(n: int) -> str:
    """The FUZZ script over files f0.bin .. f{n-1}.bin."""
    return f"N = {n}\n" + FUZZ
