#!/usr/bin/env python3
"""project.py: from measured pieces to the step time and the TIME TO 99% ACCURACY of
data-parallel training on 1 to 1,024 nodes.

  scripts/project.py --bench allreduce.csv [--reduce-local reduce.csv]
                     --compute reference=B1:MS1,B2:MS2 --compute nopool=...
                     [--epochs-from DIR|FILE]... [--epochs-to [MODEL:]BATCH=EPOCHS|none]...
                     [--target 0.99] [--batch-per-node 100,16] [--dataset 60000]
                     [--cores N] [--node-cores N] [--bucket-kb 256]
                     [--measured-on TEXT] -o OUTDIR

Communication: scripts/netmodel.py, message by message, for what dptrain does (int64
sums, one in-place MPI_Iallreduce per bucket: Open MPI's binomial tree) and for
Rabenseifner's algorithm (what OMPI_MCA_coll_libnbc_iallreduce_algorithm=3 gives).
Networks: "shm" = this machine's shared memory, alpha and beta fitted to the
--as-dptrain allreduce bench on 2..cores ranks (more ranks than cores measure time
sharing), the additions' gamma from the --reduce-local bench; "1Gb/s", "10Gb/s" and
"100Gb/s": assumed figures, said in projection.md with where they come from (the
shaped-network check, scripts/shaped_network.sh, measures the 1 and 10 Gb/s bandwidth
part on shaped links). One rank per node.

Compute: the seconds of a step's forward, backward and update on a node at batch b,
c(b) = c0 + c1 b, from the compute time measured here at two batches (MODEL=B1:MS1,B2:MS2;
MODEL=MS alone is batch 100 and c0 = 0), for a node like this machine (--cores); with
--node-cores, a node with that many cores taken as c(b) x cores / node-cores (perfect
threading: optimistic, so communication weighs more). Backward is 2/3 of it
(netmodel.step_time).

Time to accuracy, weak scaling: N nodes with a fixed batch per node b have a global batch
G = N b. Epochs to the target at G come from the runs (--epochs-from: metrics JSONL
files, a directory of them or its runs/ subdirectory, e.g. results/large-batch or
results/large-batch/search: per global batch the fewest epochs of any run of that model;
a batch whose runs all missed the target is "not reached") and from --epochs-to. Between
two measured batches that both reached the target the epochs are interpolated linearly in
log2(G); between a reached and a missed one the target counts as not reached; below the
smallest and above the largest measured batch the time is "not measured" (never
extrapolated). A model without runs of its own takes the reference model's epochs, and the
table says so. Time = epochs x ceil(dataset / G) steps x step time (training steps only:
no evaluation, no start-up). "Stops helping": the node count with the shortest time; when
that is the largest node count measured, adding nodes had not stopped helping within the
measured batches, and the table says "≥ N".

Writes OUTDIR/projection.csv, projection.md, allreduce_fit.png and, per model and batch
per node, time_to_accuracy_MODEL_bB.png (at most 6 lines). Standard library only."""
import argparse
import csv
import glob
import json
import math
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import netmodel  # noqa: E402
import plot  # noqa: E402  (the gnuplot helpers)
import runs  # noqa: E402

NODES = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]
BACKWARD_SHARE = 2 / 3
TCP_PAYLOAD = 1448 / 1538  # TCP payload of a 1500-byte frame / its bytes on the wire
# Assumed networks (alpha: seconds per message, beta: seconds per byte), not measured here.
ASSUMED = [
    ("1Gb/s", 50e-6, 1 / (0.125e9 * TCP_PAYLOAD),
     "1 Gb/s Ethernet, MPI over kernel TCP: 117.7 MB/s = the line rate x 1448/1538 (TCP payload "
     "of a 1500-byte frame against its bytes on the wire with Ethernet header, FCS, preamble and "
     "gap); 50 us per message, a typical MPI-over-TCP small-message latency on 1 GbE (assumed)"),
    ("10Gb/s", 30e-6, 1 / (1.25e9 * TCP_PAYLOAD),
     "10 Gb/s Ethernet, MPI over kernel TCP: 1.177 GB/s (the same framing); 30 us per message "
     "(assumed)"),
    ("100Gb/s", 2e-6, 1 / 11e9,
     "100 Gb/s with RDMA (InfiniBand HDR100 or RoCE): 11 GB/s of the 12.5 GB/s data rate and 2 us "
     "per message, typical OSU micro-benchmark figures (assumed, not measured here)"),
]
NOT_MEASURED, NOT_REACHED = "not measured", "not reached"


