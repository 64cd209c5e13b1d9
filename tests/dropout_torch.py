#!/usr/bin/env python3
"""dptrain's dropout against PyTorch, given the same masks (needs torch and numpy).

  dropout_torch.py FILE      FILE written by tests/dropout_reference (see there)

1. x * mask.div_(1 - p) is what torch.nn.functional.dropout computes for the mask its
   generator drew, bit for bit (so the rest compares with nn.Dropout itself).
2. Each dropout layer of dptrain, given its own input and mask, gives that, bit for bit.
3. The whole net rebuilt in PyTorch from the canonical spec, with dptrain's weights,
   input and masks: logits and loss in float32, gradients of the summed loss against a
   float64 reference, per tensor |ours - ref| <= 1e-5 * max|ref| (a wrong or flipped
   component of more than 1e-5 of the largest fails).
4. The same comparison with the masks left out (dropout as identity) must fail: the
   comparison sees the masks.
Exit 0 when all hold, 1 otherwise.
"""
import json
import re
import sys

import numpy as np
import torch
import torch.nn.functional as F


def read(path):
    with open(path, "rb") as f:
        meta = json.loads(f.readline())
        blob = f.read()
    at = 0

    def take(dtype, count):
        nonlocal at
        a = np.frombuffer(blob, dtype=dtype, count=count, offset=at)
        at += a.nbytes
        return a

    B, C, H, W, K, size = (meta[k] for k in ("B", "C", "H", "W", "classes", "size"))
    d = {"x": take(np.float32, B * C * H * W).reshape(B, C, H, W),
         "y": take(np.uint8, B).astype(np.int64),
         "w": take(np.float32, size), "g": take(np.float32, size),
         "logits": take(np.float32, B * K).reshape(B, K), "drop": {}}
    for dl in meta["dropout"]:
        n = B * dl["size"]
        d["drop"][dl["layer"]] = (take(np.float32, n), take(np.uint8, n), take(np.float32, n))
    if at != len(blob):
        sys.exit(f"{path}: {len(blob) - at} bytes left over")
    return meta, d


def parse_spec(spec):
    """Canonical spec text -> [(kind, positional, named)]."""
    layers = []
    for kind, args in re.findall(r"(\w+)(?:\(([^)]*)\))?", spec):
        pos, named = [], {}
        for a in filter(None, (args or "").split(",")):
            if "=" in a:
                k, v = a.split("=")
                named[k] = float(v)
            else:
                pos.append(a)
        layers.append((kind, pos, named))
    return layers


def forward(layers, params, x, masks, dtype):
    """The net in torch; masks: {layer: uint8 mask} or None (dropout as identity)."""
    counts = {}
    for i, (kind, pos, named) in enumerate(layers):
        counts[kind] = counts.get(kind, 0) + 1
        name = f"{kind}{counts[kind]}"
        if kind == "conv":
            x = F.conv2d(x, params[name + ".weight"], params[name + ".bias"],
                         stride=int(named["stride"]), padding=int(named["pad"]))
        elif kind == "relu":
            x = F.relu(x)
        elif kind == "maxpool":
            x = F.max_pool2d(x, int(pos[0]), int(named["stride"]))
        elif kind == "fc":
            x = F.linear(x.flatten(1), params[name + ".weight"], params[name + ".bias"])
        elif kind == "dropout":
            if masks is not None:  # torch's _dropout_impl: input * noise.div_(1 - p)
                noise = torch.from_numpy(masks[i].copy()).to(dtype).reshape(x.shape)
                x = x * noise.div_(1 - named["p"])
        else:
            sys.exit(f"unknown layer kind {kind}")
    return x


def gradients(meta, d, dtype, masks):
    params = {}
    for p in meta["params"]:
        n = int(np.prod(p["dims"]))
        w = d["w"][p["offset"]:p["offset"] + n].reshape(p["dims"])
        params[p["name"]] = torch.tensor(w, dtype=dtype, requires_grad=True)
    x = torch.tensor(d["x"], dtype=dtype)
    logits = forward(parse_spec(meta["spec"]), params, x, masks, dtype)
    loss = F.cross_entropy(logits, torch.from_numpy(d["y"]), reduction="sum")
    loss.backward()
    return logits.detach(), loss.item(), {k: v.grad.numpy() for k, v in params.items()}


def worst_grad_error(meta, d, ref):
    worst = 0.0
    for p in meta["params"]:
        n = int(np.prod(p["dims"]))
        ours = d["g"][p["offset"]:p["offset"] + n].astype(np.float64)
        r = ref[p["name"]].reshape(-1).astype(np.float64)
        worst = max(worst, np.abs(ours - r).max() / np.abs(r).max())
    return worst


def main():
    meta, d = read(sys.argv[1])
    ok = True
    # 1. the masked product is nn.Dropout's, for the mask torch's generator draws
    for p in (0.25, 0.4, 0.5):
        x = torch.randn(4096)
        torch.manual_seed(17)
        want = F.dropout(x, p, training=True)
        torch.manual_seed(17)
        noise = torch.empty_like(x).bernoulli_(1 - p)
        if not torch.equal(want, x * noise.div_(1 - p)):
            print(f"FAIL: x * bernoulli(1-p).div_(1-p) is not F.dropout for p={p}")
            ok = False
    # 2. each dropout layer of dptrain, from its own input and mask, bit for bit
    masks = {}
    for dl in meta["dropout"]:
        x, mask, out = d["drop"][dl["layer"]]
        masks[dl["layer"]] = mask
        noise = torch.from_numpy(mask.copy()).float().div_(1 - dl["p"])
        same = np.array_equal((torch.from_numpy(x.copy()) * noise).numpy(), out)
        kept = mask.mean()
        print(f"dropout layer {dl['layer'] + 1} p={dl['p']}: kept {kept:.3f} of {mask.size}, "
              f"output {'bitwise equal to' if same else 'DIFFERS from'} torch's")
        ok &= same
    # 3. the whole net, float32 forward, float64 gradients
    logits, loss, _ = gradients(meta, d, torch.float32, masks)
    dz = np.abs(logits.numpy() - d["logits"]).max()
    dl = abs(loss - meta["loss"]) / abs(loss)
    print(f"logits max abs difference {dz:.3g}; loss {meta['loss']:.9g} vs torch {loss:.9g}")
    ok &= dz <= 1e-5 and dl <= 1e-6
    _, _, ref = gradients(meta, d, torch.float64, masks)
    worst = worst_grad_error(meta, d, ref)
    print(f"gradients: worst |ours - float64 torch| / max|torch| per tensor {worst:.3g} (<= 1e-5)")
    ok &= worst <= 1e-5
    # 4. without the masks the comparison must fail
    _, _, blind = gradients(meta, d, torch.float64, None)
    unmasked = worst_grad_error(meta, d, blind)
    print(f"without the masks: {unmasked:.3g} (must exceed 1e-2)")
    ok &= unmasked > 1e-2
    print("dropout matches PyTorch" if ok else "FAIL: dropout differs from PyTorch")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
