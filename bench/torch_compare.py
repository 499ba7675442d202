#!/usr/bin/python3
"""Times the shapes of `make bench` in PyTorch and prints both side by side.

Optional companion of the benchmark suite; needs Debian's python3-torch (1.13.1). Usage:
    /usr/bin/python3 bench/torch_compare.py [--threads 2] [--filter REGEX] [--min-time 0.5]
It runs build/shears_bench (JSON output) with the same thread count, then times the same
operation in PyTorch (NCHW float32, and channels-last for convolutions) and prints
kernel, shears, PyTorch, ratio (PyTorch time / shears time: > 1 means shears is faster).
The conv shapes are read from tests/kernel_cases.hpp, the list the tests and benchmarks share.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def conv_cases():
    text = open(os.path.join(ROOT, "tests", "kernel_cases.hpp")).read()
    pattern = re.compile(r'\{"(\w+)",\s*(\d+),\s*(\d+),\s*(\d+),\s*(\d+),\s*(\d+),\s*(\d+),\s*(\d+),\s*(\d+),\s*(\d+)\}')
    for m in pattern.finditer(text):
        name, *nums = m.groups()
        c_in, h, w, c_out, k, stride, pad, groups, batch = map(int, nums)
        if batch:
            yield name, dict(c_in=c_in, h=h, w=w, c_out=c_out, k=k, stride=stride, pad=pad, groups=groups, batch=batch)


def timeit(fn, min_time):
    fn()  # warm up
    runs, start = 0, time.perf_counter()
    while True:
        fn()
        runs += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_time and runs >= 3:
            return elapsed / runs


def torch_benchmarks(torch, min_time):
    F = torch.nn.functional
    out = {}
    for name, c in conv_cases():
        x = torch.randn(c["batch"], c["c_in"], c["h"], c["w"])
        w = torch.randn(c["c_out"], c["c_in"] // c["groups"], c["k"], c["k"])
        conv = lambda x, w: F.conv2d(x, w, None, c["stride"], c["pad"], 1, c["groups"])
        with torch.no_grad():
            out["BM_conv2d_fwd/" + name] = timeit(lambda: conv(x, w), min_time)
        xg, wg = x.clone().requires_grad_(), w.clone().requires_grad_()
        y = conv(xg, wg)
        dy = torch.randn_like(y)

        def backward():
            gx, gw = torch.autograd.grad(y, (xg, wg), dy, retain_graph=True)
        out["BM_conv2d_bwd/" + name] = timeit(backward, min_time)
        xc = x.contiguous(memory_format=torch.channels_last)
        wc = w.contiguous(memory_format=torch.channels_last)
        with torch.no_grad():
            out["BM_conv2d_fwd/" + name + " (channels-last)"] = timeit(lambda: conv(xc, wc), min_time)
    for n in (256, 512, 1024, 2048):
        a, b = torch.randn(n, n), torch.randn(n, n)
        out[f"BM_sgemm/{n}/{n}/{n}"] = timeit(lambda: torch.mm(a, b), min_time)
    x = torch.randn(128, 64, 32, 32)
    rm, rv, g, bta = torch.zeros(64), torch.ones(64), torch.ones(64), torch.zeros(64)
    with torch.no_grad():
        out["BM_batch_norm/1"] = timeit(lambda: F.batch_norm(x, rm, rv, g, bta, True), min_time)
        out["BM_batch_norm/0"] = timeit(lambda: F.batch_norm(x, rm, rv, g, bta, False), min_time)
        out["BM_max_pool2d"] = timeit(lambda: F.max_pool2d(x, 2, 2), min_time)
        out["BM_relu"] = timeit(lambda: F.relu(x), min_time)
        out["BM_add"] = timeit(lambda: x + x, min_time)
    xg, gg = x.clone().requires_grad_(), g.clone().requires_grad_()
    dy = torch.randn_like(x)

    def bn_train_step():
        y = F.batch_norm(xg, rm, rv, gg, bta, True)
        y.backward(dy)
    out["BM_batch_norm/2"] = timeit(bn_train_step, min_time)
    logits = torch.randn(128, 1000, requires_grad=True)
    targets = torch.tensor([(i * 37) % 1000 for i in range(128)])

    def ce_step():
        F.cross_entropy(logits, targets).backward()
    out["BM_cross_entropy"] = timeit(ce_step, min_time)
    x, w, b = torch.randn(128, 4096), torch.randn(4096, 4096), torch.randn(4096)
    with torch.no_grad():
        out["BM_linear"] = timeit(lambda: F.linear(x, w, b), min_time)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--filter", default=".")
    parser.add_argument("--min-time", type=float, default=0.5)
    parser.add_argument("--bench", default=os.path.join(ROOT, "build", "shears_bench"))
    parser.add_argument("--openblas-threads", type=int, help="OPENBLAS_NUM_THREADS for PyTorch (default: OpenBLAS's own)")
    args = parser.parse_args()
    env = dict(os.environ, SHEARS_NUM_THREADS=str(args.threads))
    run = subprocess.run([args.bench, "--benchmark_format=json", f"--benchmark_filter={args.filter}",
                          f"--benchmark_min_time={args.min_time}"], env=env, capture_output=True, text=True, check=True)
    header = run.stdout[:run.stdout.index("{")].strip()
    # PyTorch loads the same OpenBLAS, which falls back to slow kernels on a CPU it does not know:
    # it gets the kernel set shears chose. Both are read when the library loads, before the import.
    chosen = re.search(r"core (\w+) \(chosen by shears\)", header)
    if chosen and not os.environ.get("OPENBLAS_CORETYPE"):
        os.environ["OPENBLAS_CORETYPE"] = chosen.group(1)
    if args.openblas_threads:
        os.environ["OPENBLAS_NUM_THREADS"] = str(args.openblas_threads)
    try:
        import torch
    except ImportError:
        sys.exit("torch_compare.py needs PyTorch: apt-get install python3-torch")
    torch.set_num_threads(args.threads)
    report = json.loads(run.stdout[run.stdout.index("{"):])
    def name(b):  # UseRealTime() appends "/real_time" to the benchmark's name
        return b["name"].removesuffix("/real_time")
    shears_ms = {name(b): b["real_time"] * {"ms": 1.0, "us": 1e-3, "ns": 1e-6}[b["time_unit"]]
                 for b in report["benchmarks"]}
    rates = {name(b): b.get("GFLOP/s") or b.get("GB/s") for b in report["benchmarks"]}
    torch_s = torch_benchmarks(torch, args.min_time)
    print(header)
    print(f"PyTorch {torch.__version__}, {args.threads} threads, OPENBLAS_CORETYPE "
          f"{os.environ.get('OPENBLAS_CORETYPE', 'unset')}, OpenBLAS threads {args.openblas_threads or 'default'}; "
          "times in ms, ratio = PyTorch / shears")
    print(f"{'kernel':52s} {'shears':>9s} {'PyTorch':>9s} {'ratio':>6s} {'shears rate':>12s}")
    for name, ms in shears_ms.items():
        if name not in torch_s:
            continue
        t = torch_s[name] * 1e3
        print(f"{name:52s} {ms:9.2f} {t:9.2f} {t / ms:6.2f} {rates[name] or 0:12.1f}")
        cl = torch_s.get(name + " (channels-last)")
        if cl:
            print(f"{'  PyTorch channels-last':52s} {'':9s} {cl * 1e3:9.2f} {cl * 1e3 / ms:6.2f}")


if __name__ == "__main__":
    main()