def read_bench(path, op):
    with open(path) as f:
        return [(int(r["ranks"]), int(r["bytes"]), float(r["seconds_median"]))
                for r in csv.DictReader(f) if r.get("op", "allreduce_float") == op]


def fit_gamma(path):
    """Seconds per byte of int64 additions: least squares through 0 on the local bench."""
    pts = [(n, t) for _, n, t in read_bench(path, "reduce_local_int64")] if path else []
    if not pts:
        return 0.0
    return sum(n * t for n, t in pts) / sum(n * n for n, _ in pts)


def parse_compute(specs):
    """{model: (c0, c1)} seconds, from MODEL=B1:MS1,B2:MS2 or MODEL=MS (batch 100)."""
    out = {}
    for spec in specs:
        m, _, rest = spec.partition("=")
        if m not in netmodel.LAYERS:
            sys.exit(f"project: --compute {spec}: model must be one of {', '.join(netmodel.LAYERS)}")
        pts = []
        for part in rest.split(","):
            b, sep, ms = part.partition(":")
            pts.append((float(b), float(ms) / 1e3) if sep else (100.0, float(b) / 1e3))
        if len(pts) == 1:
            out[m] = (0.0, pts[0][1] / pts[0][0])
        else:
            (b1, t1), (b2, t2) = pts[0], pts[-1]
            c1 = (t2 - t1) / (b2 - b1)
            out[m] = (max(0.0, t1 - c1 * b1), c1)
    return out


def metrics_files(path):
    if os.path.isfile(path):
        return [path]
    sub = os.path.join(path, "runs")
    base = sub if os.path.isdir(sub) else path
    return sorted(glob.glob(os.path.join(base, "*.jsonl")))


def run_model(path, recs):
    """The model a run trained: its records' "model", or --model in the .args file beside
    it (scripts/large_batch.sh writes one), else dptrain's default, reference."""
    for r in recs:
        if r.get("model"):
            return r["model"]
    args = os.path.splitext(path)[0] + ".args"
    if os.path.isfile(args):
        m = re.search(r"--model[ =](\S+)", open(args).read())
        if m:
            return m.group(1)
    return "reference"


def run_batch(path, recs):
    m = re.search(r"b(\d+)", os.path.basename(path))
    return int(recs[-1].get("global_batch") or (m.group(1) if m else 0))


def read_runs(sources, target):
    """[(model, global batch, epochs to target or None, file name)] of every readable run."""
    out = []
    for src in sources:
        files = metrics_files(src)
        if not files:
            print(f"project: --epochs-from {src}: no metrics files", file=sys.stderr)
        for f in files:
            try:
                recs = [r for r in runs.read(f)["epochs"] if r.get("test_accuracy") is not None]
            except (runs.MetricsError, KeyError, OSError, json.JSONDecodeError) as e:
                print(f"project: {f}: skipped ({e})", file=sys.stderr)
                continue
            if not recs:
                print(f"project: {f}: skipped (no epoch with a test accuracy)", file=sys.stderr)
                continue
            hit = runs.time_to_accuracy(recs, target)
            out.append((run_model(f, recs), run_batch(f, recs), float(hit[0]) if hit else None,
                        os.path.basename(f)))
    return out


def epochs_table(found, explicit, model):
    """({global batch: (epochs or None, where from)}, whose runs): the fewest epochs of any
    run of the model at that batch (None: measured, not reached). A model without runs of
    its own takes the reference model's (whose: "reference")."""
    whose = model if any(m == model for m, _, _, _ in found) or \
        any(s.startswith(model + ":") for s in explicit) else "reference"
    table = {}

    def offer(batch, epochs, where):
        old = table.get(batch)
        if old is None or (epochs is not None and (old[0] is None or epochs < old[0])):
            table[batch] = (epochs, where)
    for m, b, e, name in found:
        if m == whose:
            offer(b, e, name)
    for spec in explicit:
        m, sep, rest = spec.partition(":")
        if not sep:
            m, rest = "reference", spec
        if m != whose:
            continue
        b, _, e = rest.partition("=")
        offer(int(b), None if e.strip().lower() in ("none", "") else float(e), "--epochs-to")
    return table, whose


