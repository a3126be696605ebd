"""Backends: the same model math, computed by plain PyTorch (``reference``) or fused kernels (``triton``).

* ``base`` — the interface (``Backend``: attention, teacher batches, loss, decode step, and ``bind``,
  which attaches a backend to a model);
* ``reference`` — plain PyTorch everywhere (the kernels' shared reference math);
* ``triton`` — the fused kernels of ``fastrecur_kernels`` (imported only when asked for).

``resolve_device`` and ``resolve_backend`` turn the ``device`` / ``backend`` settings into objects.
"""

from __future__ import annotations

import torch

from ..errors import ConfigError
from .base import Backend, LossOutput, TeacherBatch, core_model
from .reference import ReferenceBackend

__all__ = ["Backend", "LossOutput", "ReferenceBackend", "TeacherBatch", "core_model", "resolve_backend", "resolve_device"]


def resolve_device(name: str) -> torch.device:
    """``auto`` → the GPU when there is one, else the CPU; ``cpu``, ``cuda``, ``cuda:N`` as given."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"train.device={name!r} but no CUDA device is available: use auto or cpu")
    return torch.device(name)


def resolve_backend(name: str, device: torch.device) -> Backend:
    """``auto`` → ``triton`` on CUDA, ``reference`` elsewhere."""
    if name == "auto":
        name = "triton" if device.type == "cuda" else "reference"
    if name == "reference":
        return ReferenceBackend()
    if name == "triton":
        from .triton import TritonBackend  # imports the kernels (and Triton) only when asked for

        return TritonBackend(device)
    raise ConfigError(f"backend={name!r} is invalid: auto, reference or triton")
