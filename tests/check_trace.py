#!/usr/bin/env python3
"""check_trace.py TRACE.json RANKS FIRST LAST [--buckets N] [--eval] [--checkpoint]

Checks a dptrain --trace file: valid JSON in the trace-event format; one process per rank
named "rank R (host)"; on every rank, for every step FIRST..LAST, a span "step S" holding
the batch, forward (each layer and the loss), backward (each layer), the wait and the
update, and with --buckets N that many bucket reductions, each on its bucket's track;
nothing outside the window; spans on one track properly nested; with --eval /
--checkpoint an evaluation / checkpoint span on every rank; the clock estimate within its
stated error of the true offset (ranks on rank 0's host share CLOCK_MONOTONIC). Prints a
summary; exits 1 with the reasons on failure. Standard library only."""
import argparse
import collections
import json
import sys

problems = []


def check(cond, msg):
    if not cond:
        problems.append(msg)
    return cond


def nested(spans):
    """Spans (ts, end, name) on one track must nest: a span starts after its parent
    starts and ends before it ends."""
    stack = []
    for ts, end, name in sorted(spans, key=lambda s: (s[0], -s[1])):
        while stack and ts >= stack[-1][1] - 1e-3:
            stack.pop()
        if stack and end > stack[-1][1] + 1e-3:
            return f"'{name}' [{ts}, {end}] overlaps '{stack[-1][2]}' ending at {stack[-1][1]}"
        stack.append((ts, end, name))
    return None


def check_rank(rank, events, a, layers_fwd, layers_bwd):
    steps = {e["args"]["step"]: e for e in events if e["name"].startswith("step ")}
    check(sorted(steps) == list(range(a.first, a.last + 1)),
          f"rank {rank}: steps {sorted(steps)}, expected {a.first}..{a.last}")
    main = [e for e in events if e["tid"] == 0]
    buckets = [e for e in events if e["tid"] >= 1]
    for s, st in steps.items():
        t0, t1 = st["ts"], st["ts"] + st["dur"]
        inside = collections.Counter(e["name"] for e in main
                                     if t0 <= e["ts"] and e["ts"] + e["dur"] <= t1 + 1e-3)
        for name in ["batch", "forward", "loss", "backward", "wait for gradients", "update"]:
            check(inside[name] == 1, f"rank {rank} step {s}: {inside[name]} '{name}' spans")
        for name in layers_fwd:
            check(inside[name] == 1, f"rank {rank} step {s}: {inside[name]} '{name}' spans")
        # backward runs once per group of samples the rank computes (the exact sum's unit)
        groups = {inside[name] for name in layers_bwd}
        check(len(groups) == 1 and min(groups) >= 1,
              f"rank {rank} step {s}: backward layer spans per layer {sorted(groups)}, "
              "expected one per group, the same for every layer")
        # a reduction starts in backward (or after it) and ends by the end of the wait
        red = [e for e in buckets if t0 <= e["ts"] <= t1]
        check(len(red) == a.buckets, f"rank {rank} step {s}: {len(red)} bucket spans, "
                                     f"expected {a.buckets}")
    for tid in sorted({e["tid"] for e in events}):
        bad = nested([(e["ts"], e["ts"] + e["dur"], e["name"]) for e in events if e["tid"] == tid])
        check(bad is None, f"rank {rank} track {tid}: {bad}")
    names = collections.Counter(e["name"] for e in events)
    if a.eval:
        check(names["evaluation"] >= 1, f"rank {rank}: no evaluation span")
    if a.checkpoint:
        check(names["checkpoint"] >= 1, f"rank {rank}: no checkpoint span")
    return len(steps)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("trace")
    ap.add_argument("ranks", type=int)
    ap.add_argument("first", type=int)
    ap.add_argument("last", type=int)
    ap.add_argument("--buckets", type=int, default=0)
    ap.add_argument("--eval", action="store_true")
    ap.add_argument("--checkpoint", action="store_true")
    a = ap.parse_args()
    with open(a.trace) as f:
        doc = json.load(f)  # valid JSON, or the exception says where not
    events = doc["traceEvents"]
    spans = [e for e in events if e["ph"] == "X"]
    for e in spans:
        check(all(k in e for k in ("name", "cat", "pid", "tid", "ts", "dur")), f"incomplete span {e}")
        check(e["ts"] >= 0 and e["dur"] >= 0, f"negative time in {e}")
    procs = {e["pid"]: e["args"]["name"] for e in events
             if e["ph"] == "M" and e["name"] == "process_name"}
    check(sorted(procs) == list(range(a.ranks)), f"processes {sorted(procs)}, expected {a.ranks} ranks")
    check(all(n.startswith(f"rank {p} (") for p, n in procs.items()), f"process names {procs}")
    layers_fwd = {e["name"] for e in spans if e["cat"] == "forward" and e["name"].endswith(" forward")}
    layers_bwd = {e["name"] for e in spans if e["cat"] == "backward" and e["name"].endswith(" backward")}
    check(len(layers_fwd) >= 2 and len(layers_bwd) >= 1,
          f"layer spans: {sorted(layers_fwd)} {sorted(layers_bwd)}")
    by_rank = collections.defaultdict(list)
    for e in spans:
        by_rank[e["pid"]].append(e)
    for r in range(a.ranks):
        check_rank(r, by_rank[r], a, layers_fwd, layers_bwd)
    other = doc["otherData"]
    clock = other["clock"]
    check(other["ranks"] == a.ranks and other["dropped_events"] == 0, f"otherData {other}")
    for r in range(a.ranks):
        true = clock["same_host_true_offset_us"][r]
        if true is None:
            continue
        # the true offset lies within half the shortest round trip of the estimate
        # (+1 us for reading the two clocks), for both measurements and the one applied
        for key in ("start", "end", "applied"):
            est = clock[f"{key}_offset_us" if key == "applied" else f"offset_{key}_us"][r]
            bound = clock[f"{key}_error_us" if key == "applied" else f"error_{key}_us"][r]
            check(abs(est - true) <= bound + 1.0,
                  f"rank {r}: clock estimate ({key}) {est} us, true {true} us, stated error {bound} us")
        check(abs(clock["same_host_error_us"][r] - (clock["applied_offset_us"][r] - true)) < 0.01,
              f"rank {r}: same_host_error_us is not the applied offset's error")
    print(f"{a.trace}: {len(spans)} spans, {a.ranks} ranks, steps {a.first}..{a.last}, "
          f"layers {len(layers_fwd)} forward / {len(layers_bwd)} backward, clock error "
          f"{clock['same_host_error_us']} us (stated {clock['applied_error_us']}, {clock['offset_used']})")
    if problems:
        print("\n".join(problems[:20]), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