def epochs_at(table, g):
    """(epochs or None, status) at global batch g: status "measured" (a run at g),
    "interpolated" (between two batches that reached the target), NOT_REACHED, or
    NOT_MEASURED (outside the measured batches)."""
    pts = sorted(table.items())
    if not pts or g < pts[0][0] or g > pts[-1][0]:
        return None, NOT_MEASURED
    for b, (e, _) in pts:
        if b == g:
            return e, "measured" if e is not None else NOT_REACHED
    for (b1, (e1, _)), (b2, (e2, _)) in zip(pts, pts[1:]):
        if b1 < g < b2:
            if e1 is None or e2 is None:
                return None, NOT_REACHED
            w = (math.log2(g) - math.log2(b1)) / (math.log2(b2) - math.log2(b1))
            return e1 + (e2 - e1) * w, "interpolated"
    raise AssertionError("unreachable")


def networks(bench, gamma, cores):
    pts = [b for b in bench if 1 < b[0] <= cores]
    if not pts:
        sys.exit(f"project: the bench has no --as-dptrain points with 2..{cores} ranks")
    alpha, beta = netmodel.fit_alpha_beta(pts, "binomial", gamma)
    nets = [("shm", alpha, beta,
             f"this machine's shared memory, fitted to the --as-dptrain bench on 2..{cores} ranks "
             f"(binomial): {alpha * 1e6:.2f} us, {1 / beta / 1e9:.2f} GB/s")]
    nets += ASSUMED
    return [(n, {"alpha": a, "beta": b, "gamma": gamma}, why) for n, a, b, why in nets]


