#!/usr/bin/python3
"""Side-by-side speed and memory of the shipped VAE architecture: this
repository's Go (nn/, gorgonia + custom ops) against PyTorch 1.13 on the same
network, batch 64, 2 threads, on this machine, alternating runs.

  plugins/vae/testdata/compare.py [--runs 5] [--steps 30]

For each run it executes, as separate processes so peak RSS is per task:
  Go train step   go test binary -test.bench TrainStep   (BenchmarkTrainStep)
  Go inference    go test binary -test.bench Inference   (BenchmarkInference)
  torch train     torch_vae.py bench --only train
  torch inference torch_vae.py bench --only infer
and prints the medians, the Go/PyTorch ratios and peak RSS (VmHWM through
/usr/bin/time). Run it on a quiet machine; it prints the load average.
"""

import json
import os
import re
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
PKG = os.path.dirname(HERE)


def timed(cmd):
    """Runs cmd under /usr/bin/time; returns (stdout, peak RSS in MiB)."""
    with tempfile.NamedTemporaryFile("r") as f:
        out = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", f.name] + cmd,
                             check=True, capture_output=True, text=True, cwd=PKG).stdout
        return out, int(f.read().strip().splitlines()[-1]) / 1024


def main():
    args = dict(zip(sys.argv[1::2], sys.argv[2::2]))
    runs, steps = int(args.get("--runs", 5)), int(args.get("--steps", 30))
    binary = os.path.join(tempfile.mkdtemp(), "vae.test")
    subprocess.run(["go", "test", "-c", "-o", binary, "."], check=True, cwd=PKG)
    res = {k: [] for k in ("go_train", "go_infer", "pt_train", "pt_infer",
                           "go_train_rss", "go_infer_rss", "pt_train_rss", "pt_infer_rss",
                           "go_train_gflops", "go_infer_gflops")}
    for _ in range(runs):
        for kind, bench, unit in (("train", "TrainStep", "ms/step"), ("infer", "Inference", "ms/batch")):
            out, rss = timed([binary, "-test.run", "XXX", "-test.bench", bench + "$",
                              "-test.benchtime", f"{steps}x"])
            res[f"go_{kind}"].append(float(re.search(r"([\d.]+) " + re.escape(unit), out).group(1)))
            res[f"go_{kind}_gflops"].append(float(re.search(r"([\d.]+) GFLOP/s", out).group(1)))
            res[f"go_{kind}_rss"].append(rss)
            out, rss = timed(["/usr/bin/python3", os.path.join(HERE, "torch_vae.py"), "bench",
                              "--only", kind, "--steps", str(steps)])
            j = json.loads(out)
            res[f"pt_{kind}"].append(j["train_step_ms" if kind == "train" else "inference_ms"])
            res[f"pt_{kind}_rss"].append(rss)
    med = {k: statistics.median(v) for k, v in res.items()}
    print(f"load average before/after: {os.getloadavg()}")
    print(f"{runs} alternating runs, {steps} steps each, batch 64, 2 threads; medians")
    print("| task | Go | PyTorch 1.13 | Go/PyTorch | Go GFLOP/s | peak RSS Go / PyTorch (MiB) |")
    print("|---|---|---|---|---|---|")
    for kind, name in (("train", "training step (fwd+bwd+Adam)"), ("infer", "inference (encode+decode)")):
        print(f"| {name} | {med['go_' + kind]:.1f} ms | {med['pt_' + kind]:.1f} ms | "
              f"{med['go_' + kind] / med['pt_' + kind]:.2f} | {med['go_' + kind + '_gflops']:.1f} | "
              f"{med['go_' + kind + '_rss']:.0f} / {med['pt_' + kind + '_rss']:.0f} |")
    print("raw:", json.dumps(res))


if __name__ == "__main__":
    main()
