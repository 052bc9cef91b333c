"""Figures: diagrams, training curves and tables, excitation and significance plots, ablations.
Every plot returns a figure; :func:`save_figure` writes PNG + PDF + provenance JSON."""

from .ablation import plot_ablation
from .architecture import draw_se_module, draw_se_placements
from .diagrams import (
    RFStep,
    draw_se_block,
    layer_geometry,
    plot_feature_maps,
    plot_receptive_fields,
    receptive_field,
    receptive_field_table,
)
from .excitation import (
    plot_class_band,
    plot_class_excitations,
    plot_excitation_heatmaps,
    plot_image_vs_class,
    plot_saturation,
    plot_similarity,
    plot_specificity,
)
from .figures import save_figure, set_style
from .significance import plot_knockout, plot_separation
from .training import format_table, histories_frame, plot_curves, plot_gap, results_table

__all__ = [
    "RFStep",
    "draw_se_block",
    "draw_se_module",
    "draw_se_placements",
    "format_table",
    "histories_frame",
    "layer_geometry",
    "plot_ablation",
    "plot_class_band",
    "plot_class_excitations",
    "plot_excitation_heatmaps",
    "plot_feature_maps",
    "plot_image_vs_class",
    "plot_knockout",
    "plot_receptive_fields",
    "plot_saturation",
    "plot_separation",
    "plot_similarity",
    "plot_specificity",
    "plot_curves",
    "plot_gap",
    "receptive_field",
    "receptive_field_table",
    "results_table",
    "save_figure",
    "set_style",
]
