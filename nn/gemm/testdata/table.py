#!/usr/bin/python3
"""Merge `go test -bench` output and bench_torch.py output into the README table.

Run: /usr/bin/python3 nn/gemm/testdata/table.py go_bench.txt torch1.txt [torch2.txt ...]
Each cell is the best GFLOP/s over the repeated runs (-count N, several torch
files): the machine is shared, and the best run is the least disturbed one.
"""
import re
import sys
from collections import defaultdict

best = defaultdict(float)  # (shape/trans, impl) -> GFLOP/s
go_line = re.compile(r"^BenchmarkSgemm/(\S+)/(NN|NT|TN|TT)/(\w+)-\d+\s.*?([\d.]+) GFLOP/s")
torch_line = re.compile(r"^(\S+)/(NN|NT|TN|TT)\t([\d.]+) GFLOP/s")

with open(sys.argv[1]) as f:
    for line in f:
        m = go_line.match(line)
        if m:
            key = (m[1] + "/" + m[2], m[3])
            best[key] = max(best[key], float(m[4]))
for path in sys.argv[2:]:
    with open(path) as f:
        for line in f:
            m = torch_line.match(line)
            if m:
                key = (m[1] + "/" + m[2], "torch")
                best[key] = max(best[key], float(m[3]))

rows = []
for (row, _impl) in best:
    if row not in rows:
        rows.append(row)
impls = ["ours", "ours1t", "ours_avx2fma", "gonum", "torch"]
impls = [i for i in impls if any((r, i) in best for r in rows)]
print("| shape (m x n x k) / op | " + " | ".join(impls) + " | ours/torch | ours/gonum |")
print("|---" * (len(impls) + 3) + "|")
for row in rows:
    cells = [f"{best[(row, i)]:.1f}" if (row, i) in best else "" for i in impls]
    ratio_t = best[(row, "ours")] / best[(row, "torch")] if best.get((row, "torch")) else 0
    ratio_g = best[(row, "ours")] / best[(row, "gonum")] if best.get((row, "gonum")) else 0
    print(f"| {row} | " + " | ".join(cells) + f" | {ratio_t:.2f} | {ratio_g:.1f} |")
