#!/usr/bin/env python3
"""dptrain's optimizers step by step against references (needs numpy, h5py, torch).

  optim_reference.py OPTIM_STEPS WORKDIR

For each case, the same start and the same gradients go to dptrain's optimizer (through
tests/optim_steps, the optimizer interface itself) and to a reference, and after every
step the weights and every state tensor must agree:
  sgd    torch.optim.SGD                      |ours - ref| <= 1e-6 |ref| + 1e-6 max|ref|
  adamw  torch.optim.AdamW (amsgrad, maximize off), weights, exp_avg, exp_avg_sq to the
         same bound, and the step count exactly
  lars   the formulas of docs/optimizers.md in float64 NumPy, 4e-6 |ref| + 4e-7 max|ref|
  lamb   likewise
The tensors include a bias (1-D), a tensor of three norm blocks, an all-zero weight
tensor (trust ratio 1), a tensor whose gradient is always zero, and a frozen tensor
(trainable 0: weights, state and step count must stay as they were). The learning
rate changes from step to step. Every case also runs with 1 and 3 threads, which must
give the same bits. Each reference is paired with a near variant that must NOT pass
(coupled weight decay for AdamW; for LARS the trust ratio over ||g + wd w|| and the
paper's lr inside the momentum; for LAMB no bias correction; the other bias setting),
so the comparisons can fail.
"""
import os
import subprocess
import sys

import h5py
import numpy as np
import torch

TENSORS = [  # name, shape, trainable, gradient
    ("conv.weight", (4, 3, 3, 3), 1, "random"),
    ("conv.bias", (4,), 1, "random"),
    ("fc.weight", (10, 1000), 1, "random"),  # three blocks of the blocked norm
    ("fc.bias", (10,), 1, "random"),
    ("zero.weight", (5, 6), 1, "random"),    # starts at 0: ||w|| = 0 at step 1
    ("still.weight", (7, 3), 1, "zero"),      # ||g|| = 0 at every step
    ("frozen.weight", (3, 4), 0, "random"),   # trainable 0
]
STATES = {"sgd": ["momentum_buffer"], "lars": ["momentum_buffer"],
          "lamb": ["exp_avg", "exp_avg_sq"], "adamw": ["exp_avg", "exp_avg_sq"]}
COUNTERS = {"lamb": ["step"], "adamw": ["step"]}


def make_start(seed):
    rng = np.random.default_rng(seed)
    w, grads = {}, []
    for name, shape, _, _ in TENSORS:
        w[name] = np.zeros(shape, np.float32) if name.startswith("zero") else \
            (rng.standard_normal(shape) * 0.2).astype(np.float32)
    for _ in range(6):
        step = {}
        for name, shape, _, kind in TENSORS:
            g = rng.standard_normal(shape) * 0.05 if kind == "random" else np.zeros(shape)
            step[name] = g.astype(np.float32)
        grads.append(step)
    return w, grads


def write_case(path, kind, hp, w, grads, lrs):
    with h5py.File(path, "w") as f:
        f.attrs["kind"] = kind
        f.attrs["names"] = "\n".join(t[0] for t in TENSORS)
        for k in ["momentum", "weight_decay", "beta1", "beta2", "eps", "trust_coefficient"]:
            f.attrs[k] = np.float64(hp.get(k, 0.0))
        for k in ["nesterov", "exclude_bias"]:
            f.attrs[k] = np.int64(hp.get(k, 0))
        f["count"] = np.array([int(np.prod(t[1])) for t in TENSORS], np.int64)
        f["ndims"] = np.array([len(t[1]) for t in TENSORS], np.int64)
        f["trainable"] = np.array([t[2] for t in TENSORS], np.int64)
        f["weights"] = np.concatenate([w[t[0]].ravel() for t in TENSORS])
        f["grads"] = np.concatenate([g[t[0]].ravel() for g in grads for t in TENSORS])
        f["lr"] = np.array(lrs, np.float64)


