#!/bin/sh
# Digits from scratch: `tinyrt demo` trains a small CNN and a binary variant on scikit-learn's
# digits (numpy only), quantizes both and leaves the model files in its cache; then evaluate,
# inspect and fit them like any model file. Outputs go to OUT (default /tmp/tinyrt-digits).
set -eu
TINYRT=${TINYRT:-.venv/bin/tinyrt}
PY=${PY:-.venv/bin/python}
OUT=${OUT:-/tmp/tinyrt-digits}
CACHE=$($PY -c "from host_sim.demo import cache_dir; print(cache_dir())")

# 1. train (or load the cached weights), quantize, run on every interpreter
$TINYRT demo

# 2. the demo's model files, and the test split as real pixels in [0, 1] with its labels
ls -l "$CACHE"/demo_cnn_int8.trt "$CACHE"/demo_cnn_binary.trt
$PY examples/digits/make_data.py "$OUT"

# 3. accuracy, confusion matrix and per-class figures; --float-input quantizes the pixels
$TINYRT eval "$CACHE/demo_cnn_int8.trt" --input "$OUT/x_test.npy" --labels "$OUT/y_test.npy" \
    --float-input
$TINYRT eval "$CACHE/demo_cnn_binary.trt" --input "$OUT/x_test.npy" \
    --labels "$OUT/y_test.npy" --float-input | head -1

# 4. three images, with labels and probabilities (the model file carries the class names)
$PY -c "import numpy as np; np.save('$OUT/x3.npy', np.load('$OUT/x_test.npy')[:3])"
$TINYRT run "$CACHE/demo_cnn_int8.trt" --input "$OUT/x3.npy" --float-input

# 5. does it fit a Pico? (RAM measured on the emulated Cortex-M0 firmware)
$TINYRT fit "$CACHE/demo_cnn_int8.trt" --board rp2040
