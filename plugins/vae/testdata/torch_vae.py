#!/usr/bin/python3
"""PyTorch twin of plugins/vae's architecture, for two things:

  torch_vae.py bench [--threads 2] [--batch 64] [--steps 30] [--only train|infer]
      Times a training step (forward, backward, Adam) and batch inference
      (encode + decode) of the shipped VAE architecture (width 32, latent 32)
      and reports peak RSS, as JSON on stdout. The Go side is
      `go test -run XXX -bench . ./plugins/vae`; bench/compare.py vae runs both.

  torch_vae.py fixture
      Writes torch_vae.safetensors (a small VAE's state_dict: width 8,
      latent 4) and torch_vae_io.safetensors (an input batch and PyTorch's
      mu, logvar and decoded pixels for it). The Go test loads the weights
      into its own model and must reproduce the outputs: this is what shows
      weights can be exchanged with PyTorch.

Run with Debian's python3 (/usr/bin/python3), which has torch 1.13 and numpy.
"""

import json
import os
import resource
import sys
import time

import numpy as np
import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "..", "sdk", "safetensors", "testdata"))
from make_fixture import encode as st_encode  # noqa: E402


class VAE(nn.Module):
    """Same layers, order and parameter names as plugins/vae.New."""

    def __init__(self, channels=1, size=28, width=32, latent=16, variational=True):
        super().__init__()
        self.size, self.width = size, width
        flat = 2 * width * (size // 4) ** 2
        self.encoder = nn.Sequential(
            nn.Conv2d(channels, width, 4, 2, 1), nn.ReLU(),
            nn.Conv2d(width, 2 * width, 4, 2, 1), nn.ReLU())
        self.fc_mu = nn.Linear(flat, latent)
        self.fc_logvar = nn.Linear(flat, latent) if variational else None
        self.decoder_fc = nn.Linear(latent, flat)
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(2 * width, width, 4, 2, 1), nn.ReLU(),
            nn.ConvTranspose2d(width, channels, 4, 2, 1))

    def encode(self, x):
        h = self.encoder(x).flatten(1)
        return self.fc_mu(h), (self.fc_logvar(h) if self.fc_logvar is not None else None)

    def decode(self, z):
        h = torch.relu(self.decoder_fc(z)).view(-1, 2 * self.width, self.size // 4, self.size // 4)
        return self.decoder(h)

    def loss(self, x, eps):
        mu, logvar = self.encode(x)
        z = mu + torch.exp(0.5 * logvar) * eps
        logits = self.decode(z)
        n = x.shape[0]
        recon = nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="sum") / n
        kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp()) / n
        return recon + kl


def bench(args):
    threads = int(args.get("--threads", 2))
    batch = int(args.get("--batch", 64))
    steps = int(args.get("--steps", 30))
    torch.set_num_threads(threads)
    torch.manual_seed(1)
    only = args.get("--only", "")
    m = VAE(latent=32)
    params = sum(p.numel() for p in m.parameters())
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    x = torch.rand(batch, 1, 28, 28)
    eps = torch.randn(batch, 32)

    def step():
        opt.zero_grad(set_to_none=True)
        m.loss(x, eps).backward()
        opt.step()

    train_ms = infer_ms = None
    if only in ("", "train"):
        for _ in range(5):
            step()
        t = time.perf_counter()
        for _ in range(steps):
            step()
        train_ms = round((time.perf_counter() - t) / steps * 1000, 2)
    if only not in ("", "infer"):
        print(json.dumps({"torch": torch.__version__, "threads": threads, "batch": batch, "params": params,
                          "train_step_ms": train_ms,
                          "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}))
        return
    with torch.no_grad():
        for _ in range(5):
            m.decode(m.encode(x)[0])
        t = time.perf_counter()
        for _ in range(steps):
            torch.sigmoid(m.decode(m.encode(x)[0]))
        infer_ms = round((time.perf_counter() - t) / steps * 1000, 2)
    print(json.dumps({"torch": torch.__version__, "threads": threads, "batch": batch, "params": params,
                      "train_step_ms": train_ms, "inference_ms": infer_ms,
                      "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}))


def fixture():
    torch.manual_seed(7)
    m = VAE(width=8, latent=4)
    # Non-default biases so a wrong bias layout cannot pass unnoticed.
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.05 * torch.randn_like(p))
    x = torch.rand(3, 1, 28, 28)
    with torch.no_grad():
        mu, logvar = m.encode(x)
        px = torch.sigmoid(m.decode(mu))

    def raw(t):
        a = t.detach().contiguous().numpy().astype("<f4")
        return ("F32", list(a.shape), a.tobytes())

    weights = {k: raw(v) for k, v in m.state_dict().items()}
    meta = {"source": "plugins/vae/testdata/torch_vae.py fixture", "torch": torch.__version__,
            "arch": json.dumps({"variant": "vae", "channels": 1, "size": 28, "width": 8, "latent": 4})}
    with open(os.path.join(HERE, "torch_vae.safetensors"), "wb") as f:
        f.write(st_encode(weights, meta))
    io = {"x": raw(x), "mu": raw(mu), "logvar": raw(logvar), "pixels": raw(px)}
    with open(os.path.join(HERE, "torch_vae_io.safetensors"), "wb") as f:
        f.write(st_encode(io, {"source": "plugins/vae/testdata/torch_vae.py fixture"}))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "bench":
        a = sys.argv[2:]
        bench(dict(zip(a[::2], a[1::2])))
    elif len(sys.argv) > 1 and sys.argv[1] == "fixture":
        fixture()
    else:
        sys.exit(__doc__)
