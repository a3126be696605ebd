"""fastrecur's training checkpoints: the format, writing, safe reading, and the model they hold.

A checkpoint (``checkpoint.pt``) is a ``torch.save``d dict of tensors and plain Python, so it reads
back with ``torch.load(weights_only=True)`` (``fastrecur.safe_loading``: nothing in it can run):

* ``format`` — ``fastrecur-checkpoint-v2``; files of the first format (``…-v1``) still load;
* ``config`` — the full run config (``RunConfig.to_dict()``);
* ``model``, ``optimizer``, ``scheduler`` — state dicts (a shipped model keeps ``model`` only:
  it evaluates, it does not resume);
* ``step``, ``tokens_seen``, ``train_time_s``, ``world_size``;
* ``rng`` — every random generator: ``python`` (``random.getstate()``, nested tuples of ints),
  ``numpy`` (v2: the MT19937 key as an int64 tensor, its position and Gaussian cache; v1 stored
  numpy's own tuple with a numpy array, which the loader accepts from an explicit allow-list),
  ``torch``, ``cuda`` (a list of tensors or None) and the trainer's own generators.

Writes are atomic (``fastrecur.io``): a crash mid-save leaves the previous file intact.
"""

from __future__ import annotations

import os
import random

import numpy as np
import torch

from .config import RunConfig
from .errors import FastrecurError, UnsafeFileError
from .io import atomic_torch_save
from .model import EncoderModel, build_model
from .safe_loading import NUMPY_ARRAYS, load_weights_only

CHECKPOINT_NAME = "checkpoint.pt"
# Models shipped inside the package (fastrecur/pretrained/, written by scripts/export_pretrained.py):
# every command that takes a checkpoint also takes one of these names.
PRETRAINED = ("pretrained-cpu", "pretrained-cpu-scaled")
FORMAT = "fastrecur-checkpoint-v2"
FORMAT_V1 = "fastrecur-checkpoint-v1"  # RNG state of numpy as numpy arrays; read, never written


def global_rng_state() -> dict:
    """The process-wide generators (Python, numpy, torch CPU and CUDA) as tensors and plain Python."""
    name, key, pos, has_gauss, cached_gaussian = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": {
            "bit_generator": str(name),
            "key": torch.from_numpy(key.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }


def restore_global_rng_state(rng: dict) -> None:
    """Set the generators saved by ``global_rng_state`` (or by a v1 checkpoint)."""
    random.setstate(rng["python"])
    numpy_state = rng["numpy"]
    if isinstance(numpy_state, dict):
        numpy_state = (
            numpy_state["bit_generator"],
            numpy_state["key"].numpy().astype(np.uint32),
            numpy_state["pos"],
            numpy_state["has_gauss"],
            numpy_state["cached_gaussian"],
        )
    np.random.set_state(numpy_state)
    torch.set_rng_state(rng["torch"])
    if rng.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])


def save_checkpoint(payload: dict, path: str) -> None:
    """Write ``payload`` (the keys of the module docstring) in the current format, atomically."""
    atomic_torch_save({"format": FORMAT, **payload}, path)


def pretrained_path(name: str) -> str:
    """The file of a shipped model (``PRETRAINED``)."""
    from importlib import resources

    return str(resources.files("fastrecur.pretrained").joinpath(f"{name}.pt"))


def resolve_checkpoint(path_or_name: str) -> str:
    """A checkpoint file: ``path_or_name`` itself, or the file of the shipped model of that name."""
    if os.path.isfile(path_or_name) or path_or_name not in PRETRAINED:
        return path_or_name
    return pretrained_path(path_or_name)


def load_checkpoint(path: str) -> dict:
    """Read a fastrecur checkpoint (CPU tensors), with a clear error if it is not one.

    ``path`` may also name a shipped model (``PRETRAINED``). Nothing in the file can run: anything but
    tensors, plain Python and (in v1 files) numpy arrays raises ``UnsafeFileError``.
    """
    path = resolve_checkpoint(path)
    if not os.path.isfile(path):
        shipped = ", ".join(PRETRAINED)
        raise FastrecurError(f"{path}: checkpoint not found (give a checkpoint file or a shipped model: {shipped})")
    try:
        ckpt = load_weights_only(path, allow=NUMPY_ARRAYS)
    except UnsafeFileError as exc:
        raise UnsafeFileError(f"{exc} (the authors' checkpoints load with fastrecur.compat.load_upstream_checkpoint)") from None
    except Exception as exc:
        reason = (str(exc).splitlines() or [""])[0]
        raise FastrecurError(f"{path}: not a readable checkpoint ({type(exc).__name__}: {reason})") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") not in (FORMAT, FORMAT_V1):
        raise FastrecurError(
            f"{path}: not a fastrecur training checkpoint (for the authors' checkpoints use fastrecur.compat.load_upstream_checkpoint)"
        )
    return ckpt


def model_from_checkpoint(path: str, device: torch.device = torch.device("cpu")) -> tuple[EncoderModel, RunConfig]:
    """The trained model (eval mode: a ``RecurrentTransformer``, or a ``CoTTransformer`` for a
    chain-of-thought run) and the run config stored in a fastrecur checkpoint."""
    ckpt = load_checkpoint(path)
    cfg = RunConfig.from_dict(ckpt["config"])
    model = build_model(cfg.model)
    model.load_state_dict(ckpt["model"])
    return model.to(device).eval(), cfg
