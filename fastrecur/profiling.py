"""NVTX ranges for Nsight Systems / Nsight Compute, free when profiling is off.

Ranges are emitted only after ``enable_nvtx()`` (the CLI's ``--nvtx`` flag, or ``FASTRECUR_NVTX=1``).
They use the ``nvtx`` package when it is installed (``pip install fastrecur[profile]``), else
``torch.cuda.nvtx``; on a machine without either they are no-ops. Names used: ``embed``,
``attention``, ``mlp``, ``readout``, ``teacher``, ``forward_loss``, ``backward``, ``optimizer``,
``step``, ``iteration``.

``enable_profiler_ranges()`` turns the same ranges into ``torch.profiler.record_function`` ranges
instead, for a ``torch.profiler`` trace where Nsight is not available (scripts/gpu_acceptance.py).
"""

from __future__ import annotations

import contextlib
import os
from typing import Callable, Iterator, Optional

_push: Optional[Callable[[str], None]] = None
_pop: Optional[Callable[[], None]] = None


def enable_nvtx(enabled: bool = True) -> bool:
    """Turn ranges on (returns False when no NVTX implementation is available)."""
    global _push, _pop
    _push = _pop = None
    if not enabled:
        return False
    try:
        import nvtx  # the optional `nvtx` package: lower overhead, domains and colors

        _push, _pop = (lambda name: nvtx.push_range(name, domain="fastrecur")), (lambda: nvtx.pop_range(domain="fastrecur"))
        return True
    except ImportError:
        pass
    import torch

    if torch.cuda.is_available():
        _push, _pop = torch.cuda.nvtx.range_push, torch.cuda.nvtx.range_pop
        return True
    return False


def enable_profiler_ranges() -> None:
    """Emit every range as a ``torch.profiler.record_function`` (shown in torch.profiler traces)."""
    global _push, _pop
    import torch

    open_ranges = []

    def push(name: str) -> None:
        open_ranges.append(torch.profiler.record_function(name).__enter__())

    def pop() -> None:
        open_ranges.pop().__exit__(None, None, None)

    _push, _pop = push, pop


@contextlib.contextmanager
def nvtx_range(name: str) -> Iterator[None]:
    if _push is None:
        yield
        return
    _push(name)
    try:
        yield
    finally:
        _pop()


if os.environ.get("FASTRECUR_NVTX") == "1":
    enable_nvtx()
