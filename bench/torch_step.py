#!/usr/bin/env python3
"""PyTorch at its best on the same training step as bench_layers: the tutorial net (or its
no-pool variant), batch B, SGD momentum 0.9, inputs in [0, 1], preloaded (no data loading).
Run with what bench/torch-env.sh sets (OPENBLAS_NUM_THREADS=1, glibc's fixed mmap threshold,
OPENBLAS_CORETYPE where OpenBLAS does not know the CPU), as bench/compare_pytorch.sh does.

usage: torch_step.py --model reference|nopool --threads N [--batch 100] [--steps 30] [--cpu-time]
                    [--bf16]
prints: model M, batch B, N threads: step X ms, Y images/s
--cpu-time times the process's CPU time (as bench_layers --cpu-time): on a shared machine a
one-thread run then measures its own work, not its waiting.
--bf16 runs forward and loss under torch.autocast("cpu", dtype=torch.bfloat16) (PyTorch's
mixed precision: conv and linear in bf16 through oneDNN, fp32 weights and update), beside
dptrain's --precision bf16.
"""
import contextlib
import argparse
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Net(nn.Module):
    def __init__(self, pool):
        super().__init__()
        self.pool = pool
        self.conv1 = nn.Conv2d(1, 32, 3)
        self.conv2 = nn.Conv2d(32, 64, 3)
        self.fc1 = nn.Linear(64 * 5 * 5 if pool else 64 * 24 * 24, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        if self.pool:
            x = F.max_pool2d(x, 2)
        x = F.relu(self.conv2(x))
        if self.pool:
            x = F.max_pool2d(x, 2)
        x = F.relu(self.fc1(torch.flatten(x, 1)))
        return self.fc2(x)


def median_step(net, batch, steps, before_step=None, clock=time.perf_counter, bf16=False):
    """Median seconds of one SGD step (momentum 0.9) on a fixed random batch, after 3
    warm-up steps; before_step() runs untimed before each step (a barrier for DDP)."""
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    x = torch.randint(0, 256, (batch, 1, 28, 28), dtype=torch.uint8).float() / 255
    y = torch.randint(0, 10, (batch,))
    times = []
    for k in range(steps + 3):
        if before_step:
            before_step()
        t0 = clock()
        opt.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext():
            loss = F.cross_entropy(net(x), y)
        loss.backward()
        opt.step()
        if k >= 3:
            times.append(clock() - t0)
    times.sort()
    return times[len(times) // 2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="reference")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--cpu-time", action="store_true")
    ap.add_argument("--bf16", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    clock = time.process_time if a.cpu_time else time.perf_counter
    step = median_step(Net(a.model == "reference"), a.batch, a.steps, clock=clock, bf16=a.bf16)
    print(f"model {a.model}, batch {a.batch}, {a.threads} threads: step {step * 1e3:.2f} ms, "
          f"{a.batch / step:.0f} images/s")


if __name__ == "__main__":
    main()
