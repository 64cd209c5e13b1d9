#!/usr/bin/env python3
"""plot.py: PNG plots with gnuplot (Debian: apt-get install gnuplot-nox).

  scripts/plot.py sweep RUNS.csv OUTDIR       images/s, speedup, efficiency against ranks
                                              (one line per kind and threads, with ideal),
                                              time to the target accuracy (when a run
                                              reached it), step time split into
                                              compute/comm/data/other
  scripts/plot.py curves OUTDIR METRICS.jsonl...   training curves of any run: loss and
                                              accuracy against epoch (against step with
                                              step records, --log-every) and wall time;
                                              with step records also steps_NAME.png, the
                                              time split of the steps along the run
(scripts/project.py draws the projection's plots with the helpers here.)

Data go to gnuplot inline; it prints the PNGs it wrote. Standard library only."""
import csv
import json
import os
import shutil
import subprocess
import sys

TERM = 'set terminal pngcairo size 900,560 font "sans,11" noenhanced\n'


def gnuplot(script, out_png):
    if not shutil.which("gnuplot"):
        sys.exit("plot: gnuplot not found (Debian: apt-get install gnuplot-nox)")
    r = subprocess.run(["gnuplot"], input=script, text=True, capture_output=True)
    if r.returncode != 0 or not os.path.exists(out_png):
        sys.exit(f"plot: gnuplot failed for {out_png}:\n{r.stderr}")
    print(out_png)


def block(name, rows):
    return f"${name} << EOD\n" + "\n".join(" ".join(str(v) for v in r) for r in rows) + "\nEOD\n"


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def sweep(csv_path, outdir):
    rows = [r for r in read_csv(csv_path) if r["kind"] in ("strong", "weak")]
    if not rows:
        sys.exit(f"plot: {csv_path} holds no strong/weak sweep runs")
    os.makedirs(outdir, exist_ok=True)
    series = sorted({(r["kind"], int(r["threads"])) for r in rows})
    data, maxr = "", max(int(r["ranks"]) for r in rows)
    for i, (k, t) in enumerate(series):
        pts = sorted((int(r["ranks"]), r) for r in rows if r["kind"] == k and int(r["threads"]) == t)
        data += block(f"s{i}", [(p, r["images_per_sec"], r["speedup"] or "NaN",
                                 r["efficiency"] or "NaN") for p, r in pts])
    xr = f"set logscale x 2\nset xrange [0.8:{maxr * 1.25}]\nset xlabel 'MPI ranks'\nset grid\nset key left top\n"
    title = lambda k, t: f"{k} scaling, {t} thread{'s' if t > 1 else ''}/rank"
    plots = lambda col: ", ".join(f"$s{i} using 1:{col} with linespoints lw 2 pt 7 title '{title(k, t)}'"
                                  for i, (k, t) in enumerate(series))
    png = os.path.join(outdir, "images_per_sec.png")
    gnuplot(TERM + f"set output '{png}'\n" + data + xr +
            "set ylabel 'training images / s'\nset yrange [0:*]\nset title 'Throughput against ranks'\n"
            f"plot {plots(2)}\n", png)
    png = os.path.join(outdir, "speedup.png")
    gnuplot(TERM + f"set output '{png}'\n" + data + xr +
            "set ylabel 'speedup over 1 rank (same threads)'\nset yrange [0:*]\n"
            "set title 'Speedup against ideal'\n"
            f"plot x with lines dt 2 lc 'black' title 'ideal', {plots(3)}\n", png)
    png = os.path.join(outdir, "efficiency.png")
    gnuplot(TERM + f"set output '{png}'\n" + data + xr +
            "set ylabel 'parallel efficiency (speedup / ranks)'\nset yrange [0:1.2]\n"
            "set title 'Parallel efficiency against ideal'\n"
            f"plot 1 with lines dt 2 lc 'black' title 'ideal', {plots(4)}\n", png)
    reached = [r for r in rows if r.get("seconds_to_target")]
    if reached:
        tdata, tplots = "", []
        for i, (k, t) in enumerate(series):
            pts = sorted((int(r["ranks"]), r["seconds_to_target"], r["epochs_to_target"]) for r in reached
                         if r["kind"] == k and int(r["threads"]) == t)
            if pts:
                tdata += block(f"t{i}", pts)
                tplots.append(f"$t{i} using 1:2 with linespoints lw 2 pt 7 title '{title(k, t)}', "
                              f"$t{i} using 1:2:(sprintf('%g ep', $3)) with labels offset 0,1 notitle")
        target = 100 * float(reached[0].get("target") or 0.99)
        png = os.path.join(outdir, "time_to_accuracy.png")
        gnuplot(TERM + f"set output '{png}'\n" + tdata + xr +
                f"set ylabel 'seconds to {target:g}% test accuracy'\nset yrange [0:*]\n"
                f"set title 'Time to {target:g}% test accuracy (labels: epochs to it)'\n"
                f"plot {', '.join(tplots)}\n", png)
    # step time split, one stacked bar per run
    bars = sorted(rows, key=lambda r: (r["kind"], int(r["threads"]), int(r["ranks"])))
    png = os.path.join(outdir, "step_split.png")
    gnuplot(TERM.replace("900,560", "1000,560") + f"set output '{png}'\n" +
            block("b", [(f'"{r["kind"][0]} {r["ranks"]}x{r["threads"]}"', r["compute_ms"], r["comm_ms"],
                         r["data_ms"], r["other_ms"]) for r in bars]) +
            "set style data histograms\nset style histogram rowstacked\nset style fill solid 0.8 border -1\n"
            "set boxwidth 0.7\nset ylabel 'ms per step (mean over ranks)'\nset yrange [0:*]\nset grid y\n"
            "set xlabel 'run: s = strong, w = weak; ranks x threads'\nset xtics rotate by -30\n"
            "set key outside right top\nset title 'Where a step goes'\n"
            "plot $b using 2:xtic(1) title 'compute', '' using 3 title 'allreduce', "
            "'' using 4 title 'data', '' using 5 title 'other (waiting, timers)'\n", png)


