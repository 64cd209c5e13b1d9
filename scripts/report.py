#!/usr/bin/env python3
"""report.py: the one-page Markdown report of a sweep directory.

  scripts/report.py OUTDIR [-o report.md] [--force] [--projection DIR] [--shaped DIR]
                    [--lr-scaling CSV] [--notes FILE]

OUTDIR holds sweep.csv and plots/ (scripts/report.sh makes them). --projection adds the
allreduce fit and the projection (DIR from scripts/project.py); --shaped the check on a
shaped network (DIR from scripts/shaped_network.sh); --lr-scaling the old lr-scaling
table (CSV from scripts/lr_scaling_experiment.sh).

Honest figures: every run's CPU, cores and load average as it started come from its
metrics file (sweep.csv's cpu_model, host_cores, load_start, under_load). A run started
above 0.5 per core (under_load) or without a host record (load unknown) is marked, and
the report is not written (exit status 3, the runs named on stderr) unless --force or
DPTRAIN_FORCE_PUBLISH=1: figures taken under load are not published as if quiet. A
forced report says at its top which runs were under load. Without -o it prints to stdout."""
import argparse
import csv
import os
import platform
import sys


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


def load_cell(r):
    load = r.get("load_start", "")
    if load in ("", None):
        return "unknown"
    return f"{float(load):.2f}" + (" UNDER LOAD" if r.get("under_load") == "1" else "")


def not_quiet(rows):
    """Runs under load or of unknown load, as (name, what) pairs."""
    return [(r["run"], "load unknown (no host record)" if r.get("under_load", "") == "" else
             f"load {float(r['load_start']):.2f} on {r['host_cores']} cores")
            for r in rows if r.get("under_load", "") != "0"]


def machine(rows):
    cpus = sorted({(r.get("cpu_model") or "", r.get("host_cores") or "") for r in rows} - {("", "")},
                  key=lambda mc: (int(mc[1]) if str(mc[1]).isdigit() else 0, mc[0]))
    if not cpus:
        return f"{os.cpu_count()} cores ({cpu_name()}, the reporting machine: the runs have no host record)"
    return "; ".join(f"{c} cores ({m or 'unknown CPU'})" for m, c in cpus)


def tta_cell(r):
    if r.get("seconds_to_target", "") in ("", None):
        return "not reached"
    return f"{float(r['seconds_to_target']):.1f} s / {r['epochs_to_target']}"


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


def rank_speeds(rows, p):
    """From the balance records (--balance on, or off): the slowest rank of each run by its
    own speed, against the fastest rank's; a rank far below 1.00 is a slow or shared core or
    node."""
    with_bal = [r for r in rows if r.get("slowest_rank") not in (None, "")]
    if not with_bal:
        return
    p("\n## The ranks' own speeds\n")
    p("Where the ranks balanced (`--balance`), or ran with `--balance off`, each rank's "
      "samples per second of its own work over the run: the slowest rank, and its speed "
      "against the fastest rank's.\n")
    p("| run | ranks | slowest rank | its speed against the fastest |")
    p("|---|---|---|---|")
    for r in with_bal:
        p(f"| {r['run']} | {r['ranks']} | {r['slowest_rank']} | "
          f"{fmt(r['slowest_vs_fastest'])} |")


