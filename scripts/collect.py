#!/usr/bin/env python3
"""collect.py: turn dptrain metrics files (--metrics, JSON Lines) into one CSV.

  scripts/collect.py PATH... [-o runs.csv] [--epochs epochs.csv] [--target 0.99]

PATH is a .jsonl file or a directory of them. One CSV row per run (file): its ranks,
threads and global batch, images/s over the whole run, time per step split into compute,
communication and data, the last test accuracy and loss, and speedup and parallel
efficiency against the 1-rank run of the same sweep kind and threads (throughput ratio;
for weak scaling this is the scaled speedup). A file named KIND-rR-tT.jsonl (as
scripts/sweep.sh and jobs/sweep.sbatch write) gives the kind; other names are "run".
--epochs also writes every record, one row per epoch, for training curves. Step records
(--log-every, "type":"step") add the step-to-step view: the median and 95th percentile of
the step time and the longest wait for the reduction of any rank in any window. A balance
record (--balance on, or off) names the slowest rank and its own speed against the fastest
rank's (slowest_rank, slowest_vs_fastest; empty without one). Time to accuracy: the epochs
and the wall seconds to the first test accuracy >= --target (default 0.99; empty: not
reached). Honest figures: each run's CPU model, cores and 1-minute load average as it
started (its host record; the highest of a resumed run's starts), and under_load (more
than --load-per-core, 0.5, per core; empty when the file has no host record).
scripts/runs.py reads the files. Standard library only."""
import argparse
import csv
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import runs  # noqa: E402  (reading metrics files)

RUN_FIELDS = ["run", "kind", "ranks", "threads", "cores", "global_batch", "steps", "epochs",
              "images", "seconds", "images_per_sec", "step_ms", "compute_ms", "comm_ms",
              "data_ms", "other_ms", "comm_fraction", "train_loss", "test_loss",
              "test_accuracy", "wall_seconds", "speedup", "efficiency", "weights_checksum",
              "target", "epochs_to_target", "seconds_to_target", "cpu_model", "host_cores",
              "load_start", "under_load", "step_records", "step_ms_p50", "step_ms_p95",
              "max_wait_ms", "slowest_rank", "slowest_vs_fastest"]
EPOCH_FIELDS = ["run", "epoch", "step", "partial", "lr", "train_loss", "train_accuracy",
                "test_loss", "test_accuracy", "images_per_sec", "seconds", "comm_seconds",
                "data_seconds", "compute_seconds", "eval_seconds", "wall_seconds", "ranks",
                "threads", "global_batch", "weights_checksum"]


def files_of(paths):
    out = []
    for p in paths:
        if os.path.isdir(p):
            out += sorted(os.path.join(p, f) for f in os.listdir(p) if f.endswith(".jsonl"))
        elif os.path.isfile(p):
            out.append(p)
        else:
            sys.exit(f"collect: {p}: no such file or directory")
    return out


def read_records(path):
    """The epoch records (the last of each epoch), the step records, the host records and the
    balance record (or None)."""
    try:
        m = runs.read(path)
    except runs.MetricsError as e:
        sys.exit(f"collect: {e}")
    return m["epochs"], m["steps"], m["hosts"], m["balance"]


def percentile(values, q):
    v = sorted(values)
    return v[min(len(v) - 1, int(q * len(v)))] if v else ""


def add_step_view(row, steps):
    row["step_records"] = len(steps)
    row["step_ms_p50"] = percentile([r["step_ms"] for r in steps], 0.5)
    row["step_ms_p95"] = percentile([r["step_ms"] for r in steps], 0.95)
    row["max_wait_ms"] = max((r["max_wait_ms"] for r in steps), default="")


def add_rank_speeds(row, balance):
    """The slowest rank by its own speed (samples per second of its work), against the
    fastest: a slow node or core shows here by its rank."""
    speeds = (balance or {}).get("samples_per_sec") or []
    top = max(speeds, default=0)
    if top <= 0:
        row["slowest_rank"] = row["slowest_vs_fastest"] = ""
        return
    slow = min(range(len(speeds)), key=lambda r: speeds[r])
    row["slowest_rank"], row["slowest_vs_fastest"] = slow, round(speeds[slow] / top, 3)


