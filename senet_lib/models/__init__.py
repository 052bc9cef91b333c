"""Residual networks with and without SE blocks, built by name through :func:`create_model`."""

from .cifar_resnet import CifarResNet
from .layers import SEConfig, set_fused_se, zero_residual_branches
from .modes import eval_mode
from .registry import ArchConfig, create_model, list_models, register_model
from .resnet import ResNet

__all__ = [
    "ArchConfig",
    "CifarResNet",
    "ResNet",
    "SEConfig",
    "create_model",
    "eval_mode",
    "list_models",
    "register_model",
    "set_fused_se",
    "zero_residual_branches",
]