def run_ours(tool, case, out, threads):
    subprocess.run([tool, case, out, str(threads)], check=True)
    steps = []
    with h5py.File(out, "r") as f:
        for s in range(1, len(f) + 1):
            g = f[str(s)]
            flat, res, at = g["weights"][()], {}, 0
            for name, shape, _, _ in TENSORS:
                n = int(np.prod(shape))
                res[name] = flat[at:at + n].reshape(shape)
                at += n
            for k in g:
                if k != "weights":
                    res[k] = g[k][()]
            steps.append(res)
    return steps


def same_bits(a, b):
    return len(a) == len(b) and all(
        sorted(x) == sorted(y) and all(np.array_equal(x[k].view(np.uint8), y[k].view(np.uint8))
                                       for k in x) for x, y in zip(a, b))


# ---- references: per step a dict name -> weights, and "<name>.<state>" -> state ----

def torch_run(kind, hp, w0, grads, lrs, coupled=False):
    params = {n: torch.nn.Parameter(torch.from_numpy(w0[n].copy())) for n, *_ in TENSORS}
    trained = [params[n] for n, _, t, _ in TENSORS if t]
    if kind == "sgd":
        opt = torch.optim.SGD(trained, lr=lrs[0], momentum=hp["momentum"],
                              weight_decay=hp["weight_decay"], nesterov=bool(hp["nesterov"]))
    elif coupled:  # Adam with L2 weight decay: the near variant that must not pass
        opt = torch.optim.Adam(trained, lr=lrs[0], betas=(hp["beta1"], hp["beta2"]),
                               eps=hp["eps"], weight_decay=hp["weight_decay"])
    else:
        opt = torch.optim.AdamW(trained, lr=lrs[0], betas=(hp["beta1"], hp["beta2"]),
                                eps=hp["eps"], weight_decay=hp["weight_decay"])
    out = []
    for g, lr in zip(grads, lrs):
        for group in opt.param_groups:
            group["lr"] = lr
        for n, _, t, _ in TENSORS:
            params[n].grad = torch.from_numpy(g[n].copy()) if t else None
        opt.step()
        res = {n: params[n].detach().numpy().copy() for n, *_ in TENSORS}
        for n, _, t, _ in TENSORS:
            st = opt.state[params[n]] if t else {}
            for s in STATES[kind]:
                res[f"{n}.{s}"] = st[s].numpy().ravel().copy() if s in st else \
                    np.zeros(w0[n].size, np.float32)
            for s in COUNTERS.get(kind, []):
                res[f"{n}.{s}"] = np.array([int(st[s].item()) if s in st else 0])
        out.append(res)
    return out


def excluded(hp, shape):
    return hp.get("exclude_bias", 0) and len(shape) == 1


def norm(x):
    return float(np.sqrt(np.sum(x * x)))


def lars_run(hp, w0, grads, lrs, variant=None):
    """variant 'gwd': trust ratio eta ||w|| / ||g + wd w||; 'paper': lr inside momentum."""
    w = {n: w0[n].astype(np.float64) for n in w0}
    buf = {n: np.zeros(w0[n].shape) for n in w0}
    mu, wd, eta = hp["momentum"], hp["weight_decay"], hp["trust_coefficient"]
    out = []
    for g32, lr in zip(grads, lrs):
        for n, shape, t, _ in TENSORS:
            if not t:
                continue
            g = g32[n].astype(np.float64)
            if excluded(hp, shape):
                d = g
            else:
                wn, gn = norm(w[n]), norm(g)
                denom = norm(g + wd * w[n]) if variant == "gwd" else gn + wd * wn
                trust = eta * wn / denom if wn > 0 and gn > 0 else 1.0
                d = trust * (g + wd * w[n])
            if variant == "paper":
                buf[n] = mu * buf[n] + lr * d
                w[n] = w[n] - buf[n]
                continue
            buf[n] = mu * buf[n] + d
            w[n] = w[n] - lr * (d + mu * buf[n] if hp["nesterov"] else buf[n])
        res = {n: w[n].copy() for n in w}
        res.update({f"{n}.momentum_buffer": buf[n].ravel().copy() for n in w})
        out.append(res)
    return out


