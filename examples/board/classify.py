# On the board (MicroPython): read a buffer of raw sensor values, classify it, print the label.
# Copy tinyrt and the model first (./flash.sh --board rp2040 model.trt, or mpremote mip), then
#   mpremote cp examples/board/classify.py :main.py      (runs at every boot)
# Here the buffer is read from a file (`sample.bin`: one byte per pixel, 0..255, as many as
# the model input has values); on a real sensor fill the same bytearray from I2C/SPI/ADC
# (i2c.readfrom_mem_into(addr, reg, raw)).
import gc
import json

import tinyrt

MODEL = "model.trt"
SAMPLE = "sample.bin"
FULL_SCALE = 255  # a raw reading of 255 is the real value 1.0 the model was trained on

m = tinyrt.load(MODEL)  # ModelError / ArenaError say what is wrong
x = m.input(0)
labels = json.loads(m.metadata() or "{}").get("labels") or []
raw = bytearray(len(x))  # one buffer, reused for every reading
reals = [0.0] * len(x)
gc.collect()


def read_sample(buf):
    with open(SAMPLE, "rb") as f:
        f.readinto(buf)


def classify(buf):
    """The best class of one reading and its score (the dequantized output)."""
    for i in range(len(buf)):
        reals[i] = buf[i] / FULL_SCALE
    x.quantize(reals)  # q = round(r / scale) + zero_point: floats here, none in invoke()
    y = m.invoke()
    best = 0
    for k in range(1, len(y)):
        if y[k] > y[best]:
            best = k
    score = (y[best] - y.zero_point) * y.scale
    return best, score


read_sample(raw)
k, p = classify(raw)
name = labels[k] if k < len(labels) else str(k)
print("class", k, repr(name), "score %.3f" % p)
