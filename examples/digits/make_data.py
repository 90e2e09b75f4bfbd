"""Write the digits test split the demo scores on: x_test.npy (450, 8, 8, 1) real pixels in
[0, 1] (scikit-learn's 0..16 images / 16, as in training) and y_test.npy (450,) classes.

    python examples/digits/make_data.py OUT_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split


def main(out: Path) -> None:
    d = load_digits()
    _, x, _, y = train_test_split(d.images / 16, d.target, test_size=0.25, random_state=0)
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "x_test.npy", x.reshape(-1, 8, 8, 1).astype(np.float32))
    np.save(out / "y_test.npy", y.astype(np.int64))
    print(f"wrote {out}/x_test.npy {x.shape[0]} images and {out}/y_test.npy")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "."))
