#!/usr/bin/env bash
# SemStereo GPU checks in one call (issue 18), prepared for a session that has a CUDA machine (not run yet):
# parity through both impls on CUDA, then the speed bench (128², 512², 1024²; reference, fast, bf16) on CUDA.
# Usage (repository root): OUT=/some/dir bash packages/semstereo/bench/gpu_check.sh
set -u
export PYTHONPATH=packages/semstereo/src:shared/src PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
OUT=${OUT:-runs/gpu-semstereo}
mkdir -p "$OUT/results"
nvidia-smi -L
$PY -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
SEMVISION_DEVICE=cuda timeout 200 $PY -m pytest -q -p no:cacheprovider packages/semstereo/tests/test_parity.py 2>&1 | tail -4
timeout 300 $PY packages/semstereo/bench/bench_speed.py --device cuda --sizes all --repeats 20 --warmup 3 \
    --results "$OUT/results" 2>&1 | grep -v Warning
