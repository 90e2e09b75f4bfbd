# One operator per module. Each module has prepare(model, op) -> an object whose eval() runs
# the operator over buffers made at load (eval allocates nothing). The pure reference math
# lives in module-level functions over flat buffers and plain ints.
