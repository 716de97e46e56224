#!/usr/bin/env bash
# Every device check for a CUDA machine, in one run (prepared; no GPU has run it yet). Runs from a source tree
# without installing (PYTHONPATH), so a machine with torch, triton, timm, opencv, scikit-image and pytest is enough:
#   1. the Triton kernels against the PyTorch reference, values, gradients and timings (shared/tests/gpu_check_kernels.py);
#   2. for each PACKAGE, its bench/gpu_check.sh (CUDA parity through both impls, the package's CUDA extras, and
#      bench_speed.py on CUDA) when it has one, else its parity and device suites on CUDA and bench_speed.py;
#   3. bench/bench_kernels.py on CUDA.
#
#   SEMVISION_FIXTURES=DIR tools/gpu_check.sh OUT_DIR [PACKAGE ...]     (default: all five packages)
#
# Parity needs the fixtures of the listed packages under $SEMVISION_FIXTURES/<package> (about 25 MB each).
set -uo pipefail
out=${1:?usage: tools/gpu_check.sh OUT_DIR [PACKAGE ...]}
shift
packages=("$@")
[ ${#packages[@]} -gt 0 ] || packages=(semstereo semaglue clearscd ssp sgdepth_pkd)
mkdir -p "$out"
export PYTHONPATH="shared/src:packages/semstereo/src:packages/semaglue/src:packages/clearscd/src:packages/ssp/src:packages/sgdepth_pkd/src${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
status=0
step() {  # step NAME LOGFILE COMMAND...: run, keep the tail in the log, remember a failure
    local name=$1 log=$2
    shift 2
    echo "== $name" | tee -a "$log"
    "$@" 2>&1 | tail -n 60 | tee -a "$log"
    [ "${PIPESTATUS[0]}" -eq 0 ] || { echo "FAILED: $name" | tee -a "$log"; status=1; }
}
nvidia-smi -L | tee "$out/device.txt"
step "Triton kernels vs PyTorch on CUDA" "$out/kernels.txt" \
    timeout 240 python3 -m pytest -q -s -p no:cacheprovider shared/tests/gpu_check_kernels.py
for pkg in "${packages[@]}"; do
    if [ -f "packages/$pkg/bench/gpu_check.sh" ]; then
        step "$pkg: bench/gpu_check.sh" "$out/$pkg.txt" env OUT="$out/$pkg" bash "packages/$pkg/bench/gpu_check.sh"
    else
        step "$pkg: parity + device suites on CUDA" "$out/$pkg.txt" env SEMVISION_DEVICE=cuda CI=true \
            timeout 300 python3 -m pytest -q -p no:cacheprovider "packages/$pkg/tests/test_parity.py" \
            "packages/$pkg/tests/test_device.py"
        step "$pkg: bench_speed.py on CUDA" "$out/$pkg.txt" \
            timeout 300 python3 "packages/$pkg/bench/bench_speed.py" --device cuda --results "$out"
    fi
done
step "bench_kernels.py on CUDA" "$out/kernels.txt" timeout 150 python3 bench/bench_kernels.py --device cuda
exit $status
