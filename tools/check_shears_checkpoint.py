#!/usr/bin/python3
"""Loads checkpoints written by shears into their PyTorch twins and compares the logits.

    /usr/bin/python3 tools/check_shears_checkpoint.py CHECKPOINT [CHECKPOINT ...]

Needs Debian's python3-torch 1.13 and python3-torchvision 0.14; reads safetensors with
tools/safetensors_np.py. For each CHECKPOINT (written by shears' Module::save_checkpoint, so its
__metadata__ names the architecture and options), the file beside it with the suffix
".logits.safetensors" in place of ".safetensors" holds "input" and shears' eval-mode "logits".

The twin (tools/gen_model_fixtures.py's classes, tools/mobilenet_v1.py) is built with the widths
read from the checkpoint's shapes — the out-channels of every Conv2d and every Linear but the
last, in the twin's module order, as shears' widths_from_state_dict — and loaded with
load_state_dict(strict=True). A parameter saved as PyTorch's `<name>_orig` + `<name>_mask` pair
is first re-parametrised with torch.nn.utils.prune.custom_from_mask, as torch.nn.utils.prune
leaves it. Prints one line per file; exits 1 if any check fails.

tests/test_models.cpp runs this on tests/fixtures/shears_<arch>.safetensors and on fresh copies it
writes; it rewrites the committed ones with
    SHEARS_REGENERATE_FIXTURES=1 ./build/shears_tests "[models][python]"
"""
import os
import sys

import numpy as np
import torch
from torch import nn
from torch.nn.utils import prune

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import safetensors_np  # noqa: E402
from gen_model_fixtures import CifarResNet, CifarVGG, Mlp  # noqa: E402
from mobilenet_v1 import MobileNetV1  # noqa: E402
from torchvision.models.vgg import cfgs as VGG_CFGS  # noqa: E402

ATOL = RTOL = 1e-4
CIFAR_RESNETS = {"resnet20": 3, "resnet32": 5, "resnet56": 9}
VGGS = {"vgg11_bn": "A", "vgg16_bn": "D", "vgg19_bn": "E"}


def twin(meta, widths=None):
    """The PyTorch model of a checkpoint's metadata; widths None: the architecture's own."""
    arch = meta["arch"]
    in_channels, num_classes = int(meta["in_channels"]), int(meta["num_classes"])
    size, variant = int(meta["input_size"]), meta.get("variant", "cifar")
    if arch in ("mlp", "mlpnet"):
        bias = meta.get("bias", "true" if arch == "mlp" else "false") == "true"
        hidden = widths if widths is not None else ([40, 20] if arch == "mlpnet" else [])
        return Mlp(in_channels * size * size, hidden, num_classes, bias, meta.get("batch_norm") == "true")
    if arch in CIFAR_RESNETS and variant == "cifar":
        return CifarResNet(CIFAR_RESNETS[arch], num_classes, in_channels, widths)
    if arch in VGGS and variant == "cifar":
        cfg = list(VGG_CFGS[VGGS[arch]])
        if widths is not None:
            explicit = iter(widths)
            cfg = [v if v == "M" else next(explicit) for v in cfg]
        return CifarVGG(cfg, num_classes, in_channels, size)
    if arch == "mobilenet_v1":
        return MobileNetV1(num_classes, in_channels, float(meta.get("width_multiplier", "1")), variant,
                           float(meta.get("dropout", "0")), widths)
    raise SystemExit(f"check_shears_checkpoint: no PyTorch twin here for {arch} (variant {variant})")


def widths_from_state(meta, state):
    if meta["arch"] in ("mlp", "mlpnet"):
        hidden, k = [], 1
        while f"fc{k}.weight" in state or f"fc{k}.weight_orig" in state:
            hidden.append(state.get(f"fc{k}.weight", state.get(f"fc{k}.weight_orig")).shape[0])
            k += 1
        return hidden[:-1]
    layers = [name for name, m in twin(meta).named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    return [state.get(f"{p}.weight", state.get(f"{p}.weight_orig")).shape[0] for p in layers[:-1]]


def check(path):
    tensors, meta = safetensors_np.load(path)
    state = {k: torch.from_numpy(np.array(v)) for k, v in tensors.items()}
    model = twin(meta, widths_from_state(meta, state))
    modules = dict(model.named_modules())
    for key in [k for k in state if k.endswith("_mask")]:
        owner, name = key[:-len("_mask")].rpartition(".")[::2]
        prune.custom_from_mask(modules[owner], name, state[key])
    model.load_state_dict(state, strict=True)  # raises on any missing, unexpected or mis-shaped key

    io, _ = safetensors_np.load(path[:-len(".safetensors")] + ".logits.safetensors")
    model.eval()
    with torch.no_grad():
        logits = model(torch.from_numpy(np.array(io["input"]))).numpy()
    expected = io["logits"]
    worst = float(np.max(np.abs(logits - expected) / (ATOL + RTOL * np.abs(expected))))
    ok = logits.shape == expected.shape and worst <= 1.0
    print(f"{'ok' if ok else 'FAILED'} {path}: {meta['arch']}, {len(state)} tensors loaded strictly, "
          f"logits {list(logits.shape)} within tolerance x{worst:.3g} (torch {torch.__version__})")
    return ok


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    results = [check(path) for path in sys.argv[1:]]
    sys.exit(0 if all(results) else 1)


if __name__ == "__main__":
    main()
