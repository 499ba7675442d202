#!/usr/bin/python3
"""Model fixtures computed by PyTorch (Debian's python3-torch 1.13 and python3-torchvision 0.14).

    /usr/bin/python3 tools/gen_model_fixtures.py

writes, for tests/test_models.cpp:
  tests/fixtures/models_keys.txt — the state_dict (key, dtype, shape, in order) of each reference
      model: torchvision's resnet18/resnet50/vgg*_bn, their CIFAR variants, a CIFAR ResNet-20 made
      of torchvision's BasicBlock, tools/mobilenet_v1.py, and the MLPs;
  tests/fixtures/models_<case>.safetensors — one small instance per family with explicit
      (pruned-like) widths: its state_dict (BN statistics randomised, num_batches_tracked I64), an
      input and targets, and PyTorch's results under "golden.": the train-mode logits and
      cross-entropy loss, the loss's gradient w.r.t. a few parameters, the first and last batch
      norms' buffers after that step, and the eval-mode logits. The metadata holds shears' model options, so the test
      rebuilds each model from the file alone.
It also prints the parameter counts and MACs quoted in tests/test_models.cpp. Inputs come from a
fixed seed, so reruns give identical files.
"""
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torchvision.models import resnet as tv_resnet
from torchvision.models import vgg as tv_vgg

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import safetensors_np  # noqa: E402
from mobilenet_v1 import MobileNetV1  # noqa: E402

FIXTURES = os.path.join(os.path.dirname(HERE), "tests", "fixtures")
COMMAND = "/usr/bin/python3 tools/gen_model_fixtures.py"


# ---- The reference models, written with torchvision's own blocks where it has them.

class CifarResNet(nn.Module):
    """He et al., Section 4.2: 3×3 stem, three stages of n BasicBlocks with 16/32/64 planes, projection
    shortcuts (torchvision's downsample) where the shape changes. widths: out-channels of every
    conv in state_dict order (conv1, then per block conv1, conv2, [downsample.0])."""

    def __init__(self, n, num_classes=10, in_channels=3, widths=None):
        super().__init__()
        explicit = list(widths) if widths else None

        def width(default):
            return explicit.pop(0) if explicit else default

        channels = width(16)
        self.conv1 = nn.Conv2d(in_channels, channels, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        unpruned_in = 16
        for stage, planes in enumerate([16, 32, 64]):
            blocks = []
            for b in range(n):
                stride = 2 if stage > 0 and b == 0 else 1
                w1, w2 = width(planes), width(planes)
                downsample = None
                if stride != 1 or unpruned_in != planes:
                    assert width(planes) == w2, "the downsample's width must equal the block's output"
                    downsample = nn.Sequential(tv_resnet.conv1x1(channels, w2, stride), nn.BatchNorm2d(w2))
                block = tv_resnet.BasicBlock(channels, planes, stride, downsample)
                # Pruned widths: swap in narrower convs; attribute order (the key order) is kept.
                block.conv1, block.bn1 = tv_resnet.conv3x3(channels, w1, stride), nn.BatchNorm2d(w1)
                block.conv2, block.bn2 = tv_resnet.conv3x3(w1, w2), nn.BatchNorm2d(w2)
                blocks.append(block)
                channels, unpruned_in = w2, planes
            setattr(self, f"layer{stage + 1}", nn.Sequential(*blocks))
        assert not explicit, "widths left over"
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def resnet_cifar_stem(factory, num_classes=10):
    """torchvision's resnet18/50 with shears' cifar stem: 3×3/1 conv, no max-pool (same keys)."""
    model = factory(num_classes=num_classes)
    model.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
    model.maxpool = nn.Identity()
    return model


class CifarVGG(nn.Module):
    """torchvision's VGG features (make_layers) with the CIFAR head: global average pool and one
    Linear, as kuangliu/pytorch-cifar. A max-pool on a 1×1 map is left out, as shears does."""

    def __init__(self, cfg, num_classes=10, in_channels=3, input_size=32):
        super().__init__()
        size, kept = input_size, []
        for v in cfg:
            if v == "M":
                if size == 1:
                    continue
                size //= 2
            kept.append(v)
        self.features = make_features(kept, in_channels)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear([v for v in cfg if v != "M"][-1], num_classes)
        tv_init(self)

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


def make_features(cfg, in_channels):
    """torchvision's make_layers(cfg, batch_norm=True) for any input channel count."""
    layers = []
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(in_channels, v, 3, padding=1), nn.BatchNorm2d(v), nn.ReLU(inplace=True)]
            in_channels = v
    return nn.Sequential(*layers)