def add_honesty(row, recs, hosts, target, per_core):
    """Time to the target accuracy, and the machine and its load as the run started."""
    hit = runs.time_to_accuracy(recs, target)
    row["target"] = target
    row["epochs_to_target"], row["seconds_to_target"] = hit if hit else ("", "")
    h = runs.host_summary(hosts, per_core)
    row["cpu_model"], row["host_cores"] = h["cpu"], h["cores"]
    row["load_start"] = "" if h["load"] is None else h["load"]
    row["under_load"] = "" if h["under_load"] is None else int(h["under_load"])


def summarise(path, recs):
    name = os.path.splitext(os.path.basename(path))[0]
    m = re.match(r"(strong|weak)-r(\d+)-t(\d+)$", name)
    last = recs[-1]
    secs = sum(r["seconds"] for r in recs)
    images = sum(r["images_per_sec"] * r["seconds"] for r in recs)
    steps = last["step"]
    ms = lambda key: 1000.0 * sum(r[key] for r in recs) / steps if steps else 0.0
    step_ms = 1000.0 * secs / steps if steps else 0.0
    row = {
        "run": name, "kind": m.group(1) if m else "run", "ranks": last["ranks"],
        "threads": last["threads"], "cores": last["ranks"] * last["threads"],
        "global_batch": last["global_batch"], "steps": steps, "epochs": len(recs),
        "images": round(images), "seconds": round(secs, 4),
        "images_per_sec": round(images / secs, 2) if secs else 0.0,
        "step_ms": round(step_ms, 3), "compute_ms": round(ms("compute_seconds"), 3),
        "comm_ms": round(ms("comm_seconds"), 3), "data_ms": round(ms("data_seconds"), 3),
        "train_loss": last.get("train_loss"), "test_loss": last.get("test_loss"),
        "test_accuracy": last.get("test_accuracy"), "wall_seconds": last.get("wall_seconds"),
        "weights_checksum": last.get("weights_checksum", ""),
    }
    # the rest of a step: waiting for the slowest rank, timers, the loss reduction
    row["other_ms"] = round(max(0.0, step_ms - row["compute_ms"] - row["comm_ms"] - row["data_ms"]), 3)
    row["comm_fraction"] = round(row["comm_ms"] / step_ms, 4) if step_ms else 0.0
    return row


def add_speedup(rows):
    for r in rows:
        base = [b for b in rows if b["kind"] == r["kind"] and b["threads"] == r["threads"]
                and b["ranks"] == 1 and b["images_per_sec"] > 0]
        if base and r["kind"] != "run":
            s = r["images_per_sec"] / base[0]["images_per_sec"]
            r["speedup"], r["efficiency"] = round(s, 4), round(s / r["ranks"], 4)
        else:
            r["speedup"] = r["efficiency"] = ""


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("paths", nargs="+")
    ap.add_argument("-o", "--out", default="-", help="runs CSV (default stdout)")
    ap.add_argument("--epochs", help="also write one row per epoch record here")
    ap.add_argument("--target", type=float, default=0.99, help="test accuracy for time to accuracy")
    ap.add_argument("--load-per-core", type=float, default=runs.LOAD_PER_CORE,
                    help="a run started above this load average per core was under load")
    a = ap.parse_args()
    rows, epochs = [], []
    for p in files_of(a.paths):
        recs, steps, hosts, balance = read_records(p)
        if not recs:
            print(f"collect: {p}: no records, skipped", file=sys.stderr)
            continue
        rows.append(summarise(p, recs))
        add_honesty(rows[-1], recs, hosts, a.target, a.load_per_core)
        add_step_view(rows[-1], steps)
        add_rank_speeds(rows[-1], balance)
        name = rows[-1]["run"]
        epochs += [dict({k: r.get(k) for k in EPOCH_FIELDS}, run=name) for r in recs]
    if not rows:
        sys.exit("collect: no metrics records found in " + " ".join(a.paths))
    rows.sort(key=lambda r: (r["kind"], r["threads"], r["ranks"], r["run"]))
    add_speedup(rows)
    out = sys.stdout if a.out == "-" else open(a.out, "w", newline="")
    w = csv.DictWriter(out, RUN_FIELDS)
    w.writeheader()
    w.writerows(rows)
    if a.epochs:
        with open(a.epochs, "w", newline="") as f:
            w = csv.DictWriter(f, EPOCH_FIELDS)
            w.writeheader()
            w.writerows(epochs)


if __name__ == "__main__":
    main()
