#!/usr/bin/python3
"""Side-by-side speed and memory of this repository's models (Go: nn/ on
gorgonia with custom ops and nn/gemm) against their PyTorch 1.13 twins on
the same architecture and batch (64, except CycleGAN's training step: 8),
2 threads, on this machine. Runs alternate so both see the same conditions;
each task is its own process, so peak RSS (VmHWM, through /usr/bin/time) is
per task. Where the Go benchmark reports its parameter count, it must equal
the twin's, or the script stops: the two would not be the same network.

  bench/compare.py vae|gan|unet|cyclegan|diffusion|flow [--runs 5] [--steps N]

  vae   the shipped mnist-vae (plugins/vae BenchmarkTrainStep/Inference,
        plugins/vae/testdata/torch_vae.py)
  gan   the shipped mnist-dcgan: one D+G iteration, and batch-64 generation
        (plugins/gan BenchmarkTrainStep/Generate, plugins/gan/testdata/torch_gan.py)
  unet  the 0.93M-parameter DDPM U-Net the diffusion family needs
        (nn BenchmarkUNetTrainStep/UNetInference, nn/layers/testdata/torch_unet.py)
  cyclegan  the shipped typeset2mnist CycleGAN: one iteration (both
        generators, then both discriminators with history pools) at batch 8,
        the batch it trains with, and batch-64 translation by the a2b
        generator (plugins/cyclegan BenchmarkTrainStep/Translate,
        plugins/cyclegan/testdata/torch_cyclegan.py)
  diffusion  the mnist-ddpm U-Net (1.04M parameters, attention at 7x7, labels):
        a training step as the plugin runs it (noising, label dropout,
        forward, backward, gradient clipping, Adam, moving average) and one
        batch-64 evaluation of the denoiser (plugins/diffusion
        BenchmarkTrainStep/Inference, plugins/diffusion/testdata/torch_diffusion.py)
  flow  mnist-glow (3 levels of 8 steps, coupling width 64): a training step
        (dequantisation, forward, bits per dimension, backward, clipping,
        Adam) and a batch-64 encode with log-likelihoods (plugins/flow
        BenchmarkTrainStep/Inference, plugins/flow/testdata/torch_flow.py)

Needs Debian's python3-torch (and libopenblas0 so PyTorch's BLAS is not the
reference one): apt-get install python3-torch libopenblas0-openmp. Run it on
a quiet machine; it prints the load average before and after.
"""

import json
import os
import re
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# batch: what each task runs at (fixed in the benchmarks and the twins; the
# twins' defaults). params: the twin's JSON key to compare with the "params"
# metric of the Go benchmark, where it reports one.
TARGETS = {
    "vae": {"pkg": "./plugins/vae", "train": ("TrainStep$", "ms/step"), "infer": ("Inference$", "ms/batch"),
            "torch": "plugins/vae/testdata/torch_vae.py", "steps": 30, "batch": {"train": 64, "infer": 64}},
    "gan": {"pkg": "./plugins/gan", "train": ("TrainStep$", "ms/step"), "infer": ("Generate$", "ms/batch"),
            "torch": "plugins/gan/testdata/torch_gan.py", "steps": 20, "batch": {"train": 64, "infer": 64}},
    "unet": {"pkg": "./nn/layers", "train": ("UNetTrainStep$", "ms/step"), "infer": ("UNetInference$", "ms/step"),
             "torch": "nn/layers/testdata/torch_unet.py", "steps": 5, "batch": {"train": 64, "infer": 64}},
    "cyclegan": {"pkg": "./plugins/cyclegan", "train": ("TrainStep$", "ms/step"), "infer": ("Translate$", "ms/batch"),
                 "torch": "plugins/cyclegan/testdata/torch_cyclegan.py", "steps": 10,
                 "batch": {"train": 8, "infer": 64}, "params": {"train": "params", "infer": "generator_params"}},
    "diffusion": {"pkg": "./plugins/diffusion", "train": ("TrainStep$", "ms/step"), "infer": ("Inference$", "ms/batch"),
                  "torch": "plugins/diffusion/testdata/torch_diffusion.py", "steps": 5, "batch": {"train": 64, "infer": 64}},
    "flow": {"pkg": "./plugins/flow", "train": ("TrainStep$", "ms/step"), "infer": ("Inference$", "ms/batch"),
             "torch": "plugins/flow/testdata/torch_flow.py", "steps": 5, "batch": {"train": 64, "infer": 64}},
}


