"""Residual networks with and without SE blocks, built by name through :func:`create_model`."""

from .registry import create_model, list_models, register_model

__all__ = ["create_model", "list_models", "register_model"]
