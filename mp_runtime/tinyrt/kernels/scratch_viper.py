# Scratch memory of the viper twins (conv_viper, depthwise_conv_viper, fully_connected_viper):
# one 1 KiB buffer, allocated once when the first of them is imported (at load, never in
# invoke()). A twin uses it only within one call and twins never call each other, so they
# share it. Not for two invokes at once: on a port whose threads run in parallel without a
# GIL (rp2 on both cores), two models invoked from two threads would race on it.
SCRATCH = bytearray(1024)