def tv_init(model):
    """torchvision VGG's initialisation."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)


class Mlp(nn.Module):
    """fc1 · [bn1] · ReLU · … · fcN, as shears' Mlp; MlpNet of WoodFisher/SWAP is 784-40-20-10
    without biases."""

    def __init__(self, in_features, hidden, num_classes=10, bias=True, batch_norm=False):
        super().__init__()
        self.depth = len(hidden) + 1
        for i, h in enumerate(hidden, 1):
            setattr(self, f"fc{i}", nn.Linear(in_features, h, bias=bias))
            if batch_norm:
                setattr(self, f"bn{i}", nn.BatchNorm1d(h))
            in_features = h
        setattr(self, f"fc{self.depth}", nn.Linear(in_features, num_classes, bias=bias))

    def forward(self, x):
        x = torch.flatten(x, 1)
        for i in range(1, self.depth):
            x = getattr(self, f"fc{i}")(x)
            if hasattr(self, f"bn{i}"):
                x = getattr(self, f"bn{i}")(x)
            x = F.relu(x)
        return getattr(self, f"fc{self.depth}")(x)


# ---- Key lists.

def key_lists():
    cfg = tv_vgg.cfgs
    models = [
        ("resnet18 variant=imagenet num_classes=1000", torchvision.models.resnet18()),
        ("resnet50 variant=imagenet num_classes=1000", torchvision.models.resnet50()),
        ("resnet18 variant=cifar num_classes=10", resnet_cifar_stem(torchvision.models.resnet18)),
        ("resnet50 variant=cifar num_classes=10", resnet_cifar_stem(torchvision.models.resnet50)),
        ("resnet20 variant=cifar num_classes=10", CifarResNet(3)),
        ("resnet56 variant=cifar num_classes=10", CifarResNet(9)),
        # Built small (widths 8/16/32/64/64, hidden 32) because the torchvision names are all
        # that is compared here; the full model is 530 MB.
        ("vgg11_bn variant=imagenet num_classes=1000 small", small_vgg_imagenet(cfg["A"])),
        ("vgg11_bn variant=cifar num_classes=10", CifarVGG(cfg["A"])),
        ("vgg16_bn variant=cifar num_classes=10", CifarVGG(cfg["D"])),
        ("vgg19_bn variant=cifar num_classes=10", CifarVGG(cfg["E"])),
        ("mobilenet_v1 variant=imagenet num_classes=1000", MobileNetV1(1000, variant="imagenet")),
        ("mlpnet", Mlp(784, [40, 20], bias=False)),
    ]
    lines = [f"# {COMMAND}: torch {torch.__version__}, torchvision {torchvision.__version__}",
             "# model <name> <options>, then per state_dict entry: key dtype shape"]
    for title, model in models:
        lines.append(f"model {title}")
        for key, t in model.state_dict().items():
            dtype = {torch.float32: "F32", torch.int64: "I64"}[t.dtype]
            lines.append(f"{key} {dtype} {','.join(str(s) for s in t.shape)}")
    with open(os.path.join(FIXTURES, "models_keys.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")


def small_vgg_imagenet(cfg):
    """torchvision's VGG class (features + avgpool 7×7 + classifier.0/3/6) at small widths."""
    small = [v if v == "M" else v // 8 for v in cfg]
    model = tv_vgg.VGG(make_features(small, 3), num_classes=1000)
    model.classifier[0] = nn.Linear(small[-2] * 49, 32)
    model.classifier[3] = nn.Linear(32, 32)
    model.classifier[6] = nn.Linear(32, 1000)
    return model


# ---- Golden forward/backward cases.

def randomise_batch_norm(model):
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            with torch.no_grad():
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.1)
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.num_batches_tracked.fill_(7)


