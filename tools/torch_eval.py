#!/usr/bin/python3
"""Loads a shears checkpoint into PyTorch and evaluates it there, to reproduce shears' accuracy.

    /usr/bin/python3 tools/torch_eval.py CHECKPOINT [--data DIR] [--limit N] [--batch-size B]

Prints one JSON line, {"loss": mean cross-entropy, "top1": percent correct, "images": count}.

Needs Debian's python3-torch 1.13, python3-torchvision 0.14, python3-numpy and python3-pil. The
model is the checkpoint's PyTorch twin from tools/check_shears_checkpoint.py, built with the widths
read from the checkpoint's shapes and loaded with load_state_dict(strict=True). The test data and
its preprocessing come from the checkpoint's input contract, string metadata that shears writes
(shears.schema "2"):
    input.dataset        fashion-mnist, mnist (IDX files), cifar10, cifar100 (binary batches),
                         idx (an MNIST-like folder), image-folder (a folder per class, in the
                         first of val/, validation/, test/ if there is one)
    input.shape          "C,H,W" the model takes; C = 1 reads images as "L", C = 3 as "RGB"
    input.mean/std       per channel, comma-separated, on the [0, 1] scale
    input.classes        JSON array of class names, in the order of the model's outputs
    input.transform      none | pad (input.pad zero pixels on each side) | resize-crop (shorter
                         side to floor(min(H, W) / input.crop_pct) with input.interpolation,
                         then the centre H x W)
then ToTensor (/255) and Normalize(mean, std). fashion-mnist is read from the Debian package
dataset-fashion-mnist unless --data names a folder; the other datasets need --data.
"""
import argparse
import gzip
import json
import math
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.nn.utils import prune
from torch.utils.data import DataLoader, Dataset, Subset
from torchvision import datasets, transforms

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import safetensors_np  # noqa: E402
from check_shears_checkpoint import twin, widths_from_state  # noqa: E402

CONTRACT = ["shears.schema", "input.dataset", "input.shape", "input.mean", "input.std", "input.classes",
            "input.transform"]


def load_model(path):
    """The checkpoint's PyTorch twin with its weights, in eval mode, and the checkpoint's metadata."""
    tensors, meta = safetensors_np.load(path)
    state = {k: torch.from_numpy(np.array(v)) for k, v in tensors.items()}
    model = twin(meta, widths_from_state(meta, state))
    modules = dict(model.named_modules())
    for key in [k for k in state if k.endswith("_mask")]:  # a pruned weight kept as <name>_orig * <name>_mask
        owner, name = key[:-len("_mask")].rpartition(".")[::2]
        prune.custom_from_mask(modules[owner], name, state[key])
    model.load_state_dict(state, strict=True)  # raises on any missing, unexpected or mis-shaped key
    return model.eval(), meta


def input_transform(meta):
    """PIL image -> normalised tensor, as the checkpoint's input.* metadata describes."""
    channels, height, width = (int(v) for v in meta["input.shape"].split(","))
    steps = [transforms.Lambda(lambda image: image.convert("L" if channels == 1 else "RGB"))]
    if meta["input.transform"] == "pad":
        steps.append(transforms.Pad(int(meta["input.pad"]), fill=0))
    elif meta["input.transform"] == "resize-crop":
        shorter = math.floor(min(height, width) / float(meta["input.crop_pct"]))
        mode = transforms.InterpolationMode(meta["input.interpolation"])
        steps += [transforms.Resize(shorter, interpolation=mode), transforms.CenterCrop((height, width))]
    elif meta["input.transform"] != "none":
        sys.exit(f"torch_eval: unknown input.transform {meta['input.transform']!r}")
    mean, std = ([float(v) for v in meta[key].split(",")] for key in ("input.mean", "input.std"))
    return transforms.Compose(steps + [transforms.ToTensor(), transforms.Normalize(mean, std)])


def evaluate(model, dataset, batch_size, shape):
    loss, correct, count = torch.zeros((), dtype=torch.float64), 0, 0
    with torch.no_grad():
        for images, labels in DataLoader(dataset, batch_size=batch_size):
            if tuple(images.shape[1:]) != shape:
                sys.exit(f"torch_eval: the transform gives {tuple(images.shape[1:])}, the model takes {shape}")
            logits = model(images)
            loss += F.cross_entropy(logits, labels, reduction="none").double().sum()  # float64 sum
            correct += int((logits.argmax(1) == labels).sum())
            count += len(labels)
    return {"loss": float(loss) / count, "top1": 100.0 * correct / count, "images": count}


def main():
    parser = argparse.ArgumentParser(description="evaluate a shears checkpoint in PyTorch")
    parser.add_argument("checkpoint", metavar="CHECKPOINT")
    parser.add_argument("--data", metavar="DIR", help="the dataset's folder (default for fashion-mnist: "
                        "the Debian package's)")
    parser.add_argument("--limit", type=int, metavar="N", help="evaluate the first N test images only")
    parser.add_argument("--batch-size", type=int, default=256, metavar="B")
    args = parser.parse_args()
    if not os.path.isfile(args.checkpoint):
        sys.exit(f"{args.checkpoint}: no such file")
    model, meta = load_model(args.checkpoint)
    missing = [key for key in CONTRACT if key not in meta]
    if missing:
        sys.exit(f"{args.checkpoint}: no input contract: its metadata lacks {', '.join(missing)}")
    if meta["shears.schema"] != "2":
        sys.exit(f"{args.checkpoint}: shears.schema {meta['shears.schema']}, expected 2")
    dataset = test_set(meta, args.data, input_transform(meta))
    if args.limit is not None:
        dataset = Subset(dataset, range(min(args.limit, len(dataset))))
    if len(dataset) == 0:
        sys.exit("torch_eval: no test images to evaluate")
    shape = tuple(int(v) for v in meta["input.shape"].split(","))
    print(json.dumps(evaluate(model, dataset, args.batch_size, shape)))


