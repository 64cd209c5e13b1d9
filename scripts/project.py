#!/usr/bin/env python3
"""project.py: fit an alpha-beta model to measured allreduce times and project the step
time and parallel efficiency of data-parallel training to many nodes.

  scripts/project.py --bench allreduce.csv --compute reference=MS --compute nopool=MS
                     [--weak-sweep sweep.csv] [--cores N] -o OUTDIR

Model (Rabenseifner's allreduce, what MPI libraries use for large messages: a reduce-
scatter and an allgather by recursive halving and doubling), for P ranks and n bytes:
    t(P, n) = 2 log2(P) alpha + 2 (P-1)/P n beta
alpha (latency per message) and beta (seconds per byte) are fitted to the bench points
with P <= --cores (more ranks than cores measure time-sharing, not the network), least
squares on relative error. Projection: weak scaling, one rank per node, each node as the
measured one (compute time per step MS at batch 100 per node), gradients of 4 bytes per
parameter:
    overlap off: step = C + t(P, n)
    overlap on:  step = C/3 + max(2C/3, t(P, n))   (backward ~2/3 of a step; the
                 allreduce of a layer's gradients starts as soon as backward has them)
    efficiency = C / step
Nodes: one like this machine (the measured C), and a 64-core node (--node-cores) whose
compute time per step is C x cores here / 64 (assumes the threads scale perfectly: an
optimistic node, hence a pessimistic efficiency). Networks: the fit of this machine,
and two assumed cluster networks (stated in the output). The plots show the 64-core node. Writes OUTDIR/projection.csv, OUTDIR/projection.md, OUTDIR/allreduce_fit.png,
OUTDIR/projection_step.png, OUTDIR/projection_efficiency.png. Standard library only."""
import argparse
import csv
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import plot  # noqa: E402  (the gnuplot helpers)

PARAMS = {"reference": 225034, "nopool": 4738826}
NODES = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]
# Assumed, typical figures (per message latency, per byte time); not measured here.
ASSUMED = [("InfiniBand HDR 100 Gb/s (assumed: 2 us, 11 GB/s)", 2e-6, 1 / 11e9),
           ("10 GbE TCP (assumed: 30 us, 1.1 GB/s)", 30e-6, 1 / 1.1e9)]


def t_allreduce(p, n, alpha, beta):
    if p <= 1:
        return 0.0
    return 2 * math.log2(p) * alpha + 2 * (p - 1) / p * n * beta


