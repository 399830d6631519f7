#!/usr/bin/env bash
# Lease priority 1 on the device machine, in one command (book/rerun.md):
# ResNet-18 (CIFAR stem) pre-trained on CIFAR-100 at noise 0/5/10/20/30 % x 3 seeds, spectra,
# LP / MLP / NMTune x 3 tuning seeds on CIFAR-10 and CIFAR-10-C; the bundle lands in $OUT.
#
# Here first:  bash scripts/lease_prepare.sh /work/shared/data
# Then the device tool's run, one line:
#   run(command="bash scripts/lease_priority1.sh", carry=[".data", ".whl"], timeout_s=600)
# Back here:   python -m nml lease import <files_at>/lease-<time>-cifar-p1 && git add results
#
# Sizing (H100 calibration, ../shared/DESIGN.md; `python -m nml lease plan --priorities 1`):
# about 60 GPU-minutes on one process (15 pre-trainings x ~58 s, 270 tuning units x 6-15 s,
# 30 spectra); the run measures how many processes the GPU takes (probe, ~30 s) and packs
# whatever finished 20 s before MINUTES, so a lease that cannot finish all 15 models brings
# back whole models and the next lease resumes with the rest (the plan shows what is left).
set -uo pipefail
OUT=${OUT:-/tmp/lease-out}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD NML_DATA=$PWD/.data NML_CACHE=/tmp/nml-cache PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python3 -m nml lease run --scale cifar --priorities 1 --minutes "${MINUTES:-9}" \
  --workers "${WORKERS:-auto}" --out "$OUT" 2>&1 | tee "$OUT/lease.log"
ls -la "$OUT"/lease-* 2>/dev/null
