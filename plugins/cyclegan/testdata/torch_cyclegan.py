"""PyTorch twin of plugins/cyclegan's networks and losses.

  torch_cyclegan.py [fixture]
      Writes torch_cyclegan.safetensors: the weights of a small CycleGAN and a
      small pix2pix (state_dict names are the Go parameter names), inputs, the
      networks' outputs, the losses of one generator and one discriminator
      step, and the gradients of those losses. torch_test.go loads the weights
      into the Go model and checks it reproduces every value.

  torch_cyclegan.py bench [--threads 2] [--steps 10] [--only train|infer]
      Times, as JSON, one CycleGAN iteration of the shipped typeset2mnist
      architecture (ngf 32, 2 downs, 6 blocks, ndf 64, 2 d_layers, 28x28 gray)
      at batch 8 (the generators' step: LSGAN, cycle and identity losses,
      Adam(2e-4, 0.5); then the discriminators' step on fakes from history
      pools of 50), and a batch of 64 through the a2b generator (eval, no
      grad). The batches are fixed: they are those of the Go side,
      go test -bench 'TrainStep$|Translate$' ./plugins/cyclegan;
      bench/compare.py cyclegan runs both.

Run with Debian's PyTorch (/usr/bin/python3, torch 1.13).

The architecture follows junyanz/pytorch-CycleGAN-and-pix2pix (ResnetGenerator,
NLayerDiscriminator, an InstanceNorm U-Net for pix2pix), as documented in
model.go's Arch.
"""
import json
import os
import random
import resource
import struct
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def IN(c):
    return nn.InstanceNorm2d(c, affine=False, track_running_stats=False)


class ResBlock(nn.Module):
    def __init__(self, c, drop=0.0):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3)
        self.conv2 = nn.Conv2d(c, c, 3)
        self.in1, self.in2 = IN(c), IN(c)
        self.drop = drop
        self.mask = None  # the Go side's dropout mask, given

    def forward(self, x):
        h = F.relu(self.in1(self.conv1(F.pad(x, (1, 1, 1, 1), mode="reflect"))))
        if self.drop > 0:
            h = h * self.mask
        h = self.in2(self.conv2(F.pad(h, (1, 1, 1, 1), mode="reflect")))
        return x + h


