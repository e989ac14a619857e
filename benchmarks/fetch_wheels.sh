#!/usr/bin/env bash
# Download here the cp312 wheels that the accelerator machine lacks, into .whl/ (ignored by git
# through .git/info/exclude): fair-esm, biopython, platformdirs, pyzmq. See benchmarks/gpu_check.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .whl fair-esm==2.0.0 biopython platformdirs pyzmq
ls -la .whl
