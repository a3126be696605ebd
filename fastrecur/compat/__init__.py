"""Interchange with the authors' code: their dataset files, model checkpoints and config files."""

from .checkpoints import export_upstream_checkpoint, load_upstream_checkpoint
from .configs import model_config_from_upstream
from .datasets import load_upstream_dataset, save_upstream_dataset

__all__ = [
    "export_upstream_checkpoint",
    "load_upstream_checkpoint",
    "load_upstream_dataset",
    "model_config_from_upstream",
    "save_upstream_dataset",
]
