#!/usr/bin/env python3
"""PyTorch reference for dptrain (needs torch, h5py, numpy).

  torch_reference.py --model reference|nopool --init INIT.h5 --train TRAIN.h5 \
      --steps N --batch B --lr LR --momentum M [--weight-decay WD] [--nesterov] [--double] \
      [--optimizer adamw [--beta1 B1] [--beta2 B2] [--eps E]] --out OUT.h5
      Run N SGD steps (constant lr, dampening 0, mean softmax cross-entropy), or
      torch.optim.AdamW steps with --optimizer adamw, in float32 or with --double float64,
      on consecutive batches in file order (batch k = samples [k*B,(k+1)*B) mod N_samples)
      starting from INIT.h5; write the resulting weights to OUT.h5 (float32, or float64
      with --double).
  torch_reference.py compare A.h5 B.h5 [--rtol R] [--atol A]
      Exit 1 if any element violates |a-b| <= atol + rtol*|b| (or names/shapes differ).
  torch_reference.py eval --model M --weights W.h5 --test TEST.h5 [--batch B]
      Print mean loss and accuracy.

Weight files: one float32 dataset per parameter at the file root, named by the
state_dict key (conv1.weight ... fc2.bias). Data files: `images` uint8 [N,1,28,28]
(scaled by 1/255), `labels` uint8 [N].
"""
import argparse
import sys

import h5py
import numpy as np

KEYS = ["conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias",
        "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]


def make_net(model):
    import torch.nn as nn
    import torch.nn.functional as F
    pool = {"reference": True, "nopool": False}[model]

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 32, 3)
            self.conv2 = nn.Conv2d(32, 64, 3)
            self.fc1 = nn.Linear(64 * 5 * 5 if pool else 64 * 24 * 24, 128)
            self.fc2 = nn.Linear(128, 10)

        def forward(self, x):
            x = F.relu(self.conv1(x))
            if pool:
                x = F.max_pool2d(x, 2)
            x = F.relu(self.conv2(x))
            if pool:
                x = F.max_pool2d(x, 2)
            x = F.relu(self.fc1(x.flatten(1)))
            return self.fc2(x)

    return Net()


def load_weights(net, path):
    import torch
    with h5py.File(path, "r") as f:
        missing = [k for k in KEYS if k not in f]
        if missing:
            sys.exit(f"{path}: missing dataset(s) {missing}")
        sd = {k: torch.from_numpy(np.asarray(f[k][()], dtype=np.float32)) for k in KEYS}
    net.load_state_dict(sd)  # raises on shape mismatch


def save_weights(net, path, dtype=np.float32):
    with h5py.File(path, "w") as f:
        for k, v in net.state_dict().items():
            f.create_dataset(k, data=v.detach().cpu().numpy().astype(dtype))


def load_data(path):
    import torch
    with h5py.File(path, "r") as f:
        x = np.asarray(f["images"][()], dtype=np.uint8)
        y = np.asarray(f["labels"][()], dtype=np.int64)
    x = x.reshape(-1, 1, 28, 28)
    if len(x) != len(y) or len(x) == 0:
        sys.exit(f"{path}: {len(x)} images vs {len(y)} labels")
    return torch.from_numpy(x.astype(np.float32) / 255.0), torch.from_numpy(y)