# ---- Test sets: each item is (PIL image, class index in input.classes' order).

FASHION_MNIST = "/usr/share/datasets/fashion-mnist"  # Debian's dataset-fashion-mnist


class ImageArray(Dataset):
    """uint8 images (N×H×W or N×H×W×3) and their labels."""

    def __init__(self, images, labels, transform):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return self.transform(Image.fromarray(self.images[i])), int(self.labels[i])


def test_set(meta, folder, transform):
    name, classes = meta["input.dataset"], json.loads(meta["input.classes"])
    if name == "image-folder":
        return image_folder(folder, classes, transform)
    if name in ("fashion-mnist", "mnist", "idx"):
        images, labels = idx_test_set(folder or (FASHION_MNIST if name == "fashion-mnist" else None), name)
    elif name == "cifar10":
        images, labels = read_cifar(find(folder, name, ["test_batch.bin"], ["cifar-10-batches-bin"]), 1, 0)
    elif name == "cifar100":  # each image has its coarse (20 classes), then its fine (100) label
        label = 0 if len(classes) == 20 else 1
        images, labels = read_cifar(find(folder, name, ["test.bin"], ["cifar-100-binary"]), 2, label)
    else:
        sys.exit(f"torch_eval: no reader here for input.dataset {name!r} (fashion-mnist, mnist, idx, cifar10, "
                 f"cifar100, image-folder)")
    if len(labels) and int(labels.max()) >= len(classes):
        sys.exit(f"torch_eval: {name} has labels up to {int(labels.max())}, beyond the checkpoint's "
                 f"{len(classes)} input.classes")
    return ImageArray(images, labels, transform)


def idx_test_set(folder, name):
    """The test images and labels of an IDX folder (MNIST's layout, or torchvision's download of it)."""
    def files(kind):
        return [f"{split}-{kind}{gz}" for split in ("t10k", "test") for gz in ("", ".gz")]
    subfolders = ["raw", "FashionMNIST/raw", "MNIST/raw"]
    images = read_idx(find(folder, name, files("images-idx3-ubyte"), subfolders))
    labels = read_idx(find(folder, name, files("labels-idx1-ubyte"), subfolders))
    if images.ndim != 3 or labels.shape != images.shape[:1]:
        sys.exit(f"torch_eval: {folder}: images {list(images.shape)} and labels {list(labels.shape)} do not "
                 f"pair up as N x H x W and N")
    return images, labels


def find(folder, name, files, subfolders):
    """The first of folder/<file>, folder/<subfolder>/<file> that exists."""
    if folder is None:
        sys.exit(f"torch_eval: {name} needs --data DIR (the folder holding {files[0]})")
    for sub in ["", *subfolders]:
        for file in files:
            if os.path.isfile(os.path.join(folder, sub, file)):
                return os.path.join(folder, sub, file)
    sys.exit(f"torch_eval: none of {', '.join(files)} in {folder} or its {', '.join(subfolders)}")


def read_idx(path):
    """An IDX file of unsigned bytes: 0, 0, 0x08, rank, rank big-endian u32 sizes, then the data."""
    with (gzip.open if path.endswith(".gz") else open)(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[:3] != b"\0\0\x08":
        sys.exit(f"{path}: not an IDX file of unsigned bytes")
    rank = data[3]
    dims = struct.unpack(f">{rank}I", data[4:4 + 4 * rank])
    if len(data) != 4 + 4 * rank + math.prod(dims):
        sys.exit(f"{path}: {len(data)} bytes, expected {4 + 4 * rank + math.prod(dims)} for shape {dims}")
    return np.frombuffer(data, np.uint8, offset=4 + 4 * rank).reshape(dims)


def read_cifar(path, label_bytes, label):
    """CIFAR's binary batches: per image, label_bytes label bytes, then 3×32×32 bytes channel-major."""
    record = label_bytes + 3 * 32 * 32
    data = np.fromfile(path, np.uint8)
    if data.size % record:
        sys.exit(f"{path}: {data.size} bytes, not a whole number of {record}-byte CIFAR records")
    data = data.reshape(-1, record)
    return data[:, label_bytes:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), data[:, label]


def image_folder(root, classes, transform):
    """torchvision's ImageFolder on root's first split folder of val/, validation/, test/ (as shears
    picks it), else on root, with labels in the checkpoint's class order, not ImageFolder's
    alphabetical one."""
    if root is None:
        sys.exit("torch_eval: image-folder needs --data DIR (DIR/<class>/<image>, or DIR/val/<class>/...)")
    splits = [os.path.join(root, s) for s in ("val", "validation", "test") if os.path.isdir(os.path.join(root, s))]
    try:
        data = datasets.ImageFolder(splits[0] if splits else root, transform=transform)
    except (FileNotFoundError, RuntimeError) as e:
        sys.exit(f"torch_eval: {e}")
    unknown = [c for c in data.classes if c not in classes]
    if unknown:
        sys.exit(f"torch_eval: {data.root}: folders {unknown} are not among the checkpoint's input.classes "
                 f"{classes}")
    data.target_transform = [classes.index(c) for c in data.classes].__getitem__
    return data


if __name__ == "__main__":
    main()