class Resnet(nn.Module):
    def __init__(self, cin, cout, ngf, downs, blocks):
        super().__init__()
        self.stem = nn.Conv2d(cin, ngf, 7)
        c = ngf
        self.down = nn.ModuleDict()
        for i in range(downs):
            self.down[str(i)] = nn.Conv2d(c, 2 * c, 3, stride=2, padding=1)
            c *= 2
        self.blocks = nn.ModuleDict({str(i): ResBlock(c) for i in range(blocks)})
        self.up = nn.ModuleDict()
        for i in range(downs):
            self.up[str(i)] = nn.ConvTranspose2d(c, c // 2, 3, stride=2, padding=1, output_padding=1)
            c //= 2
        self.head = nn.Conv2d(c, cout, 7)

    def forward(self, x):
        h = F.relu(IN(self.stem.out_channels)(self.stem(F.pad(x, (3, 3, 3, 3), mode="reflect"))))
        for conv in self.down.values():
            h = F.relu(IN(conv.out_channels)(conv(h)))
        for blk in self.blocks.values():
            h = blk(h)
        for conv in self.up.values():
            h = F.relu(IN(conv.out_channels)(conv(h)))
        return torch.tanh(self.head(F.pad(h, (3, 3, 3, 3), mode="reflect")))


class UNet(nn.Module):
    def __init__(self, cin, cout, ngf, downs, blocks, drop):
        super().__init__()
        self.downs, self.drop = downs, drop
        self.stem = nn.Conv2d(cin, ngf, 4, stride=2, padding=1)
        c = ngf
        self.down = nn.ModuleDict()
        for i in range(1, downs):
            self.down[str(i)] = nn.Conv2d(c, 2 * c, 4, stride=2, padding=1)
            c *= 2
        self.blocks = nn.ModuleDict({str(i): ResBlock(c, drop) for i in range(blocks)})
        self.up = nn.ModuleDict()
        for lvl in range(downs - 1, -1, -1):
            inc = 2 * c if (lvl < downs - 1 or blocks > 0) else c
            outc = cout if lvl == 0 else c // 2
            self.up[str(lvl)] = nn.ConvTranspose2d(inc, outc, 4, stride=2, padding=1)
            c = outc
        self.masks = {}

    def forward(self, x):
        skips = [self.stem(x)]
        h = skips[0]
        for conv in self.down.values():
            h = IN(conv.out_channels)(conv(F.leaky_relu(h, 0.2)))
            skips.append(h)
        if len(self.blocks) > 0:
            h = F.leaky_relu(h, 0.2)
            for blk in self.blocks.values():
                h = blk(h)
            h = torch.cat([h, skips[-1]], 1)
        for j, (name, conv) in enumerate(self.up.items()):
            lvl = int(name)
            h = conv(F.relu(h))
            if lvl == 0:
                return torch.tanh(h)
            h = IN(conv.out_channels)(h)
            if self.drop > 0 and j < 3:
                h = h * self.masks[lvl]
            h = torch.cat([h, skips[lvl - 1]], 1)


class PatchGAN(nn.Module):
    def __init__(self, cin, ndf, layers):
        super().__init__()
        mult = lambda n: ndf * min(2 ** n, 8)
        self.add_module("in", nn.Conv2d(cin, ndf, 4, stride=2, padding=1))
        c = ndf
        self.down = nn.ModuleDict()
        for n in range(1, layers):
            self.down[str(n)] = nn.Conv2d(c, mult(n), 4, stride=2, padding=1)
            c = mult(n)
        self.mid = nn.Conv2d(c, mult(layers), 4, stride=1, padding=1)
        self.out = nn.Conv2d(mult(layers), 1, 4, stride=1, padding=1)

    def forward(self, x):
        h = F.leaky_relu(getattr(self, "in")(x), 0.2)
        for conv in self.down.values():
            h = F.leaky_relu(IN(conv.out_channels)(conv(h)), 0.2)
        h = F.leaky_relu(IN(self.mid.out_channels)(self.mid(h)), 0.2)
        return self.out(h)


def init_normal(m):
    for mod in m.modules():
        if isinstance(mod, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(mod.weight, 0.0, 0.02)
            nn.init.zeros_(mod.bias)
    # Biases non-zero, so the test sees them used.
    for p in m.parameters():
        if p.dim() == 1:
            p.data.uniform_(-0.1, 0.1)



class ImagePool:
    """The reference's ImagePool (Shrivastava et al.'s history of fakes), as
    plugins/cyclegan/pool.go: until it holds size images every fake is kept
    and passed through; then each fake, with probability one half, is swapped
    for a kept one, else passed through."""

    def __init__(self, size):
        self.size, self.images = size, []

    def query(self, images):
        if self.size == 0:
            return images
        out = []
        for img in images:
            img = img.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(img)
                out.append(img)
            elif random.uniform(0, 1) > 0.5:
                j = random.randint(0, self.size - 1)
                out.append(self.images[j].clone())
                self.images[j] = img
            else:
                out.append(img)
        return torch.cat(out, 0)


def set_requires_grad(nets, on):
    for net in nets:
        for p in net.parameters():
            p.requires_grad = on


# The batches of plugins/cyclegan/bench_test.go.
TRAIN_BATCH, INFER_BATCH = 8, 64


def bench(args):
    threads = int(args.get("--threads", 2))
    steps = int(args.get("--steps", 10))
    only = args.get("--only", "")
    torch.set_num_threads(threads)
    torch.manual_seed(1)
    random.seed(1)
    # digitsCycle in cyclegan.go; init_type normal, as NewModel.
    cyc = nn.ModuleDict({
        "g_ab": Resnet(1, 1, 32, 2, 6), "g_ba": Resnet(1, 1, 32, 2, 6),
        "d_a": PatchGAN(1, 64, 2), "d_b": PatchGAN(1, 64, 2),
    })
    for mod in cyc.modules():
        if isinstance(mod, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(mod.weight, 0.0, 0.02)
            nn.init.zeros_(mod.bias)
    G, Fn, DA, DB = cyc["g_ab"], cyc["g_ba"], cyc["d_a"], cyc["d_b"]
    out = {"torch": torch.__version__, "threads": threads, "train_batch": TRAIN_BATCH, "infer_batch": INFER_BATCH,
           "params": sum(p.numel() for p in cyc.parameters()),
           "generator_params": sum(p.numel() for p in G.parameters())}
    if only in ("", "train"):
        og = torch.optim.Adam(list(G.parameters()) + list(Fn.parameters()), lr=2e-4, betas=(0.5, 0.999))
        od = torch.optim.Adam(list(DA.parameters()) + list(DB.parameters()), lr=2e-4, betas=(0.5, 0.999))
        pool_a, pool_b = ImagePool(50), ImagePool(50)
        lam, idt = 10.0, 0.5
        a = torch.rand(TRAIN_BATCH, 1, 28, 28) * 2 - 1
        b = torch.rand(TRAIN_BATCH, 1, 28, 28) * 2 - 1

        def lsgan(D, real, fake):
            sr, sf = D(real), D(fake)
            return 0.5 * (F.mse_loss(sr, torch.ones_like(sr)) + F.mse_loss(sf, torch.zeros_like(sf)))

        def step():
            # The reference's optimize_parameters, with the Go side's
            # naming: d_a scores domain A (F's fakes), d_b domain B.
            fake_b, fake_a = G(a), Fn(b)
            rec_a, rec_b = Fn(fake_b), G(fake_a)
            set_requires_grad([DA, DB], False)
            og.zero_grad(set_to_none=True)
            sB, sA = DB(fake_b), DA(fake_a)
            loss_g = (F.mse_loss(sB, torch.ones_like(sB)) + F.mse_loss(sA, torch.ones_like(sA)) +
                      lam * (F.l1_loss(rec_a, a) + F.l1_loss(rec_b, b)) +
                      lam * idt * (F.l1_loss(G(b), b) + F.l1_loss(Fn(a), a)))
            loss_g.backward()
            og.step()
            set_requires_grad([DA, DB], True)
            od.zero_grad(set_to_none=True)
            fa, fb = pool_a.query(fake_a.detach()), pool_b.query(fake_b.detach())
            (lsgan(DA, a, fa) + lsgan(DB, b, fb)).backward()
            od.step()

        # Warm up until both pools are full, as the Go side does: a real
        # training spends all but its first few steps there.
        while len(pool_a.images) < pool_a.size or len(pool_b.images) < pool_b.size:
            step()
        t = time.perf_counter()
        for _ in range(steps):
            step()
        out["train_step_ms"] = round((time.perf_counter() - t) / steps * 1000, 2)
    if only in ("", "infer"):
        G.eval()
        x = torch.rand(INFER_BATCH, 1, 28, 28) * 2 - 1
        with torch.no_grad():
            for _ in range(3):
                G(x)
            t = time.perf_counter()
            for _ in range(steps):
                G(x)
            out["inference_ms"] = round((time.perf_counter() - t) / steps * 1000, 2)
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(out))


def fixture():
    """Writes torch_cyclegan.safetensors (see the module's doc)."""
    torch.manual_seed(0)
    torch.set_num_threads(1)
    out = {}

    def put(name, t):
        out[name] = t.detach().clone().contiguous().float()  # clone: zero_grad() zeroes grads in place

    # --- CycleGAN: ngf 4, 2 downs, 2 blocks, ndf 4, 2 d_layers, 1 channel, 16x16.
    N, H, W = 2, 16, 16
    cyc = nn.ModuleDict({
        "g_ab": Resnet(1, 1, 4, 2, 2), "g_ba": Resnet(1, 1, 4, 2, 2),
        "d_a": PatchGAN(1, 4, 2), "d_b": PatchGAN(1, 4, 2),
    })
    init_normal(cyc)
    for k, v in cyc.state_dict().items():
        put("cycle." + k, v)
    a = torch.rand(N, 1, H, W) * 2 - 1
    b = torch.rand(N, 1, H, W) * 2 - 1
    put("cycle.real_a", a)
    put("cycle.real_b", b)
    lam, idt = 10.0, 0.5
    G, Fn, DA, DB = cyc["g_ab"], cyc["g_ba"], cyc["d_a"], cyc["d_b"]
    fake_b, fake_a = G(a), Fn(b)
    rec_a, rec_b = Fn(fake_b), G(fake_a)
    sB, sA = DB(fake_b), DA(fake_a)
    terms = {
        "g_ab": F.mse_loss(sB, torch.ones_like(sB)),
        "g_ba": F.mse_loss(sA, torch.ones_like(sA)),
        "cycle_a": F.l1_loss(rec_a, a),
        "cycle_b": F.l1_loss(rec_b, b),
        "idt_b": F.l1_loss(G(b), b),
        "idt_a": F.l1_loss(Fn(a), a),
    }
    loss_g = terms["g_ab"] + terms["g_ba"] + lam * (terms["cycle_a"] + terms["cycle_b"]) + lam * idt * (terms["idt_b"] + terms["idt_a"])
    cyc.zero_grad()
    loss_g.backward()
    put("cycle.g.loss", loss_g.reshape(1))
    for k, v in terms.items():
        put("cycle.g.term." + k, v.reshape(1))
    put("cycle.g.fake_b", fake_b)
    put("cycle.g.fake_a", fake_a)
    for k, p in cyc.named_parameters():
        if k.startswith("g_"):
            put("cycle.g.grad." + k, p.grad)
    # Discriminator step on the fakes (as values, as the pool hands them).
    fa, fb = fake_a.detach(), fake_b.detach()
    cyc.zero_grad()
    def lsgan(D, real, fake):
        sr, sf = D(real), D(fake)
        return 0.5 * (F.mse_loss(sr, torch.ones_like(sr)) + F.mse_loss(sf, torch.zeros_like(sf)))
    la, lb = lsgan(DA, a, fa), lsgan(DB, b, fb)
    (la + lb).backward()
    put("cycle.d.loss", (la + lb).reshape(1))
    put("cycle.d.d_a", la.reshape(1))
    put("cycle.d.d_b", lb.reshape(1))
    for k, p in cyc.named_parameters():
        if k.startswith("d_"):
            put("cycle.d.grad." + k, p.grad)

    # --- pix2pix: ngf 4, 2 downs, 1 block, ndf 4, 2 d_layers, dropout 0.5 with
    # given masks, 1 channel, 16x16.
    pix = nn.ModuleDict({"g_ab": UNet(1, 1, 4, 2, 1, 0.5), "d_b": PatchGAN(2, 4, 2)})
    init_normal(pix)
    for k, v in pix.state_dict().items():
        put("pix." + k, v)
    x = torch.rand(N, 1, H, W) * 2 - 1
    y = torch.rand(N, 1, H, W) * 2 - 1
    put("pix.x", x)
    put("pix.y", y)
    U = pix["g_ab"]
    # Masks: 0 or 2, drawn here; the Go test copies them into its mask inputs.
    blk_mask = (torch.rand(N, 8, 4, 4) > 0.5).float() * 2
    up_mask = (torch.rand(N, 4, 8, 8) > 0.5).float() * 2
    U.blocks["0"].mask = blk_mask
    U.masks[1] = up_mask
    put("pix.mask.g_ab.blocks.0.dropout", blk_mask)
    put("pix.mask.g_ab.up.1.dropout", up_mask)
    fake = U(x)
    s = pix["d_b"](torch.cat([x, fake], 1))
    g_gan = F.binary_cross_entropy_with_logits(s, torch.ones_like(s))
    g_l1 = F.l1_loss(fake, y)
    loss = g_gan + 100 * g_l1
    pix.zero_grad()
    loss.backward()
    put("pix.g.loss", loss.reshape(1))
    put("pix.g.term.g_gan", g_gan.reshape(1))
    put("pix.g.term.g_l1", g_l1.reshape(1))
    put("pix.g.fake", fake)
    for k, p in pix.named_parameters():
        if k.startswith("g_"):
            put("pix.g.grad." + k, p.grad)
    pix.zero_grad()
    D = pix["d_b"]
    sr, sf = D(torch.cat([x, y], 1)), D(torch.cat([x, fake.detach()], 1))
    real_l = F.binary_cross_entropy_with_logits(sr, torch.ones_like(sr))
    fake_l = F.binary_cross_entropy_with_logits(sf, torch.zeros_like(sf))
    dl = 0.5 * (real_l + fake_l)
    dl.backward()
    put("pix.d.loss", dl.reshape(1))
    for k, p in pix.named_parameters():
        if k.startswith("d_"):
            put("pix.d.grad." + k, p.grad)

    # safetensors, written by hand (no dependency on the safetensors package).
    header, blobs, off = {}, [], 0
    for k in sorted(out):
        t = out[k]
        data = t.numpy().astype("<f4").tobytes()
        header[k] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [off, off + len(data)]}
        blobs.append(data)
        off += len(data)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "torch_cyclegan.safetensors")
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for blob in blobs:
            f.write(blob)
    print("wrote", path, off, "bytes of tensors")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "bench":
        rest = sys.argv[2:]
        bench(dict(zip(rest[::2], rest[1::2])))
    elif len(sys.argv) == 1 or sys.argv[1] == "fixture":
        fixture()
    else:
        sys.exit(__doc__)
