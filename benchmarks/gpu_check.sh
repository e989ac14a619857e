#!/usr/bin/env bash
# The GPU check, for the accelerator machine (one H200, Python 3.12, torch 2.11, no network,
# no fair-esm / biopython / platformdirs). Prepare here first:  bash benchmarks/fetch_wheels.sh
# Then run there (device tool: carry [".whl"]):  bash benchmarks/gpu_check.sh
# It runs the GPU tests, then the benchmark at full size (`python -m benchmarks --size full
# --quick`): random DNABERT-S + ESM-2 3B weights are written there when the published set is
# absent, and a synthetic input is scored on cuda:0 (bfloat16 autocast, SDPA attention), beside
# the reference scripts' way and the daemon's small jobs. Before it, the host-side benchmark
# (`--size host`: the pipeline with a stand-in for the models, on this machine's CPUs).
# Budget: under 9 minutes on an H200. Everything is printed and kept in $OUT/gpu_check.log.
# Knobs for a shorter rerun: SIZE (full|mid|tiny), JOBS (small jobs per daemon mode, 3),
# BENCH_LIMIT (seconds the benchmark may take, 420), HOST_LIMIT (the host benchmark's, 150;
# 0 skips it).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu-check-out}
mkdir -p "$OUT"
exec > >(tee "$OUT/gpu_check.log") 2>&1
SECONDS=0
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
fi
# The project itself, installed (daemon/ and tui/ become virnucpro.daemon / virnucpro.tui only
# through the install's package mapping); offline: no build isolation, no index.
python3 -m pip install -q --no-index --no-deps --no-build-isolation --no-cache-dir --upgrade \
  --target /tmp/site . || exit 1
# PYTHONSAFEPATH (Python >= 3.11, inherited by the daemon the benchmark starts): the source
# folder virnucpro/ in the working directory would otherwise shadow the install, which alone
# holds virnucpro.daemon.
export PYTHONPATH=/tmp/site:$PWD PYTHONSAFEPATH=1
export HF_HUB_OFFLINE=1 VIRNUCPRO_OFFLINE=1 VIRNUCPRO_HOME=/tmp/vnp-home PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, sys; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.cuda.is_available())"

echo "== GPU tests (t=${SECONDS}s)"
python3 -m pytest -q -p no:cacheprovider --timeout=120 -m gpu tests/gpu -rs || echo "GPU TESTS FAILED"

if [ "${HOST_LIMIT:-150}" != 0 ]; then
  echo "== host-side benchmark (t=${SECONDS}s)"
  timeout -k 10 "${HOST_LIMIT:-150}" python3 -m benchmarks --size host --json "$OUT/bench-host.json" \
    || echo "HOST BENCHMARK FAILED OR CUT (rc $?)"
fi

echo "== benchmark, full size (t=${SECONDS}s)"
# Cut at BENCH_LIMIT seconds (default 420) so that the script, not the device's limit, ends it:
# the parts measured by then are printed and kept in bench-full.json.
timeout -k 10 "${BENCH_LIMIT:-420}" \
  python3 -m benchmarks --size "${SIZE:-full}" --quick --skip memory --daemon-jobs "${JOBS:-3}" \
  --json "$OUT/bench-full.json" || echo "BENCHMARK FAILED OR CUT (rc $?)"

echo "== done in ${SECONDS}s"