def lamb_run(hp, w0, grads, lrs, variant=None):
    """variant 'nobc': no bias correction of the moments."""
    w = {n: w0[n].astype(np.float64) for n in w0}
    m = {n: np.zeros(w0[n].shape) for n in w0}
    v = {n: np.zeros(w0[n].shape) for n in w0}
    steps = {n: 0 for n in w0}
    b1, b2, eps, wd = hp["beta1"], hp["beta2"], hp["eps"], hp["weight_decay"]
    out = []
    for g32, lr in zip(grads, lrs):
        for n, shape, t, _ in TENSORS:
            if not t:
                continue
            g = g32[n].astype(np.float64)
            steps[n] += 1
            k = steps[n]
            m[n] = b1 * m[n] + (1 - b1) * g
            v[n] = b2 * v[n] + (1 - b2) * g * g
            mh, vh = (m[n], v[n]) if variant == "nobc" else \
                (m[n] / (1 - b1 ** k), v[n] / (1 - b2 ** k))
            skip = excluded(hp, shape)
            r = mh / (np.sqrt(vh) + eps) + (0.0 if skip else wd) * w[n]
            wn, rn = norm(w[n]), norm(r)
            ratio = 1.0 if skip or wn == 0 or rn == 0 else wn / rn
            w[n] = w[n] - lr * ratio * r
        res = {n: w[n].copy() for n in w}
        res.update({f"{n}.exp_avg": m[n].ravel().copy() for n in w})
        res.update({f"{n}.exp_avg_sq": v[n].ravel().copy() for n in w})
        res.update({f"{n}.step": np.array([steps[n]]) for n in w})
        out.append(res)
    return out


def worst(ours, ref, rtol, atol):
    """The largest violation ratio over all steps and tensors (<= 1 passes), and where."""
    most, where = 0.0, ""
    for s, (a, b) in enumerate(zip(ours, ref)):
        if sorted(a) != sorted(b):
            return float("inf"), f"step {s + 1}: names differ: {sorted(set(a) ^ set(b))}"
        for k in a:
            x, y = a[k].astype(np.float64), b[k].astype(np.float64)
            if x.shape != y.shape:
                return float("inf"), f"step {s + 1} {k}: shape {x.shape} vs {y.shape}"
            if a[k].dtype.kind == "i":
                bad = 0.0 if np.array_equal(x, y) else float("inf")
            else:
                bound = rtol * np.abs(y) + atol * max(float(np.abs(y).max()), 1e-30)
                bad = float(np.max(np.abs(x - y) / bound))
            if not bad <= most:
                most, where = bad, f"step {s + 1} {k}"
    return most, where


def bits_equal(ours, ref):
    same = total = 0
    for a, b in zip(ours, ref):
        for k in a:
            if a[k].dtype == np.float32:
                same += int(np.sum(a[k] == b[k].astype(np.float32)))
                total += a[k].size
    return same, total


def check_frozen(name, ours, w0):
    for s, res in enumerate(ours):
        if not np.array_equal(res["frozen.weight"].view(np.uint8), w0["frozen.weight"].view(np.uint8)):
            sys.exit(f"FAIL {name}: the frozen tensor's weights changed at step {s + 1}")
        for k in res:
            if k.startswith("frozen.weight.") and np.any(res[k] != 0):
                sys.exit(f"FAIL {name}: the frozen tensor's {k} changed at step {s + 1}")


WEIGHTS = {t[0] for t in TENSORS}
ADAM = {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.01}
LAMB = {"beta1": 0.9, "beta2": 0.999, "eps": 1e-6, "weight_decay": 0.01, "exclude_bias": 1}
LARS = {"momentum": 0.9, "weight_decay": 5e-4, "trust_coefficient": 1e-3, "exclude_bias": 1}
RAMP = [1.0, 2.0, 3.0, 3.0, 2.0, 1.0]  # times a base lr: a warm-up and a decay


def flip_bias(run):
    return lambda hp, *a: run({**hp, "exclude_bias": 1 - hp["exclude_bias"]}, *a)


def torch_ref(kind, coupled=False):
    return lambda hp, *a: torch_run(kind, hp, *a, coupled=coupled)


