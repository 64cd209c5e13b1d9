#!/usr/bin/env python3
"""large_batch_table.py: the large-batch table and curves from dptrain --metrics files.

    large_batch_table.py table RUNDIR -o OUTDIR [--epochs 10] [--target 0.99]
    large_batch_table.py search RUNDIR -o OUTDIR [--epochs 10] [--target 0.99]

RUNDIR holds one JSON Lines file per run (one record per epoch, with test_accuracy), as
scripts/large_batch.sh writes them, with optional sidecars NAME.args (the options),
NAME.log (dptrain's banner and `uptime` before and after) and NAME.aborted (the search
stopped the run). `table` names runs OPTIMIZER-bBATCH and writes OUTDIR/table.md and
OUTDIR/plots/*.png (gnuplot: one plot per optimizer with a line per batch, one per batch
from 4096 up comparing the optimizers, final accuracy against batch); `search` writes
OUTDIR/search.md, a row per candidate. Standard library only; the plots need gnuplot.
"""
import argparse
import glob
import json
import os
import re
import shutil
import subprocess
import sys

OPTIMIZERS = ["sgd", "lars", "lamb"]
LABEL = {"sgd": "SGD, linear scaling + warm-up", "lars": "LARS", "lamb": "LAMB"}


def fail(msg):
    sys.exit(f"large_batch_table: {msg}")


def read_run(path):
    """The run's epoch records (the last record of each epoch, partial ones left out)
    and what its sidecars say."""
    by_epoch = {}
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                r = json.loads(line)
            except json.JSONDecodeError:
                fail(f"{path}:{n}: not JSON")
            if r.get("type", "epoch") != "epoch":
                continue  # the host record that opens each start, step records
            if "epoch" not in r or "test_accuracy" not in r:
                fail(f"{path}:{n}: no epoch or test_accuracy (was --test none given?)")
            # a run stopped (the divergence watch, a signal) may end with an epoch record
            # that has no evaluation: it says nothing about accuracy
            if not r.get("partial", False) and r["test_accuracy"] is not None:
                by_epoch[int(r["epoch"])] = r
    base = path[: -len(".jsonl")]
    run = {"name": os.path.basename(base), "records": [by_epoch[e] for e in sorted(by_epoch)]}
    run["args"] = read_text(base + ".args")
    run["aborted"] = read_text(base + ".aborted")
    log = read_text(base + ".log") or ""
    m = re.search(r"^optimizer: (\S+) lr (\S+)( = \S+ x \d+/\d+ \(linear scaling\))?", log, re.M)
    run["peak_lr"] = m.group(2) if m else ""
    run["loads"] = [float(x) for x in re.findall(r"load average: ([0-9.]+)", log)]
    m = re.search(r"^# cpu: *(.*)$", log, re.M)
    run["cpu"] = m.group(1).strip() if m else ""
    m = re.search(r"^# (\S+) start", log, re.M)
    run["start"] = m.group(1) if m else ""
    return run