def node_grid(b, table):
    """Powers of 2 to 1,024, and the fewest and most nodes whose global batch is measured."""
    grid = set(NODES)
    if table:
        lo, hi = min(table), max(table)
        grid |= {n for n in (math.ceil(lo / b), hi // b) if 1 <= n <= NODES[-1]}
    return sorted(grid)


def one_row(a, m, b, c, net, par, alg, ov, n, table):
    compute = (c[0] + c[1] * b) * a.scale
    comm, last = netmodel.gradient_time(m, alg, n, par, bucket_kb=a.bucket_kb)
    step = netmodel.step_time(compute, BACKWARD_SHARE, comm, last, ov == "on")
    g = n * b
    e, status = epochs_at(table, g)
    row = {"model": m, "batch_per_node": b, "network": net, "algorithm": alg, "overlap": ov,
           "nodes": n, "global_batch": g, "compute_ms": round(compute * 1e3, 4),
           "allreduce_ms": round(comm * 1e3, 4), "step_ms": round(step * 1e3, 4),
           "efficiency": round(compute / step, 4), "epochs_status": status,
           "epochs": "", "steps": "", "time_to_target_s": ""}
    if e is not None:
        steps = e * math.ceil(a.dataset / g)
        row.update(epochs=round(e, 3), steps=round(steps, 1), time_to_target_s=round(steps * step, 4))
    return row


def project_rows(a, compute, nets, tables):
    rows = []
    for m, c in compute.items():
        for b in a.batches:
            for net, par, _ in nets:
                for alg in ("binomial", "rabenseifner"):
                    for ov in ("off", "on"):
                        rows += [one_row(a, m, b, c, net, par, alg, ov, n, tables[m][0])
                                 for n in node_grid(b, tables[m][0])]
    return rows


def saturation(rows):
    """(best nodes, best seconds, open-ended) of one curve (rows in node order): the node
    count with the shortest time; open-ended when it is the largest node count with a
    time and the next node count's global batch was not measured (adding nodes may help
    further; when it was measured and missed the target, adding nodes stopped helping).
    None: no time at all."""
    pts = [(r["nodes"], r["time_to_target_s"]) for r in rows if r["time_to_target_s"] != ""]
    if not pts:
        return None
    best_n, best_t = min(pts, key=lambda p: (p[1], p[0]))
    beyond = [r for r in rows if r["nodes"] > best_n]
    open_ended = best_n == max(n for n, _ in pts) and bool(beyond) and \
        beyond[0]["epochs_status"] == NOT_MEASURED
    return best_n, best_t, open_ended


def curve(rows, **key):
    return sorted((r for r in rows if all(r[k] == v for k, v in key.items())), key=lambda r: r["nodes"])


def write_csv(path, rows):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, list(rows[0].keys()))
        w.writeheader()
        w.writerows(rows)


def fmt_time(s):
    if s == "" or s is None:
        return "-"
    if s < 1:
        return f"{s * 1e3:.0f} ms"
    return f"{s:.1f} s" if s < 600 else f"{s / 60:.1f} min"


def cell(r):
    """A table cell: the time to the target, or why there is none."""
    if r is None:
        return "-"
    return fmt_time(r["time_to_target_s"]) if r["time_to_target_s"] != "" else r["epochs_status"]


def stops_helping(c):
    s = saturation(c)
    if s is None:
        return "-"
    n, t, open_ended = s
    return f"≥ {n} (not measured beyond)" if open_ended else f"**{n}** ({fmt_time(t)})"


def summary(a, compute, nets, tables, rows, gamma):
    L = []
    pct = f"{100 * a.target:g}%"
    if a.measured_on:
        L.append(f"Measured on: {a.measured_on}.\n")
    speed = f" = {1 / gamma / 1e9:.1f} GB/s" if gamma else " (not measured: 0)"
    L.append("Networks (alpha per message, beta per byte; gamma, the int64 additions on a node, "
             f"measured here: {gamma * 1e12:.1f} ps/byte{speed}):\n")
    for net, _, why in nets:
        L.append(f"- **{net}**: {why}.")
    L.append(f"\nCompute per step measured here (1 rank x {a.cores} cores): " + "; ".join(
        f"{m} {c0 * 1e3:.2f} ms + {c1 * 1e3:.3f} ms per sample" for m, (c0, c1) in compute.items()) +
        (f"; a node of {a.node_cores} cores taken as that x {a.scale:g}" if a.scale != 1 else
         "; a node is this machine") +
        ". One rank per node; the gradient is reduced as int64, 8 bytes per parameter, in buckets "
        + ", ".join(f"{m}: " + "+".join(f"{x / 1e6:.2f}" for x in netmodel.buckets(m, a.bucket_kb))
                    + " MB" for m in compute) + ".\n")
    for m in compute:
        epochs_md(L, m, tables[m], pct)
    tta_table(L, a, compute, nets, rows, pct)
    return L


def epochs_md(L, m, tw, pct):
    table, whose = tw
    note = "" if whose == m else f" (none of {m}'s own: the reference model's runs)"
    L.append(f"Epochs to {pct} for {m}{note}, the fewest of any run at that global batch:\n")
    if not table:
        L.append(f"(no runs: the time to {pct} is not projected)\n")
        return
    L.append("| global batch | epochs | run |")
    L.append("|---|---|---|")
    for b in sorted(table):
        e, where = table[b]
        L.append(f"| {b:,} | {NOT_REACHED if e is None else f'{e:g}'} | {where} |")
    L.append("")


def tta_table(L, a, compute, nets, rows, pct):
    show = [1, 16, 64, 128, 256, 1024]
    L.append(f"Time to {pct} (training steps only) against node count, dptrain's reduction "
             "(binomial), weak scaling (batch per node fixed, global batch = nodes x it); "
             "\"stops helping\": the node count with the shortest time, for dptrain's reduction and "
             "for Rabenseifner's (OMPI_MCA_coll_libnbc_iallreduce_algorithm=3). Step times and "
             "every node count: projection.csv.\n")
    L.append("| model | batch/node | network | overlap | " + " | ".join(f"{n} node{'s' if n > 1 else ''}" for n in show) +
             " | stops helping at (binomial) | (Rabenseifner) |")
    L.append("|---|---|---|---|" + "---|" * len(show) + "---|---|")
    for m in compute:
        for b in a.batches:
            for net, _, _ in nets:
                for ov in ("off", "on"):
                    c = curve(rows, model=m, batch_per_node=b, network=net, algorithm="binomial", overlap=ov)
                    r = curve(rows, model=m, batch_per_node=b, network=net, algorithm="rabenseifner", overlap=ov)
                    at = {x["nodes"]: x for x in c}
                    L.append(f"| {m} | {b} | {net} | {ov} | " + " | ".join(cell(at.get(n)) for n in show) +
                             f" | {stops_helping(c)} | {stops_helping(r)} |")


def plot_fit(a, bench, shm):
    data, lines, i = "", [], 0
    for p in sorted({x[0] for x in bench})[:3]:
        meas = sorted((n, t) for q, n, t in bench if q == p)
        data += plot.block(f"m{i}", meas)
        data += plot.block(f"f{i}", [(n, netmodel.allreduce_time("binomial", p, n, shm)) for n, _ in meas])
        tag = "" if p <= a.cores else " (oversubscribed)"
        lines += [f"$m{i} using 1:2 with points pt 7 lc {i + 1} title '{p} ranks measured{tag}'",
                  f"$f{i} using 1:2 with lines lc {i + 1} dt 2 title '{p} ranks model'"]
        i += 1
    png = os.path.join(a.out, "allreduce_fit.png")
    plot.gnuplot(plot.TERM + f"set output '{png}'\n" + data +
                 "set logscale xy\nset format x '%.0s%cB'\nset xlabel 'bytes (int64, in place, as dptrain)'\n"
                 "set ylabel 'seconds per allreduce'\nset grid\nset key left top font ',9'\n"
                 f"set title 'MPI_Iallreduce here (binomial); fit alpha {shm['alpha'] * 1e6:.2f} us, "
                 f"beta 1/({1 / shm['beta'] / 1e9:.2f} GB/s)'\nplot {', '.join(lines)}\n", png)


# the time-to-accuracy plots: overlap on (dptrain's default across nodes) for every network, and off for
# the two slow ones: six lines
PLOT_LINES = [("shm", "on", "#1f77b4"), ("1Gb/s", "on", "#d62728"), ("1Gb/s", "off", "#d62728"),
              ("10Gb/s", "on", "#ff7f0e"), ("10Gb/s", "off", "#ff7f0e"), ("100Gb/s", "on", "#2ca02c")]


def plot_tta(a, rows, m, b):
    data, lines = "", []
    for i, (net, ov, lc) in enumerate(PLOT_LINES):
        pts = [(r["nodes"], r["time_to_target_s"]) for r in
               curve(rows, model=m, batch_per_node=b, network=net, algorithm="binomial", overlap=ov)
               if r["time_to_target_s"] != ""]
        if not pts:
            continue
        data += plot.block(f"p{i}", pts)
        lines.append(f"$p{i} using 1:2 with linespoints lw 2 pt 7 ps 0.8 lc rgb '{lc}' "
                     f"dt {1 if ov == 'on' else 2} title '{net}, overlap {ov}'")
    if not lines:
        return
    png = os.path.join(a.out, f"time_to_accuracy_{m}_b{b}.png")
    pct = f"{100 * a.target:g}%"
    plot.gnuplot(plot.TERM + f"set output '{png}'\n" + data +
                 "set logscale x 2\nset logscale y 10\nset grid\nset key below horizontal font ',9'\n"
                 f"set xlabel 'nodes (1 rank each, batch {b} per node; only measured global batches)'\n"
                 f"set ylabel 'seconds to {pct} test accuracy'\n"
                 f"set title '{m}: projected time to {pct} (dptrain: binomial in-place reduction)'\n"
                 f"plot {', '.join(lines)}\n", png)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bench", required=True, help="allreduce_bench --as-dptrain CSV")
    ap.add_argument("--reduce-local", help="allreduce_bench --reduce-local CSV (gamma)")
    ap.add_argument("--compute", action="append", required=True, help="MODEL=B1:MS1,B2:MS2 or MODEL=MS")
    ap.add_argument("--epochs-from", action="append", default=[])
    ap.add_argument("--epochs-to", action="append", default=[], help="[MODEL:]BATCH=EPOCHS or =none")
    ap.add_argument("--target", type=float, default=0.99)
    ap.add_argument("--batch-per-node", default="100,16", help="comma-separated")
    ap.add_argument("--dataset", type=int, default=60000)
    ap.add_argument("--cores", type=int, default=os.cpu_count())
    ap.add_argument("--node-cores", type=int, help="default: --cores (a node like this machine)")
    ap.add_argument("--bucket-kb", type=int, default=256)
    ap.add_argument("--measured-on", default="", help="CPU, cores and load of the measurements")
    ap.add_argument("--no-plots", action="store_true")
    ap.add_argument("-o", "--out", required=True)
    a = ap.parse_args(argv)
    a.batches = [int(x) for x in a.batch_per_node.split(",") if x]
    a.node_cores = a.node_cores or a.cores
    a.scale = a.cores / a.node_cores
    return a


def main(argv=None):
    a = parse_args(argv)
    os.makedirs(a.out, exist_ok=True)
    bench = read_bench(a.bench, "iallreduce_inplace_int64")
    if not bench:
        sys.exit(f"project: {a.bench}: no iallreduce_inplace_int64 rows (run the bench with --as-dptrain)")
    gamma = fit_gamma(a.reduce_local)
    nets = networks(bench, gamma, a.cores)
    compute = parse_compute(a.compute)
    found = read_runs(a.epochs_from, a.target)
    tables = {m: epochs_table(found, a.epochs_to, m) for m in compute}
    rows = project_rows(a, compute, nets, tables)
    write_csv(os.path.join(a.out, "projection.csv"), rows)
    if not a.no_plots:
        plot_fit(a, bench, nets[0][1])
        for m in compute:
            for b in a.batches:
                plot_tta(a, rows, m, b)
    text = "\n".join(summary(a, compute, nets, tables, rows, gamma)) + "\n"
    with open(os.path.join(a.out, "projection.md"), "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
