#!/usr/bin/env python3
"""shaped_network.py: measured against predicted on the shaped two-node network
(scripts/shaped_network.sh writes the measurements; read that script first).

  scripts/shaped_network.py OUTDIR [--local allreduce.csv]

The link: alpha (seconds per message) fitted to the unshaped veth runs on 2 ranks (one
per node: every message crosses the link; binomial, scripts/netmodel.py); beta = one byte
of TCP payload at the shaped rate (the token bucket counts 1514 bytes per 1448 of payload)
or the unshaped veth's own fitted beta, whichever is slower. Inside a node: shared memory,
alpha and beta fitted to --local (default results/projection/allreduce.csv, the
--as-dptrain bench on one machine; without it the veth fit, which overstates them).
Allreduce: predicted = netmodel.allreduce_time(binomial, P, bytes, link, local, P/2 ranks
per node) against the bench's median. Training: predicted step = the run's own compute per
step (dptrain's compute_seconds / steps: the compute here is not what is being checked)
+ the part of the predicted reduction that overlap does not hide (netmodel.step_time);
against the run's median step time from its step records (the first step excluded).
Writes OUTDIR/shaped.csv, shaped.md, predicted_vs_measured.png. Standard library only."""
import argparse
import csv
import glob
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import netmodel  # noqa: E402
import plot  # noqa: E402
import runs  # noqa: E402

PAYLOAD = 1448 / 1514
OP = "iallreduce_inplace_int64"


def bench(path):
    with open(path) as f:
        return [(int(r["ranks"]), int(r["bytes"]), float(r["seconds_median"]))
                for r in csv.DictReader(f) if r.get("op") == OP]


def rate_bps(rate):
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([gm])bit", rate)
    return float(m.group(1)) * (1e9 if m.group(2) == "g" else 1e6) if m else None


def fits(out, local_csv):
    veth = [p for p in bench(os.path.join(out, "allreduce-veth-p2.csv")) if p[0] == 2] \
        if os.path.exists(os.path.join(out, "allreduce-veth-p2.csv")) else []
    if not veth:
        sys.exit("shaped_network: no unshaped 2-rank run (allreduce-veth-p2.csv): RATES must include veth")
    a_link, b_veth = netmodel.fit_alpha_beta(veth)
    pts = [p for p in bench(local_csv) if p[0] == 2] if local_csv and os.path.exists(local_csv) else []
    if pts:
        a_loc, b_loc = netmodel.fit_alpha_beta(pts)
        where = f"shared memory, fitted to {local_csv}"
    else:
        a_loc, b_loc, where = a_link, b_veth, "none given: the veth fit (overstates them)"
    return {"alpha": a_link, "beta_veth": b_veth}, {"alpha": a_loc, "beta": b_loc}, where


def link_for(rate, link):
    bps = rate_bps(rate)
    beta = link["beta_veth"] if bps is None else max(link["beta_veth"], 8 / (bps * PAYLOAD))
    return {"alpha": link["alpha"], "beta": beta}


