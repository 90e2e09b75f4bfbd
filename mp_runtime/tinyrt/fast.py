# Fast paths: each hot kernel has a viper twin with the reference function's signature, in
# tinyrt/kernels/<name>_viper.py, chosen once at load. Firmware without the viper emitter (the
# WASI build; some boards) fails to compile those modules and keeps the reference.
_enabled = [True]
chosen = {}  # kernel function name -> "viper" | "reference", as selected


def enable(flag):
    """Allow (True) or forbid (False) viper twins for models loaded from now on."""
    _enabled[0] = bool(flag)


def select(module, name, reference):
    """The viper twin `name` of tinyrt.kernels.<module>, or `reference` where there is none."""
    fn = reference
    if _enabled[0]:
        try:
            mod = __import__("tinyrt.kernels." + module, None, None, (module,))
            fn = getattr(mod, name, reference)
        except (ImportError, SyntaxError, NotImplementedError, NameError):
            pass
    chosen[name] = "reference" if fn is reference else "viper"
    return fn
