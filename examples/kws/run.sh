#!/bin/sh
# Keyword spotting (MLCommons Tiny DS-CNN, int8 .tflite) through tinyrt on the emulated
# Cortex-M0 (the RP2040's instruction set). Models: ../shared/models beside the checkout, or
# TINYRT_MODELS=DIR. Outputs go to OUT (default /tmp/tinyrt-kws).
set -eu
TINYRT=${TINYRT:-.venv/bin/tinyrt}
PY=${PY:-.venv/bin/python}
MODELS=${TINYRT_MODELS:-../shared/models}
OUT=${OUT:-/tmp/tinyrt-kws}
mkdir -p "$OUT"

# 1. convert, and ask whether it fits a Raspberry Pi Pico (exit 1: written, but does not fit)
$TINYRT convert "$MODELS/kws_ref_model.tflite" -o "$OUT/kws.trt" --board rp2040

# 2. what is in the file (inputs, operators with their parameters, tensors)
$TINYRT info "$OUT/kws.trt" | head -25

# 3. the reference inputs (raw int8 spectrograms) and TFLM's outputs for them
$PY -c "import numpy as np; d = np.load('$MODELS/kws_ref_model_io.npz'); \
np.save('$OUT/x.npy', d['x']); np.save('$OUT/y_tflm.npy', d['y'])"

# 4. run them on the emulated m0 firmware (genuine MicroPython 1.29 for armv6m)
$TINYRT run "$OUT/kws.trt" --input "$OUT/x.npy" --interpreter m0 --output "$OUT/y.npy"
$PY -c "import numpy as np; a = np.load('$OUT/y.npy'); b = np.load('$OUT/y_tflm.npy'); \
print('bit-exact with TFLM:', np.array_equal(a.reshape(b.shape), b))"

# 5. accuracy against TFLM's own predictions (the reference set has no true labels)
$PY -c "import numpy as np; y = np.load('$OUT/y_tflm.npy'); \
np.save('$OUT/labels.npy', y.reshape(len(y), -1).argmax(1))"
$TINYRT eval "$OUT/kws.trt" --input "$OUT/x.npy" --labels "$OUT/labels.npy" | head -1

# 6. instructions per inference, per MAC and per layer on m0, beside TFLM and CMSIS-NN
$TINYRT bench "$OUT/kws.trt" --interpreter m0 --vs-tflm "$MODELS/kws_ref_model.tflite"
