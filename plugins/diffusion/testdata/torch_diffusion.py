#!/usr/bin/python3
"""PyTorch twin of the diffusion plugin's denoisers (plugins/diffusion/unet.go):
the class-conditional U-Net with self-attention of mnist-ddpm and the MLP
over latents, with the same layers, order and state_dict names.

  torch_diffusion.py fixture
      Writes torch_diffusion.safetensors: small networks' state_dicts (every
      parameter drawn at random, so no zero-initialised layer hides a
      difference), inputs (x_t, t, labels, the sinusoidal features) and the
      predicted noise, which TestMatchesPyTorch must reproduce.

  torch_diffusion.py bench [--threads 2] [--batch 64] [--steps 10] [--only train|infer]
      Times a training step of mnist-ddpm's U-Net (noising on the cosine
      schedule, label dropout, forward, MSE against the noise, backward,
      gradient clipping, Adam, the moving average of the weights) and one
      batch inference, and reports peak RSS, as JSON.

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

T = 1000


def sinusoidal(t, dim):
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float64) / half).float()
    a = t.double()[:, None] * freqs.double()[None, :]
    return torch.cat([torch.sin(a), torch.cos(a)], dim=1).float()


def cosine_alpha_bars(steps=T, s=0.008):
    f = lambda t: math.cos((t / steps + s) / (1 + s) * math.pi / 2) ** 2
    out, prod = [], 1.0
    for t in range(steps):
        prod *= 1 - min(1 - f(t + 1) / f(t), 0.999)
        out.append(prod)
    return torch.tensor(out, dtype=torch.float64)


def gn(groups, c):
    return nn.GroupNorm(groups if c % groups == 0 else 1, c)


class ResBlock(nn.Module):
    def __init__(self, cin, cout, tdim, groups):
        super().__init__()
        self.norm1 = gn(groups, cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.temb = nn.Linear(tdim, cout)
        self.norm2 = gn(groups, cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x, emb):
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.temb(emb)[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return h + (self.skip(x) if self.skip is not None else x)


class Attention(nn.Module):
    def __init__(self, c, groups):
        super().__init__()
        self.norm = gn(groups, c)
        self.qkv = nn.Conv2d(c, 3 * c, 1)
        self.proj = nn.Conv2d(c, c, 1)

    def forward(self, x):
        n, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(n, 3 * c, h * w).chunk(3, dim=1)
        a = torch.softmax(torch.einsum("nci,ncj->nij", q, k) / math.sqrt(c), dim=-1)
        o = torch.einsum("nij,ncj->nci", a, v).reshape(n, c, h, w)
        return x + self.proj(o)


class UNet(nn.Module):
    """mnist-ddpm's denoiser: Arch{unet, ch, size, base, tdim, groups, attn, classes}."""

    def __init__(self, ch=1, base=32, tdim=128, groups=8, attn=True, classes=10):
        super().__init__()
        self.base = base
        self.time_mlp = nn.Sequential(nn.Linear(base, tdim), nn.SiLU(), nn.Linear(tdim, tdim))
        self.label_emb = nn.Embedding(classes + 1, tdim) if classes else None
        self.conv_in = nn.Conv2d(ch, base, 3, padding=1)
        self.down0 = ResBlock(base, base, tdim, groups)
        self.downsample0 = nn.Conv2d(base, base, 3, 2, 1)
        self.down1 = ResBlock(base, 2 * base, tdim, groups)
        self.downsample1 = nn.Conv2d(2 * base, 2 * base, 3, 2, 1)
        self.mid0 = ResBlock(2 * base, 4 * base, tdim, groups)
        self.attn = Attention(4 * base, groups) if attn else None
        self.mid1 = ResBlock(4 * base, 4 * base, tdim, groups)
        self.upconv1 = nn.Conv2d(4 * base, 2 * base, 3, padding=1)
        self.up1 = ResBlock(4 * base, 2 * base, tdim, groups)
        self.upconv0 = nn.Conv2d(2 * base, base, 3, padding=1)
        self.up0 = ResBlock(2 * base, base, tdim, groups)
        self.norm_out = gn(groups, base)
        self.conv_out = nn.Conv2d(base, ch, 3, padding=1)

    def forward(self, x, feats, labels):
        emb = self.time_mlp(feats)
        if self.label_emb is not None:
            emb = emb + self.label_emb(labels)
        emb = F.silu(emb)
        h0 = self.down0(self.conv_in(x), emb)
        h1 = self.down1(self.downsample0(h0), emb)
        h = self.mid0(self.downsample1(h1), emb)
        if self.attn is not None:
            h = self.attn(h)
        h = self.mid1(h, emb)
        h = self.upconv1(F.interpolate(h, scale_factor=2, mode="nearest"))
        h = self.up1(torch.cat([h, h1], 1), emb)
        h = self.upconv0(F.interpolate(h, scale_factor=2, mode="nearest"))
        h = self.up0(torch.cat([h, h0], 1), emb)
        return self.conv_out(F.silu(self.norm_out(h)))


class Block(nn.Module):
    def __init__(self, width, tdim):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.fc1 = nn.Linear(width, width)
        self.temb = nn.Linear(tdim, width)
        self.fc2 = nn.Linear(width, width)

    def forward(self, h, emb):
        r = self.fc1(F.silu(self.norm(h))) + self.temb(emb)
        return h + self.fc2(F.silu(r))


