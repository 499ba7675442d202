#!/usr/bin/python3
"""Golden fixtures for the core ops, computed by PyTorch (Debian's python3-torch 1.13.1).

    /usr/bin/python3 tools/gen_core_fixtures.py   # writes tests/fixtures/core_ops.safetensors

Each case stores its inputs, the output gradient dy, PyTorch's outputs and input gradients, and
its options as a small float tensor, under names "<op>.<case>.<field>"; tests/test_golden.cpp
replays every case in shears. Inputs come from a fixed seed, so reruns give identical files.
"""
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_np  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "fixtures",
                   "core_ops.safetensors")
tensors = {}


def put(prefix, **fields):
    assert "." not in prefix.split(".", 1)[1], "case names must not contain dots"
    for name, value in fields.items():
        arr = value.detach().numpy() if torch.is_tensor(value) else np.asarray(value)
        tensors[f"{prefix}.{name}"] = np.array(arr, dtype=np.float32, order="C", copy=True)


def grads(y, inputs):
    dy = torch.randn_like(y)
    return dy, torch.autograd.grad(y, inputs, dy)


def conv_cases():
    # name, input shape, C_out, kernel, stride, padding, dilation, groups, bias
    for name, shape, c_out, k, s, p, d, g, bias in [
        ("basic_3x3", (2, 3, 7, 6), 4, (3, 3), (1, 1), (1, 1), (1, 1), 1, True),
        ("stride2_pad0", (1, 2, 9, 8), 3, (3, 3), (2, 2), (0, 0), (1, 1), 1, False),
        ("rect_kernel_stride_dilation", (2, 2, 9, 10), 3, (3, 2), (1, 2), (2, 1), (2, 3), 1, True),
        ("groups2", (2, 4, 6, 6), 6, (3, 3), (1, 1), (1, 1), (1, 1), 2, True),
        ("depthwise_s1", (2, 5, 7, 9), 5, (3, 3), (1, 1), (1, 1), (1, 1), 5, False),
        ("depthwise_s2", (2, 4, 8, 7), 4, (3, 3), (2, 2), (1, 1), (1, 1), 4, True),
        ("pointwise", (3, 6, 4, 5), 5, (1, 1), (1, 1), (0, 0), (1, 1), 1, True),
        ("stem_5x5", (1, 1, 12, 12), 3, (5, 5), (2, 2), (2, 2), (1, 1), 1, True),
    ]:
        x = torch.randn(shape, requires_grad=True)
        w = torch.randn(c_out, shape[1] // g, *k, requires_grad=True)
        b = torch.randn(c_out, requires_grad=True) if bias else None
        y = F.conv2d(x, w, b, s, p, d, g)
        inputs = (x, w, b) if bias else (x, w)
        dy, gs = grads(y, inputs)
        put(f"conv2d.{name}", x=x, w=w, y=y, dy=dy, dx=gs[0], dw=gs[1],
            options=[*s, *p, *d, g, 1 if bias else 0])
        if bias:
            put(f"conv2d.{name}", b=b, db=gs[2])


def batch_norm_cases():
    for name, shape in [("4d", (4, 3, 5, 5)), ("2d", (6, 4))]:
        c = shape[1]
        weight = torch.randn(c, requires_grad=True)
        bias = torch.randn(c, requires_grad=True)
        rm, rv = torch.randn(c) * 0.1, torch.rand(c) + 0.5
        put(f"batch_norm.{name}", running_mean_start=rm, running_var_start=rv, weight=weight, bias=bias)
        # Three training steps update the running statistics; the last one is differentiated.
        for step in range(3):
            x = (torch.randn(shape) * (step + 1) + step).requires_grad_()
            y = F.batch_norm(x, rm, rv, weight, bias, training=True, momentum=0.1, eps=1e-5)
            put(f"batch_norm.{name}", **{f"x{step}": x})
        dy, (dx, dw, db) = grads(y, (x, weight, bias))
        put(f"batch_norm.{name}", y=y, dy=dy, dx=dx, dweight=dw, dbias=db, running_mean=rm, running_var=rv)
        xe = torch.randn(shape, requires_grad=True)
        ye = F.batch_norm(xe, rm, rv, weight, bias, training=False, eps=1e-5)
        dye, (dxe,) = grads(ye, (xe,))
        put(f"batch_norm.{name}", x_eval=xe, y_eval=ye, dy_eval=dye, dx_eval=dxe)


def pool_cases():
    # name, op, input shape, kernel, stride, padding, count_include_pad
    for name, op, shape, k, s, p, inc in [
        ("max_2x2", "max", (2, 3, 6, 7), 2, 2, 0, 1),
        ("max_3x3_s2_p1", "max", (1, 2, 9, 8), 3, 2, 1, 1),
        ("avg_2x2", "avg", (2, 2, 6, 6), 2, 2, 0, 1),
        ("avg_3x3_p1_include", "avg", (1, 3, 7, 7), 3, 2, 1, 1),
        ("avg_3x3_p1_exclude", "avg", (1, 3, 7, 7), 3, 2, 1, 0),
    ]:
        x = torch.randn(shape, requires_grad=True)
        y = F.max_pool2d(x, k, s, p) if op == "max" else F.avg_pool2d(x, k, s, p, count_include_pad=bool(inc))
        dy, (dx,) = grads(y, (x,))
        put(f"{op}_pool2d.{name}", x=x, y=y, dy=dy, dx=dx, options=[k, s, p, inc])
    for name, shape, out in [("7x5_to_3x2", (2, 2, 7, 5), (3, 2)), ("global", (2, 4, 4, 4), (1, 1))]:
        x = torch.randn(shape, requires_grad=True)
        y = F.adaptive_avg_pool2d(x, out)
        dy, (dx,) = grads(y, (x,))
        put(f"adaptive_avg_pool2d.{name}", x=x, y=y, dy=dy, dx=dx, options=list(out))


def loss_and_linear_cases():
    for name, smoothing in [("plain", 0.0), ("label_smoothing", 0.1)]:
        logits = (torch.randn(6, 5) * 3).requires_grad_()
        targets = torch.tensor([0, 4, 2, 2, 1, 3])
        loss = F.cross_entropy(logits, targets, label_smoothing=smoothing)
        (dlogits,) = torch.autograd.grad(loss, (logits,))
        put(f"cross_entropy.{name}", logits=logits, targets=targets.float(), loss=loss, dlogits=dlogits,
            options=[smoothing])
    x = torch.randn(5, 7, requires_grad=True)
    w = torch.randn(3, 7, requires_grad=True)
    b = torch.randn(3, requires_grad=True)
    y = F.linear(x, w, b)
    dy, (dx, dw, db) = grads(y, (x, w, b))
    put("linear.basic", x=x, w=w, b=b, y=y, dy=dy, dx=dx, dw=dw, db=db)


def main():
    torch.manual_seed(0)
    torch.set_default_dtype(torch.float32)
    conv_cases()
    batch_norm_cases()
    pool_cases()
    loss_and_linear_cases()
    metadata = {
        "generator": "tools/gen_core_fixtures.py",
        "command": "/usr/bin/python3 tools/gen_core_fixtures.py",
        "torch": torch.__version__,
        "numpy": np.__version__,
        "seed": "0",
    }
    safetensors_np.save(OUT, tensors, metadata)
    print(f"wrote {len(tensors)} tensors to {OUT}")


if __name__ == "__main__":
    main()
