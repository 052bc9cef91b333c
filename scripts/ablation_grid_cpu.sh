#!/usr/bin/env bash
# The paper's ablation grid (Tables 10-16) for SE-ResNet-20 on a CPU, short enough for an afternoon: the `cpu`
# recipe cut to 10 epochs on a class-balanced 10,000-image subset of CIFAR-10's training split, tested on the full
# test split, seeds 0 and 1, the plain ResNet-20 on the same seeds. Finished runs are loaded, stopped ones resumed
# (run it again after an interruption); one record per run goes to results/ablation_<grid>_<run>.json, which
# notebook 07 reads. Two runs at a time, one torch thread each.
#
#   bash scripts/ablation_grid_cpu.sh [grid ...]      # default: every grid; needs CIFAR-10 in data/
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
GRIDS=("$@")
[ ${#GRIDS[@]} -gt 0 ] || GRIDS=(reduction squeeze gate stages placement inner nosqueeze)
for grid in "${GRIDS[@]}"; do
  OMP_NUM_THREADS=1 "$PY" -m senet_lib ablate "$grid" --profile cpu --dataset cifar10 --data-dir data \
    --no-download --train-subset 10000 --epochs 10 --eval-every 5 --seeds 0 1 --workers 2 \
    --save-dir checkpoints/grid --results-dir results --no-progress
done
