#!/usr/bin/env bash
# The GPU check, for the accelerator machine (one H200, Python 3.12, torch 2.11, no network,
# no fair-esm / biopython / platformdirs). Prepare here first:  bash benchmarks/fetch_wheels.sh
# Then run there (device tool: carry [".whl"]):  bash benchmarks/gpu_check.sh
# It runs the GPU tests, then a short full-size measurement: random DNABERT-S + ESM-2 3B
# weights are written there, and `predict` scores a synthetic input on cuda:0.
# Budget: under 8 minutes on an H200. Everything is printed and kept in $OUT/gpu_check.log.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu-check-out}
mkdir -p "$OUT"
exec > >(tee "$OUT/gpu_check.log") 2>&1
SECONDS=0
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD
fi
export HF_HUB_OFFLINE=1 VIRNUCPRO_OFFLINE=1 VIRNUCPRO_HOME=/tmp/vnp-home PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, sys; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.cuda.is_available())"

echo "== GPU tests (t=${SECONDS}s)"
python3 -m pytest -q -p no:cacheprovider -m gpu tests/gpu -rs || echo "GPU TESTS FAILED"

echo "== full-size random set (t=${SECONDS}s)"
python3 -m benchmarks.random_set /tmp/fullset --size "${SIZE:-full}" || exit 1
python3 -m benchmarks.synthetic_input /tmp/syn.fasta --sequences ${SEQS:-400} --length 3000

echo "== predict on ${DEVICE:-cuda:0}, float32 (t=${SECONDS}s)"
python3 -m virnucpro predict /tmp/syn.fasta -o /tmp/syn-out --models /tmp/fullset \
  --devices "${DEVICE:-cuda:0}" -q --force || exit 1
python3 - <<'PY'
import json
run = json.load(open("/tmp/syn-out/run.json"))
c, t = run["counts"], run["timings"]
frames_s = c["frames"] / t["score_s"]
print(f"frames {c['frames']}  chunks {c['chunks']}  load {t.get('load_models_s')} s  "
      f"score {t['score_s']} s  -> {frames_s:.1f} frames/s, {c['chunks'] / t['score_s']:.1f} chunks/s, "
      f"{c['bases'] / t['score_s'] * 3600 / 1e6:.1f} Mbp/h")
json.dump({"frames_per_s": frames_s, **c, **t}, open("/tmp/gpu_check_result.json", "w"))
PY
cp /tmp/gpu_check_result.json "$OUT/" 2>/dev/null
echo "== done in ${SECONDS}s"
