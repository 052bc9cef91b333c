#!/usr/bin/env bash
# Regenerate the committed figures/06_* from a pretrained SE-ResNet-20 (no training; by default the one notebook
# 06 itself picks: the longest-trained in pretrained/, senet_lib.train.runs.pick_pretrained): notebook 06 run by
# papermill on the full CIFAR-10 test split, 50 images per class, figures written into figures/ (each with its
# provenance .json); the executed notebook and the excitation statistics go to build/figures_06/.
#
#   bash scripts/figures_06.sh [pretrained/<file>.pt]     # needs CIFAR-10 on disk (see data/README.md)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
# The picked path is written relative to the checkout when it lies inside it, so that the committed provenance
# names pretrained/<file>.pt rather than this machine's folders.
CKPT=${1:-$("$PY" -c "import os
from senet_lib.train.runs import pick_pretrained
m = pick_pretrained('se_resnet20', 'cifar10', 10)
rel = os.path.relpath(m.path) if m else ''
print(m.path if rel.startswith('..') else rel)")}
if [ -z "$CKPT" ]; then
  echo "No verified SE-ResNet-20 trained on CIFAR-10 in pretrained/ (or \$SENET_PRETRAINED_DIR): name one, bash scripts/figures_06.sh FILE.pt" >&2
  exit 2
fi
OUT=build/figures_06
mkdir -p "$OUT"
"$PY" -c "from senet_lib.checkpoint import verify_weights; verify_weights('$CKPT')"
MPLBACKEND=Agg SENET_FIGURES_DIR="$PWD/figures" SENET_RESULTS_DIR="$PWD/$OUT/results" \
SENET_CHECKPOINT_DIR="$PWD/$OUT/checkpoints" \
  "$PY" -m papermill notebooks/06_excitation_per_class.ipynb "$OUT/06_excitation_per_class.ipynb" \
    -p CHECKPOINT "$CKPT" -p DATASET cifar10 -p TRAIN_SUBSET None -p TEST_SUBSET None -p IMAGES_PER_CLASS 50
echo "figures/06_* rewritten from $CKPT; executed notebook: $OUT/06_excitation_per_class.ipynb"