def records(path):
    """(epoch records, step records) of a metrics file; untyped records are epochs."""
    recs = [json.loads(l) for l in open(path) if l.strip()]
    return ([r for r in recs if r.get("type", "epoch") == "epoch"],
            [r for r in recs if r.get("type") == "step"])


def epoch_curves(png, name, recs):
    # an epoch of a partial record counts as a fraction of an epoch
    spe = next((r["step"] / r["epoch"] for r in recs if not r["partial"]), None)
    rows = []
    for r in recs:
        x = r["step"] / spe if spe else r["epoch"]
        acc = 100 * r["test_accuracy"] if r.get("test_accuracy") is not None else "NaN"
        tl = r["test_loss"] if r.get("test_loss") is not None else "NaN"
        rows.append((round(x, 4), r["wall_seconds"], r["train_loss"], tl, acc))
    left = "set ylabel 'loss'\nset logscale y\nset grid\nset key top right\n"
    right = "unset logscale y\nset ylabel 'test accuracy (%)'\nset key bottom right\n"
    lp = "with linespoints lw 2 pt 7"
    gnuplot(TERM.replace("900,560", "1100,760") + f"set output '{png}'\n" + block("c", rows) +
            f"set multiplot layout 2,2 title '{name}: {recs[-1]['ranks']} ranks x {recs[-1]['threads']} thread(s), batch {recs[-1]['global_batch']}'\n"
            "set xlabel 'epoch'\n" + left +
            f"plot $c using 1:3 {lp} title 'train', $c using 1:4 {lp} title 'test'\n" + right +
            f"plot $c using 1:5 {lp} title 'test accuracy'\n"
            "set xlabel 'wall time (s)'\n" + left +
            f"plot $c using 2:3 {lp} title 'train', $c using 2:4 {lp} title 'test'\n" + right +
            f"plot $c using 2:5 {lp} title 'test accuracy'\nunset multiplot\n", png)


