#!/usr/bin/env bash
# A shears checkpoint evaluated in PyTorch from its input contract alone (tools/torch_eval.py, the
# script docs/checkpoints.md shows): an MLPNet trained on Fashion-MNIST (padded to 32) and a
# ResNet-20 trained on a folder of PNGs of many sizes (resize-crop, bicubic, crop_pct 0.9: an odd
# crop margin) must give shears' loss to 1e-4 relative. PNGs, not JPEGs: PIL's libjpeg and
# shears' stb_image round some pixels differently. Run by make check-long.
set -euo pipefail
cd "$(dirname "$0")/../.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
/usr/bin/python3 - "$tmp/photos" <<'PY'
import os, random, sys
from PIL import Image
random.seed(0)
for split, count in (("train", 16), ("val", 6)):
    for cls, colour in (("blue", (30, 60, 190)), ("red", (190, 60, 30))):
        os.makedirs(f"{sys.argv[1]}/{split}/{cls}")
        for k in range(count):
            w, h = random.randint(40, 100), random.randint(40, 100)
            im = Image.new("RGB", (w, h), colour)
            im.putdata([tuple(min(255, c + random.randint(0, 50)) for c in colour) for _ in range(w * h)])
            im.save(f"{sys.argv[1]}/{split}/{cls}/{k}.png")
PY
compare() {  # checkpoint, shears eval flags, torch_eval flags
  build/shears eval --weights "$1" $2 --results-file "$tmp/r.json" > /dev/null
  torch=$(/usr/bin/python3 tools/torch_eval.py "$1" $3)
  /usr/bin/python3 - "$torch" "$tmp/r.json" "$1" <<'PY'
import json, sys
torch, shears = json.loads(sys.argv[1]), json.load(open(sys.argv[2]))
rel = abs(shears["loss"] - torch["loss"]) / abs(torch["loss"])
print(f"{sys.argv[3]}: PyTorch loss {torch['loss']:.7f}, shears {shears['loss']:.7f}, relative {rel:.1e}")
sys.exit(0 if rel <= 1e-4 and shears["images"] == torch["images"] else 1)
PY
}
build/shears train --model mlpnet --epochs 1 --limit-train 2048 --input-size 32 --workers 1 --output "$tmp/mlp" > /dev/null
compare "$tmp/mlp/last.safetensors" "--limit-test 1000" "--limit 1000"
build/shears train --model resnet20 --data "$tmp/photos" --input-size 3 40 40 --interpolation bicubic --crop-pct 0.9 \
    --epochs 2 --batch-size 8 --workers 1 --output "$tmp/folder" > /dev/null
compare "$tmp/folder/last.safetensors" "--data $tmp/photos" "--data $tmp/photos"
