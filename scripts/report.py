#!/usr/bin/env python3
"""report.py: the one-page Markdown report of a sweep directory (to stdout).

  scripts/report.py OUTDIR [--projection DIR] [--lr-scaling CSV] [--notes FILE]

OUTDIR holds sweep.csv and plots/ (scripts/report.sh makes them). --projection adds the
allreduce fit and the projection (DIR from scripts/project.py); --lr-scaling adds the
large-batch table (CSV from scripts/lr_scaling_experiment.sh)."""
import argparse
import csv
import os
import platform
import subprocess


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def rel(path, base):
    return os.path.relpath(path, base)


def fmt(v, nd=2):
    try:
        return f"{float(v):.{nd}f}"
    except (TypeError, ValueError):
        return "-"


def cpu_name():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def step_view(rows, plots, out, p):
    """From the step records (--log-every): how steady the steps were, and the worst
    wait of any rank for the reduction (a straggler shows here first)."""
    with_steps = [r for r in rows if r.get("step_records") not in (None, "", "0")]
    if not with_steps:
        return
    p("\n## Step by step\n")
    p("From the step records (`--log-every`, each the mean of its window's steps): the "
      "median and 95th percentile of a window's step time (slowest rank), and the longest "
      "a rank waited for the gradient reduction, per step of a window.\n")
    p("| run | step records | step ms p50 | step ms p95 | longest wait ms |")
    p("|---|---|---|---|---|")
    for r in with_steps:
        p(f"| {r['run']} | {r['step_records']} | {fmt(r['step_ms_p50'], 1)} | "
          f"{fmt(r['step_ms_p95'], 1)} | {fmt(r['max_wait_ms'], 1)} |")
    for f in sorted(f for f in os.listdir(plots) if f.startswith("steps_")) if os.path.isdir(plots) else []:
        p(f"\n![Where the steps went]({rel(os.path.join(plots, f), out)})")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("outdir")
    ap.add_argument("--projection")
    ap.add_argument("--lr-scaling", action="append", default=[], help="may repeat")
    ap.add_argument("--notes", help="a Markdown file appended as the conclusions")
    a = ap.parse_args()
    out = a.outdir
    rows = read_csv(os.path.join(out, "sweep.csv"))
    p = lambda *s: print(*s)
    p("# dptrain scaling report\n")
    p(f"Machine: {os.cpu_count()} cores ({cpu_name()}), {platform.node()}. "
      f"Runs: {len(rows)}, model and steps as in each run's metrics "
      f"(`{rel(os.path.join(out, 'runs'), out)}/`). Speedup and efficiency are against the "
      "1-rank run of the same kind and threads per rank; weak scaling keeps the batch per "
      "rank fixed, so its speedup is the scaled (throughput) speedup. Runs with more "
      "ranks x threads than cores are oversubscribed: they measure overheads, not scaling.\n")
    p("| run | ranks | threads | global batch | images/s | speedup | efficiency | step ms | "
      "compute | allreduce | data | other | test acc | weights checksum |")
    p("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        acc = f"{100 * float(r['test_accuracy']):.2f}%" if r["test_accuracy"] not in ("", "None") else "-"
        p(f"| {r['run']} | {r['ranks']} | {r['threads']} | {r['global_batch']} | "
          f"{fmt(r['images_per_sec'], 0)} | {fmt(r['speedup'])} | {fmt(r['efficiency'])} | "
          f"{fmt(r['step_ms'], 1)} | {fmt(r['compute_ms'], 1)} | {fmt(r['comm_ms'], 1)} | "
          f"{fmt(r['data_ms'], 1)} | {fmt(r['other_ms'], 1)} | {acc} | "
          f"{r.get('weights_checksum', '') or '-'} |")
    p("")
    strong = {r.get("weights_checksum", "") for r in rows if r["kind"] == "strong"}
    if strong and "" not in strong:
        p("Strong scaling is one training run faster: all strong-scaling runs end with weights "
          f"checksum {strong.pop()}.\n" if len(strong) == 1 else
          f"WARNING: the strong-scaling runs end with {len(strong)} different weights "
          "checksums: they are not the same training.\n")
    plots = os.path.join(out, "plots")
    for png, cap in (("images_per_sec.png", "Throughput"), ("speedup.png", "Speedup"),
                     ("efficiency.png", "Parallel efficiency"),
                     ("step_split.png", "Step time: compute, allreduce, data")):
        if os.path.exists(os.path.join(plots, png)):
            p(f"![{cap}]({rel(os.path.join(plots, png), out)})")
    curves = sorted(f for f in os.listdir(plots) if f.startswith("curves_")) if os.path.isdir(plots) else []
    for c in curves:
        p(f"\n![Training curves]({rel(os.path.join(plots, c), out)})")
    step_view(rows, plots, out, p)
    if a.projection:
        d = a.projection
        p("\n## Beyond this machine: allreduce model and projection\n")
        summary = os.path.join(d, "projection.md")
        if os.path.exists(summary):
            p(open(summary).read())
        for png in ("allreduce_fit.png", "projection_step.png", "projection_efficiency.png"):
            if os.path.exists(os.path.join(d, png)):
                p(f"![{png}]({rel(os.path.join(d, png), out)})")
    if a.lr_scaling:
        p("\n## Large global batches: linear lr scaling\n")
        p("| set | run | global batch | peak lr | epochs | test accuracy | train loss |")
        p("|---|---|---|---|---|---|---|")
        for path in a.lr_scaling:
            name = os.path.basename(os.path.dirname(os.path.abspath(path)))
            for r in sorted(read_csv(path), key=lambda r: (int(r["global_batch"]), r["run"])):
                acc = f"{100 * float(r['test_accuracy']):.2f}%" if r["test_accuracy"] not in ("", "None") else "-"
                p(f"| {name} | {r['run']} | {r['global_batch']} | {r.get('peak_lr', '-')} | {r['epochs']} | "
                  f"{acc} | {fmt(r['train_loss'], 4)} |")
    if a.notes:
        p("\n" + open(a.notes).read())
    p("\n_Made by scripts/report.py; regenerate with scripts/sweep.sh or scripts/report.sh._")


if __name__ == "__main__":
    main()
