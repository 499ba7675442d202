#!/usr/bin/python3
"""Times training steps (or inference) of a zoo model in PyTorch, for `shears bench --compare-torch`.

    /usr/bin/python3 bench/torch_step.py --model resnet20 --batch-size 128 --steps 10 --threads 2 [--mode infer]

The models are the PyTorch twins of the shears zoo (tools/gen_model_fixtures.py, tools/mobilenet_v1.py:
same layers and names). Each is timed in NCHW and channels-last; the line printed last is the
faster one, `torch <layout> median_ms min_ms max_ms`, which shears parses. The process's peak RSS is
printed after each layout (NCHW runs first, so its figure is NCHW's own; the second is the maximum
of both); `--layout` runs only one.

Debian's torch calls the pthread OpenBLAS, whose own threads oversubscribe the cores when PyTorch's
threads already split the work (MLPNet's step goes from 0.30 to 0.4-8 ms on 2 cores), yet large
NCHW sgemms gain from them. So each layout is timed twice, with OpenBLAS's default threads and
with OPENBLAS_NUM_THREADS=1 (each in a fresh process: OpenBLAS reads it at load), and the fastest
of the four is PyTorch's figure; `--openblas-threads` runs one.
"""
import argparse
import os
import resource
import subprocess
import sys
import time

import torch
import torch.nn.functional as F
from torchvision.models import resnet as tv_resnet

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools"))
from gen_model_fixtures import CifarResNet, CifarVGG, Mlp, resnet_cifar_stem  # noqa: E402
from mobilenet_v1 import MobileNetV1  # noqa: E402
from torchvision.models import vgg as tv_vgg  # noqa: E402


def build(name, in_channels, input_size, num_classes):
    depth = {"resnet20": 3, "resnet32": 5, "resnet56": 9}
    if name in depth:
        return CifarResNet(depth[name], num_classes, in_channels)
    if name == "mlpnet":
        return Mlp(in_channels * input_size * input_size, [40, 20], num_classes, bias=False)
    if name in ("resnet18", "resnet50"):
        model = resnet_cifar_stem(getattr(tv_resnet, name), num_classes)
        model.conv1 = torch.nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False)
        return model
    if name in ("vgg11_bn", "vgg16_bn", "vgg19_bn"):
        return CifarVGG(tv_vgg.cfgs[{"vgg11_bn": "A", "vgg16_bn": "D", "vgg19_bn": "E"}[name]], num_classes,
                        in_channels, input_size)
    if name == "mobilenet_v1":
        return MobileNetV1(num_classes=num_classes, in_channels=in_channels, variant="cifar")
    sys.exit(f"torch_step.py: no PyTorch twin for '{name}'")


def time_steps(model, x, y, steps, warmup, train):
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    model.train(train)

    def step():
        if train:
            opt.zero_grad(set_to_none=True)  # current PyTorch's default; 1.13 zeroes in place otherwise
            F.cross_entropy(model(x), y).backward()
            opt.step()
        else:
            with torch.no_grad():
                model(x)
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append((time.perf_counter() - start) * 1e3)
    times.sort()
    return times[len(times) // 2], times[0], times[-1]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--in-channels", type=int, default=3)
    p.add_argument("--input-size", type=int, default=32)
    p.add_argument("--num-classes", type=int, default=10)
    p.add_argument("--mode", choices=["train", "infer"], default="train")
    p.add_argument("--layout", choices=["both", "nchw", "channels_last"], default="both")
    p.add_argument("--openblas-threads", choices=["both", "default", "1"], default="both")
    a = p.parse_args()
    if a.openblas_threads == "both":
        sys.exit(time_each_openblas_threading())
    if a.openblas_threads == "1" and os.environ.get("OPENBLAS_NUM_THREADS") != "1":  # read when torch loaded it
        os.execve(sys.executable, [sys.executable, __file__, *sys.argv[1:]], dict(os.environ, OPENBLAS_NUM_THREADS="1"))
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = build(a.model, a.in_channels, a.input_size, a.num_classes)
    x = torch.randn(a.batch_size, a.in_channels, a.input_size, a.input_size)
    y = torch.arange(a.batch_size) % a.num_classes
    results = {}

    def peak_rss(layout):
        print(f"peak RSS after {layout}: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    if a.layout != "channels_last":
        results["nchw"] = time_steps(model, x, y, a.steps, a.warmup, a.mode == "train")
        peak_rss("nchw")
    if a.layout != "nchw" and x.dim() == 4 and not a.model.startswith("mlp"):
        cl = model.to(memory_format=torch.channels_last)
        results["channels_last"] = time_steps(cl, x.contiguous(memory_format=torch.channels_last), y, a.steps,
                                              a.warmup, a.mode == "train")
        peak_rss("channels_last")
    if not results:
        sys.exit(f"torch_step.py: {a.model} has no {a.layout} layout to time")
    for layout, (median, lo, hi) in results.items():
        print(f"{layout}: median {median:.2f} ms (min {lo:.2f}, max {hi:.2f})")
    best = min(results, key=lambda k: results[k][0])
    print("torch", best + ("" if a.openblas_threads == "default" else ",openblas-threads=1"),
          *(f"{v:.3f}" for v in results[best]))


# Runs this script once per OpenBLAS threading, passes its lines through and prints the fastest.
def time_each_openblas_threading():
    best = None
    for threads in ["default", "1"]:
        run = subprocess.run([sys.executable, __file__, *sys.argv[1:], "--openblas-threads", threads],
                             capture_output=True, text=True)
        if run.returncode != 0:
            sys.stderr.write(run.stdout + run.stderr)
            return run.returncode
        for line in run.stdout.splitlines():
            if line.startswith("torch "):
                fields = line.split()
                if best is None or float(fields[2]) < float(best[2]):
                    best = fields
            else:
                print(f"{line} (OpenBLAS threads: {threads})")
    print(*best)
    return 0


if __name__ == "__main__":
    main()