def read_text(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except FileNotFoundError:
        return None


def summary(run, epochs, target):
    """Final accuracy (after `epochs`, None if the run did not get there), best accuracy
    and its epoch, the first epoch at or above target (None: not reached)."""
    recs = run["records"]
    accs = [(int(r["epoch"]), float(r["test_accuracy"])) for r in recs]
    final = next((a for e, a in accs if e == epochs), None)
    best_e, best = max(accs, key=lambda ea: (ea[1], -ea[0])) if accs else (None, None)
    reached = next((e for e, a in accs if a >= target), None)
    rss = max((float(r.get("max_rss_mib", 0)) for r in recs), default=0.0)
    return {"final": final, "best": best, "best_epoch": best_e, "reached": reached,
            "epochs_run": len(accs), "rss": rss}


def code(text):
    return f"`{text}`" if text else ""


def pct(x):
    return "" if x is None else f"{100 * x:.2f}%"


def reached_text(s, target, epochs):
    if s["reached"] is not None:
        return str(s["reached"])
    if s["epochs_run"] < epochs:
        return f"not reached in {s['epochs_run']}"
    return "not reached"


def status_text(run, s, epochs):
    if run["aborted"]:
        return f"stopped: {run['aborted']}"
    if s["epochs_run"] < epochs:
        return f"incomplete ({s['epochs_run']} epochs)"
    return "complete"


def machine_notes(runs):
    cpus = sorted({r["cpu"] for r in runs if r["cpu"]})
    loads = [x for r in runs for x in r["loads"]]
    lines = []
    if cpus:
        lines.append(f"CPU: {'; '.join(cpus)}.")
    if loads:
        lines.append(f"Load average (1 min) at the start and end of the runs: "
                     f"{min(loads):.2f} to {max(loads):.2f} (accuracy does not depend on "
                     f"the load, only the times do).")
    return lines


def read_runs(rundir):
    paths = sorted(glob.glob(os.path.join(rundir, "*.jsonl")))
    if not paths:
        fail(f"no *.jsonl in {rundir}")
    return [read_run(p) for p in paths]


def table_md(runs, epochs, target):
    t = f"{100 * target:.1f}%"
    by = {}
    for run in runs:
        m = re.fullmatch(r"([a-z]+)-b(\d+)", run["name"])
        if not m:
            fail(f"{run['name']}: table runs are named OPTIMIZER-bBATCH")
        by[(m.group(1), int(m.group(2)))] = run
    batches = sorted({b for _, b in by})
    opts = [o for o in OPTIMIZERS if any(k[0] == o for k in by)] + sorted(
        {o for o, _ in by} - set(OPTIMIZERS))
    out = [f"# Large batches: MNIST test accuracy after {epochs} epochs", ""]
    out += ["| global batch | " + " | ".join(LABEL.get(o, o) for o in opts) + " |",
            "|---|" + "---|" * len(opts)]
    for b in batches:
        cells = []
        for o in opts:
            run = by.get((o, b))
            cells.append("" if run is None else pct(summary(run, epochs, target)["final"]))
        out.append(f"| {b:,} | " + " | ".join(cells) + " |")
    out += ["", f"Every run: test accuracy after {epochs} epochs, the best epoch, the first "
            f"epoch at or above {t}, the peak learning rate and the peak resident memory "
            "per rank.", "",
            f"| optimizer | global batch | after {epochs} epochs | best (epoch) | "
            f"epochs to {t} | peak lr | MiB/rank | options |",
            "|---|---|---|---|---|---|---|---|"]
    for o in opts:
        for b in batches:
            run = by.get((o, b))
            if run is None:
                continue
            s = summary(run, epochs, target)
            out.append(f"| {o} | {b:,} | {pct(s['final'])} | {pct(s['best'])} "
                       f"({s['best_epoch']}) | {reached_text(s, target, epochs)} | "
                       f"{run['peak_lr']} | {s['rss']:.0f} | {code(run['args'])} |")
    out += [""] + machine_notes(runs)
    return "\n".join(out) + "\n", by, batches, opts


def search_md(runs, epochs, target):
    t = f"{100 * target:.1f}%"
    runs = sorted(runs, key=lambda r: (r["start"], r["name"]))
    out = [f"# Large-batch search: every candidate ({epochs} epochs each)", "",
           f"| # | candidate | global batch | options | peak lr | after {epochs} epochs | "
           f"best (epoch) | epochs to {t} | status |",
           "|---|---|---|---|---|---|---|---|---|"]
    for i, run in enumerate(runs, 1):
        s = summary(run, epochs, target)
        if not run["records"]:
            out.append(f"| {i} | {run['name']} | | {code(run['args'])} | | | | | no epoch |")
            continue
        batch = int(run["records"][0]["global_batch"])
        out.append(f"| {i} | {run['name']} | {batch:,} | {code(run['args'])} | "
                   f"{run['peak_lr']} | {pct(s['final'])} | {pct(s['best'])} "
                   f"({s['best_epoch']}) | {reached_text(s, target, epochs)} | "
                   f"{status_text(run, s, epochs)} |")
    out += [""] + machine_notes(runs)
    return "\n".join(out) + "\n"


def write_dat(path, run):
    with open(path, "w") as f:
        f.write("# epoch test_accuracy_percent\n")
        for r in run["records"]:
            f.write(f"{int(r['epoch'])} {100 * float(r['test_accuracy']):.4f}\n")


def gnuplot(script):
    subprocess.run(["gnuplot"], input=script, text=True, check=True)


def curve_plot(png, title, lines, epochs, target):
    """lines: (dat file, label). The y range starts below the lowest accuracy from epoch
    2 on (the first epoch of a slow start would squash the rest) of the curves that end
    at 50% or more: a diverged run (10%) would squash the others into a flat line at the
    top, so it runs off the bottom and its label says where it ended. The key sits below."""
    curves = []
    for dat, lab in lines:
        with open(dat) as f:
            pts = [(int(e), float(a)) for e, a in
                   (row.split() for row in f if not row.startswith("#"))]
        curves.append((dat, lab, pts))
    kept = [c for c in curves if c[2] and c[2][-1][1] >= 50] or curves
    low = min((a for _, _, pts in kept for e, a in pts if e >= 2), default=100.0)
    ymin = 97 if low >= 97.5 else max(0, 5 * int((low - 0.5) // 5))
    lines = [(d, lab if not pts or pts[-1][1] >= ymin else
              f"{lab} (ends at {pts[-1][1]:.1f}%, below)") for d, lab, pts in curves]
    plots = ", ".join(f"'{d}' using 1:2 with linespoints lw 2 title '{lab}'" for d, lab in lines)
    gnuplot(f"""set terminal pngcairo size 900,560 font ',11'
set output '{png}'
set title '{title}'
set xlabel 'epoch'; set ylabel 'test accuracy (%)'
set xrange [0.5:{epochs}.5]; set yrange [{ymin}:100]; set xtics 1
set grid; set key outside below center horizontal
set arrow from graph 0, first {100 * target} to graph 1, first {100 * target} nohead dt 2 lc rgb 'gray'
plot {plots}
""")


def table_plots(outdir, by, batches, opts, epochs, target):
    plots = os.path.join(outdir, "plots")
    data = os.path.join(plots, "data")
    os.makedirs(data, exist_ok=True)
    dat = {}
    for key, run in by.items():
        dat[key] = os.path.join(data, f"{run['name']}.dat")
        write_dat(dat[key], run)
    made = []
    for o in opts:  # one plot per optimizer, a line per batch (at most 5)
        lines = [(dat[(o, b)], f"batch {b}") for b in batches if (o, b) in dat]
        png = os.path.join(plots, f"curves_{o}.png")
        curve_plot(png, f"{LABEL.get(o, o)}: test accuracy per epoch", lines, epochs, target)
        made.append(png)
    for b in batches:  # one plot per large batch, a line per optimizer
        if b < 4096:
            continue
        lines = [(dat[(o, b)], LABEL.get(o, o)) for o in opts if (o, b) in dat]
        png = os.path.join(plots, f"curves_b{b}.png")
        curve_plot(png, f"global batch {b}: test accuracy per epoch", lines, epochs, target)
        made.append(png)
    final = os.path.join(data, "final.dat")  # accuracy after the last epoch against batch
    with open(final, "w") as f:
        f.write("# batch " + " ".join(opts) + "\n")
        for b in batches:
            vals = []
            for o in opts:
                s = summary(by[(o, b)], epochs, target) if (o, b) in by else None
                vals.append(f"{100 * s['final']:.4f}" if s and s["final"] is not None else "NaN")
            f.write(f"{b} " + " ".join(vals) + "\n")
    png = os.path.join(plots, "final_vs_batch.png")
    lines = ", ".join(f"'{final}' using 1:{i + 2} with linespoints lw 2 title '{LABEL.get(o, o)}'"
                      for i, o in enumerate(opts))
    gnuplot(f"""set terminal pngcairo size 900,560 font ',11'
set output '{png}'
set title 'test accuracy after {epochs} epochs against the global batch'
set xlabel 'global batch'; set ylabel 'test accuracy (%)'
set logscale x 2; set xrange [{batches[0] / 1.3}:{batches[-1] * 1.3}]; set xtics ({", ".join(str(b) for b in batches)})
set grid; set key outside below center horizontal
set arrow from graph 0, first {100 * target} to graph 1, first {100 * target} nohead dt 2 lc rgb 'gray'
plot {lines}
""")
    made.append(png)
    return made


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("mode", choices=["table", "search"])
    ap.add_argument("rundir")
    ap.add_argument("-o", "--outdir", required=True)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--target", type=float, default=0.99)
    ap.add_argument("--no-plots", action="store_true")
    a = ap.parse_args()
    runs = read_runs(a.rundir)
    os.makedirs(a.outdir, exist_ok=True)
    if a.mode == "search":
        with open(os.path.join(a.outdir, "search.md"), "w") as f:
            f.write(search_md(runs, a.epochs, a.target))
        print(f"large_batch_table: {os.path.join(a.outdir, 'search.md')} ({len(runs)} candidates)")
        return
    md, by, batches, opts = table_md(runs, a.epochs, a.target)
    with open(os.path.join(a.outdir, "table.md"), "w") as f:
        f.write(md)
    made = []
    if not a.no_plots:
        if not shutil.which("gnuplot"):
            fail("gnuplot not found (apt-get install gnuplot-nox), or give --no-plots")
        made = table_plots(a.outdir, by, batches, opts, a.epochs, a.target)
    print(f"large_batch_table: {os.path.join(a.outdir, 'table.md')}, {len(made)} plots")


if __name__ == "__main__":
    main()
