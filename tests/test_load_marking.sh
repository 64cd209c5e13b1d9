#!/usr/bin/env bash
# Honest results on hand-made records: the report marks runs that started under load (more
# than 0.5 per core) and refuses to write report.md for them (status 3, the runs named)
# unless forced (--force, DPTRAIN_FORCE_PUBLISH=1); a run without a host record counts as
# not quiet; all quiet runs publish without a mark. scripts/sweep.sh publishes its staging
# directory only when the report is written.
source "$(dirname "$0")/lib.sh"
if ! command -v gnuplot > /dev/null; then
  skip_test "gnuplot not installed (apt-get install gnuplot-nox)"
fi
S=$DP_SOURCE_DIR/scripts
cd "$WORK"
run() { # DIR NAME RANKS LOAD1|none CORES
  local f=$1/runs/$2.jsonl
  mkdir -p "$1/runs"
  [[ $4 == none ]] || printf '{"type":"host","time":"t","host":"h","cpu_model":"Test CPU","cores":%d,"load_start":[%s,0,0]}\n' "$5" "$4" >> "$f"
  printf '{"type":"epoch","epoch":1,"step":100,"partial":true,"lr":0.05,"train_loss":0.5,"train_accuracy":0.8,"test_loss":0.4,"test_accuracy":0.9,"images_per_sec":1000,"seconds":10,"comm_seconds":0,"data_seconds":0,"compute_seconds":10,"eval_seconds":0.1,"wall_seconds":10,"ranks":%d,"threads":1,"global_batch":100,"weights_checksum":"0123456789abcdef"}\n' "$3" >> "$f"
}
# quiet: 0.9 on 2 cores is 0.45 per core; 8.0 on 16 cores is exactly 0.5 (not above)
run quiet strong-r1-t1 1 0.9 2
run quiet strong-r2-t1 2 8.0 16
"$S/report.sh" quiet > quiet.out 2>&1 || { cat quiet.out; fail "report refused quiet runs"; }
expect_in quiet/report.md "| strong-r2-t1 | 2 | 1 | 100 |"
expect_in quiet/report.md "| 0.90 |"
grep -qF -e "**Taken under load" -e " UNDER LOAD |" quiet/report.md && fail "quiet runs marked as under load"
expect_in quiet/report.md "2 cores (Test CPU); 16 cores (Test CPU)"

# one run at 1.2 on 2 cores (0.6 per core), one without a host record: refused
run busy strong-r1-t1 1 0.9 2
run busy strong-r2-t1 2 1.2 2
run busy strong-r4-t1 4 none 2
set +e; "$S/report.sh" busy > busy.out 2>&1; rc=$?; set -e
cat busy.out
[[ $rc == 3 ]] || fail "report under load: status $rc, expected 3"
[[ ! -e busy/report.md ]] || fail "report.md written for runs under load"
expect_in busy.out "2 of 3 runs were not taken on a quiet machine"
expect_in busy.out "strong-r2-t1: load 1.20 on 2 cores"
expect_in busy.out "strong-r4-t1: load unknown (no host record)"
[[ -s busy/sweep.csv ]] || fail "the CSV should still be there (only publishing is refused)"
# forced: written, and marked at the top and in the table
"$S/report.sh" busy --force > forced.out 2>&1 || { cat forced.out; fail "--force did not publish"; }
expect_in busy/report.md "**Taken under load: 2 of 3 runs**"
expect_in busy/report.md "| 1.20 UNDER LOAD |"
expect_in busy/report.md "| unknown |"
rm busy/report.md
DPTRAIN_FORCE_PUBLISH=1 "$S/report.sh" busy > env.out 2>&1 || { cat env.out; fail "DPTRAIN_FORCE_PUBLISH=1 did not publish"; }
expect_in busy/report.md "**Taken under load: 2 of 3 runs**"

# sweep.sh: runs under load are not published (OUTDIR untouched, the runs staged) unless
# forced. LOAD_PER_CORE sets the line: at -1 every load is above it, at 1000 none is.
"$TOOLS/make_dataset" synth train 80 5 1 > /dev/null
mkdir -p pub/runs && echo old > pub/runs/marker
export SWEEP_RANKS=1 SWEEP_THREADS=1 SWEEP_STEPS=2 SWEEP_STRONG_BATCH=20 SWEEP_SETTLE=0 \
  SWEEP_ARGS="--train $WORK/train --test none"
set +e; LOAD_PER_CORE=-1 "$S/sweep.sh" strong pub > sweep.out 2>&1; rc=$?; set -e
[[ $rc == 3 ]] || { cat sweep.out; fail "sweep under load: status $rc, expected 3"; }
[[ -e pub/runs/marker && ! -e pub/report.md ]] || fail "a refused sweep changed pub/"
[[ -s pub.staging/runs/strong-r1-t1.jsonl ]] || fail "a refused sweep should leave its runs in pub.staging"
expect_in sweep.out "not published to"
LOAD_PER_CORE=-1 "$S/sweep.sh" --force strong pub > forced-sweep.out 2>&1 || { cat forced-sweep.out; fail "sweep --force failed"; }
expect_in pub/report.md "**Taken under load: 1 of 1 runs**"
[[ ! -e pub/runs/marker && -s pub/runs/strong-r1-t1.jsonl && ! -e pub.staging ]] \
  || fail "a published sweep replaces OUTDIR with its staging directory"
LOAD_PER_CORE=1000 "$S/sweep.sh" strong pub > quiet-sweep.out 2>&1 || { cat quiet-sweep.out; fail "a quiet sweep was refused"; }
grep -qF -e "**Taken under load" -e " UNDER LOAD |" pub/report.md && fail "a quiet sweep was marked"
# a directory that is not a sweep's is never replaced
mkdir -p notasweep && echo keep > notasweep/file
set +e; "$S/sweep.sh" --force strong notasweep > nas.out 2>&1; rc=$?; set -e
[[ $rc == 2 && -e notasweep/file ]] || { cat nas.out; fail "sweep.sh would replace a directory without runs/ (status $rc)"; }
echo "load marking: ok"
