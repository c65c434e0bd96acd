#!/usr/bin/env bash
# GPU suite: ours (float32, bfloat16, float16) and the PyTorch reference's training step, side by side.
#
#   SG2ADA=/path/to/stylegan2-ada-pytorch bash benchmarks/gpu_suite.sh           # one GPU, ~8 min
#   SG2ADA=/path/to/stylegan2-ada-pytorch bash benchmarks/gpu_suite.sh --cpu-smoke  # CPU, tiny, < 5 min
#   bash benchmarks/gpu_suite.sh --cpu-smoke                                     # ours only (no $SG2ADA)
#
# Prints, per resolution (256 and 512; --cpu-smoke: 16 with tiny networks), sec/kimg,
# images/s, peak memory, G images/s and cold compile time of ours in float32 / bfloat16 / float16
# and of the reference (its networks, StyleGAN2Loss and AugmentPipe from $SG2ADA, driven like its
# training_loop, float16 in the 4 highest resolutions as train.py sets for every cfg), at the
# reference's `--cfg=auto --gpus=1` settings (see benchmarks/suite_train.py). Each measurement runs
# in its own process (peak memory is per process) and appends a JSON line to $SUITE_OUT
# (default: a new temporary directory's results.jsonl, printed at the end).
#
# Needs (no internet, no TensorFlow, no TFDS: the data is synthetic): this checkout; python with jax
# (CUDA build), flax, optax, numpy and scipy (a jax dependency; the reference's augment imports it),
# torch (CUDA build) for the reference. No other wheel is needed: our side imports only
# jax/flax/optax/numpy, and the two modules the reference imports but does not use here,
# `requests` and `distutils` (gone in Python 3.12), are replaced by placeholders when missing
# (pure-Python wheels to install instead if wanted: requests, urllib3, idna, certifi,
# charset-normalizer; setuptools for distutils). The reference's custom CUDA ops are compiled by
# torch on first use (ninja + CUDA toolkit); without them it runs its slower reference
# implementations, and the table says so.
#
# Time: the 6 compiles of ours are done first, $SUITE_JOBS (default 3) processes at a time, into a
# persistent compilation cache that the timed runs then reuse; each timed run is 16 steps (one
# lazy-regularisation cycle) after a warm-up step. Set SUITE_RES to change the resolutions.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$HERE/.."
PY=${PYTHON:-python}
SMOKE=()
if [ "${1:-}" = "--cpu-smoke" ]; then
  SMOKE=(--smoke)
  export JAX_PLATFORMS=cpu CUDA_VISIBLE_DEVICES=""
  RES=${SUITE_RES:-16}; STEPS=${SUITE_STEPS:-2}; JOBS=${SUITE_JOBS:-1}
elif [ -n "${1:-}" ]; then
  echo "gpu_suite.sh: error: unknown argument '$1' (use --cpu-smoke or nothing)" >&2; exit 2
else
  RES=${SUITE_RES:-"256 512"}; STEPS=${SUITE_STEPS:-16}; JOBS=${SUITE_JOBS:-3}
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" TF_CPP_MIN_LOG_LEVEL=2
# Memory on demand, not 75% preallocated: peak memory is measured, and compiles run side by side.
export XLA_PYTHON_CLIENT_PREALLOCATE=false
WORK=$(mktemp -d)
OUT=${SUITE_OUT:-$WORK/results.jsonl}
export SUITE_COMPILE_CACHE=$WORK/jax_cache   # fresh: the compile times below are cold
PRECISIONS="float32 bfloat16 float16"
start=$(date +%s)
log() { echo "[gpu_suite $(( $(date +%s) - start )) s] $*" >&2; }

log "compiling ours (${JOBS} at a time): resolutions $RES, precisions $PRECISIONS"
pids=()
for res in $RES; do
  for p in $PRECISIONS; do
    "$PY" benchmarks/suite_train.py ours --res "$res" --precision "$p" --warm-only --out "$OUT" "${SMOKE[@]}" \
      >"$WORK/warm_${res}_$p.log" 2>&1 &
    pids+=($!)
    while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do sleep 1; done
  done
done
for pid in "${pids[@]}"; do
  wait "$pid" || log "a compile-only run failed (its timed run compiles again); see $WORK/warm_*.log"
done

fail=0
for res in $RES; do
  if [ -n "${SG2ADA:-}" ]; then
    log "reference at $res"
    "$PY" benchmarks/suite_train.py reference --res "$res" --steps "$STEPS" --out "$OUT" "${SMOKE[@]}" \
      2>"$WORK/ref_$res.log" || { log "reference at $res failed: $(tail -1 "$WORK/ref_$res.log")"; fail=1; }
  fi
  for p in $PRECISIONS; do
    log "ours $p at $res"
    "$PY" benchmarks/suite_train.py ours --res "$res" --precision "$p" --steps "$STEPS" --out "$OUT" "${SMOKE[@]}" \
      2>"$WORK/ours_${res}_$p.log" || { log "ours $p at $res failed: $(tail -1 "$WORK/ours_${res}_$p.log")"; fail=1; }
  done
done
[ -n "${SG2ADA:-}" ] || log "SG2ADA is not set: the reference was not run"
"$PY" benchmarks/suite_train.py table "$OUT"
log "done; results in $OUT"
exit $fail
