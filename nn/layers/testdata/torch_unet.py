#!/usr/bin/python3
"""PyTorch twin of the U-Net DDPM denoiser in nn/unet_test.go.

  torch_unet.py bench [--threads 2] [--batch 64] [--steps 10] [--size 28] [--only train|infer]
      Times a DDPM training step (noising, forward, MSE against the noise,
      backward, Adam) and a batch inference (one denoiser evaluation) of the
      width-32 network (~0.93M parameters) and reports peak RSS, as JSON.
      The Go side: go test -run XXX -bench UNet ./nn (see unet_test.go).

  torch_unet.py fixture
      Writes torch_unet.safetensors: a width-4 network's state_dict plus an
      input batch (x, t, the sinusoidal features) and PyTorch's output,
      which TestUNetMatchesPyTorch must reproduce.

Run with Debian's python3 (/usr/bin/python3), which has torch 1.13.
"""

import json
import math
import os
import resource
import sys
import time

import torch
from torch import nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "..", "sdk", "safetensors", "testdata"))
from make_fixture import encode as st_encode  # noqa: E402


def sinusoidal(t, dim):
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / half)
    a = t.float()[:, None] * freqs[None, :]
    return torch.cat([torch.sin(a), torch.cos(a)], dim=1)


class ResBlock(nn.Module):
    def __init__(self, cin, cout, tdim, groups):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.temb = nn.Linear(tdim, cout)
        self.norm2 = nn.GroupNorm(groups, cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x, t):
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.temb(t)[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return h + (self.skip(x) if self.skip is not None else x)


class UNet(nn.Module):
    """Same layers, order and names as newUNet in nn/unet_test.go."""

    def __init__(self, ch=1, base=32, tdim=64, groups=8):
        super().__init__()
        self.base = base
        self.time_mlp = nn.Sequential(nn.Linear(base, tdim), nn.SiLU(), nn.Linear(tdim, tdim))
        self.conv_in = nn.Conv2d(ch, base, 3, padding=1)
        self.down0 = ResBlock(base, base, tdim, groups)
        self.downsample0 = nn.Conv2d(base, base, 3, 2, 1)
        self.down1 = ResBlock(base, 2 * base, tdim, groups)
        self.downsample1 = nn.Conv2d(2 * base, 2 * base, 3, 2, 1)
        self.mid0 = ResBlock(2 * base, 4 * base, tdim, groups)
        self.mid1 = ResBlock(4 * base, 4 * base, tdim, groups)
        self.upconv1 = nn.Conv2d(4 * base, 2 * base, 3, padding=1)
        self.up1 = ResBlock(4 * base, 2 * base, tdim, groups)
        self.upconv0 = nn.Conv2d(2 * base, base, 3, padding=1)
        self.up0 = ResBlock(2 * base, base, tdim, groups)
        self.norm_out = nn.GroupNorm(groups, base)
        self.conv_out = nn.Conv2d(base, ch, 3, padding=1)

    def forward(self, x, feats):
        # SiLU of the time embedding once, shared by every block's Linear.
        t = F.silu(self.time_mlp(feats))
        h0 = self.down0(self.conv_in(x), t)
        h1 = self.down1(self.downsample0(h0), t)
        h = self.mid1(self.mid0(self.downsample1(h1), t), t)
        h = self.upconv1(F.interpolate(h, scale_factor=2, mode="nearest"))
        h = self.up1(torch.cat([h, h1], 1), t)
        h = self.upconv0(F.interpolate(h, scale_factor=2, mode="nearest"))
        h = self.up0(torch.cat([h, h0], 1), t)
        return self.conv_out(F.silu(self.norm_out(h)))


def alpha_bars(steps=1000):
    betas = torch.linspace(1e-4, 0.02, steps)
    return torch.cumprod(1 - betas, 0)


def bench(args):
    threads = int(args.get("--threads", 2))
    batch = int(args.get("--batch", 64))
    steps = int(args.get("--steps", 10))
    size = int(args.get("--size", 28))
    torch.set_num_threads(threads)
    torch.manual_seed(1)
    m = UNet()
    params = sum(p.numel() for p in m.parameters())
    opt = torch.optim.Adam(m.parameters(), lr=2e-4)
    x0 = torch.rand(batch, 1, size, size) * 2 - 1
    ab = alpha_bars()

    def step():
        t = torch.randint(0, 1000, (batch,))
        eps = torch.randn_like(x0)
        a = ab[t][:, None, None, None]
        xt = a.sqrt() * x0 + (1 - a).sqrt() * eps
        opt.zero_grad(set_to_none=True)
        loss = F.mse_loss(m(xt, sinusoidal(t, m.base)), eps)
        loss.backward()
        opt.step()

    only = args.get("--only", "")
    train_ms = train_cpu = train_rss = infer_ms = infer_cpu = None
    if only in ("", "train"):
        for _ in range(3):
            step()
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(steps):
            step()
        train_ms = round((time.perf_counter() - t0) / steps * 1000, 1)
        train_cpu = round((time.process_time() - c0) / steps * 1000, 1)
        train_rss = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    if only == "train":
        print(json.dumps({"torch": torch.__version__, "threads": threads, "batch": batch, "size": size,
                          "params": params, "train_step_ms": train_ms, "train_cpu_ms": train_cpu,
                          "peak_rss_mb": train_rss}))
        return

    feats = sinusoidal(torch.randint(0, 1000, (batch,)), m.base)
    with torch.no_grad():
        for _ in range(3):
            m(x0, feats)
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(steps):
            m(x0, feats)
        infer_ms = round((time.perf_counter() - t0) / steps * 1000, 1)
        infer_cpu = round((time.process_time() - c0) / steps * 1000, 1)
    print(json.dumps({"torch": torch.__version__, "threads": threads, "batch": batch, "size": size,
                      "params": params, "train_step_ms": train_ms, "train_cpu_ms": train_cpu,
                      "inference_ms": infer_ms, "inference_cpu_ms": infer_cpu,
                      "peak_rss_mb_after_train": train_rss,
                      "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}))


def fixture():
    torch.manual_seed(5)
    m = UNet(base=4, tdim=8, groups=2)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.05 * torch.randn_like(p))
    x = torch.randn(2, 1, 8, 8)
    t = torch.tensor([3, 517])
    feats = sinusoidal(t, m.base)
    with torch.no_grad():
        y = m(x, feats)

    def raw(v):
        a = v.detach().contiguous().numpy().astype("<f4")
        return ("F32", list(a.shape), a.tobytes())

    tensors = {k: raw(v) for k, v in m.state_dict().items()}
    tensors.update({"io.x": raw(x), "io.t": raw(t.float()), "io.feats": raw(feats), "io.y": raw(y)})
    with open(os.path.join(HERE, "torch_unet.safetensors"), "wb") as f:
        f.write(st_encode(tensors, {"source": "nn/testdata/torch_unet.py fixture", "torch": torch.__version__}))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "bench":
        a = sys.argv[2:]
        bench(dict(zip(a[::2], a[1::2])))
    elif len(sys.argv) > 1 and sys.argv[1] == "fixture":
        fixture()
    else:
        sys.exit(__doc__)