def cmd_train(argv):
    import torch
    import torch.nn.functional as F
    p = argparse.ArgumentParser(prog="torch_reference.py")
    p.add_argument("--model", choices=["reference", "nopool"], default="reference")
    p.add_argument("--init", required=True)
    p.add_argument("--train", required=True)
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--batch", type=int, required=True)
    p.add_argument("--lr", type=float, required=True)
    p.add_argument("--momentum", type=float, default=0.0)
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--nesterov", action="store_true")
    p.add_argument("--optimizer", choices=["sgd", "adamw"], default="sgd")
    p.add_argument("--beta1", type=float, default=0.9)
    p.add_argument("--beta2", type=float, default=0.999)
    p.add_argument("--eps", type=float, default=1e-8)
    p.add_argument("--out", required=True)
    p.add_argument("--double", action="store_true",
                   help="compute in float64 (from the same float32 start), to measure "
                        "float32 rounding error; the result is stored as float64")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    net = make_net(a.model)
    load_weights(net, a.init)
    x, y = load_data(a.train)
    if a.double:
        net = net.double()
        x = x.double()
    n = len(y)
    if a.optimizer == "adamw":
        opt = torch.optim.AdamW(net.parameters(), lr=a.lr, betas=(a.beta1, a.beta2), eps=a.eps,
                                weight_decay=a.weight_decay)
    else:
        opt = torch.optim.SGD(net.parameters(), lr=a.lr, momentum=a.momentum, dampening=0,
                              weight_decay=a.weight_decay, nesterov=a.nesterov)
    for k in range(a.steps):
        idx = torch.arange(k * a.batch, (k + 1) * a.batch) % n
        loss = F.cross_entropy(net(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if k < 3 or k + 1 == a.steps or (k + 1) % 100 == 0:
            print(f"step {k + 1} loss {loss.item():.6f}")
    save_weights(net, a.out, np.float64 if a.double else np.float32)
    return 0


def cmd_compare(argv):
    p = argparse.ArgumentParser(prog="torch_reference.py compare")
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--rtol", type=float, default=1e-4)
    p.add_argument("--atol", type=float, default=1e-6)
    a = p.parse_args(argv)
    bad = []
    with h5py.File(a.a, "r") as fa, h5py.File(a.b, "r") as fb:
        names_a = sorted(k for k in fa if isinstance(fa[k], h5py.Dataset))
        names_b = sorted(k for k in fb if isinstance(fb[k], h5py.Dataset))
        if names_a != names_b:
            print(f"FAIL dataset names differ: only in A {sorted(set(names_a) - set(names_b))}, "
                  f"only in B {sorted(set(names_b) - set(names_a))}")
            return 1
        if not names_a:
            print("FAIL no datasets")
            return 1
        for k in names_a:
            va = np.asarray(fa[k][()], dtype=np.float64)
            vb = np.asarray(fb[k][()], dtype=np.float64)
            if va.shape != vb.shape:
                print(f"FAIL {k}: shape {va.shape} vs {vb.shape}")
                bad.append(k)
                continue
            d = np.abs(va - vb)
            rel = d / np.maximum(np.abs(vb), np.finfo(np.float64).tiny)
            viol = ~(d <= a.atol + a.rtol * np.abs(vb))  # NaN counts as violation
            mabs = float(d.max()) if d.size else 0.0  # NaN propagates
            mrel = float(rel.max()) if rel.size else 0.0
            nv = int(viol.sum())
            status = "ok" if nv == 0 else f"FAIL ({nv}/{d.size} elements out of tolerance)"
            print(f"{k:14s} shape {str(va.shape):18s} max_abs {mabs:.3e} max_rel {mrel:.3e} {status}")
            if nv:
                i = np.unravel_index(int(np.argmax(viol)), va.shape)
                print(f"  first violation at {tuple(int(j) for j in i)}: A={va[i]!r} B={vb[i]!r}")
                bad.append(k)
    if bad:
        print(f"FAIL: parameter(s) out of tolerance (rtol={a.rtol}, atol={a.atol}): {', '.join(bad)}")
        return 1
    print(f"OK: all parameters within rtol={a.rtol}, atol={a.atol}")
    return 0


def cmd_eval(argv):
    import torch
    import torch.nn.functional as F
    p = argparse.ArgumentParser(prog="torch_reference.py eval")
    p.add_argument("--model", choices=["reference", "nopool"], default="reference")
    p.add_argument("--weights", required=True)
    p.add_argument("--test", required=True)
    p.add_argument("--batch", type=int, default=1000)
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    net = make_net(a.model)
    load_weights(net, a.weights)
    x, y = load_data(a.test)
    loss, correct = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(y), a.batch):
            o = net(x[i:i + a.batch])
            loss += F.cross_entropy(o, y[i:i + a.batch], reduction="sum").item()
            correct += int((o.argmax(1) == y[i:i + a.batch]).sum())
    print(f"loss {loss / len(y):.6f} accuracy {correct / len(y):.6f} ({correct}/{len(y)})")
    return 0


def main():
    argv = sys.argv[1:]
    if argv and argv[0] == "compare":
        return cmd_compare(argv[1:])
    if argv and argv[0] == "eval":
        return cmd_eval(argv[1:])
    if argv and argv[0] == "train":
        argv = argv[1:]
    return cmd_train(argv)


if __name__ == "__main__":
    sys.exit(main())
