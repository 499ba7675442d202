#!/usr/bin/python3
"""Writes tests/fixtures/safetensors_from_python.safetensors, read by tests/test_safetensors.cpp
([safetensors][python]). Tensors are named like a PyTorch state_dict and built from formulas the
C++ test recomputes; the f16.* and bf16.* tensors carry float32 values with numpy's float16 and
PyTorch's bfloat16 roundings of them, oracles independent of shears' converters.
Needs Debian's python3-numpy and python3-torch.

  python3 tools/gen_safetensors_fixture.py
"""
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_np  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "safetensors_from_python.safetensors")

# Ties (1 + 2^-11 and 1 + 3·2^-11 for float16, 1 + 2^-8 and 1 + 3·2^-8 for bfloat16), overflow
# (65520 is float16's first value rounding to inf), float16 subnormals and their ties (k·2^-25),
# float32 subnormals and extremes, then random values over 13 decades.
edges = [0.0, -0.0, 1 + 2**-11, 1 + 3 * 2**-11, 65504, 65519, 65520, -70000, 2**-25, 1.5 * 2**-25,
         3 * 2**-25, -(2**-26), 2**-14, 2**-14 - 2**-24, 1e-45, 1 + 2**-8, 1 + 3 * 2**-8,
         1 + 2**-8 + 2**-20, 3.4e38, np.inf, -np.inf, np.nan]
rng = np.random.default_rng(0)
source = np.concatenate([edges, rng.standard_normal(42) * 10.0 ** rng.integers(-9, 5, 42)]).astype(np.float32)
with np.errstate(over="ignore"):  # values beyond 65504 round to inf on purpose
    half = source.astype(np.float16)

tensors = {
    # 4-D OIHW conv weight; (i - 24) / 8 is exact in binary.
    "conv1.weight": ((np.arange(48) - 24) / 8).astype(np.float32).reshape(4, 3, 2, 2),
    # 0-rank I64, as PyTorch stores BatchNorm's num_batches_tracked.
    "bn1.num_batches_tracked": np.array(1875, dtype=np.int64),
    "bn1.running_var": np.array([0.25, 1.5, 3.0], dtype=np.float32),
    # Beyond 2^24 an integer rounds to the nearest float32 (2^24 + 1 → 2^24).
    "labels": np.array([-2**63, -2**24, -1, 0, 1, 2**24 - 1, 2**24 + 1, 2**40], dtype=np.int64),
    # F64 rounds to the nearest float32: 1e-300 underflows to 0, 1e300 overflows to inf.
    "moments": np.array([1 / 3, -2.5, 0.1, 1e-300, 1e300], dtype=np.float64),
    "special": np.array([-0.0, np.inf, -np.inf, np.nan, np.finfo(np.float32).smallest_subnormal,
                         np.finfo(np.float32).max], dtype=np.float32),
    "empty": np.zeros((2, 0), dtype=np.float32),
    "f16.source": source,
    "f16.numpy": half,                                  # F16 on disk, encoded by numpy
    "f16.numpy_bits": half.view(np.uint16),             # the same bits as U16
    "f16.numpy_widened": half.astype(np.float32),       # numpy's float16 → float32
    "bf16.torch_bits": torch.from_numpy(source).bfloat16().view(torch.int16).numpy().view(np.uint16),
}
metadata = {
    "format": "pt",
    "generator": "python3 tools/gen_safetensors_fixture.py",
    "numpy": np.__version__,
    "torch": torch.__version__,
}

safetensors_np.save(OUT, tensors, metadata)
print(f"wrote {os.path.relpath(OUT, ROOT)} ({os.path.getsize(OUT)} bytes)")