class MLP(nn.Module):
    """The latent denoiser: Arch{mlp, ch (latent dims), base (width), blocks, tdim, classes}."""

    def __init__(self, dim=32, width=256, blocks=4, tdim=128, classes=10):
        super().__init__()
        self.tdim = tdim
        self.time_mlp = nn.Sequential(nn.Linear(tdim, tdim), nn.SiLU(), nn.Linear(tdim, tdim))
        self.label_emb = nn.Embedding(classes + 1, tdim) if classes else None
        self.inp = nn.Linear(dim, width)
        self.blocks = nn.ModuleList([Block(width, tdim) for _ in range(blocks)])
        self.norm_out = nn.LayerNorm(width)
        self.out = nn.Linear(width, dim)

    def forward(self, x, feats, labels):
        emb = self.time_mlp(feats)
        if self.label_emb is not None:
            emb = emb + self.label_emb(labels)
        emb = F.silu(emb)
        h = self.inp(x)
        for b in self.blocks:
            h = b(h, emb)
        return self.out(F.silu(self.norm_out(h)))

    def state(self):
        # "in" is a Python keyword: the Go names call the input layer "in".
        return {k.replace("inp.", "in.", 1) if k.startswith("inp.") else k: v for k, v in self.state_dict().items()}


def raw(t):
    a = t.detach().contiguous().numpy().astype("<f4")
    return ("F32", list(a.shape), a.tobytes())


def fixture():
    torch.manual_seed(5)
    out = {}
    u = UNet(ch=1, base=8, tdim=16, groups=2, attn=True, classes=3)
    with torch.no_grad():
        for p in u.parameters():
            p.copy_(torch.randn_like(p) * 0.3)
    for k, v in u.state_dict().items():
        out["unet." + k] = raw(v)
    x = torch.randn(3, 1, 8, 8)
    t = torch.tensor([0, 417, 999])
    labels = torch.tensor([2, 0, 3])  # 3 is "no label"
    feats = sinusoidal(t, 8)
    out["unet.io.x"] = raw(x)
    out["unet.io.t"] = raw(t.float())
    out["unet.io.labels"] = raw(labels.float())
    out["unet.io.feats"] = raw(feats)
    out["unet.io.y"] = raw(u(x, feats, labels))

    m = MLP(dim=6, width=12, blocks=2, tdim=8, classes=3)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn_like(p) * 0.5)
    for k, v in m.state().items():
        out["mlp." + k] = raw(v)
    x = torch.randn(4, 6)
    t = torch.tensor([3, 250, 600, 998])
    labels = torch.tensor([1, 3, 0, 2])
    feats = sinusoidal(t, 8)
    out["mlp.io.x"] = raw(x)
    out["mlp.io.t"] = raw(t.float())
    out["mlp.io.labels"] = raw(labels.float())
    out["mlp.io.y"] = raw(m(x, feats, labels))
    out["schedule.alpha_bar"] = raw(cosine_alpha_bars().float())
    with open(os.path.join(HERE, "torch_diffusion.safetensors"), "wb") as f:
        f.write(st_encode(out, {"source": "plugins/diffusion/testdata/torch_diffusion.py", "torch": torch.__version__}))


def bench(args):
    threads = int(args.get("--threads", 2))
    batch = int(args.get("--batch", 64))
    steps = int(args.get("--steps", 10))
    torch.set_num_threads(threads)
    torch.manual_seed(1)
    m = UNet()
    params = sum(p.numel() for p in m.parameters())
    opt = torch.optim.Adam(m.parameters(), lr=5e-4)
    x0 = torch.rand(batch, 1, 28, 28) * 2 - 1
    labels = torch.randint(0, 10, (batch,))
    ab = cosine_alpha_bars().float()
    avg = [p.detach().clone() for p in m.parameters()]

    def step():
        t = torch.randint(0, T, (batch,))
        lab = torch.where(torch.rand(batch) < 0.1, torch.full_like(labels, 10), labels)
        eps = torch.randn_like(x0)
        a = ab[t][:, None, None, None]
        xt = a.sqrt() * x0 + (1 - a).sqrt() * eps
        opt.zero_grad(set_to_none=True)
        loss = F.mse_loss(m(xt, sinusoidal(t, m.base), lab), eps)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        opt.step()
        with torch.no_grad():
            for a, p in zip(avg, m.parameters()):
                a.mul_(0.999).add_(p, alpha=0.001)

    only = args.get("--only", "")
    res = {"torch": torch.__version__, "threads": threads, "batch": batch, "params": params}
    if only in ("", "train"):
        for _ in range(3):
            step()
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(steps):
            step()
        res["train_step_ms"] = round((time.perf_counter() - t0) / steps * 1000, 1)
        res["train_cpu_ms"] = round((time.process_time() - c0) / steps * 1000, 1)
    if only in ("", "infer"):
        feats = sinusoidal(torch.randint(0, T, (batch,)), m.base)
        with torch.no_grad():
            for _ in range(3):
                m(x0, feats, labels)
            t0, c0 = time.perf_counter(), time.process_time()
            for _ in range(steps):
                m(x0, feats, labels)
            res["inference_ms"] = round((time.perf_counter() - t0) / steps * 1000, 1)
            res["inference_cpu_ms"] = round((time.process_time() - c0) / steps * 1000, 1)
    res["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(res))


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in ("fixture", "bench"):
        sys.exit(__doc__)
    if sys.argv[1] == "fixture":
        fixture()
    else:
        bench(dict(zip(sys.argv[2::2], sys.argv[3::2])))
