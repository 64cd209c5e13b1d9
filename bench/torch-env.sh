# shellcheck shell=bash
# torch-env.sh: sourced by the benchmarks that run PyTorch or OpenBLAS; torch_at_its_best
# sets what they need to run at their best, and says what it set:
#   OPENBLAS_NUM_THREADS=1 (PyTorch keeps its own threads; two pools fighting cost 20-40%),
#   glibc's fixed mmap threshold (no page faults from allocation churn), and
#   OPENBLAS_CORETYPE where Debian's OpenBLAS does not know the CPU and falls back to its
#   generic SSE3 kernels (it reports "Core: Prescott"; seen on Intel Emerald Rapids, where
#   PyTorch's nopool step then ran at 530-575 images/s against 690-990 with SkylakeX):
#   SkylakeX where the CPU has AVX-512 (F, CD, BW, DQ, VL), Haswell where it has AVX2 + FMA.
# OpenBLAS tuning inherited from the environment (OPENBLAS_CORETYPE, OPENBLAS_L2_SIZE) is set
# aside and named: a machine that exports OPENBLAS_CORETYPE=Haswell for every process (seen
# on an AMD Zen 5, whose OpenBLAS detects Cooperlake on its own) ran PyTorch's reference step
# at 3,081-4,275 images/s against 4,337-4,472, and nopool at 1,038-1,336 against
# 1,401-1,565. BENCH_KEEP_OPENBLAS_ENV=1 keeps it instead. What it chooses is exported
# with BENCH_OPENBLAS_CHOSEN=1, so a benchmark started by another (run_all.sh) keeps its
# caller's choice instead of setting it aside as inherited and importing torch again.
# Needs DP_PYTHON or /usr/bin/python3 with torch, and fails with a message naming the Python
# where it cannot import it.
torch_at_its_best() {
  export OPENBLAS_NUM_THREADS=1
  export GLIBC_TUNABLES=glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=4294967295
  if [[ -n ${BENCH_OPENBLAS_CHOSEN:-} ]]; then
    echo "== OpenBLAS core: ${OPENBLAS_CORETYPE:-as OpenBLAS detects it} (chosen by the calling benchmark)"
    return
  fi
  local tuning=(OPENBLAS_CORETYPE OPENBLAS_L2_SIZE) inherited="" v
  for v in "${tuning[@]}"; do
    [[ -n ${!v:-} ]] && inherited+=" $v=${!v}"
  done
  if [[ -n $inherited ]]; then
    if [[ -n ${BENCH_KEEP_OPENBLAS_ENV:-} ]]; then
      echo "== OpenBLAS core: kept from the environment (BENCH_KEEP_OPENBLAS_ENV):$inherited"
      export BENCH_OPENBLAS_CHOSEN=1
      return
    fi
    unset "${tuning[@]}"
    echo "== OpenBLAS: set aside from the environment:$inherited (BENCH_KEEP_OPENBLAS_ENV=1 keeps it)"
  fi
  local py=${DP_PYTHON:-/usr/bin/python3} out core want=""
  if ! out=$(OPENBLAS_VERBOSE=2 "$py" -c 'import torch' 2>&1); then
    echo "bench: $py cannot import torch (${out##*$'\n'}): install python3-torch" \
         "(scripts/setup.sh --with-test-deps) or name a Python that has it in DP_PYTHON" >&2
    return 1
  fi
  core=$(sed -n 's/^Core: //p' <<< "$out" | head -1)
  if [[ $core == Prescott ]]; then
    if cpu_has avx512f avx512cd avx512bw avx512dq avx512vl; then
      want=SkylakeX
    elif cpu_has avx2 fma; then
      want=Haswell
    fi
  fi
  if [[ -n $want ]]; then
    export OPENBLAS_CORETYPE=$want
    echo "== OpenBLAS core: this OpenBLAS does not know the CPU (Core: Prescott, its generic kernels); OPENBLAS_CORETYPE=$want"
  else
    echo "== OpenBLAS core: ${core:-unknown} (as OpenBLAS detects it)"
  fi
  export BENCH_OPENBLAS_CHOSEN=1
}

# cpu_has FLAG...: whether /proc/cpuinfo lists every FLAG for the first CPU.
cpu_has() {
  local flags f
  flags=" $(grep -m1 '^flags' /proc/cpuinfo | cut -d: -f2) "
  for f in "$@"; do
    [[ $flags == *" $f "* ]] || return 1
  done
}
