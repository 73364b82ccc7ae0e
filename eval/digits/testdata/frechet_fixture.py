"""Writes frechet.json: two correlated Gaussian feature sets and their
Frechet distance computed with numpy only, by a different route than the
Go code: the eigenvalues of the non-symmetric product S_a S_b (whose square
roots sum to Tr (S_a S_b)^(1/2)) instead of a symmetric eigendecomposition.

Run from this directory: /usr/bin/python3 frechet_fixture.py
"""
import json

import numpy as np

rng = np.random.default_rng(11)
d = 6
a = rng.normal(size=(80, d)) @ rng.normal(size=(d, d)) + rng.normal(size=d)
b = rng.normal(size=(50, d)) @ rng.normal(size=(d, d)) * 0.7 + rng.normal(size=d)
ma, mb = a.mean(0), b.mean(0)
sa, sb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
lam = np.linalg.eigvals(sa @ sb)
assert np.all(np.abs(lam.imag) < 1e-9) and np.all(lam.real > 0)
fd = float(((ma - mb) ** 2).sum() + np.trace(sa) + np.trace(sb) - 2 * np.sqrt(lam.real).sum())
with open("frechet.json", "w") as f:
    json.dump({"a": a.tolist(), "b": b.tolist(), "fd": fd}, f)
print("fd", fd)
