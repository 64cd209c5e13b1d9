#!/usr/bin/env python3
"""PyTorch DistributedDataParallel (gloo) on the tutorial net: P processes x 1 thread,
global batch B split evenly, preloaded random batches, SGD momentum 0.9. Started with
torch.multiprocessing.spawn (Debian's torchrun is broken on Python 3.11).

usage: torch_ddp.py [--procs 2] [--model reference|nopool] [--batch 100] [--steps 40]
prints: ddp P procs x 1 thread, model M, batch B: step X ms, Y images/s
"""
import argparse
import os
import sys

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_step import Net, median_step  # noqa: E402


def worker(rank, a):
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(a.port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=a.procs)
    torch.manual_seed(0)
    net = torch.nn.parallel.DistributedDataParallel(Net(a.model == "reference"))
    b = a.batch // a.procs
    step = median_step(net, b, a.steps, dist.barrier)
    if rank == 0:
        print(f"ddp {a.procs} procs x 1 thread, model {a.model}, batch {b * a.procs}: "
              f"step {step * 1e3:.2f} ms, {b * a.procs / step:.0f} images/s", flush=True)
    dist.destroy_process_group()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--model", default="reference")
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--port", type=int, default=29517)
    a = ap.parse_args()
    mp.spawn(worker, args=(a,), nprocs=a.procs, join=True)


if __name__ == "__main__":
    main()
