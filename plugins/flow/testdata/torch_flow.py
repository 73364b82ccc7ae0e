#!/usr/bin/python3
"""PyTorch twin of the flow plugin's Glow-style flow (plugins/flow/model.go,
graph.go): the same layers, order and state_dict names.

  torch_flow.py fixture
      Writes torch_flow.safetensors: a small flow's parameters (every one
      drawn at random), a batch of dequantised images y and, per item, the
      log-likelihood log p(y) and log-determinant, and the latents, which
      TestMatchesPyTorch must reproduce.

  torch_flow.py bench [--threads 2] [--batch 64] [--steps 5] [--only train|infer]
      Times a training step of mnist-glow (dequantisation, forward, bits per
      dimension, backward, clipping, Adam) and a batch-64 encode, and
      reports peak RSS, as JSON.

  torch_flow.py train [--hidden 64] [--steps 8] [--levels 3] [--iters 1000]
                      [--eval-every 250] [--threads 2] [--lr 1e-3] [--logit A]
      Trains the twin on the 60,000 MNIST training digits with the Go
      recipe (uniform dequantisation, actnorm data-dependent init, Adam,
      200 warm-up steps, decay 0.999 per 100 steps, clip 100, batch 64) and
      prints the held-out bits per dimension of 1,000 MNIST test digits
      every --eval-every steps: how fast an architecture learns, to choose
      a preset's size before hours of Go training. --logit A puts the
      logit transform of Arch.Logit in front of the flow.

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


def squeeze(x):
    n, c, h, w = x.shape
    x = x.reshape(n, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4)
    return x.reshape(n, 4 * c, h // 2, w // 2)


class ActNorm(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(c))
        self.logs = nn.Parameter(torch.zeros(c))
        self.register_buffer("initialized", torch.zeros(1))

    def forward(self, x):
        hw = x.shape[2] * x.shape[3]
        return (x + self.bias[None, :, None, None]) * torch.exp(self.logs)[None, :, None, None], hw * self.logs.sum()


class InvConv(nn.Module):
    """W = P·L·(U + diag(sign·exp(logs))), as the Go flow builds it."""

    def __init__(self, c):
        super().__init__()
        self.lower = nn.Parameter(torch.zeros(c, c))
        self.upper = nn.Parameter(torch.zeros(c, c))
        self.logs = nn.Parameter(torch.zeros(c))
        self.register_buffer("perm", torch.eye(c))
        self.register_buffer("sign", torch.ones(c))

    def weight(self):
        c = self.logs.shape[0]
        L = torch.tril(self.lower, -1) + torch.eye(c)
        U = torch.triu(self.upper, 1) + torch.diag(self.sign * torch.exp(self.logs))
        return self.perm @ L @ U

    def forward(self, x):
        hw = x.shape[2] * x.shape[3]
        w = self.weight()
        return F.conv2d(x, w[:, :, None, None]), hw * self.logs.sum()


class Coupling(nn.Module):
    def __init__(self, c, hidden):
        super().__init__()
        ca, cb = c // 2, c - c // 2
        self.conv1 = nn.Conv2d(ca, hidden, 3, padding=1)
        self.conv2 = nn.Conv2d(hidden, hidden, 1)
        self.conv3 = nn.Conv2d(hidden, 2 * cb, 3, padding=1)
        self.ca, self.cb = ca, cb

    def forward(self, x):
        xa, xb = x[:, :self.ca], x[:, self.ca:]
        h = self.conv3(F.relu(self.conv2(F.relu(self.conv1(xa)))))
        t, r2 = h[:, :self.cb], h[:, self.cb:] + 2
        yb = (xb + t) * torch.sigmoid(r2)
        return torch.cat([xa, yb], 1), (-F.softplus(-r2)).flatten(1).sum(1)


class Step(nn.Module):
    def __init__(self, c, hidden):
        super().__init__()
        self.actnorm = ActNorm(c)
        self.invconv = InvConv(c)
        self.coupling = Coupling(c, hidden)


class Level(nn.Module):
    def __init__(self, c, s, steps, hidden, split):
        super().__init__()
        self.steps = nn.ModuleList([Step(c, hidden) for _ in range(steps)])
        if split:
            self.prior = nn.Conv2d(c - c // 2, 2 * (c // 2), 3, padding=1)


class Flow(nn.Module):
    """mnist-glow's flow: Arch{ch, size, levels, steps, hidden}."""

    def __init__(self, ch=1, size=28, levels=3, steps=8, hidden=64):
        super().__init__()
        self.shapes = []
        c, s = ch, size
        mods = []
        for l in range(levels):
            last = l == levels - 1
            if not last:
                c, s = 4 * c, s // 2
            mods.append(Level(c, s, steps, hidden, not last))
            self.shapes.append((c, s, not last))
            if not last:
                c = c - c // 2
        self.levels = nn.ModuleList(mods)
        self.top = nn.Module()
        self.top_mean = nn.Parameter(torch.zeros(c, s, s))
        self.top_logs = nn.Parameter(torch.zeros(c, s, s))

    def state(self):
        return {k.replace("top_mean", "top.mean").replace("top_logs", "top.logs"): v
                for k, v in self.state_dict().items()}

    def forward(self, y):
        h, logdet, prior, zs = y, 0, 0, []
        for lvl, (c, s, split) in zip(self.levels, self.shapes):
            if split:
                h = squeeze(h)
            for st in lvl.steps:
                h, ld = st.actnorm(h)
                logdet = logdet + ld
                h, ld = st.invconv(h)
                logdet = logdet + ld
                h, ld = st.coupling(h)
                logdet = logdet + ld
            if split:
                cz = c // 2
                z, h = h[:, :cz], h[:, cz:]
                pr = lvl.prior(h)
                prior = prior + gauss_logp(z, pr[:, :cz], pr[:, cz:])
                zs.append(z)
            else:
                prior = prior + gauss_logp(h, self.top_mean.expand_as(h), self.top_logs.expand_as(h))
                zs.append(h)
        logdet = logdet * torch.ones(y.shape[0])
        return zs, logdet, prior + logdet


