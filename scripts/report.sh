#!/usr/bin/env bash
# report.sh: CSV, plots and the one-page report for a directory of runs.
#   scripts/report.sh OUTDIR [report.py options]   (OUTDIR/runs/*.jsonl, from scripts/sweep.sh
#                                                   or jobs/sweep.sbatch)
# report.py options add sections: --projection DIR, --lr-scaling CSV, --notes FILE.
# Writes OUTDIR/sweep.csv, OUTDIR/epochs.csv, OUTDIR/plots/*.png, OUTDIR/report.md.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${1:?usage: report.sh OUTDIR}
[[ -d $out/runs ]] || { echo "report: $out/runs: no such directory" >&2; exit 1; }
py=python3; [[ -x /usr/bin/python3 ]] && py=/usr/bin/python3
$py "$repo/scripts/collect.py" "$out/runs" -o "$out/sweep.csv" --epochs "$out/epochs.csv"
$py "$repo/scripts/plot.py" sweep "$out/sweep.csv" "$out/plots" > /dev/null
# training curves of the largest strong-scaling run (any run: scripts/plot.py curves)
big=$(ls "$out"/runs/strong-r*-t*.jsonl 2> /dev/null | sort -t r -k3 -n | tail -1 || true)
# (only when it has several records: a --steps run has one)
if [[ -n $big && $(grep -c . "$big") -gt 1 ]]; then
  $py "$repo/scripts/plot.py" curves "$out/plots" "$big" > /dev/null
fi
$py "$repo/scripts/report.py" "$out" "${@:2}" > "$out/report.md"
echo "report: $out/sweep.csv, $out/plots/, $out/report.md"