def timed(cmd, cwd):
    """Runs cmd under /usr/bin/time; returns (stdout, peak RSS in MiB)."""
    with tempfile.NamedTemporaryFile("r") as f:
        out = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", f.name] + cmd,
                             check=True, capture_output=True, text=True, cwd=cwd).stdout
        return out, int(f.read().strip().splitlines()[-1]) / 1024


def main():
    if len(sys.argv) < 2 or sys.argv[1] not in TARGETS:
        sys.exit(__doc__)
    tg = TARGETS[sys.argv[1]]
    args = dict(zip(sys.argv[2::2], sys.argv[3::2]))
    runs, steps = int(args.get("--runs", 5)), int(args.get("--steps", tg["steps"]))
    load0 = os.getloadavg()
    binary = os.path.join(tempfile.mkdtemp(), "bench.test")
    subprocess.run(["go", "test", "-c", "-o", binary, tg["pkg"]], check=True, cwd=ROOT)
    pkgdir = os.path.join(ROOT, tg["pkg"])
    res = {}
    params = {}  # kind -> (Go, PyTorch)
    for _ in range(runs):
        for kind in ("train", "infer"):
            bench, unit = tg[kind]
            out, rss = timed([binary, "-test.run", "XXX", "-test.bench", bench, "-test.benchtime", f"{steps}x"], pkgdir)
            res.setdefault(f"go_{kind}", []).append(float(re.search(r"([\d.]+) " + re.escape(unit), out).group(1)))
            gf = re.search(r"([\d.]+) GFLOP/s", out)
            res.setdefault(f"go_{kind}_gflops", []).append(float(gf.group(1)) if gf else float("nan"))
            res.setdefault(f"go_{kind}_rss", []).append(rss)
            gp = re.search(r"(\d+) params", out)
            out, rss = timed(["/usr/bin/python3", os.path.join(ROOT, tg["torch"]), "bench",
                              "--only", kind, "--steps", str(steps)], ROOT)
            j = json.loads(out)
            got = j.get(f"{kind}_batch", j.get("batch"))
            if got != tg["batch"][kind]:
                sys.exit(f"{sys.argv[1]} {kind}: {tg['torch']} ran at batch {got}, the Go benchmark at {tg['batch'][kind]}")
            if gp:
                key = tg.get("params", {}).get(kind, "params")
                params[kind] = (int(gp.group(1)), j.get(key))
                if params[kind][0] != params[kind][1]:
                    sys.exit(f"{sys.argv[1]} {kind}: Go has {params[kind][0]} parameters, "
                             f"{tg['torch']} {params[kind][1]} ({key}): not the same network")
            res.setdefault(f"pt_{kind}", []).append(j["train_step_ms" if kind == "train" else "inference_ms"])
            res.setdefault(f"pt_{kind}_rss", []).append(rss)
    med = {k: statistics.median(v) for k, v in res.items()}
    bs = tg["batch"]
    batches = f"batch {bs['train']}" if bs["train"] == bs["infer"] else \
        f"batch {bs['train']} (training) and {bs['infer']} (inference)"
    print(f"{sys.argv[1]}: {runs} alternating runs of {steps} steps, {batches}, 2 threads; medians; "
          f"load average before {load0[0]:.2f}, after {os.getloadavg()[0]:.2f}")
    for kind, (g, p) in params.items():
        print(f"parameters ({kind}): Go {g}, PyTorch {p}: equal")
    print("| task | Go | PyTorch 1.13 | Go / PyTorch | Go GFLOP/s | PyTorch GFLOP/s | peak RSS Go / PyTorch (MiB) |")
    print("|---|---|---|---|---|---|---|")
    for kind, name in (("train", f"training step, batch {bs['train']}"), ("infer", f"inference, batch {bs['infer']}")):
        g, p = med["go_" + kind], med["pt_" + kind]
        gf = med["go_" + kind + "_gflops"]
        # Only some Go benchmarks count FLOPs; leave the cells empty.
        gfs = ("", "") if gf != gf else (f"{gf:.1f}", f"{gf * g / p:.1f}")
        print(f"| {name} | {g:.1f} ms | {p:.1f} ms | {g / p:.2f} | {gfs[0]} | {gfs[1]} | "
              f"{med['go_' + kind + '_rss']:.0f} / {med['pt_' + kind + '_rss']:.0f} |")
    print("raw:", json.dumps(res))


if __name__ == "__main__":
    main()
