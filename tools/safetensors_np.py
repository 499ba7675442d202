#!/usr/bin/python3
"""safetensors with json + numpy only: Debian's PyTorch 1.13 has no safetensors module.

Format (huggingface/safetensors README.md, "Format"): u64 little-endian header size N, N bytes
of JSON {name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}},
then the byte buffer the offsets index. No validation here: shears' reader is the strict one.

  python3 tools/safetensors_np.py FILE [--values]   # print the header (and every tensor)
  from safetensors_np import load, save             # load(path) -> (tensors, metadata)
"""
import json
import struct
import sys

import numpy as np

DTYPES = {"BOOL": "?", "U8": "u1", "I8": "i1", "I16": "<i2", "U16": "<u2", "I32": "<i4", "U32": "<u4",
          "I64": "<i8", "U64": "<u8", "F16": "<f2", "F32": "<f4", "F64": "<f8"}
NAMES = {np.dtype(code): name for name, code in DTYPES.items()}
# The reference writer's order (tensor.rs `enum Dtype`, widest alignment last): shears uses it too.
RANK = ["BOOL", "U8", "I8", "I16", "U16", "F16", "BF16", "I32", "U32", "F32", "F64", "I64", "U64"]


def read_header(data):
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8:8 + n]), 8 + n


def load(path):
    with open(path, "rb") as f:
        data = f.read()
    header, start = read_header(data)
    metadata = header.pop("__metadata__", {})
    tensors = {}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        raw = data[start + begin:start + end]
        if info["dtype"] == "BF16":  # no numpy bfloat16: it is the upper half of a float32
            array = (np.frombuffer(raw, "<u2").astype("<u4") << 16).view("<f4")
        else:
            array = np.frombuffer(raw, DTYPES[info["dtype"]])
        tensors[name] = array.reshape(info["shape"])
    return tensors, metadata


def save(path, tensors, metadata=None):
    """Writes the same bytes as shears (and the reference writer, given at most one metadata key)."""
    arrays = {name: np.asarray(t) for name, t in tensors.items()}  # tobytes() is C order
    order = sorted(arrays, key=lambda name: (-RANK.index(NAMES[arrays[name].dtype]), name))
    header = {"__metadata__": dict(sorted(metadata.items()))} if metadata else {}
    chunks, offset = [], 0
    for name in order:
        chunks.append(arrays[name].astype(DTYPES[NAMES[arrays[name].dtype]]).tobytes())
        header[name] = {"dtype": NAMES[arrays[name].dtype], "shape": list(arrays[name].shape),
                        "data_offsets": [offset, offset + len(chunks[-1])]}
        offset += len(chunks[-1])
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(chunks))


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    with open(sys.argv[1], "rb") as f:
        print(json.dumps(read_header(f.read())[0], indent=1, ensure_ascii=False))
    if "--values" in sys.argv:
        for name, array in load(sys.argv[1])[0].items():
            print(name, array.dtype, list(array.shape), array.tolist())
