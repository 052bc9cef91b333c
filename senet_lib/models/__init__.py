"""Residual networks with and without SE blocks, built by name through :func:`create_model`."""

from .registry import ArchConfig, create_model, list_models, register_model

__all__ = ["ArchConfig", "create_model", "list_models", "register_model"]
