#!/usr/bin/env bash
# Download here the cp312 wheels that the accelerator machine lacks (it has no network), into
# .whl/ (ignored by git; the device tool carries it with carry [".whl"]): fair-esm, biopython,
# platformdirs, pyzmq. benchmarks/gpu_check.sh installs them there. Works in a worktree too.
set -euo pipefail
cd "$(dirname "$0")/.."
git check-ignore -q .whl/x.whl || echo "warning: .whl/ is not ignored by git here" >&2
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .whl fair-esm==2.0.0 biopython platformdirs pyzmq
ls -la .whl