def step_curves(png, name, recs, steps):
    """Loss and accuracy of every step record (train, mean over its N steps) with the test
    figures of the epochs, against step and wall time."""
    srows = [(r["step"], r["wall_seconds"], r["train_loss"], 100 * r["train_accuracy"]) for r in steps]
    erows = [(r["step"], r["wall_seconds"],
              r["test_loss"] if r.get("test_loss") is not None else "NaN",
              100 * r["test_accuracy"] if r.get("test_accuracy") is not None else "NaN") for r in recs]
    every = steps[0]["steps"] if steps else 0
    last = recs[-1] if recs else steps[-1]
    left = "set ylabel 'loss'\nset logscale y\nset grid\nset key top right\n"
    right = "unset logscale y\nset ylabel 'accuracy (%)'\nset key bottom right\n"
    tr = f"with lines lw 2 title 'train (mean of {every} steps)'"
    te = "with points pt 7 ps 1.5 title 'test (end of epoch)'"
    gnuplot(TERM.replace("900,560", "1100,760") + f"set output '{png}'\n" + block("s", srows) + block("e", erows) +
            f"set multiplot layout 2,2 title '{name}: {last['ranks']} ranks, step records every {every} steps'\n"
            "set xlabel 'optimizer step'\n" + left +
            f"plot $s using 1:3 {tr}, $e using 1:3 {te}\n" + right +
            f"plot $s using 1:4 {tr}, $e using 1:4 {te}\n"
            "set xlabel 'wall time (s)'\n" + left +
            f"plot $s using 2:3 {tr}, $e using 2:3 {te}\n" + right +
            f"plot $s using 2:4 {tr}, $e using 2:4 {te}\nunset multiplot\n", png)


def step_split(png, name, steps):
    """Where the steps of each window went (mean over ranks, stacked) and the slowest
    rank's wait, along the run."""
    phases = ["data", "forward", "backward", "wait", "update"]
    rows = []
    for r in steps:
        acc, row = 0.0, [r["step"]]
        for p in phases:
            acc += r[p + "_ms"]
            row.append(round(acc, 4))
        rows.append(row + [r["step_ms"], r["max_wait_ms"]])
    # phase k fills from the cumulative sum before it (column 1 + k; 0 for the first) to its own
    plots = ", ".join(f"$t using 1:{'(0)' if k == 0 else 1 + k}:{2 + k} with filledcurves title '{p}'"
                      for k, p in enumerate(phases))
    gnuplot(TERM.replace("900,560", "1100,560") + f"set output '{png}'\n" + block("t", rows) +
            "set style fill solid 0.6 noborder\nset grid\nset key outside right top\n"
            "set xlabel 'optimizer step'\nset ylabel 'ms per step'\nset yrange [0:*]\n"
            f"set title '{name}: where the steps went (mean over ranks, stacked), every {steps[0]['steps']} steps'\n"
            f"plot {plots}, "
            "$t using 1:7 with lines lw 2 lc 'black' title 'step (slowest rank)', "
            "$t using 1:8 with lines lw 1 dt 2 lc 'red' title 'longest wait of a rank'\n", png)


def curves(outdir, files):
    os.makedirs(outdir, exist_ok=True)
    for path in files:
        recs, steps = records(path)
        if not recs and not steps:
            print(f"plot: {path}: no records, skipped", file=sys.stderr)
            continue
        name = os.path.splitext(os.path.basename(path))[0]
        png = os.path.join(outdir, f"curves_{name}.png")
        if steps:
            step_curves(png, name, recs, steps)
            step_split(os.path.join(outdir, f"steps_{name}.png"), name, steps)
        else:
            epoch_curves(png, name, recs)


if __name__ == "__main__":
    if len(sys.argv) >= 4 and sys.argv[1] == "sweep":
        sweep(sys.argv[2], sys.argv[3])
    elif len(sys.argv) >= 4 and sys.argv[1] == "curves":
        curves(sys.argv[2], sys.argv[3:])
    else:
        sys.exit(__doc__)
