#!/usr/bin/python3
"""PyTorch reference for nn/gemm's BenchmarkSgemm: same shapes and transposes.

Run: /usr/bin/python3 nn/gemm/testdata/bench_torch.py [--threads 2] [--min-time 1.0]
Prints one line per shape and transpose with GFLOP/s (2*m*n*k per call) of
torch.mm on float32 row-major tensors, transposes taken as views like cblas.
It is a cross-check only: nothing in the Go build or tests runs it.
"""
import argparse
import time

import torch

# Keep in sync with benchShapes in ../bench_test.go.
SHAPES = [
    ("conv1_img", 32, 784, 9),
    ("conv1_batch", 32, 50176, 9),
    ("conv2_img", 64, 196, 288),
    ("conv2_batch", 64, 12544, 288),
    ("conv3_batch", 128, 3136, 576),
    ("conv4_img", 128, 196, 1152),
    ("dense_n32", 64, 32, 3136),
    ("dense_n256", 64, 256, 3136),
    ("square512", 512, 512, 512),
    ("square1024", 1024, 1024, 1024),
]


def bench(fn, min_time):
    fn()
    n, elapsed = 1, 0.0
    while True:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        elapsed = time.perf_counter() - t0
        if elapsed >= min_time:
            return elapsed / n
        n = max(n * 2, int(n * min_time / max(elapsed, 1e-9)) + 1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--min-time", type=float, default=1.0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"# torch {torch.__version__}, threads {torch.get_num_threads()}")
    torch.manual_seed(0)
    for name, m, n, k in SHAPES:
        for tn, ta, tb in (("NN", 0, 0), ("NT", 0, 1), ("TN", 1, 0), ("TT", 1, 1)):
            # A stored k x m when transposed, B stored n x k: same memory
            # layout the Go benchmark passes to Sgemm.
            a = torch.rand(k, m).t() if ta else torch.rand(m, k)
            b = torch.rand(n, k).t() if tb else torch.rand(k, n)
            c = torch.empty(m, n)
            sec = bench(lambda: torch.mm(a, b, out=c), args.min_time)
            print(f"{name}_m{m}n{n}k{k}/{tn}\t{2 * m * n * k / sec / 1e9:.2f} GFLOP/s")


if __name__ == "__main__":
    main()
