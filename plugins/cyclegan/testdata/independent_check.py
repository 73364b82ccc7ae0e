#!/usr/bin/python3
"""An independent check of the translate presets' label figures: a classifier
that shares nothing with eval/digits (another framework, PyTorch 1.13; another
architecture, an MLP 784-512-256-10 with dropout; its own training run) reads
translations that a pipeline saved as LABEL/NAME.png, and prints how many it
reads as their folder's label.

  independent_check.py DIR [DIR ...]

It trains the MLP on the repository's MNIST training digits (3 epochs, about a
minute on 2 cores) and prints its own MNIST test accuracy first, for scale.
Not a dependency of the project: a reviewer's second opinion.
"""

import gzip
import os
import sys

import numpy as np
import torch
import torch.nn as nn
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
MNIST = os.path.join(ROOT, "examples", "data", "mnist")


def idx(name):
    with gzip.open(os.path.join(MNIST, name)) as f:
        b = f.read()
    dims = b[3]
    shape = [int.from_bytes(b[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(b, np.uint8, offset=4 + 4 * dims).reshape(shape)


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    torch.manual_seed(0)
    torch.set_num_threads(2)
    x = torch.tensor(idx("train-images-idx3-ubyte.gz"), dtype=torch.float32).view(-1, 784) / 255
    y = torch.tensor(idx("train-labels-idx1-ubyte.gz"), dtype=torch.long)
    tx = torch.tensor(idx("t10k-images-idx3-ubyte.gz"), dtype=torch.float32).view(-1, 784) / 255
    ty = torch.tensor(idx("t10k-labels-idx1-ubyte.gz"), dtype=torch.long)
    m = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Dropout(0.2),
                      nn.Linear(512, 256), nn.ReLU(), nn.Dropout(0.2), nn.Linear(256, 10))
    opt = torch.optim.Adam(m.parameters(), 1e-3)
    for _ in range(3):
        perm = torch.randperm(len(x))
        for i in range(0, len(x), 128):
            j = perm[i:i + 128]
            opt.zero_grad()
            nn.functional.cross_entropy(m(x[j]), y[j]).backward()
            opt.step()
    m.eval()
    with torch.no_grad():
        acc = (m(tx).argmax(1) == ty).float().mean().item()
    print(f"independent MLP: MNIST test accuracy {100 * acc:.2f} %")
    for d in sys.argv[1:]:
        imgs, labels = [], []
        for lab in sorted(os.listdir(d)):
            sub = os.path.join(d, lab)
            if not (os.path.isdir(sub) and lab.isdigit()):
                continue
            for f in sorted(os.listdir(sub)):
                if f.endswith(".png"):
                    im = Image.open(os.path.join(sub, f)).convert("L").resize((28, 28))
                    imgs.append(np.asarray(im, np.float32).reshape(784) / 255)
                    labels.append(int(lab))
        if not imgs:
            print(f"{d}: no LABEL/*.png images")
            continue
        with torch.no_grad():
            pred = m(torch.tensor(np.stack(imgs))).argmax(1).numpy()
        agree = (pred == np.array(labels)).mean()
        print(f"{d}: {len(imgs)} images, {100 * agree:.2f} % read as their folder's label")


if __name__ == "__main__":
    main()