def main_table(rows, p):
    target = next((r.get("target") for r in rows if r.get("target")), "0.99")
    pct = f"{100 * float(target):g}%"
    p(f"| run | ranks | threads | global batch | images/s | speedup | efficiency | step ms | "
      f"compute | allreduce | data | other | test acc | time / epochs to {pct} | load at start | "
      "weights checksum |")
    p("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        acc = f"{100 * float(r['test_accuracy']):.2f}%" if r["test_accuracy"] not in ("", "None") else "-"
        p(f"| {r['run']} | {r['ranks']} | {r['threads']} | {r['global_batch']} | "
          f"{fmt(r['images_per_sec'], 0)} | {fmt(r['speedup'])} | {fmt(r['efficiency'])} | "
          f"{fmt(r['step_ms'], 1)} | {fmt(r['compute_ms'], 1)} | {fmt(r['comm_ms'], 1)} | "
          f"{fmt(r['data_ms'], 1)} | {fmt(r['other_ms'], 1)} | {acc} | {tta_cell(r)} | "
          f"{load_cell(r)} | {r.get('weights_checksum', '') or '-'} |")
    p("")
    p(f"Time to {pct}: wall seconds from the start of training (without loading the data) to "
      f"the end of the first epoch whose test accuracy is at least {pct}, evaluations "
      "included, and that epoch; \"not reached\" when no epoch got there (a run of a few "
      "hundred steps does not: give the sweep SWEEP_EPOCHS).\n")


def extra_sections(a, out, p):
    if a.projection:
        d = a.projection
        p("\n## Beyond this machine: allreduce model and projection\n")
        summary = os.path.join(d, "projection.md")
        if os.path.exists(summary):
            p(open(summary).read())
        for png in sorted(f for f in os.listdir(d) if f.endswith(".png")):
            p(f"![{png}]({rel(os.path.join(d, png), out)})")
    if a.shaped:
        summary = os.path.join(a.shaped, "shaped.md")
        p("\n## The model against a shaped network\n")
        if os.path.exists(summary):
            p(open(summary).read())
        for png in sorted(f for f in os.listdir(a.shaped) if f.endswith(".png")):
            p(f"![{png}]({rel(os.path.join(a.shaped, png), out)})")
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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("outdir")
    ap.add_argument("-o", "--out", help="write the report here (default stdout)")
    ap.add_argument("--force", action="store_true",
                    help="write the report even when runs were under load (marked)")
    ap.add_argument("--load-per-core", type=float, default=0.5,
                    help="the threshold collect.py used (for the words only)")
    ap.add_argument("--projection")
    ap.add_argument("--shaped")
    ap.add_argument("--lr-scaling", action="append", default=[], help="may repeat")
    ap.add_argument("--notes", help="a Markdown file appended as the conclusions")
    a = ap.parse_args()
    out = a.outdir
    rows = read_csv(os.path.join(out, "sweep.csv"))
    loaded = not_quiet(rows)
    force = a.force or os.environ.get("DPTRAIN_FORCE_PUBLISH", "") == "1"
    if loaded and not force:
        print(f"report: not written: {len(loaded)} of {len(rows)} runs were not taken on a quiet "
              f"machine (load average above {a.load_per_core:g} per core as they started, or unknown):",
              file=sys.stderr)
        for name, what in loaded:
            print(f"  {name}: {what}", file=sys.stderr)
        print("report: run them again on a quiet machine, or publish them marked with --force "
              "(DPTRAIN_FORCE_PUBLISH=1)", file=sys.stderr)
        sys.exit(3)
    lines = []
    p = lambda *s: lines.append(" ".join(str(x) for x in s))
    p("# dptrain scaling report\n")
    if loaded:
        p(f"**Taken under load: {len(loaded)} of {len(rows)} runs** ("
          + "; ".join(f"{n}: {w}" for n, w in loaded) +
          "). Their times are contended and do not describe this machine; published with "
          "--force.\n")
    p(f"Machine: {machine(rows)}, as the runs' metrics files say. "
      f"Runs: {len(rows)}, model and steps as in each run's metrics "
      f"(`{rel(os.path.join(out, 'runs'), out)}/`). Speedup and efficiency are against the "
      "1-rank run of the same kind and threads per rank; weak scaling keeps the batch per "
      "rank fixed, so its speedup is the scaled (throughput) speedup. Runs with more "
      "ranks x threads than cores are oversubscribed: they measure overheads, not scaling. "
      "Load at start: the 1-minute load average as the run started (more than "
      f"{a.load_per_core:g} per core: UNDER LOAD).\n")
    main_table(rows, p)
    strong = {r.get("weights_checksum", "") for r in rows if r["kind"] == "strong"}
    if strong and "" not in strong:
        p("Strong scaling is one training run faster: all strong-scaling runs end with weights "
          f"checksum {strong.pop()}.\n" if len(strong) == 1 else
          f"WARNING: the strong-scaling runs end with {len(strong)} different weights "
          "checksums: they are not the same training.\n")
    plots = os.path.join(out, "plots")
    for png, cap in (("images_per_sec.png", "Throughput"), ("speedup.png", "Speedup"),
                     ("efficiency.png", "Parallel efficiency"),
                     ("time_to_accuracy.png", "Time to accuracy"),
                     ("step_split.png", "Step time: compute, allreduce, data")):
        if os.path.exists(os.path.join(plots, png)):
            p(f"![{cap}]({rel(os.path.join(plots, png), out)})")
    curves = sorted(f for f in os.listdir(plots) if f.startswith("curves_")) if os.path.isdir(plots) else []
    for c in curves:
        p(f"\n![Training curves]({rel(os.path.join(plots, c), out)})")
    step_view(rows, plots, out, p)
    rank_speeds(rows, p)
    extra_sections(a, out, p)
    p("\n_Made by scripts/report.py; regenerate with scripts/sweep.sh or scripts/report.sh._")
    text = "\n".join(lines) + "\n"
    if a.out:
        with open(a.out + ".tmp", "w") as f:
            f.write(text)
        os.replace(a.out + ".tmp", a.out)
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
