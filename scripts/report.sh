#!/usr/bin/env bash
# report.sh: CSV, plots and the one-page report for a directory of runs.
#   scripts/report.sh OUTDIR [report.py options]   (OUTDIR/runs/*.jsonl, from scripts/sweep.sh
#                                                   or jobs/sweep.sbatch)
# report.py options add sections: --projection DIR, --shaped DIR, --lr-scaling CSV,
# --notes FILE; --force publishes runs taken under load (marked), as DPTRAIN_FORCE_PUBLISH=1
# does. TARGET (default 0.99) is the test accuracy of the time-to-accuracy columns;
# LOAD_PER_CORE (default 0.5) the load average per core above which a run was under load.
# Writes OUTDIR/sweep.csv, OUTDIR/epochs.csv, OUTDIR/plots/*.png and, unless a run was
# under load (load average above 0.5 per core as it started, or unknown) and nothing
# forces it, OUTDIR/report.md; refused: exit status 3, the runs named, no report.md.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${1:?usage: report.sh OUTDIR}
[[ -d $out/runs ]] || { echo "report: $out/runs: no such directory" >&2; exit 1; }
py=python3; [[ -x /usr/bin/python3 ]] && py=/usr/bin/python3
$py "$repo/scripts/collect.py" "$out/runs" -o "$out/sweep.csv" --epochs "$out/epochs.csv" \
  --target "${TARGET:-0.99}" --load-per-core "${LOAD_PER_CORE:-0.5}"
$py "$repo/scripts/plot.py" sweep "$out/sweep.csv" "$out/plots" > /dev/null
# training curves of the largest strong-scaling run (any run: scripts/plot.py curves)
big=$(ls "$out"/runs/strong-r*-t*.jsonl 2> /dev/null | sort -t r -k3 -n | tail -1 || true)
# (only when it has several records besides its host records: a --steps run has one)
if [[ -n $big && $(grep -vc '"type":"host"' "$big") -gt 1 ]]; then
  $py "$repo/scripts/plot.py" curves "$out/plots" "$big" > /dev/null
fi
rm -f "$out/report.md"
$py "$repo/scripts/report.py" "$out" -o "$out/report.md" --load-per-core "${LOAD_PER_CORE:-0.5}" "${@:2}"
echo "report: $out/sweep.csv, $out/plots/, $out/report.md"
