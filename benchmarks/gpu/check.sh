#!/usr/bin/env bash
# The GPU checks of a session with a CUDA machine, in one run of about 8 minutes:
#   1. benchmarks/run.py's CUDA stage: bf16 pairs/s of biggan-deep-256 + G_mask and the fraction of the
#      bf16 peak, then cuda_tuning.py's variants (precision, channels-last, torch.compile, CUDA graphs,
#      batch, pinned host copies, a sample job end to end);
#   2. the tests that need CUDA (the others skip or pass there too);
#   3. the small workflow (configs/test.yaml) with CUDA, then the default demo for what time is left.
#
# Prepare here (once): python benchmarks/gpu/wheels.py   (wheels into .whl, which git ignores)
# Then, on the machine, in the repository root (the device tool: carry .whl):
#   bash benchmarks/gpu/check.sh [OUT_DIR]
# Each step has its own time limit, so one that hangs leaves the others their time; the logs and the
# benchmark JSON / Markdown land in OUT_DIR (default $OUT, else benchmarks/out/gpu).
set -uo pipefail
out=${1:-${OUT:-benchmarks/out/gpu}}
mkdir -p "$out"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || { echo "installing .whl failed: run python benchmarks/gpu/wheels.py here first and carry .whl"; exit 1; }
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv | tee "$out/gpu.txt"
python3 -c 'import torch; print("torch", torch.__version__, torch.cuda.get_device_name(0))' | tee -a "$out/gpu.txt"

step() {  # step NAME LIMIT_S COMMAND...: run with a limit, log to OUT/NAME.log, report rc and seconds
    local name=$1 limit=$2 start=$SECONDS
    shift 2
    echo "=== $name (limit ${limit}s): $*"
    timeout "$limit" "$@" > "$out/$name.log" 2>&1
    local rc=$?
    echo "=== $name: rc $rc in $((SECONDS - start)) s"
    tail -n 25 "$out/$name.log"
}

step bench 240 python3 benchmarks/run.py --only cuda --out-dir "$out"
step tests 90 python3 -m pytest -q -p no:cacheprovider tests/core/test_gpu.py tests/test_benchmarks.py \
    -k "cuda or gpu or peak"
# the workflows run in copies of the checkout, so its results/ stays as it was
git ls-files -z | tar --null -T - -cf /tmp/checkout.tar
for dag in small demo; do mkdir -p "/tmp/dag-$dag" && tar -xf /tmp/checkout.tar -C "/tmp/dag-$dag"; done
step dag-small 120 bash -c 'cd /tmp/dag-small && python3 -m snakemake --cores 16 --resources gpu=1 \
    --configfile configs/test.yaml'
step dag-demo 150 bash -c 'cd /tmp/dag-demo && python3 -m snakemake --cores 16 --resources gpu=1'
echo "=== done: $out"
