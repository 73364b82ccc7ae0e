#!/usr/bin/python3
"""PyTorch reference values for nn's layers (GroupNorm, BatchNorm2d in
training and eval mode, nearest Upsample, SiLU, self-attention).

  torch_layers.py
      Writes torch_layers.safetensors next to this script: for each layer
      its input, parameters, output and, for the loss sum(y * r) with a
      random r (also stored), the gradients of the input and parameters.
      For BatchNorm2d also the running statistics after one training step.
      layers_torch_test.go must reproduce every tensor to ~1e-5.

Run with Debian's python3 (/usr/bin/python3), which has torch 1.13.
"""

import os
import sys

import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "..", "sdk", "safetensors", "testdata"))
from make_fixture import encode as st_encode  # noqa: E402


def raw(t):
    a = t.detach().contiguous().numpy().astype("<f4")
    return ("F32", list(a.shape), a.tobytes())


def main():
    torch.manual_seed(3)
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

    # GroupNorm(3 groups, 6 channels), non-trivial affine and a shifted input.
    gn = nn.GroupNorm(3, 6)
    with torch.no_grad():
        gn.weight.copy_(torch.randn(6))
        gn.bias.copy_(torch.randn(6))
    x = (torch.randn(2, 6, 3, 4) * 2 + 1).requires_grad_()
    record("gn", x, gn(x), {"weight": gn.weight, "bias": gn.bias})

    # BatchNorm2d: one training step from non-default running statistics,
    # then eval mode on another input.
    bn = nn.BatchNorm2d(4)
    with torch.no_grad():
        bn.weight.copy_(torch.randn(4))
        bn.bias.copy_(torch.randn(4))
        bn.running_mean.copy_(torch.randn(4))
        bn.running_var.copy_(torch.rand(4) + 0.5)
    out["bn.running_mean0"] = raw(bn.running_mean)
    out["bn.running_var0"] = raw(bn.running_var)
    bn.train()
    x = (torch.randn(3, 4, 3, 3) * 1.5 - 0.5).requires_grad_()
    record("bn", x, bn(x), {"weight": bn.weight, "bias": bn.bias})
    out["bn.running_mean1"] = raw(bn.running_mean)
    out["bn.running_var1"] = raw(bn.running_var)
    out["bn.num_batches_tracked1"] = raw(bn.num_batches_tracked.float().reshape(1))
    bn.eval()
    bn.zero_grad()
    x = torch.randn(2, 4, 3, 3).requires_grad_()
    record("bn_eval", x, bn(x), {"weight": bn.weight, "bias": bn.bias})

    up = nn.Upsample(scale_factor=2, mode="nearest")
    x = torch.randn(2, 3, 3, 4).requires_grad_()
    record("up", x, up(x), {})

    x = (torch.randn(5, 20) * 4).requires_grad_()
    record("silu", x, nn.functional.silu(x), {})

    # Single-head self-attention over the 3x5 positions of a map whose 3C
    # channels are q, k and v (the DDPM U-Net's attention block without its
    # norm and 1x1 convolutions), as nn's SelfAttention op defines it.
    def attention(qkv):
        n, c3, h, w = qkv.shape
        q, k, v = qkv.reshape(n, c3, h * w).chunk(3, dim=1)
        a = torch.softmax(torch.einsum("nci,ncj->nij", q, k) / (c3 // 3) ** 0.5, dim=-1)
        return torch.einsum("nij,ncj->nci", a, v).reshape(n, c3 // 3, h, w)

    x = (torch.randn(2, 12, 3, 5) * 1.5).requires_grad_()
    record("attn", x, attention(x), {})

    with open(os.path.join(HERE, "torch_layers.safetensors"), "wb") as f:
        f.write(st_encode(out, {"source": "nn/testdata/torch_layers.py", "torch": torch.__version__}))


if __name__ == "__main__":
    main()
