#!/usr/bin/env bash
# The CUDA checks of issue 18 in one short run (device machine: python3 with torch): the CUDA-graph fast-path test,
# the bench (reference / fast / approximate rows at every size) and the CUDA profile of the paper size.
# Usage: bash packages/sgdepth_pkd/bench/gpu_check.sh [--accuracy CKPT]   (results and logs under $OUT)
set -o pipefail
export PYTHONPATH=shared/src:packages/sgdepth_pkd/src PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/sgdepth_gpu}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
timeout 60 python3 -m pytest -q -x -p no:cacheprovider packages/sgdepth_pkd/tests/test_fast.py -k cuda 2>&1 \
  | tail -3 | tee "$OUT/tests.txt"
timeout 90 python3 packages/sgdepth_pkd/bench/bench_speed.py --device cuda --sizes all --repeats 10 --warmup 2 \
  --results "$OUT" "$@" 2>&1 | tee "$OUT/bench.txt"
timeout 40 python3 packages/sgdepth_pkd/bench/profile_sgdepth.py --device cuda --rows 12 2>&1 | tee "$OUT/profile_cuda.txt"