def train_row(path):
    """(median step ms without the first step, compute ms per step, comm ms per step)."""
    r = runs.read(path)
    ep, steps = r["epochs"][-1], [s for s in r["steps"] if s["step"] > 1]
    n = ep["step"]
    med = sorted(s["step_ms"] for s in steps)[len(steps) // 2] if steps else 1e3 * ep["seconds"] / n
    return med, 1e3 * ep["compute_seconds"] / n, 1e3 * ep["comm_seconds"] / n


def compare(out, link, local):
    rows = []
    for f in sorted(glob.glob(os.path.join(out, "allreduce-*-p*.csv"))):
        rate, p = re.fullmatch(r"allreduce-(.+)-p(\d+)\.csv", os.path.basename(f)).groups()
        p = int(p)
        net = link_for(rate, link)
        for q, n, t in bench(f):
            pred = netmodel.allreduce_time("binomial", q, n, net, local, ranks_per_node=q // 2)
            rows.append({"what": "allreduce", "rate": rate, "ranks": q, "bytes": n,
                         "measured_ms": round(t * 1e3, 4), "predicted_ms": round(pred * 1e3, 4),
                         "ratio": round(t / pred, 3), "compute_ms": ""})
        tj = os.path.join(out, f"train-{rate}-p{p}.jsonl")
        if os.path.exists(tj):
            med, comp, _ = train_row(tj)
            comm, last = netmodel.gradient_time("reference", "binomial", p, net, local, p // 2)
            pred = netmodel.step_time(comp / 1e3, 2 / 3, comm, last, True) * 1e3
            rows.append({"what": "train step", "rate": rate, "ranks": p, "bytes": sum(netmodel.buckets("reference")),
                         "measured_ms": round(med, 3), "predicted_ms": round(pred, 3),
                         "ratio": round(med / pred, 3), "compute_ms": round(comp, 3)})
    return rows


def write(out, rows, link, local, where, host):
    with open(os.path.join(out, "shaped.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, list(rows[0].keys()))
        w.writeheader()
        w.writerows(rows)
    L = [f"Measured on: {host}.\n",
         f"Link alpha {link['alpha'] * 1e6:.1f} us per message (fitted to the unshaped veth on 2 ranks), "
         f"unshaped veth {8 / link['beta_veth'] / 1e9:.2f} Gb/s; inside a node alpha {local['alpha'] * 1e6:.2f} us, "
         f"{1 / local['beta'] / 1e9:.2f} GB/s ({where}). Ranks split evenly over the two nodes; dptrain's "
         "reduction (binomial, in place, int64). Training: reference model, 64 images per rank, overlap on; "
         "predicted step = the run's own compute per step + the reduction the model says overlap leaves.\n",
         "| what | link | ranks | bytes | measured ms | predicted ms | measured / predicted | within 20% |",
         "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ok = "yes" if 0.8 <= r["ratio"] <= 1.2 else "**no**"
        L.append(f"| {r['what']} | {r['rate']} | {r['ranks']} | {r['bytes']:,} | {r['measured_ms']:g} | "
                 f"{r['predicted_ms']:g} | {r['ratio']:.2f} | {ok} |")
    text = "\n".join(L) + "\n"
    with open(os.path.join(out, "shaped.md"), "w") as f:
        f.write(text)
    print(text)


def plot_it(out, rows, host):
    colors = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e"]
    data, lines = "", []
    rates = sorted({r["rate"] for r in rows}, key=lambda x: rate_bps(x) or 1e99)
    for i, rate in enumerate(rates[:4]):
        for kind, pt in (("allreduce", 7), ("train step", 5)):
            pts = [(r["predicted_ms"], r["measured_ms"]) for r in rows if r["rate"] == rate and r["what"] == kind]
            if pts and len(lines) < 5:
                data += plot.block(f"d{len(lines)}", pts)
                lines.append(f"$d{len(lines)} using 1:2 with points pt {pt} ps 1.3 lc rgb '{colors[i]}' "
                             f"title '{rate}: {kind}'")
    lines.append("x with lines lc 'gray' dt 2 title 'measured = predicted'")
    png = os.path.join(out, "predicted_vs_measured.png")
    plot.gnuplot(plot.TERM + f"set output '{png}'\n" + data +
                 "set logscale xy\nset grid\nset key left top font ',9'\nset size square\n"
                 "set xlabel 'predicted (ms)'\nset ylabel 'measured (ms)'\n"
                 f"set title 'Shaped two-node network: dptrain reduction and step ({host.split(',')[0]})'\n"
                 f"plot {', '.join(lines)}\n", png)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--local", default=os.path.join(here, "results/projection/allreduce.csv"))
    ap.add_argument("--no-plot", action="store_true")
    a = ap.parse_args()
    link, local, where = fits(a.out, a.local)
    rows = compare(a.out, link, local)
    h = open(os.path.join(a.out, "host.txt")).read().split("\n")
    cpu, cores, load0, when = h[0].split("|")
    host = f"{cpu}, {cores} cores, 1-minute load {load0} at the start" + \
        (f" and {h[1]} at the end" if len(h) > 1 and h[1] else "") + f" ({when})"
    write(a.out, rows, link, local, where, host)
    if not a.no_plot:
        plot_it(a.out, rows, host)


if __name__ == "__main__":
    main()
