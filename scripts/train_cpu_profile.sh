#!/usr/bin/env bash
# Train ResNet-20 and SE-ResNet-20 on full CIFAR-10 with the `cpu` profile, one run after the other,
# each with every core: SE-ResNet-20 seed 0, ResNet-20 seed 0, then seeds 1 and 2.
# Resumable: run it again after a kill and it continues the unfinished run and skips finished ones
# (finished here, or recorded in results/).
#
#   nohup bash scripts/train_cpu_profile.sh > build/cpu_profile.log 2>&1 &
#
# Each finished run writes a record to the committed results/ (--record --results-dir results). Export the weights afterwards with
# scripts/export_pretrained.py. SEEDS="0" limits the seeds; EPOCHS=120 trains the same recipe over a
# longer schedule (a run of another length is a different run: it neither skips nor resumes this one).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
SEEDS=${SEEDS:-"0 1 2"}
EPOCHS=${EPOCHS:-40}  # the cpu profile's length

finished() {  # MODEL SEED EPOCHS: print the record of a finished full-data cpu-profile run of EPOCHS, if any
  "$PY" - "$1" "$2" "$3" <<'PYEOF'
import json, sys
from pathlib import Path
model, seed, epochs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
# a run folder's record (this checkout trained it) or a committed record (a new checkout has no checkpoints/)
paths = sorted(Path("checkpoints").glob("*/record.json")) + sorted(Path("results").glob("train_*.json"))
for path in paths:
    r = json.loads(path.read_text())
    if (r.get("profile"), r.get("seed"), (r.get("model") or {}).get("name")) != ("cpu", seed, model):
        continue
    if (r.get("dataset") or {}).get("train_size") == 50000 and r.get("epochs") == (r.get("recipe") or {}).get("epochs") == epochs:
        print(path)
        sys.exit(0)
sys.exit(1)
PYEOF
}
for seed in $SEEDS; do
  for model in se_resnet20 resnet20; do
    if record=$(finished "$model" "$seed" "$EPOCHS"); then
      echo "skip ${model} seed ${seed} (${EPOCHS} epochs): finished, ${record}"
      continue
    fi
    echo "=== ${model} seed ${seed}, ${EPOCHS} epochs ($(date -u +%FT%TZ))"
    "$PY" -m senet_lib train --profile cpu --epochs "$EPOCHS" --model "$model" --dataset cifar10 --seed "$seed" \
      --full-data --resume --record --results-dir results --no-progress
  done
done
