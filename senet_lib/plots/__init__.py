"""Plot helpers, one module per topic (diagrams, architecture, training curves, excitations).

Figures are saved through :func:`senet_lib.figures.save_figure`.
"""
