"""tinyrt's converter: builds graphs of int8/binary operators and writes the model file."""
