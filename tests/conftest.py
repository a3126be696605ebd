"""Test setup: run Triton kernels in the interpreter unless a CUDA device is present, and make sure
the code under test is this checkout's."""

import os
import sys

import fastrecur
import fastrecur_kernels
from fastrecur_kernels.interpreter import use_interpreter

# Let test modules in subfolders import the shared helpers in this folder (e.g. `_stats`).
sys.path.insert(0, os.path.dirname(__file__))

# Before any module defining a @triton.jit kernel is imported.
use_interpreter()

import pytest  # noqa: E402
import torch  # noqa: E402

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
for _package, _folder in ((fastrecur, "fastrecur"), (fastrecur_kernels, "kernels")):
    # fastrecur_kernels is installed from the folder kernels/ (a package-dir mapping), so it is not
    # found through sys.path like fastrecur: an install of another checkout would be tested instead.
    if os.path.dirname(os.path.abspath(_package.__file__)) != os.path.join(REPO_ROOT, _folder):
        raise RuntimeError(
            f"{_package.__name__} is imported from {os.path.dirname(_package.__file__)}, not from this checkout's "
            f"{_folder}/: run `pip install -e .` here (e.g. in a virtual environment)"
        )

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "fixtures", "upstream_tr32_add")


@pytest.fixture
def device() -> torch.device:
    """Where kernels run: the GPU when there is one, else the CPU (Triton interpreter)."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@pytest.fixture
def upstream_fixture_dir() -> str:
    path = os.path.abspath(FIXTURES)
    if not os.path.isdir(path):
        pytest.skip(f"authors' fixtures not found at {path}")
    return path


@pytest.fixture
def poisoned_empty(monkeypatch):
    """torch.empty / empty_like return NaN (floats) or −1 / 0xFF (integers): unwritten output shows."""
    real_empty, real_empty_like = torch.empty, torch.empty_like

    def poison(t):
        if t.is_floating_point():
            return t.fill_(float("nan"))
        return t.fill_(255 if t.dtype == torch.uint8 else -1)

    monkeypatch.setattr(torch, "empty", lambda *a, **k: poison(real_empty(*a, **k)))
    monkeypatch.setattr(torch, "empty_like", lambda *a, **k: poison(real_empty_like(*a, **k)))