def fit(points):
    """Least squares on relative error: minimise sum(((a x1 + b x2) - t) / t)^2."""
    s11 = s12 = s22 = r1 = r2 = 0.0
    for p, n, t in points:
        x1, x2 = 2 * math.log2(p) / t, 2 * (p - 1) / p * n / t
        s11 += x1 * x1; s12 += x1 * x2; s22 += x2 * x2; r1 += x1; r2 += x2
    det = s11 * s22 - s12 * s12
    if abs(det) < 1e-300:
        sys.exit("project: the bench points do not determine alpha and beta (need several sizes)")
    a = (r1 * s22 - r2 * s12) / det
    b = (s11 * r2 - s12 * r1) / det
    return max(a, 1e-9), max(b, 1e-13)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bench", required=True)
    ap.add_argument("--compute", action="append", required=True, help="MODEL=ms per step")
    ap.add_argument("--weak-sweep")
    ap.add_argument("--cores", type=int, default=os.cpu_count())
    ap.add_argument("--node-cores", type=int, default=64)
    ap.add_argument("-o", "--out", required=True)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    with open(a.bench) as f:
        bench = [(int(r["ranks"]), int(r["bytes"]), float(r["seconds_median"])) for r in csv.DictReader(f)]
    pts = [b for b in bench if 1 < b[0] <= a.cores]
    if not pts:
        sys.exit(f"project: {a.bench}: no points with 2..{a.cores} ranks")
    alpha, beta = fit(pts)
    compute = {}
    for c in a.compute:
        m, _, ms = c.partition("=")
        if m not in PARAMS:
            sys.exit(f"project: --compute {c}: model must be one of {', '.join(PARAMS)}")
        compute[m] = float(ms) / 1000
    networks = [(f"this machine (fit: {alpha * 1e6:.2f} us, {1 / beta / 1e9:.2f} GB/s)", alpha, beta)] + ASSUMED
    short = {networks[0][0]: "here", ASSUMED[0][0]: "IB-100G", ASSUMED[1][0]: "10GbE"}
    rows = []
    node_types = [(f"{a.cores}c", 1.0), (f"{a.node_cores}c", a.cores / a.node_cores)]
    for m, c_here in compute.items():
        n = 4 * PARAMS[m]
        for node, scale in node_types:
            c = c_here * scale
            for net, al, be in networks:
                for p in NODES:
                    t = t_allreduce(p, n, al, be)
                    for ov, step in (("off", c + t), ("on", c / 3 + max(2 * c / 3, t))):
                        rows.append({"model": m, "node": node, "network": short[net], "overlap": ov,
                                     "nodes": p, "compute_ms": round(c * 1e3, 4),
                                     "allreduce_ms": round(t * 1e3, 4), "step_ms": round(step * 1e3, 4),
                                     "efficiency": round(c / step, 4), "source": "model"})
    if a.weak_sweep:  # measured weak-scaling points of this machine, reference model
        with open(a.weak_sweep) as f:
            for r in csv.DictReader(f):
                if r["kind"] == "weak" and r["threads"] == "1" and r["efficiency"]:
                    rows.append({"model": "reference", "node": f"{a.node_cores}c", "network": "here",
                                 "overlap": "off", "nodes": int(r["ranks"]),
                                 "compute_ms": r["compute_ms"], "allreduce_ms": r["comm_ms"],
                                 "step_ms": r["step_ms"], "efficiency": r["efficiency"],
                                 "source": "measured"})
    fields = ["model", "node", "network", "overlap", "nodes", "compute_ms", "allreduce_ms", "step_ms", "efficiency", "source"]
    with open(os.path.join(a.out, "projection.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fields)
        w.writeheader()
        w.writerows(rows)
    # allreduce: measured against the model, one series per rank count
    data, plots, i = "", [], 0
    for p in sorted({b[0] for b in bench}):
        meas = sorted((n, t) for q, n, t in bench if q == p)
        data += plot.block(f"m{i}", meas)
        data += plot.block(f"f{i}", [(n, t_allreduce(p, n, alpha, beta)) for n, _ in meas])
        tag = "" if p <= a.cores else " (oversubscribed)"
        plots += [f"$m{i} using 1:2 with points pt 7 lc {i + 1} title '{p} ranks measured{tag}'",
                  f"$f{i} using 1:2 with lines lc {i + 1} dt 2 title '{p} ranks model'"]
        i += 1
    png = os.path.join(a.out, "allreduce_fit.png")
    plot.gnuplot(plot.TERM + f"set output '{png}'\n" + data +
                 "set logscale xy\nset format x '%.0s%cB'\nset xlabel 'message size (bytes)'\n"
                 "set ylabel 'seconds per allreduce'\nset grid\nset key left top\n"
                 f"set title 'MPI_Allreduce here; fit alpha {alpha * 1e6:.2f} us, beta 1/({1 / beta / 1e9:.2f} GB/s)'\n"
                 f"plot {', '.join(plots)}\n", png)
    plot.projection(os.path.join(a.out, "projection.csv"), a.out, node=f"{a.node_cores}c")
    # summary
    L = []
    L.append(f"Allreduce fitted on this machine ({a.cores} cores, shared memory, P <= {a.cores}): "
             f"alpha = {alpha * 1e6:.2f} us, beta = 1/({1 / beta / 1e9:.2f} GB/s). "
             "Compute per step measured here (1 rank x all cores, batch 100): " +
             ", ".join(f"{m} {c * 1e3:.1f} ms" for m, c in compute.items()) +
             ". Weak scaling, one rank per node, batch 100 per node (global batch 100 x nodes). "
             f"Node {a.cores}c: like this machine; node {a.node_cores}c: compute / {a.node_cores / a.cores:g}.\n")
    show = [16, 64, 256, 1024]
    L.append("| model | node | network | overlap | compute ms | " + " | ".join(f"{p} nodes: step ms / eff." for p in show) + " |")
    L.append("|---|---|---|---|---|" + "---|" * len(show))
    for m in compute:
        for node, _ in node_types:
            for net in ("here", "IB-100G", "10GbE"):
                for ov in ("off", "on"):
                    cells = []
                    for p in show:
                        r = next(r for r in rows if r["model"] == m and r["node"] == node and r["network"] == net
                                 and r["overlap"] == ov and r["nodes"] == p and r["source"] == "model")
                        cells.append(f"{r['step_ms']:.2f} / {100 * r['efficiency']:.0f}%")
                    L.append(f"| {m} | {node} | {net} | {ov} | {r['compute_ms']:.2f} | " + " | ".join(cells) + " |")
    L.append("")
    for m, c_here in compute.items():
        n = 4 * PARAMS[m]
        c = c_here * a.cores / a.node_cores
        for net, al, be in networks:
            bw = 2 * 1023 / 1024 * n * be
            lat = 2 * math.log2(1024) * al
            L.append(f"- {m}, {short[net]}: at 1024 nodes the allreduce takes {t_allreduce(1024, n, al, be) * 1e3:.2f} ms "
                     f"({bw * 1e3:.2f} ms bandwidth, {lat * 1e3:.3f} ms latency) against {c * 1e3:.1f} ms of compute"
                     + f" on a {a.node_cores}-core node"
                     + ("; overlap hides it" if t_allreduce(1024, n, al, be) <= 2 * c / 3 else "; more than the backward pass: overlap cannot hide it"))
    with open(os.path.join(a.out, "projection.md"), "w") as f:
        f.write("\n".join(L) + "\n")
    print("\n".join(L))


if __name__ == "__main__":
    main()
