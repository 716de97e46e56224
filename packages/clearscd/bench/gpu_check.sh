#!/usr/bin/env bash
# ClearSCD GPU checks in one call (issue 18): parity through both impls on CUDA, the demo trained on CUDA (its
# checkpoint scores the approximate modes), the CUDA profile tables and the speed bench with the 4096² scene row.
# Usage (repository root, a CUDA machine): OUT=/some/dir bash packages/clearscd/bench/gpu_check.sh
set -u
export PYTHONPATH=packages/clearscd/src:shared/src PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
OUT=${OUT:-runs/gpu-clearscd}
mkdir -p "$OUT/demo" "$OUT/results"
nvidia-smi -L
$PY -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
SEMVISION_DEVICE=cuda timeout 150 $PY -m pytest -q -p no:cacheprovider packages/clearscd/tests/test_parity.py \
    packages/clearscd/tests/test_speed.py -k "not commands and not export" 2>&1 | tail -4
timeout 150 $PY -m clearscd demo --device cuda --out "$OUT/demo" 2>&1 | tail -9
timeout 90 $PY packages/clearscd/bench/profile_clearscd.py --device cuda --size 512 --rows 15 > "$OUT/profile_cuda.txt" 2>&1
grep -A3 "Self CUDA time total\|^## " "$OUT/profile_cuda.txt" | grep -v "^--$" | head -20
timeout 300 $PY packages/clearscd/bench/bench_speed.py --device cuda --sizes all --compile --repeats 20 --warmup 3 \
    --accuracy "$OUT/demo/clearscd.pt" --large 4096 --results "$OUT/results" 2>&1 | grep -v Warning