def gauss_logp(z, mean, logs):
    d = z[0].numel()
    q = (z - mean) ** 2 * torch.exp(-2 * logs) + 2 * logs
    return -0.5 * q.flatten(1).sum(1) - 0.5 * math.log(2 * math.pi) * d


def raw(t):
    a = t.detach().contiguous().numpy().astype("<f4")
    return ("F32", list(a.shape), a.tobytes())


def fixture():
    torch.manual_seed(7)
    f = Flow(ch=1, size=8, levels=3, steps=2, hidden=8)
    with torch.no_grad():
        for name, p in f.named_parameters():
            p.copy_(torch.randn_like(p) * 0.3)
        for lvl in f.levels:
            for st in lvl.steps:
                c = st.invconv.logs.shape[0]
                st.invconv.perm.copy_(torch.eye(c)[torch.randperm(c)])
                st.invconv.sign.copy_(torch.where(torch.rand(c) < 0.5, -1.0, 1.0))
    out = {k: raw(v) for k, v in f.state().items()}
    y = torch.rand(3, 1, 8, 8) - 0.5
    zs, logdet, logp = f(y)
    out["io.y"] = raw(y)
    out["io.logdet"] = raw(logdet)
    out["io.logp"] = raw(logp)
    out["io.z"] = raw(torch.cat([z.flatten(1) for z in zs], 1))
    with open(os.path.join(HERE, "torch_flow.safetensors"), "wb") as fh:
        fh.write(st_encode(out, {"source": "plugins/flow/testdata/torch_flow.py", "torch": torch.__version__}))


