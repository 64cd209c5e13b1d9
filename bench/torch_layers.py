#!/usr/bin/env python3
"""PyTorch at its best on each layer of the tutorial net (or its no-pool variant) alone, as
build/bench/bench_layers times dptrain's: forward and backward of one layer on the
activations of a real forward pass, batch B, medians of R calls after 8 to warm up (glibc's
heap takes about 5 calls of a layer to stop growing: until then each new activation costs a
page fault per 4 KiB, 37 ms instead of 0.9 for nopool's relu2 on AMD Zen 5).
Run with what bench/torch-env.sh sets, as bench/compare_layers.sh does.

usage: torch_layers.py --model reference|nopool --threads N [--batch 100] [--reps 20]
                       [--cpu-time]
prints bench_layers' table without the peak columns, and with each direction's work:
    layer shape fwd-ms fwd-GF/s bwd-ms bwd-GF/s fwd-MFLOP bwd-MFLOP
one line a layer, named as dptrain names them (conv1, relu1, maxpool1, ...), shape the
layer's output C x H x W. FLOPs as bench_layers counts them: 2 per multiply-add of a layer
with weights, forward 2 x B x OH x OW x (its weight's elements); backward twice that (the
weight and the input gradients), once for the first layer, whose input needs no gradient
(in PyTorch as in dptrain: the input does not require grad, so conv1's backward makes the
weight and bias gradients only). The parameters' gradients are dropped before each call, so
that backward writes them rather than adding to them, as dptrain's does into zeroed ones.
A last line counts the page faults taken during the timed calls (0 when the heap settled).
"""
import argparse
import resource
import time

import torch
import torch.nn as nn


def layers(pool):
    """(name, module) in dptrain's order and names; fc1 takes the flattened activations."""
    out = [("conv1", nn.Conv2d(1, 32, 3)), ("relu1", nn.ReLU())]
    if pool:
        out.append(("maxpool1", nn.MaxPool2d(2)))
    out += [("conv2", nn.Conv2d(32, 64, 3)), ("relu2", nn.ReLU())]
    if pool:
        out.append(("maxpool2", nn.MaxPool2d(2)))
    out += [("fc1", nn.Linear(64 * 5 * 5 if pool else 64 * 24 * 24, 128)), ("relu3", nn.ReLU()),
            ("fc2", nn.Linear(128, 10))]
    return out


def shape_of(y):
    return f"{y.shape[1]}x{y.shape[2]}x{y.shape[3]}" if y.dim() == 4 else f"{y.shape[1]}x1x1"


def median(v):
    v = sorted(v)
    n = len(v)
    return v[n // 2] if n % 2 else 0.5 * (v[n // 2 - 1] + v[n // 2])


WARMUP = 8


def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def time_layer(mod, x, first, reps, clock):
    """Median seconds of forward and of backward of mod on x, and the page faults taken
    during the timed calls."""
    g = None
    tf, tb = [], []
    for k in range(-WARMUP, reps):
        if k == 0:
            f0 = faults()
        xin = x.detach().requires_grad_(not first)
        for p in mod.parameters():
            p.grad = None
        t0 = clock()
        y = mod(xin)
        t1 = clock()
        if g is None:
            g = torch.randn_like(y)
        y.backward(g)
        t2 = clock()
        if k >= 0:
            tf.append(t1 - t0)
            tb.append(t2 - t1)
    return median(tf), median(tb), y, faults() - f0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="reference", choices=["reference", "nopool"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--cpu-time", action="store_true")
    a = ap.parse_args()
    if a.threads < 1 or a.batch < 1 or a.reps < 1:
        ap.error("--threads, --batch and --reps must be at least 1")
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    clock = time.process_time if a.cpu_time else time.perf_counter
    net = layers(a.model == "reference")
    x = torch.randint(0, 256, (a.batch, 1, 28, 28), dtype=torch.uint8).float() / 255
    print(f"model {a.model}, batch {a.batch}, {a.threads} thread{'s' if a.threads > 1 else ''}: "
          f"PyTorch {torch.__version__}, layers alone")
    print(f"{'layer':<10} {'shape':<14} {'fwd ms':>9} {'fwd GF/s':>9} {'bwd ms':>9} "
          f"{'bwd GF/s':>9} {'fwd MFLOP':>10} {'bwd MFLOP':>10}")
    nfaults = 0
    for i, (name, mod) in enumerate(net):
        if isinstance(mod, nn.Linear):
            x = torch.flatten(x, 1).contiguous()
        f, b, y, nf = time_layer(mod, x, i == 0, a.reps, clock)
        nfaults += nf
        w = getattr(mod, "weight", None)
        oh, ow = (y.shape[2], y.shape[3]) if y.dim() == 4 else (1, 1)
        flops = 2.0 * a.batch * oh * ow * w.numel() if w is not None else 0.0
        bflops = flops * (1 if i == 0 else 2)
        print(f"{name:<10} {shape_of(y):<14} {1e3 * f:9.3f} {flops / f * 1e-9:9.1f} "
              f"{1e3 * b:9.3f} {bflops / b * 1e-9:9.1f} {flops * 1e-6:10.4f} {bflops * 1e-6:10.4f}")
        with torch.no_grad():
            x = mod(x)
    print(f"page faults during the timed calls: {nfaults}")


if __name__ == "__main__":
    main()
