#!/usr/bin/env bash
# Regenerate the committed figures/06_* from the pretrained SE-ResNet-20 (no training): notebook 06 run by
# papermill on the full CIFAR-10 test split, 50 images per class, figures written into figures/ (each with its
# provenance .json); the executed notebook and the excitation statistics go to build/figures_06/.
#
#   bash scripts/figures_06.sh [pretrained/<file>.pt]     # needs CIFAR-10 on disk (see data/README.md)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
CKPT=${1:-pretrained/se_resnet20_cifar10_40ep_seed0.pt}
OUT=build/figures_06
mkdir -p "$OUT"
"$PY" -c "from senet_lib.checkpoint import verify_weights; verify_weights('$CKPT')"
MPLBACKEND=Agg SENET_FIGURES_DIR="$PWD/figures" SENET_RESULTS_DIR="$PWD/$OUT/results" \
SENET_CHECKPOINT_DIR="$PWD/$OUT/checkpoints" \
  "$PY" -m papermill notebooks/06_excitation_per_class.ipynb "$OUT/06_excitation_per_class.ipynb" \
    -p CHECKPOINT "$CKPT" -p DATASET cifar10 -p TRAIN_SUBSET None -p TEST_SUBSET None -p IMAGES_PER_CLASS 50
echo "figures/06_* rewritten from $CKPT; executed notebook: $OUT/06_excitation_per_class.ipynb"
