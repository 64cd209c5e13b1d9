"""runs.py: reading dptrain metrics files (--metrics, JSON Lines), for collect.py,
report.py and project.py.

A file holds, per start of a run (a resumed run appends), one host record
({"type":"host"}: CPU model, cores, load averages as the run started; files from before
it have none), then epoch records ({"type":"epoch"}, or no type in older files) and step
records ({"type":"step"}, --log-every), and where the ranks balanced (or ran with --balance
off) a last balance record ({"type":"balance"}: each rank's samples and own samples per
second over the segment; "every": 0 where they did not balance).

Time to accuracy: the first epoch record whose test accuracy is at least the target; its
epochs (a partial record counts its fraction of an epoch) and its wall time since
training started (training plus the evaluation of every epoch so far, without the
start-up that loads the data). A resumed run's wall clock starts again at zero: the
times of its segments are added up. Under load: the 1-minute load average as any
segment of the run started was above `per_core` (0.5) per core; unknown (no host record)
is not quiet either. Standard library only."""
import json

LOAD_PER_CORE = 0.5


class MetricsError(Exception):
    pass


def read(path):
    """{"epochs": the last record of each epoch (in epoch order), "steps": the last record of
    each step, "hosts": every host record in file order, "walls": cumulative wall seconds
    of each epoch record (resumed segments added up), "balance": the last segment's balance
    record, or None (a resumed run's segments may run on other ranks, or not balance)}."""
    recs = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                recs.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise MetricsError(f"{path}:{n}: not JSON ({e.msg}): {line[:60]}")
    by_epoch, by_step, hosts, balance = {}, {}, [], None
    offset, last_wall = 0.0, 0.0
    for r in recs:
        kind = r.get("type", "epoch")
        if kind == "host":
            hosts.append(r)
            balance = None  # a new segment: only its own balance record counts
            offset += last_wall  # a new segment: its wall clock starts at zero
            last_wall = 0.0
        elif kind == "epoch":
            last_wall = float(r.get("wall_seconds") or 0.0)
            by_epoch[r["epoch"]] = dict(r, cumulative_wall=offset + last_wall)
        elif kind == "step":
            by_step[r["step"]] = r
        elif kind == "balance":
            balance = r
    return {"epochs": [by_epoch[k] for k in sorted(by_epoch)],
            "steps": [by_step[k] for k in sorted(by_step)], "hosts": hosts,
            "balance": balance}


def steps_per_epoch(epochs):
    return next((r["step"] / r["epoch"] for r in epochs if not r.get("partial") and r["epoch"]), None)


def time_to_accuracy(epochs, target):
    """(epochs, seconds) to the first test accuracy >= target, or None (not reached)."""
    spe = steps_per_epoch(epochs)
    for r in epochs:
        acc = r.get("test_accuracy")
        if acc is not None and float(acc) >= target:
            e = r["epoch"]
            if r.get("partial") and spe:
                e = round(r["step"] / spe, 3)
            return e, round(float(r["cumulative_wall"]), 3)
    return None


def host_summary(hosts, per_core=LOAD_PER_CORE):
    """The machine and its load at the starts of a run: cpu, cores, load (the highest
    1-minute load average of its starts, None if unknown), under_load (True, False, or
    None when unknown)."""
    if not hosts:
        return {"cpu": "", "cores": "", "load": None, "under_load": None}
    loads = [h["load_start"][0] for h in hosts if h.get("load_start")]
    cores = hosts[-1].get("cores") or 0
    load = max(loads) if loads else None
    under = None if load is None or not cores else load > per_core * cores
    return {"cpu": hosts[-1].get("cpu_model", ""), "cores": cores, "load": load, "under_load": under}
