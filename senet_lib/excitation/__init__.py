"""Per-class excitation statistics of a trained SE network (paper §7.2, Fig. 6 and Fig. 7).

The paper feeds 50 validation images of each class through SE-ResNet-50 and plots, per SE
block, the mean excitation ``s`` of each class over 50 sampled channels (Fig. 6) and, within one
class, the mean ± standard deviation (Fig. 7). This module computes those numbers:

* :class:`ExcitationRecorder` hooks the gate of every SE block (or the chosen ones) and
  accumulates, per class, the count, mean and spread of ``s`` while batches stream through the
  model. It keeps running float64 moments (Chan et al.'s pairwise update of Welford's
  algorithm), never the activations themselves, so memory does not grow with the data.
* :func:`class_excitations` samples ``images_per_class`` images of each class and returns an
  :class:`ExcitationStats`: plain NumPy arrays that save to and load from ``.npz`` or ``.pt``.
* Analysis numbers: :func:`class_specificity`, :func:`saturation`, :func:`similarity`,
  :func:`summary_table`, and the paper's panel choice :func:`paper_blocks`.
* Channel importance: :func:`top_channels`, :func:`accuracy_with_channels_off` and
  :func:`knockout_comparison` (switch off the most excited channels of a class vs random ones,
  with a p-value over the random draws).
* Against chance (:mod:`.significance`): :func:`class_separation` in units of ``s``, a label-shuffle
  test and a bootstrap of it per block (:func:`separation_report`), and the same network untrained
  as a reference (:func:`untrained_like`).
* Dead bottlenecks: :func:`hidden_unit_activity`, how often each hidden unit of an excitation passes
  its ReLU (a block with ``C/r = 1`` whose one unit never does is frozen).

Blocks are named as in the paper, ``SE_<stage>_<block>`` with stages numbered as in Table 1
(conv2_x is stage 2) and blocks counted from 1. The recorder also finds the SE modules of timm and
torchvision networks (:func:`find_blocks`), named by module path where the paper's name is unknown.
"""

from ..models.modes import eval_mode
from ..se import parse_block_name
from .blocks import find_blocks, paper_blocks, select_blocks
from .freeze import (
    VARIANTS,
    FreezeResult,
    freeze_groups,
    frozen_gate_accuracy,
    frozen_gates,
    mean_gates,
    shuffled_gates,
)
from .recorder import ExcitationRecorder, class_excitations, hidden_unit_activity, image_excitations
from .significance import (
    BlockSeparation,
    Difference,
    KnockoutResult,
    SeparationReport,
    accuracy_with_channels_off,
    binomial_interval,
    compare,
    knockout_comparison,
    per_image_excitations,
    report_from_samples,
    separation_of_samples,
    separation_report,
    untrained_like,
)
from .stats import (
    SATURATION_HIGH,
    SATURATION_LOW,
    ExcitationStats,
    channel_order,
    class_separation,
    class_specificity,
    sample_channels,
    saturation,
    similarity,
    summary_table,
    top_channels,
)

__all__ = [
    "parse_block_name",
    "paper_blocks",
    "select_blocks",
    "find_blocks",
    "eval_mode",
    "ExcitationStats",
    "ExcitationRecorder",
    "class_excitations",
    "image_excitations",
    "hidden_unit_activity",
    "SATURATION_LOW",
    "SATURATION_HIGH",
    "class_specificity",
    "class_separation",
    "saturation",
    "similarity",
    "summary_table",
    "sample_channels",
    "channel_order",
    "top_channels",
    "accuracy_with_channels_off",
    "KnockoutResult",
    "knockout_comparison",
    "BlockSeparation",
    "binomial_interval",
    "compare",
    "Difference",
    "SeparationReport",
    "per_image_excitations",
    "report_from_samples",
    "separation_of_samples",
    "separation_report",
    "untrained_like",
    "VARIANTS",
    "FreezeResult",
    "freeze_groups",
    "frozen_gate_accuracy",
    "frozen_gates",
    "mean_gates",
    "shuffled_gates",
]