# name, kind, hyperparameters, base lr, reference, near variants that must fail
CASES = [
    ("sgd", "sgd", {"momentum": 0.9, "weight_decay": 1e-3, "nesterov": 0}, 0.05,
     torch_ref("sgd"), []),
    ("sgd-nesterov", "sgd", {"momentum": 0.8, "weight_decay": 0.0, "nesterov": 1}, 0.05,
     torch_ref("sgd"), []),
    ("adamw", "adamw", ADAM, 1e-3, torch_ref("adamw"),
     [("Adam with L2 (coupled) weight decay", torch_ref("adamw", coupled=True))]),
    ("adamw-other", "adamw", {"beta1": 0.8, "beta2": 0.95, "eps": 1e-6, "weight_decay": 0.1},
     0.01, torch_ref("adamw"), []),
    ("lars", "lars", {**LARS, "nesterov": 0}, 1.0, lars_run,
     [("trust ratio eta ||w|| / ||g + wd w||", lambda *a: lars_run(*a, variant="gwd")),
      ("lr inside the momentum (the paper's form)", lambda *a: lars_run(*a, variant="paper")),
      ("biases adapted and decayed", flip_bias(lars_run))]),
    ("lars-nesterov-biases", "lars", {"momentum": 0.8, "weight_decay": 1e-3,
                                      "trust_coefficient": 0.02, "nesterov": 1,
                                      "exclude_bias": 0}, 0.5, lars_run,
     [("biases excluded", flip_bias(lars_run))]),
    ("lamb", "lamb", LAMB, 0.01, lamb_run,
     [("no bias correction", lambda *a: lamb_run(*a, variant="nobc")),
      ("biases adapted and decayed", flip_bias(lamb_run))]),
    ("lamb-biases-no-decay", "lamb", {**LAMB, "weight_decay": 0.0, "exclude_bias": 0}, 0.02,
     lamb_run, [("biases excluded", flip_bias(lamb_run))]),
]
# torch's own roundings are followed (adamw.c), so the bound is float32 resolution; the
# NumPy references are float64, so the bound leaves room for float32 arithmetic
TOLERANCE = {"sgd": (1e-6, 1e-6), "adamw": (1e-6, 1e-6), "lars": (4e-6, 4e-7),
             "lamb": (4e-6, 4e-7)}


def check_case(tool, work, w0, grads, case):
    name, kind, hp, base, ref, variants = case
    lrs = [base * r for r in RAMP]
    path = os.path.join(work, f"{name}.h5")
    write_case(path, kind, hp, w0, grads, lrs)
    ours = run_ours(tool, path, os.path.join(work, f"{name}-t1.h5"), 1)
    if not same_bits(ours, run_ours(tool, path, os.path.join(work, f"{name}-t3.h5"), 3)):
        print(f"FAIL {name}: 1 and 3 threads give different bits")
        return 1
    check_frozen(name, ours, w0)
    rtol, atol = TOLERANCE[kind]
    expected = ref(hp, w0, grads, lrs)
    bad, where = worst(ours, expected, rtol, atol)
    same, total = bits_equal(ours, expected)
    ok = bad <= 1
    print(f"{'ok' if ok else 'FAIL'} {name}: largest difference {bad:.3g} x the bound "
          f"(|d| <= {rtol:g} |ref| + {atol:g} max|ref|) at {where}; {same}/{total} floats "
          f"bitwise equal; 1 and 3 threads bitwise equal")
    failed = 0 if ok else 1
    for label, variant in variants:
        other = variant(hp, w0, grads, lrs)
        vbad, vwhere = worst([{k: s[k] for k in WEIGHTS} for s in ours],
                             [{k: s[k] for k in WEIGHTS} for s in other], rtol, atol)
        vok = vbad > 1
        print(f"  {'ok' if vok else 'FAIL'} near variant '{label}' is told apart: weights "
              f"differ by {vbad:.3g} x the bound (at {vwhere})")
        failed += 0 if vok else 1
    return failed


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: optim_reference.py OPTIM_STEPS WORKDIR")
    torch.set_num_threads(1)
    w0, grads = make_start(7)
    failed = sum(check_case(sys.argv[1], sys.argv[2], w0, grads, c) for c in CASES)
    print(f"{len(CASES) - min(failed, len(CASES))} of {len(CASES)} cases passed" if not failed
          else f"FAIL: {failed} check(s) failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
