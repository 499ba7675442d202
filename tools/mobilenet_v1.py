#!/usr/bin/python3
"""MobileNetV1 in PyTorch with exactly the state_dict keys, shapes and defaults of shears'
nn/models/mobilenet.hpp, so checkpoints move both ways with load_state_dict(strict=True).

    import sys; sys.path.insert(0, "tools")
    from mobilenet_v1 import MobileNetV1
    model = MobileNetV1(num_classes=10, variant="cifar")
    /usr/bin/python3 tools/mobilenet_v1.py          # prints the keys and the parameter count

Keys (torchvision has no V1; the scheme follows its MobileNetV2):
    features.0.{0 conv 3x3, 1 BN}                   stem (stride 2 imagenet, 1 cifar)
    features.N.0.{0 conv 3x3 depthwise, 1 BN}       N = 1..13
    features.N.1.{0 conv 1x1 pointwise, 1 BN}
    classifier.1                                    Linear (classifier.0 is a Dropout)
"""
import torch
from torch import nn

# (pointwise out-channels, depthwise stride) of the 13 blocks, Howard et al. 2017, Table 1.
BLOCKS = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1), (512, 1), (512, 1), (512, 1),
          (512, 1), (1024, 2), (1024, 1)]


def make_divisible(v, divisor=8, min_value=8):
    """torchvision's _make_divisible: a multiple of 8, at least 8, within 10 % of v."""
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


class ConvBNReLU(nn.Sequential):
    def __init__(self, in_channels, out_channels, kernel, stride=1, groups=1):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel, stride, kernel // 2, groups=groups, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True))


class MobileNetV1(nn.Module):
    """widths: the out-channels of every conv in order (stem, then per block depthwise, pointwise),
    as shears' ModelOptions::widths; None: the width multiplier's."""

    def __init__(self, num_classes=10, in_channels=3, width_mult=1.0, variant="cifar", dropout=0.0, widths=None):
        super().__init__()
        if variant not in ("cifar", "imagenet"):
            raise ValueError(f"variant must be 'cifar' or 'imagenet', got {variant!r}")
        explicit = list(widths) if widths is not None else None

        def width(default):
            return explicit.pop(0) if explicit else default

        channels = width(make_divisible(32 * width_mult))
        layers = [ConvBNReLU(in_channels, channels, 3, 2 if variant == "imagenet" else 1)]
        for out, stride in BLOCKS:
            depthwise, pointwise = width(channels), width(make_divisible(out * width_mult))
            if depthwise != channels:
                raise ValueError(f"a depthwise conv keeps its {channels} input channels, got width {depthwise}")
            layers.append(nn.Sequential(ConvBNReLU(channels, channels, 3, stride, groups=channels),
                                        ConvBNReLU(channels, pointwise, 1)))
            channels = pointwise
        if explicit:
            raise ValueError(f"{len(explicit)} widths left over")
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(channels, num_classes))

        # torchvision's MobileNetV2 initialisation.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        x = self.features(x)
        x = nn.functional.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.classifier(x)


if __name__ == "__main__":
    model = MobileNetV1(num_classes=1000, variant="imagenet")
    for name, tensor in model.state_dict().items():
        print(name, tuple(tensor.shape))
    print("parameters:", sum(p.numel() for p in model.parameters()))
    print("output:", tuple(model.eval()(torch.zeros(1, 3, 224, 224)).shape))