def golden(case, model, options, input_shape, grad_params):
    randomise_batch_norm(model)
    tensors = {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}
    x = torch.randn(input_shape)
    targets = torch.randint(0, int(options["num_classes"]), (input_shape[0],))
    model.train()
    logits = model(x)
    loss = F.cross_entropy(logits, targets)
    params = dict(model.named_parameters())
    grads = torch.autograd.grad(loss, [params[n] for n in grad_params])
    tensors["golden.input"] = x.numpy()
    tensors["golden.targets"] = targets.numpy()
    tensors["golden.logits_train"] = logits.detach().numpy()
    tensors["golden.loss"] = loss.detach().numpy()
    for name, g in zip(grad_params, grads):
        tensors[f"golden.grad.{name}"] = g.numpy()
    norms = [name for name, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for name, b in model.named_buffers():
        if norms and name.rsplit(".", 1)[0] in (norms[0], norms[-1]):
            tensors[f"golden.after.{name}"] = b.numpy().copy()
    model.eval()
    with torch.no_grad():
        tensors["golden.logits_eval"] = model(x).numpy()
    metadata = {"generator": "tools/gen_model_fixtures.py", "command": COMMAND, "torch": torch.__version__,
                "torchvision": torchvision.__version__, "numpy": np.__version__, **options}
    path = os.path.join(FIXTURES, f"models_{case}.safetensors")
    safetensors_np.save(path, tensors, metadata)
    print(f"{path}: {len(tensors)} tensors, {os.path.getsize(path)} bytes")


def golden_cases():
    torch.manual_seed(0)
    base = {"in_channels": "1", "num_classes": "10", "variant": "cifar"}
    golden("mlpnet", Mlp(144, [40, 20], bias=False), {**base, "arch": "mlpnet", "input_size": "12"}, (4, 1, 12, 12),
           ["fc2.weight", "fc3.weight"])
    golden("mlp_bn", Mlp(64, [12, 10], batch_norm=True),
           {**base, "arch": "mlp", "input_size": "8", "batch_norm": "true"}, (6, 1, 8, 8),
           ["fc1.weight", "bn1.weight", "fc3.weight", "fc3.bias"])
    # A ResNet-20 shaped like a structurally pruned one: each block's inner width differs.
    widths = [4, 3, 4, 2, 4, 4, 4, 5, 6, 6, 4, 6, 3, 6, 7, 8, 8, 5, 8, 6, 8]
    golden("resnet20", CifarResNet(3, in_channels=3, widths=widths),
           {**base, "arch": "resnet20", "in_channels": "3", "input_size": "16"}, (2, 3, 16, 16),
           ["conv1.weight", "layer2.0.downsample.0.weight", "layer3.2.bn2.weight", "fc.weight", "fc.bias"])
    # Fashion-MNIST's shape: the last max-pool meets a 1×1 map and is left out.
    small_a = [4, "M", 8, "M", 8, 8, "M", 12, 12, "M", 12, 16, "M"]
    golden("vgg11_bn", CifarVGG(small_a, in_channels=1, input_size=28),
           {**base, "arch": "vgg11_bn", "input_size": "28"}, (4, 1, 28, 28),
           ["features.0.weight", "features.4.weight", "features.26.weight", "classifier.weight"])
    mobilenet_widths = [8, 8, 8, 8, 8, 8, 8, 8, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16,
                        16, 24, 24, 24]
    golden("mobilenet_v1", MobileNetV1(10, widths=mobilenet_widths),
           {**base, "arch": "mobilenet_v1", "in_channels": "3", "input_size": "24", "width_multiplier": "1"},
           (3, 3, 24, 24), ["features.0.0.weight", "features.5.0.0.weight", "features.13.1.1.weight",
                            "classifier.1.weight"])


# ---- Numbers quoted in the tests.

def conv_linear_macs(model, input_shape):
    """Multiply-accumulates of the Conv2d and Linear layers (no bias), one forward."""
    total = [0]

    def hook(m, inputs, out):
        if isinstance(m, nn.Conv2d):
            total[0] += out.numel() * m.weight.shape[1] * m.weight.shape[2] * m.weight.shape[3]
        elif isinstance(m, nn.Linear):
            total[0] += out.numel() * m.in_features

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    with torch.no_grad():
        model.eval()(torch.zeros(input_shape))
    for h in handles:
        h.remove()
    return total[0]


def print_numbers():
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    cfg = tv_vgg.cfgs
    print("parameters:")
    for name, model in [("resnet18 imagenet 1000", torchvision.models.resnet18()),
                        ("resnet50 imagenet 1000", torchvision.models.resnet50()),
                        ("vgg11_bn imagenet 1000", torchvision.models.vgg11_bn()),
                        ("resnet18 cifar 10", resnet_cifar_stem(torchvision.models.resnet18)),
                        ("resnet20 cifar 10", CifarResNet(3)), ("resnet32 cifar 10", CifarResNet(5)),
                        ("resnet56 cifar 10", CifarResNet(9)),
                        ("vgg11_bn cifar 10", CifarVGG(cfg["A"])), ("vgg16_bn cifar 10", CifarVGG(cfg["D"])),
                        ("vgg19_bn cifar 10", CifarVGG(cfg["E"])),
                        ("mobilenet_v1 imagenet 1000", MobileNetV1(1000, variant="imagenet")),
                        ("mobilenet_v1 0.25 cifar 10", MobileNetV1(10, width_mult=0.25)),
                        ("mlpnet", Mlp(784, [40, 20], bias=False))]:
        print(f"  {name}: {count(model)}")
    print("MACs (conv + linear):")
    print("  resnet18 imagenet 1x3x224x224:", conv_linear_macs(torchvision.models.resnet18(), (1, 3, 224, 224)))
    print("  resnet20 cifar 1x3x32x32:", conv_linear_macs(CifarResNet(3), (1, 3, 32, 32)))
    print("  mobilenet_v1 cifar 1x3x32x32:", conv_linear_macs(MobileNetV1(10), (1, 3, 32, 32)))
    print("  mlpnet 1x1x28x28:", conv_linear_macs(Mlp(784, [40, 20], bias=False), (1, 1, 28, 28)))


def main():
    torch.set_default_dtype(torch.float32)
    key_lists()
    golden_cases()
    print_numbers()


if __name__ == "__main__":
    main()
