"""Residual networks with and without SE blocks, built by name through :func:`create_model`."""

from .layers import zero_residual_branches
from .registry import ArchConfig, create_model, list_models, register_model

__all__ = ["ArchConfig", "create_model", "list_models", "register_model", "zero_residual_branches"]
