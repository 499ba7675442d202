#!/usr/bin/python3
"""A torchvision ResNet-18 checkpoint made outside shears, and PyTorch's figures for it.

    /usr/bin/python3 tools/foreign_resnet18.py OUT.safetensors --variant cifar|imagenet
        [--in-channels 1] [--num-classes 10] [--input-size 28] [--limit 256] [--seed 0]

Builds torchvision's resnet18(num_classes=N) after torch.manual_seed(SEED). Its conv1 takes
IN_CHANNELS: a 7×7/2 conv for --variant imagenet; for --variant cifar a 3×3/1 conv and no max-pool
(the CIFAR stem, same keys). Every BatchNorm gets random weight, bias and running statistics, so
eval mode does not leave it the identity. OUT.safetensors holds the state_dict with {"format": "pt"}
as its only metadata, as PyTorch-made files do: shears has to find the architecture from the keys.

Then prints one JSON line, {"loss": mean cross-entropy, "top1": percent, "images": n}: the model in
eval mode on the first LIMIT Fashion-MNIST test images (Debian's dataset-fashion-mnist), scaled to
[0, 1], zero-padded evenly to INPUT_SIZE, normalised with mean 0.2860 and std 0.3530, and repeated
to IN_CHANNELS channels. Needs Debian's python3-torch, python3-torchvision and python3-numpy.
"""
import argparse
import json
import os
import sys

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from gen_model_fixtures import randomise_batch_norm  # noqa: E402
from pth_to_safetensors import save  # noqa: E402
from torch_eval import FASHION_MNIST, idx_test_set  # noqa: E402

MEAN, STD = 0.2860, 0.3530  # Fashion-MNIST's training-set statistics on the [0, 1] scale


def build(variant, in_channels, num_classes):
    model = torchvision.models.resnet18(num_classes=num_classes)
    if variant == "cifar":
        model.conv1 = nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False)
        model.maxpool = nn.Identity()
    else:
        model.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
    nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")  # as torchvision's own
    randomise_batch_norm(model)  # moderate values: eval-mode activations stay in range
    return model


def fashion_mnist(limit, size, channels):
    images, labels = idx_test_set(FASHION_MNIST, "fashion-mnist")
    images, labels = images[:limit], labels[:limit]
    x = torch.from_numpy(images.copy()).float().div(255).unsqueeze(1)  # as ToTensor
    before = (size - 28) // 2  # an odd surplus puts the extra pixel right and below
    x = F.pad(x, (before, size - 28 - before, before, size - 28 - before))
    x = x.sub(MEAN).div(STD)
    return x.repeat(1, channels, 1, 1), torch.from_numpy(labels.astype("int64"))


def main():
    parser = argparse.ArgumentParser(description="a torchvision ResNet-18 checkpoint and its PyTorch loss")
    parser.add_argument("output", metavar="OUT.safetensors")
    parser.add_argument("--variant", choices=["cifar", "imagenet"], required=True)
    parser.add_argument("--in-channels", type=int, default=1)
    parser.add_argument("--num-classes", type=int, default=10)
    parser.add_argument("--input-size", type=int, default=28)
    parser.add_argument("--limit", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.input_size < 28:
        sys.exit(f"foreign_resnet18: --input-size {args.input_size}: Fashion-MNIST images are 28x28; "
                 f"expected 28 or more")
    if args.num_classes < 10:
        sys.exit(f"foreign_resnet18: --num-classes {args.num_classes}: Fashion-MNIST has 10 classes")

    torch.manual_seed(args.seed)
    model = build(args.variant, args.in_channels, args.num_classes)
    save(args.output, model.state_dict())

    x, labels = fashion_mnist(args.limit, args.input_size, args.in_channels)
    model.eval()
    loss, correct = torch.zeros((), dtype=torch.float64), 0
    with torch.no_grad():
        for start in range(0, len(labels), 256):
            logits = model(x[start:start + 256])
            target = labels[start:start + 256]
            loss += F.cross_entropy(logits, target, reduction="none").double().sum()  # float64 sum
            correct += int((logits.argmax(1) == target).sum())
    n = len(labels)
    print(json.dumps({"loss": float(loss) / n, "top1": 100.0 * correct / n, "images": n}))


if __name__ == "__main__":
    main()
