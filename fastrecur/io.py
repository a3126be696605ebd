"""Atomic file writes: a crash or Ctrl-C mid-save never leaves a truncated file behind.

Each writer writes a temporary file in the destination folder, flushes it to disk, then renames it
over the destination (``os.replace`` is atomic on POSIX and Windows).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from typing import IO, Any, Callable, Iterator

import torch


@contextlib.contextmanager
def atomic_open(path: str, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary sibling of ``path``; on success rename it to ``path``, on error remove it."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def atomic_write(path: str, write: Callable[[IO], Any], mode: str = "wb") -> None:
    with atomic_open(path, mode) as f:
        write(f)


def atomic_torch_save(obj: Any, path: str) -> None:
    atomic_write(path, lambda f: torch.save(obj, f))


def atomic_write_text(path: str, text: str) -> None:
    atomic_write(path, lambda f: f.write(text), mode="w")
