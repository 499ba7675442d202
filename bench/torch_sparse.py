#!/usr/bin/python3
"""PyTorch's side of the sparse Linear benchmark (docs/sparse.md): a 4096x4096 Linear at batch 128
and 1, dense (F.linear) against torch.sparse_csr_tensor's matmul at 90, 95 and 98% sparsity, with
2 threads; medians of `--runs` timed calls after warm-up.

    /usr/bin/python3 bench/torch_sparse.py [--runs 20] [--threads 2]
"""
import argparse
import statistics
import time

import torch
import torch.nn.functional as F


def median_ms(fn, runs):
    for _ in range(3):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    weight = torch.randn(4096, 4096)
    print(f"torch {torch.__version__}, {args.threads} threads")
    for batch in (128, 1):
        x = torch.randn(batch, 4096)
        dense = median_ms(lambda: F.linear(x, weight), args.runs)
        print(f"batch {batch}: dense {dense:.3f} ms")
        for sparsity in (0.9, 0.95, 0.98):
            mask = torch.rand(4096, 4096) >= sparsity
            csr = (weight * mask).to_sparse_csr()
            xt = x.t().contiguous()
            ms = median_ms(lambda: torch.matmul(csr, xt), args.runs)
            print(f"batch {batch}: sparsity {sparsity:.2f} csr {ms:.3f} ms, {dense / ms:.2f}x its dense")


if __name__ == "__main__":
    main()
