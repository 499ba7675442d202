#!/usr/bin/env bash
# Weights from PyTorch, evaluated by shears: torchvision's ResNet-18 (one input channel, 10
# classes) with the CIFAR stem and with the ImageNet stem, seeded, saved as safetensors with only
# format=pt, must give PyTorch's loss on the first 256 Fashion-MNIST test images to 1e-4
# relative; the wrong --variant lists the mismatched tensors by name; a .pth file converts to the
# same safetensors file (tools/pth_to_safetensors.py). Needs Debian's
# python3-torch and python3-torchvision (make deps-torch); run by make check-long.
set -euo pipefail
cd "$(dirname "$0")/../.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
flags="--model resnet18 --num-classes 10 --in-channels 1 --input-size 28 --limit-test 256 --workers 1"
for variant in cifar imagenet; do
  weights="$tmp/resnet18-$variant.safetensors"
  torch=$(/usr/bin/python3 tools/foreign_resnet18.py "$weights" --variant "$variant" --in-channels 1 \
          --num-classes 10 --input-size 28 --limit 256)
  build/shears eval $flags --variant "$variant" --weights "$weights" --results-file "$tmp/$variant.json" > /dev/null
  /usr/bin/python3 - "$torch" "$tmp/$variant.json" "$variant" <<'PY'
import json, sys
torch, shears = json.loads(sys.argv[1]), json.load(open(sys.argv[2]))
rel = abs(shears["loss"] - torch["loss"]) / abs(torch["loss"])
print(f"resnet18 {sys.argv[3]}: PyTorch loss {torch['loss']:.6f}, shears {shears['loss']:.6f}, relative {rel:.2e}")
sys.exit(0 if rel <= 1e-4 and shears["images"] == torch["images"] else 1)
PY
done
# The same weights as a .pth file (a trainer's checkpoint: the state_dict under "state_dict", an
# epoch and an lr beside it), converted by tools/pth_to_safetensors.py: the same file.
/usr/bin/python3 - "$tmp/resnet18-cifar.safetensors" "$tmp/checkpoint.pth" <<'PY'
import sys, torch
sys.path.insert(0, "tools")
import safetensors_np
tensors, _ = safetensors_np.load(sys.argv[1])
state = {name: torch.from_numpy(value.copy()) for name, value in tensors.items()}
torch.save({"state_dict": state, "epoch": 3, "lr": 0.1}, sys.argv[2])
PY
/usr/bin/python3 tools/pth_to_safetensors.py "$tmp/checkpoint.pth" "$tmp/converted.safetensors"
cmp "$tmp/converted.safetensors" "$tmp/resnet18-cifar.safetensors"
echo "a .pth checkpoint converts to the same safetensors file"
if out=$(build/shears eval $flags --variant imagenet --weights "$tmp/resnet18-cifar.safetensors" 2>&1); then
  echo "the CIFAR-stem weights loaded as --variant imagenet"; exit 1
fi
grep -q "conv1.weight" <<< "$out" || { echo "the mismatch was not named: $out"; exit 1; }
echo "foreign ResNet-18: both stems match PyTorch; the wrong variant names conv1.weight"
