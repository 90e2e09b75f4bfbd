# Fast paths, chosen once at load. Each hot kernel may have
#   - an asm twin, tinyrt/kernels/<op>_asm.py (@micropython.asm_thumb, armv6m Thumb): used only
#     on ARM firmware, told by the native architecture in sys.implementation._mpy (bits 10..13:
#     3 armv6, 4 armv6m, 5 armv7m, 6 armv7em, 7 armv7emsp, 8 armv7emdp). Its prepare(*args)
#     builds the layer's tables once and returns an object whose method `name` has the
#     reference function's signature (or None when the layer's shape is not covered);
#   - a viper twin, tinyrt/kernels/<op>_viper.py, same function name and signature;
# else the reference. Firmware without the emitter fails to compile the module and keeps the
# next choice (the unix port and the WASI build never try asm: not ARM). A twin that fails is
# passed over with its reason kept in `fallback` (summary() prints it); in strict mode (tests)
# the failure is raised instead, so a broken twin can never hide behind the reference.
import sys

ARM_ARCHS = (3, 4, 5, 6, 7, 8)


def native_arch():
    """The firmware's native-code architecture number (0 when it has none or is not
    MicroPython)."""
    try:
        return (sys.implementation._mpy >> 10) & 0xF
    except AttributeError:
        return 0


_enabled = [True]
_strict = [False]
_repack = [False]
arch = [native_arch()]  # tests may set arch[0] (host_sim.cortexm emulates ARM on CPython)
chosen = {}  # kernel function name -> "asm" | "viper" | "reference", as selected
fallback = {}  # kernel function name -> why a twin that should run was passed over


def enable(flag, strict=False):
    """Allow (True) or forbid (False) asm/viper twins for models loaded from now on. strict:
    a twin that fails to import or prepare raises instead of falling back (tests use it)."""
    _enabled[0] = bool(flag)
    _strict[0] = bool(strict)


def repack(flag):
    """Let asm twins copy a layer's weights into RAM, repacked for a faster loop, for models
    loaded from now on whose whole file is in RAM: ~8 % fewer instructions on kws_ref_model
    for 22 KB more RAM (n_out x k bytes per CONV_2D / FULLY_CONNECTED layer). Off by default:
    a board's RAM is for the model."""
    _repack[0] = bool(flag)


def may_repack(model):
    """Whether the asm twins of `model`'s layers may keep repacked copies of its weights."""
    return _repack[0] and model.mode == "whole file"


def asm_active():
    """Whether asm twins are tried for models loaded now (ARM firmware, fast paths on)."""
    return _enabled[0] and arch[0] in ARM_ARCHS


def _passed_over(name, kind, e):
    if _strict[0]:
        raise e
    fallback[name] = "%s twin failed: %s: %s" % (kind, type(e).__name__, e)


def _module(name):
    return __import__("tinyrt.kernels." + name, None, None, (name,))


def preload(kernel):
    """Import a kernel module's twins (its TWINS) that select() may choose, before load()
    allocates the big buffers: imported later, their code and tables would land between
    those buffers and split the heap they leave when the model is dropped. A twin that fails
    to import is left to select(), which says why. Only the first choice is imported (the asm
    twin on ARM, else the viper one): native code is copied to RAM."""
    if not _enabled[0]:
        return
    first = None
    for name in getattr(kernel, "TWINS", ()):
        if name.endswith("_asm"):
            if asm_active():
                first = name
        elif first is None:
            first = name
    if first is not None:
        try:
            _module(first)
        except MemoryError:
            raise
        except Exception:
            pass


def select(module, name, reference, asm_args=None):
    """The fast twin `name` for tinyrt.kernels.<module> (the viper module's name; the asm
    module is the same name ending in _asm), or `reference` where there is none. asm_args:
    what the asm module's prepare() takes (None: no asm twin for this kernel)."""
    fn = reference
    kind = "reference"
    if asm_active() and asm_args is not None:
        base = module[:-6] if module.endswith("_viper") else module
        try:
            twin = _module(base + "_asm").prepare(*asm_args)
            if twin is not None:
                fn = getattr(twin, name)
                kind = "asm"
        except MemoryError:
            raise  # load() reports it as an ArenaError; a smaller twin would not help
        except Exception as e:
            _passed_over(name, "asm", e)
    if _enabled[0] and kind == "reference":
        try:
            fn = getattr(_module(module), name, reference)
        except MemoryError:
            raise
        except Exception as e:
            if native_arch() or sys.implementation.name != "micropython":
                _passed_over(name, "viper", e)  # this firmware has the viper emitter
        if fn is not reference:
            kind = "viper"
    chosen[name] = kind
    return fn
