#!/usr/bin/env bash
# Does bf16 cost accuracy? SE-ResNet-20 with the `cpu` profile's recipe, shortened to 8 epochs on a
# class-balanced 10,000-image subset of CIFAR-10 (full test split), trained in bf16 and in fp32 with the
# same seeds. Records go to results/ and docs/results.md shows them side by side
# (scripts/build_results.py). Resumable; runs that are finished or recorded in results/ are skipped.
#
#   nohup bash scripts/compare_precision_cpu.sh > build/compare_precision.log 2>&1 &
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
SEEDS=${SEEDS:-"0 1"}
PRECISIONS=${PRECISIONS:-"bf16 fp32"}
for seed in $SEEDS; do
  for precision in $PRECISIONS; do
    run="precision-${precision}-se_resnet20-cifar10-n10000-e8-seed${seed}"
    # Finished here, or recorded in results/ by any earlier machine (a new checkout has no checkpoints/).
    if [ -f "checkpoints/${run}/record.json" ] || grep -qsl "\"run_name\": \"${run}\"" results/*.json; then
      echo "skip ${run}: finished"
      continue
    fi
    echo "=== ${run} ($(date -u +%FT%TZ))"
    "$PY" -m senet_lib train --profile cpu --model se_resnet20 --dataset cifar10 --seed "$seed" \
      --train-subset 10000 --epochs 8 --precision "$precision" --run-name "$run" \
      --resume --record --results-dir results --no-progress
  done
done
