#!/usr/bin/env python3
"""trace_plot.py: a dptrain --trace file drawn as a PNG timeline, without a browser.

  scripts/trace_plot.py TRACE.json OUT.png [--steps A:B] [--width PIXELS]

One band per rank, top to bottom: its steps, their phases (batch, forward, backward, wait
for gradients, update; evaluation and checkpoints), the layers and the loss inside forward
and backward, then one lane per gradient bucket with its reduction from start to
completion. Every span of the file is drawn where the file puts it (times in ms from the
trace's start, on rank 0's clock as dptrain aligned them); --steps keeps the time from the
start of step A to the end of step B on any rank. Perfetto (ui.perfetto.dev) or
chrome://tracing show the same file interactively. gnuplot draws (Debian: gnuplot-nox);
standard library otherwise."""
import argparse
import json
import os
import shutil
import subprocess
import sys

COLOURS = {"step": "#d9d9d9", "batch": "#8c564b", "forward": "#2ca02c", "loss": "#ffdd57",
           "backward": "#1f77b4", "wait for gradients": "#d62728", "update": "#9467bd",
           "evaluation": "#17becf", "checkpoint": "#000000", "bucket": "#ff7f0e",
           "forward layer": "#98df8a", "backward layer": "#aec7e8"}


def lane_of(e):
    """(lane within the rank's band, colour key) of a span."""
    name, cat = e["name"], e["cat"]
    if e["tid"] >= 1:
        return 3 + e["tid"] - 1, "bucket"
    if cat == "step":
        return 0, "step"
    if name in ("batch", "forward", "backward", "wait for gradients", "update", "evaluation", "checkpoint"):
        return 1, name
    if name == "loss":
        return 2, "loss"
    return 2, "forward layer" if name.endswith(" forward") else "backward layer"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("trace")
    ap.add_argument("png")
    ap.add_argument("--steps", help="A:B, the steps to show")
    ap.add_argument("--width", type=int, default=1600)
    a = ap.parse_args()
    if not shutil.which("gnuplot"):
        sys.exit("trace_plot: gnuplot not found (Debian: apt-get install gnuplot-nox)")
    doc = json.load(open(a.trace))
    spans = [e for e in doc["traceEvents"] if e["ph"] == "X"]
    ranks = sorted({e["pid"] for e in spans})
    buckets = max([e["tid"] for e in spans] + [0])
    t0, t1 = min(e["ts"] for e in spans), max(e["ts"] + e["dur"] for e in spans)
    if a.steps:
        lo, hi = (int(x) for x in a.steps.split(":"))
        steps = [e for e in spans if e["cat"] == "step" and lo <= e["args"]["step"] <= hi]
        if not steps:
            sys.exit(f"trace_plot: no steps {a.steps} in {a.trace}")
        t0, t1 = min(e["ts"] for e in steps), max(e["ts"] + e["dur"] for e in steps)
    band = 3 + buckets + 1  # lanes per rank, and a gap
    rows, labels = [], []
    for e in spans:
        if e["ts"] + e["dur"] < t0 or e["ts"] > t1:
            continue
        lane, key = lane_of(e)
        y = ranks.index(e["pid"]) * band + lane
        x0, x1 = (max(e["ts"], t0) - t0) / 1000, (min(e["ts"] + e["dur"], t1) - t0) / 1000
        rows.append(f"{(x0 + x1) / 2:.4f} {y} {x0:.4f} {x1:.4f} {y - 0.42} {y + 0.42} "
                    f"{int(COLOURS[key][1:], 16)}")
        if key == "step":
            labels.append(f"{(x0 + x1) / 2:.4f} {y} \"{e['args']['step']}\"")
    tics = []
    for i, r in enumerate(ranks):
        names = ["steps", "phases", "layers"] + [f"bucket {b}" for b in range(buckets)]
        tics += [f"'rank {r} {n}' {i * band + k}" for k, n in enumerate(names)]
    height = 120 + 18 * band * len(ranks)
    keys = "".join(f"$k{j} << EOD\nNaN NaN\nEOD\n" for j in range(len(COLOURS)))
    legend = ", ".join(f"$k{j} with boxes fs solid lc rgb '{c}' title '{k}'"
                       for j, (k, c) in enumerate(COLOURS.items()))
    title = os.path.basename(a.trace) + (f", steps {a.steps}" if a.steps else "")
    script = (f"set terminal pngcairo size {a.width},{height} font 'sans,10' noenhanced\n"
              f"set output '{a.png}'\n$s << EOD\n" + "\n".join(rows) + "\nEOD\n"
              "$l << EOD\n" + "\n".join(labels) + "\nEOD\n" + keys +
              f"set yrange [{band * len(ranks) - 0.5}:-0.6]\nset xrange [0:{(t1 - t0) / 1000:.3f}]\n"
              f"set ytics ({', '.join(tics)}) scale 0 font ',9'\nset grid x\n"
              "set xlabel 'ms from the first step shown (rank 0 clock, ranks aligned)'\n"
              f"set title '{title}: {len(ranks)} ranks'\nset key outside right top font ',9'\n"
              "set style fill solid 1.0 border lc rgb 'white'\n"  # neighbours stay apart
              f"plot $s using 1:2:3:4:5:6:7 with boxxyerror lc rgb variable notitle, "
              f"$l using 1:2:3 with labels font ',8' notitle, {legend}\n")
    r = subprocess.run(["gnuplot"], input=script, text=True, capture_output=True)
    if r.returncode != 0 or not os.path.exists(a.png):
        sys.exit(f"trace_plot: gnuplot failed:\n{r.stderr}")
    print(a.png)


if __name__ == "__main__":
    main()
