#!/usr/bin/python3
"""PyTorch reference values and timing for the translate family's layers
(ReflectionPad2d, InstanceNorm2d, dropout, L1 loss, CycleGAN's ResNet
generator).

  torch_translate.py fixture
      Writes torch_translate.safetensors next to this script: for each
      layer its input, parameters, output and, for the loss sum(y * r) with
      a random r (also stored), the gradients of the input and parameters;
      dropout's mask is recovered from PyTorch's own F.dropout output; one
      CycleGAN residual block (junyanz's ResnetBlock: state_dict names
      conv_block.1 and conv_block.5) end to end; a small ResNet generator
      (ngf 4, 2 blocks) end to end, with its state_dict. translate_torch_test.go
      must reproduce every tensor to ~1e-5.

  torch_translate.py bench [--threads 2] [--batch 8] [--steps 20]
      Times forward + L1 loss + backward of the ResNet generator of
      BenchmarkResnetGenerator (translate_test.go): c7s1-32, d64, d128,
      6 residual blocks, u64, u32, c7s1-1, tanh on 1x28x28 images.
      The Go side: go test -run XXX -bench ResnetGenerator ./nn/layers

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


def raw(t):
    a = t.detach().contiguous().numpy().astype("<f4")
    return ("F32", list(a.shape), a.tobytes())


class ResnetBlock(nn.Module):
    """junyanz/pytorch-CycleGAN-and-pix2pix's ResnetBlock with
    padding_type='reflect', InstanceNorm2d (affine=False), no dropout: the
    convolutions keep their bias, as there with instance norm."""

    def __init__(self, dim):
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3), nn.InstanceNorm2d(dim), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3), nn.InstanceNorm2d(dim))

    def forward(self, x):
        return x + self.conv_block(x)


def generator(cin=1, cout=1, ngf=32, blocks=6):
    """CycleGAN's ResnetGenerator with two down- and up-samplings."""
    layers = [nn.ReflectionPad2d(3), nn.Conv2d(cin, ngf, 7), nn.InstanceNorm2d(ngf), nn.ReLU(True)]
    for i in range(2):
        m = 2 ** i
        layers += [nn.Conv2d(ngf * m, ngf * m * 2, 3, stride=2, padding=1),
                   nn.InstanceNorm2d(ngf * m * 2), nn.ReLU(True)]
    for _ in range(blocks):
        layers.append(ResnetBlock(ngf * 4))
    for i in range(2):
        m = 2 ** (2 - i)
        layers += [nn.ConvTranspose2d(ngf * m, ngf * m // 2, 3, stride=2, padding=1, output_padding=1),
                   nn.InstanceNorm2d(ngf * m // 2), nn.ReLU(True)]
    layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, cout, 7), nn.Tanh()]
    return nn.Sequential(*layers)


def fixture():
    torch.manual_seed(11)
    out = {}

    def record(prefix, x, y, params):
        r = torch.randn_like(y)
        (y * r).sum().backward()
        out[prefix + ".x"] = raw(x)
        out[prefix + ".y"] = raw(y)
        out[prefix + ".r"] = raw(r)
        out[prefix + ".dx"] = raw(x.grad)
        for name, p in params.items():
            out[prefix + "." + name] = raw(p)
            out[prefix + ".d" + name] = raw(p.grad)

    # Reflection padding by 3 (c7s1's) and by 1 on a 2x3 image, the
    # smallest that allows it.
    x = torch.randn(2, 3, 5, 6).requires_grad_()
    record("pad3", x, nn.ReflectionPad2d(3)(x), {})
    x = torch.randn(1, 2, 2, 3).requires_grad_()
    record("pad1", x, nn.ReflectionPad2d(1)(x), {})

    # InstanceNorm2d without (CycleGAN's default) and with affine, on a
    # shifted input.
    x = (torch.randn(2, 4, 5, 5) * 2 + 1).requires_grad_()
    record("in", x, nn.InstanceNorm2d(4)(x), {})
    inorm = nn.InstanceNorm2d(4, affine=True)
    with torch.no_grad():
        inorm.weight.copy_(torch.randn(4))
        inorm.bias.copy_(torch.randn(4))
    x = (torch.randn(2, 4, 3, 5) * 1.5 - 0.5).requires_grad_()
    record("in_affine", x, inorm(x), {"weight": inorm.weight, "bias": inorm.bias})

    # Dropout as PyTorch draws it; the mask (0 or 1/(1-p)) is recovered from
    # the output, as no element of x is 0.
    p = 0.5
    x = torch.randn(2, 3, 4, 4).requires_grad_()
    y = F.dropout(x, p, training=True)
    out["drop.mask"] = raw((y != 0).float() / (1 - p))
    record("drop", x, y, {})

    # L1 loss, with a row of exact ties (sign(0) = 0 in the gradient).
    pred = torch.randn(2, 3, 4, 4)
    target = torch.randn(2, 3, 4, 4)
    target[0, 0, 0] = pred[0, 0, 0]
    pred.requires_grad_()
    target.requires_grad_()
    loss = F.l1_loss(pred, target)
    loss.backward()
    out["l1.pred"], out["l1.target"] = raw(pred), raw(target)
    out["l1.loss"] = raw(loss.reshape(1))
    out["l1.dpred"], out["l1.dtarget"] = raw(pred.grad), raw(target.grad)

    # One residual block end to end.
    block = ResnetBlock(4)
    x = torch.randn(2, 4, 5, 5).requires_grad_()
    y = block(x)
    r = torch.randn_like(y)
    (y * r).sum().backward()
    out["res.x"], out["res.y"], out["res.r"], out["res.dx"] = raw(x), raw(y), raw(r), raw(x.grad)
    for name, t in block.named_parameters():
        out["res." + name] = raw(t)
        out["res.d." + name] = raw(t.grad)

    # A small generator (ngf 4, 2 blocks) end to end: its state_dict, an
    # input batch, the output and the L1 loss's gradient in the input.
    gen = generator(ngf=4, blocks=2)
    for name, t in gen.state_dict().items():
        out["gen." + name] = raw(t)
    x = (torch.rand(2, 1, 28, 28) * 2 - 1).requires_grad_()
    target = torch.rand(2, 1, 28, 28) * 2 - 1
    y = gen(x)
    loss = F.l1_loss(y, target)
    loss.backward()
    out["gen_io.x"], out["gen_io.target"], out["gen_io.y"] = raw(x), raw(target), raw(y)
    out["gen_io.loss"], out["gen_io.dx"] = raw(loss.reshape(1)), raw(x.grad)

    with open(os.path.join(HERE, "torch_translate.safetensors"), "wb") as f:
        f.write(st_encode(out, {"source": "nn/layers/testdata/torch_translate.py", "torch": torch.__version__}))


def bench(argv):
    opts = {"--threads": 2, "--batch": 8, "--steps": 20}
    for k, v in zip(argv[::2], argv[1::2]):
        opts[k] = int(v)
    torch.set_num_threads(opts["--threads"])
    torch.manual_seed(1)
    g = generator()
    n = opts["--batch"]
    x = torch.rand(n, 1, 28, 28) * 2 - 1
    t = torch.rand(n, 1, 28, 28) * 2 - 1

    def step():
        g.zero_grad()
        F.l1_loss(g(x), t).backward()

    for _ in range(3):
        step()
    times, cpu = [], []
    for _ in range(opts["--steps"]):
        t0, c0 = time.perf_counter(), time.process_time()
        step()
        times.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.process_time() - c0) * 1000)
    times.sort()
    cpu.sort()
    print(json.dumps({
        "threads": opts["--threads"], "batch": n,
        "params": sum(p.numel() for p in g.parameters()),
        "ms_per_step_median": round(times[len(times) // 2], 2),
        "ms_per_step_min": round(times[0], 2),
        # CPU time (all threads): on a shared machine, the work done
        # independently of how much of the wall time the process got.
        "cpu_ms_per_step_median": round(cpu[len(cpu) // 2], 2),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
    }))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "bench":
        bench(sys.argv[2:])
    elif len(sys.argv) > 1 and sys.argv[1] == "fixture":
        fixture()
    else:
        sys.exit(__doc__)