def bench(args):
    threads = int(args.get("--threads", 2))
    batch = int(args.get("--batch", 64))
    steps = int(args.get("--steps", 5))
    torch.set_num_threads(threads)
    torch.manual_seed(1)
    f = Flow()
    params = sum(p.numel() for p in f.parameters())
    opt = torch.optim.Adam(f.parameters(), lr=1e-3)
    x = torch.randint(0, 256, (batch, 1, 28, 28)).float()
    d = 784

    def step():
        y = (x + torch.rand_like(x)) / 256 - 0.5
        opt.zero_grad(set_to_none=True)
        _, _, logp = f(y)
        loss = -logp.mean() / (d * math.log(2)) + 8
        loss.backward()
        torch.nn.utils.clip_grad_norm_(f.parameters(), 100.0)
        opt.step()

    only = args.get("--only", "")
    res = {"torch": torch.__version__, "threads": threads, "batch": batch, "params": params}
    if only in ("", "train"):
        for _ in range(2):
            step()
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        res["train_step_ms"] = round((time.perf_counter() - t0) / steps * 1000, 1)
    if only in ("", "infer"):
        y = (x + 0.5) / 256 - 0.5
        with torch.no_grad():
            for _ in range(2):
                f(y)
            t0 = time.perf_counter()
            for _ in range(steps):
                f(y)
            res["inference_ms"] = round((time.perf_counter() - t0) / steps * 1000, 1)
    res["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(res))


def mnist(name, n=None):
    import gzip
    import numpy as np
    path = os.path.join(HERE, "..", "..", "..", "examples", "data", "mnist", name)
    with gzip.open(path, "rb") as fh:
        raw = fh.read()
    x = np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(-1, 1, 28, 28)
    if n:
        x = x[:n]
    return torch.from_numpy(x.astype("float32"))


def actnorm_init(f, y):
    """Glow's data-dependent init, level by level, as Model.InitActNorm."""
    with torch.no_grad():
        h = y
        for lvl, (c, s, split) in zip(f.levels, f.shapes):
            if split:
                h = squeeze(h)
            for st in lvl.steps:
                m = h.mean((0, 2, 3))
                sd = h.std((0, 2, 3), unbiased=False)
                st.actnorm.bias.copy_(-m)
                st.actnorm.logs.copy_(-torch.log(sd + 1e-6))
                h, _ = st.actnorm(h)
                h, _ = st.invconv(h)
                h, _ = st.coupling(h)
            if split:
                h = h[:, c // 2:]


def init_like_go(f):
    """NewModel's init: random rotations in LU form, couplings' last
    convolutions and the priors at zero."""
    with torch.no_grad():
        for lvl in f.levels:
            for st in lvl.steps:
                c = st.invconv.logs.shape[0]
                q, _ = torch.linalg.qr(torch.randn(c, c))
                lu, piv = torch.linalg.lu_factor(q)
                P, L, U = torch.lu_unpack(lu, piv)
                d = torch.diagonal(U)
                st.invconv.perm.copy_(P)
                st.invconv.lower.copy_(L)
                st.invconv.upper.copy_(torch.triu(U, 1))
                st.invconv.sign.copy_(torch.sign(d))
                st.invconv.logs.copy_(torch.log(d.abs()))
                st.coupling.conv3.weight.zero_()
                st.coupling.conv3.bias.zero_()
            if hasattr(lvl, "prior"):
                lvl.prior.weight.zero_()
                lvl.prior.bias.zero_()


def train(args):
    threads = int(args.get("--threads", 2))
    torch.set_num_threads(threads)
    torch.manual_seed(1)
    hidden, nsteps, levels = int(args.get("--hidden", 64)), int(args.get("--steps", 8)), int(args.get("--levels", 3))
    iters, every = int(args.get("--iters", 1000)), int(args.get("--eval-every", 250))
    lr0 = float(args.get("--lr", 1e-3))
    f = Flow(levels=levels, steps=nsteps, hidden=hidden)
    init_like_go(f)
    params = sum(p.numel() for p in f.parameters())
    xs = mnist("train-images-idx3-ubyte.gz")
    xt = mnist("t10k-images-idx3-ubyte.gz", 1000)
    g = torch.Generator().manual_seed(2)
    yt = (xt + torch.rand(xt.shape, generator=g)) / 256 - 0.5
    opt = torch.optim.Adam(f.parameters(), lr=lr0)
    d = 784

    alpha = float(args.get("--logit", 0))

    def bpd(y):
        if alpha > 0:
            # logit transform of the [0, 1] image (RealNVP): its log-det per pixel counted
            s = alpha + (1 - 2 * alpha) * (y + 0.5)
            y = torch.log(s) - torch.log1p(-s)
            ld = (math.log(1 - 2 * alpha) - torch.log(s) - torch.log1p(-s)).flatten(1).sum(1)
            _, _, logp = f(y)
            return -(logp + ld).mean() / (d * math.log(2)) + 8
        _, _, logp = f(y)
        return -logp.mean() / (d * math.log(2)) + 8

    perm, pos, t0 = torch.randperm(len(xs)), 0, time.perf_counter()
    print(json.dumps({"hidden": hidden, "steps": nsteps, "levels": levels, "params": params, "lr": lr0, "logit": alpha}), flush=True)
    for it in range(iters):
        if pos + 64 > len(xs):
            perm, pos = torch.randperm(len(xs)), 0
        x = xs[perm[pos:pos + 64]]
        pos += 64
        y = (x + torch.rand_like(x)) / 256 - 0.5
        if it == 0:
            actnorm_init(f, y)
        lr = lr0 * (it + 1) / 200 if it < 200 else lr0 * 0.999 ** ((it - 200) // 100)
        for grp in opt.param_groups:
            grp["lr"] = lr
        opt.zero_grad(set_to_none=True)
        loss = bpd(y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(f.parameters(), 100.0)
        opt.step()
        if (it + 1) % every == 0:
            with torch.no_grad():
                ev = sum(bpd(yt[i:i + 250]).item() for i in range(0, 1000, 250)) / 4
            print(json.dumps({"step": it + 1, "train_bpd": round(loss.item(), 4), "heldout_bpd": round(ev, 4),
                              "s": round(time.perf_counter() - t0, 1)}), flush=True)


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in ("fixture", "bench", "train"):
        sys.exit(__doc__)
    if sys.argv[1] == "fixture":
        fixture()
    elif sys.argv[1] == "train":
        train(dict(zip(sys.argv[2::2], sys.argv[3::2])))
    else:
        bench(dict(zip(sys.argv[2::2], sys.argv[3::2])))
