#!/usr/bin/env bash
# Prepare a GPU lease on this machine (book/rerun.md): put what the device machine lacks into
# gitignored folders that the lease command carries, and measure the travelling tree.
#   .data/  the CIFAR-10 and CIFAR-100 tarballs and SHA256SUMS (priority 1 needs no others)
#   .whl/   wheels of what nml imports on the lease path and the device image lacks:
#           cleanlab (noise generation) and its dependency termcolor (open_clip, papermill,
#           plotly are not imported by `python -m nml lease run` at priorities 1-3)
# Usage: bash scripts/lease_prepare.sh [DATA_DIR]   (default: $NML_DATA)
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-${NML_DATA:?set NML_DATA or pass the data folder}}
mkdir -p .data .whl
cp "$data"/cifar10.tar.xz "$data"/cifar100.tar.xz "$data"/SHA256SUMS .data/
if ! ls .whl/cleanlab-2.9.0-*.whl >/dev/null 2>&1; then
  python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 \
    -d .whl cleanlab==2.9.0 termcolor==3.3.0
fi
tracked=$(git ls-files -z | xargs -0 du -cb | tail -1 | cut -f1)
untracked=$( (git ls-files -z --others --exclude-standard | xargs -0 -r du -cb | tail -1 | cut -f1) || echo 0)
carried=$(du -cb .data .whl | tail -1 | cut -f1)
total=$((tracked + ${untracked:-0} + carried))
printf 'tracked %.1f MiB + untracked %.1f MiB + carried (.data .whl) %.1f MiB = %.1f MiB of 64 MiB\n' \
  "$(echo "$tracked/1048576" | bc -l)" "$(echo "${untracked:-0}/1048576" | bc -l)" \
  "$(echo "$carried/1048576" | bc -l)" "$(echo "$total/1048576" | bc -l)"
[ "$total" -lt $((64 * 1048576)) ] || { echo "over 64 MiB: compact results/ (scripts/compact_results.py)"; exit 1; }
