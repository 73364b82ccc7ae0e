#!/usr/bin/python3
"""PyTorch twin of plugins/gan's DCGAN architecture.

  torch_gan.py bench [--threads 2] [--batch 64] [--steps 20] [--only train|infer]
      Times one DCGAN iteration (a discriminator step on real and fake
      batches, then a generator step through the discriminator; Adam) and a
      batch-64 generation of the shipped mnist-dcgan architecture (z 64,
      width 32), as JSON. The Go side: go test -bench . ./plugins/gan;
      bench/compare.py gan runs both.

  torch_gan.py fixture
      Writes torch_gan.safetensors: a small conditional model's state_dict
      (z 8, width 4, 10 classes), and torch_gan_io.safetensors: noise,
      labels, the generator's eval-mode output and the discriminator's
      eval-mode logits on it. TestPyTorchWeights must reproduce both.

Run with Debian's python3 (/usr/bin/python3), which has torch 1.13.
"""

import json
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


class Generator(nn.Module):
    def __init__(self, z, width, classes):
        super().__init__()
        self.w = width
        self.fc = nn.Linear(z + classes, 2 * width * 49)
        self.bn0 = nn.BatchNorm2d(2 * width)
        self.up1 = nn.ConvTranspose2d(2 * width, width, 4, 2, 1)
        self.bn1 = nn.BatchNorm2d(width)
        self.up2 = nn.ConvTranspose2d(width, 1, 4, 2, 1)

    def forward(self, z):
        h = F.relu(self.bn0(self.fc(z).view(-1, 2 * self.w, 7, 7)))
        h = F.relu(self.bn1(self.up1(h)))
        return torch.tanh(self.up2(h))


class Discriminator(nn.Module):
    def __init__(self, width, classes, batchnorm=True):
        super().__init__()
        self.conv1 = nn.Conv2d(1 + classes, width, 4, 2, 1)
        self.conv2 = nn.Conv2d(width, 2 * width, 4, 2, 1)
        self.bn2 = nn.BatchNorm2d(2 * width) if batchnorm else None
        self.fc = nn.Linear(2 * width * 49, 1)

    def forward(self, x):
        h = F.leaky_relu(self.conv1(x), 0.2)
        h = self.conv2(h)
        if self.bn2 is not None:
            h = self.bn2(h)
        return self.fc(F.leaky_relu(h, 0.2).flatten(1))


class GAN(nn.Module):
    """Parameter names match plugins/gan: generator.*, discriminator.*."""

    def __init__(self, z=64, width=32, classes=0):
        super().__init__()
        self.generator = Generator(z, width, classes)
        self.discriminator = Discriminator(width, classes)


def bench(args):
    threads = int(args.get("--threads", 2))
    batch = int(args.get("--batch", 64))
    steps = int(args.get("--steps", 20))
    only = args.get("--only", "")
    torch.set_num_threads(threads)
    torch.manual_seed(1)
    m = GAN()
    G, D = m.generator, m.discriminator
    og = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    od = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    real = torch.rand(batch, 1, 28, 28) * 2 - 1
    ones, zeros = torch.ones(batch, 1), torch.zeros(batch, 1)

    def step():
        fake = G(torch.randn(batch, 64))
        od.zero_grad(set_to_none=True)
        (F.binary_cross_entropy_with_logits(D(real), ones) +
         F.binary_cross_entropy_with_logits(D(fake.detach()), zeros)).backward()
        od.step()
        og.zero_grad(set_to_none=True)
        F.binary_cross_entropy_with_logits(D(G(torch.randn(batch, 64))), ones).backward()
        og.step()

    out = {"torch": torch.__version__, "threads": threads, "batch": batch,
           "params": sum(p.numel() for p in m.parameters())}
    if only in ("", "train"):
        for _ in range(3):
            step()
        t = time.perf_counter()
        for _ in range(steps):
            step()
        out["train_step_ms"] = round((time.perf_counter() - t) / steps * 1000, 2)
    if only in ("", "infer"):
        G.eval()
        with torch.no_grad():
            for _ in range(3):
                G(torch.randn(batch, 64))
            t = time.perf_counter()
            for _ in range(steps):
                G(torch.randn(batch, 64))
            out["inference_ms"] = round((time.perf_counter() - t) / steps * 1000, 2)
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(out))


def fixture():
    torch.manual_seed(3)
    m = GAN(z=8, width=4, classes=10)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.1 * torch.randn_like(p))
        # Running statistics that are not the defaults, as after training.
        for bn in (m.generator.bn0, m.generator.bn1, m.discriminator.bn2):
            bn.running_mean.copy_(0.1 * torch.randn_like(bn.running_mean))
            bn.running_var.copy_(1 + 0.2 * torch.rand_like(bn.running_var))
            bn.num_batches_tracked.fill_(17)
    m.eval()
    z = torch.randn(3, 8)
    labels = torch.tensor([1, 7, 3])
    onehot = F.one_hot(labels, 10).float()
    with torch.no_grad():
        img = m.generator(torch.cat([z, onehot], 1))
        planes = onehot[:, :, None, None].expand(-1, -1, 28, 28)
        logits = m.discriminator(torch.cat([img, planes], 1))

    def raw(t, dtype="F32"):
        if dtype == "I64":
            return ("I64", list(t.shape), t.detach().numpy().astype("<i8").tobytes())
        return ("F32", list(t.shape), t.detach().contiguous().numpy().astype("<f4").tobytes())

    sd = {k: raw(v, "I64" if v.dtype == torch.int64 else "F32") for k, v in m.state_dict().items()}
    meta = {"source": "plugins/gan/testdata/torch_gan.py fixture", "torch": torch.__version__,
            "arch": json.dumps({"variant": "cgan", "z": 8, "width": 4, "classes": 10})}
    with open(os.path.join(HERE, "torch_gan.safetensors"), "wb") as f:
        f.write(st_encode(sd, meta))
    io = {"z": raw(z), "labels": raw(labels.float()), "images": raw(img), "logits": raw(logits)}
    with open(os.path.join(HERE, "torch_gan_io.safetensors"), "wb") as f:
        f.write(st_encode(io, {"source": "plugins/gan/testdata/torch_gan.py fixture"}))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "bench":
        a = sys.argv[2:]
        bench(dict(zip(a[::2], a[1::2])))
    elif len(sys.argv) > 1 and sys.argv[1] == "fixture":
        fixture()
    else:
        sys.exit(__doc__)
