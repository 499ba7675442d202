#!/usr/bin/python3
"""Fixtures for the optimizers and LR schedules, computed by torch.optim (python3-torch 1.13.1).

    /usr/bin/python3 tools/gen_optim_fixtures.py   # writes tests/fixtures/optim_torch.json

Optimizers: parameters, the gradients fed at each step and the parameters after each step.
Schedules: the lr over a range of steps, read from the scheduler after each .step().
"""
import json
import os

import torch

OUT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "fixtures",
                   "optim_torch.json")


def optimizer_case(name, make, steps=4):
    params = [torch.randn(3, 4, requires_grad=True), torch.randn(4, requires_grad=True)]
    initial = [p.detach().clone() for p in params]
    opt = make(params)
    grads, after = [], []
    for _ in range(steps):
        gs = [torch.randn_like(p) for p in params]
        for p, g in zip(params, gs):
            p.grad = g.clone()
        opt.step()
        grads.append([g.flatten().tolist() for g in gs])
        after.append([p.detach().flatten().tolist() for p in params])
    return {"name": name, "shapes": [list(p.shape) for p in params], "initial": [p.flatten().tolist() for p in initial],
            "grads": grads, "after": after}


def schedule_case(name, make, steps, base_lr=0.1):
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=base_lr)
    sched = make(opt)
    lrs = []
    for _ in range(steps):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return {"name": name, "base_lr": base_lr, "lrs": lrs}


def main():
    torch.manual_seed(0)
    O, S = torch.optim, torch.optim.lr_scheduler
    optimizers = [
        optimizer_case("sgd_plain", lambda p: O.SGD(p, lr=0.1)),
        optimizer_case("sgd_momentum_dampening_wd", lambda p: O.SGD(p, lr=0.05, momentum=0.9, dampening=0.1,
                                                                    weight_decay=5e-4)),
        optimizer_case("sgd_nesterov_wd", lambda p: O.SGD(p, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4)),
        optimizer_case("adam_defaults", lambda p: O.Adam(p)),
        optimizer_case("adam_wd", lambda p: O.Adam(p, lr=1e-2, weight_decay=1e-2)),
        optimizer_case("adamw_defaults", lambda p: O.AdamW(p)),
    ]
    schedules = [
        schedule_case("step_3_0.5", lambda o: S.StepLR(o, step_size=3, gamma=0.5), 12),
        schedule_case("multistep_3_7_0.1", lambda o: S.MultiStepLR(o, milestones=[3, 7], gamma=0.1), 12),
        schedule_case("cosine_10_min0.001", lambda o: S.CosineAnnealingLR(o, T_max=10, eta_min=0.001), 11),
        schedule_case("onecycle_20", lambda o: S.OneCycleLR(o, max_lr=0.1, total_steps=20), 20),
        schedule_case("warmup3_0.1_cosine7", lambda o: S.SequentialLR(
            o, [S.LinearLR(o, start_factor=0.1, total_iters=3), S.CosineAnnealingLR(o, T_max=7)], milestones=[3]), 10),
    ]
    grads = [torch.randn(3, 4), torch.randn(5)]
    params = [torch.zeros(3, 4, requires_grad=True), torch.zeros(5, requires_grad=True)]
    for p, g in zip(params, grads):
        p.grad = g.clone()
    total = torch.nn.utils.clip_grad_norm_(params, max_norm=1.0)
    clip = {"grads": [g.flatten().tolist() for g in grads], "shapes": [list(g.shape) for g in grads], "max_norm": 1.0,
            "total_norm": float(total), "clipped": [p.grad.flatten().tolist() for p in params]}
    out = {"generator": "tools/gen_optim_fixtures.py", "command": "/usr/bin/python3 tools/gen_optim_fixtures.py",
           "torch": torch.__version__, "optimizers": optimizers, "schedules": schedules, "clip_grad_norm": clip}
    with open(OUT, "w") as f:
        json.dump(out, f, indent=1)
    print("wrote", OUT)


if __name__ == "__main__":
    main()
