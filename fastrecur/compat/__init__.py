"""Reading and writing the authors' file formats."""

from .datasets import load_upstream_dataset, save_upstream_dataset

__all__ = ["load_upstream_dataset", "save_upstream_dataset"]
