#!/usr/bin/env bash
# The GPU check, for an accelerator machine lent for one command (one H100 80 GB, 16 cores,
# Python 3.12, torch 2.11, no network, no fair-esm / biopython / platformdirs / pyzmq).
#   prepare here:   bash benchmarks/fetch_wheels.sh        (those wheels into .whl/)
#   run there:      bash benchmarks/gpu_check.sh           (device tool: carry [".whl"])
# Under 6 minutes on an H100 from a bare machine. Without a GPU (or with SIZE=tiny) the same
# steps run on the CPU with the tiny set, in seconds. Each step is its own process under
# `timeout`, its cap cut to what DEADLINE leaves, so that the script, not the device's limit,
# ends it; every step writes its figures into $OUT/gpu_check.json as it has them.
#   install    the carried wheels and the project into /tmp/site            (cap 90 s)
#   gpu-tests  pytest -m gpu tests/gpu                                      (cap 90 s)
#   set        random weights of the published sizes (in RAM when /dev/shm has room)  (cap 90 s)
#   speed      GEMM ceiling, load, frames/s through score_frames, each model alone,
#              peak memory at BATCH_TOKENS, ESM-2's attention kernel       (cap 180 s)
#   auto       the automatic batch budget under a FRACTION_GIB memory fraction   (cap 75 s)
#   agreement  AGREE_FRAMES frames in float32 against the bfloat16 scores   (cap 110 s)
#   report     the table and the PASS / FAIL / NOT RUN lines (python -m benchmarks.device_check)
# Knobs: OUT (/tmp/gpu-check-out), SIZE (auto | full | tiny), DEADLINE (350 s), STEPS (the
# steps after set: "speed auto agreement"), PASSES (3), SHARDS (3), SHARD_FRAMES (2048; tiny 32),
# AGREE_FRAMES (2048), BATCH_TOKENS (32768; CPU 4096), FRACTION_GIB (24), INSTALL (1; 0: the
# current python and its packages), GPU_TESTS (1; 0 skips them), PRECISION (the product's:
# bfloat16 on a GPU, float32 on the CPU), PYTHON (python3), WORK (/tmp/gpu-check-work).
# A rerun of what a first run missed, for instance:
#   GPU_TESTS=0 STEPS="auto agreement" bash benchmarks/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
OUT=${OUT:-/tmp/gpu-check-out}
mkdir -p "$OUT"
JSON=$OUT/gpu_check.json
export STEPS_FILE=$OUT/steps.tsv WORK=${WORK:-/tmp/gpu-check-work}
rm -rf "$JSON" "$STEPS_FILE" "$WORK"
exec > >(tee "$OUT/gpu_check.log") 2>&1
tee_pid=$!
SECONDS=0
STEPS=${STEPS:-speed auto agreement}
DEADLINE=${DEADLINE:-350}
PYTHON=${PYTHON:-python3}
export PYTHON
failed=0

# run_step NAME CAP COMMAND...: COMMAND under `timeout`, at most CAP seconds and never past
# DEADLINE less 15 s kept for the report; its seconds, exit status and cap go to STEPS_FILE.
run_step() {
  local name=$1 cap=$2 left start rc
  shift 2
  left=$((DEADLINE - SECONDS - 15))
  ((cap > left)) && cap=$left
  if ((cap < 10)); then
    echo "== $name: skipped, ${left}s left of DEADLINE=${DEADLINE}s"
    printf '%s\t0\tskipped\t%s\n' "$name" "$cap" >>"$STEPS_FILE"
    failed=1
    return 1
  fi
  echo "== $name (t=${SECONDS}s, at most ${cap}s)"
  start=$SECONDS
  timeout -k 5 "$cap" "$@"
  rc=$?
  ((rc == 124 || rc == 137)) && echo "== $name: CUT at ${cap}s (its figures so far are kept)"
  printf '%s\t%s\t%s\t%s\n' "$name" $((SECONDS - start)) "$rc" "$cap" >>"$STEPS_FILE"
  echo "== $name: rc $rc in $((SECONDS - start))s (t=${SECONDS}s)"
  ((rc == 0)) || failed=1
  return "$rc"
}

# shellcheck disable=SC2317  # run through `bash -c` under timeout
install_offline() {
  if ls .whl/*.whl >/dev/null 2>&1; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target /tmp/site .whl/*.whl || return 1
  fi
  # The project itself, installed (daemon/ and tui/ become virnucpro.daemon / virnucpro.tui
  # only through the install's package mapping); offline: no build isolation, no index.
  "$PYTHON" -m pip install -q --no-index --no-deps --no-build-isolation --no-cache-dir \
    --upgrade --target /tmp/site .
}
export -f install_offline

if [ "${INSTALL:-1}" = 1 ]; then
  run_step install 90 bash -c install_offline
  # PYTHONSAFEPATH: the source folder virnucpro/ in the working directory would otherwise
  # shadow the install, which alone holds virnucpro.daemon.
  export PYTHONPATH=/tmp/site:$PWD PYTHONSAFEPATH=1
else
  export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
fi
# The random 3B set (5.8 GB) is written and read back fastest from memory; /dev/shm only when
# it has room (a container's may be 64 MB).
if [ -z "${VIRNUCPRO_HOME:-}" ]; then
  shm_free_kb=$(df -Pk /dev/shm 2>/dev/null | awk 'NR == 2 {print $4}')
  if [ "${shm_free_kb:-0}" -gt 12000000 ]; then VIRNUCPRO_HOME=/dev/shm/vnp-home
  else VIRNUCPRO_HOME=/tmp/vnp-home; fi
fi
export VIRNUCPRO_HOME HF_HUB_OFFLINE=1 VIRNUCPRO_OFFLINE=1 PYTHONUNBUFFERED=1
command -v nvidia-smi >/dev/null &&
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader

if [ "${GPU_TESTS:-1}" = 1 ]; then
  # A cap per test where pytest-timeout is installed (the device's python may lack it).
  per_test=()
  "$PYTHON" -c "import pytest_timeout" 2>/dev/null && per_test=(--timeout=60)
  run_step gpu-tests 90 "$PYTHON" -m pytest -q -p no:cacheprovider "${per_test[@]}" -m gpu tests/gpu -rs
fi
check() { run_step "$1" "$2" "$PYTHON" -m benchmarks.device_check "$1" "$JSON"; }
wanted() { [[ " $STEPS " == *" $1 "* ]]; }
# Without a model set nothing after it can run; the others go on whatever the one before did.
if check set 90; then
  if wanted speed; then check speed 180; fi
  if wanted auto; then check auto 75; fi
  if wanted agreement; then check agreement 110; fi
fi
echo "== report (t=${SECONDS}s)"
timeout -k 5 30 "$PYTHON" -m benchmarks.device_check report "$JSON" || failed=1
echo "== done in ${SECONDS}s; figures in $JSON"
exec >&- 2>&-  # the log complete before the device tool collects $OUT
wait "$tee_pid" 2>/dev/null
exit "$failed"
