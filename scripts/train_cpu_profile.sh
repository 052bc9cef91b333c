#!/usr/bin/env bash
# Train ResNet-20 and SE-ResNet-20 on full CIFAR-10 with the `cpu` profile, one run after the other,
# each with every core: SE-ResNet-20 seed 0, ResNet-20 seed 0, then seeds 1 and 2.
# Resumable: run it again after a kill and it continues the unfinished run and skips finished ones
# (finished here, or recorded in results/).
#
#   nohup bash scripts/train_cpu_profile.sh > build/cpu_profile.log 2>&1 &
#
# Each finished run writes a record to results/ (--record). Export the weights afterwards with
# scripts/export_pretrained.py. SEEDS="0" limits the seeds.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
SEEDS=${SEEDS:-"0 1 2"}

recorded_in_results() {  # MODEL SEED: print the record of a finished full-data cpu-profile run, if any
  "$PY" - "$1" "$2" <<'EOF'
import json, sys
from pathlib import Path
model, seed = sys.argv[1], int(sys.argv[2])
for path in sorted(Path("results").glob("train_*.json")):
    r = json.loads(path.read_text())
    if (r.get("profile"), r.get("seed"), (r.get("model") or {}).get("name")) != ("cpu", seed, model):
        continue
    if (r.get("dataset") or {}).get("train_size") == 50000 and r.get("epochs") == (r.get("recipe") or {}).get("epochs"):
        print(path)
        sys.exit(0)
sys.exit(1)
EOF
}
for seed in $SEEDS; do
  for model in se_resnet20 resnet20; do
    if compgen -G "checkpoints/${model}-cifar10-n50000-*-seed${seed}/record.json" > /dev/null; then
      echo "skip ${model} seed ${seed}: finished ($(ls checkpoints/${model}-cifar10-n50000-*-seed${seed}/record.json))"
      continue
    fi
    # A new checkout has no checkpoints/: a full-data cpu-profile record in results/ counts as finished too.
    if recorded=$(recorded_in_results "$model" "$seed"); then
      echo "skip ${model} seed ${seed}: recorded in ${recorded}"
      continue
    fi
    echo "=== ${model} seed ${seed} ($(date -u +%FT%TZ))"
    "$PY" -m senet_lib train --profile cpu --model "$model" --dataset cifar10 --seed "$seed" \
      --full-data --resume --record --no-progress
  done
done
