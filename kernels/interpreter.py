"""Whether the kernels run compiled on a GPU or in Triton's CPU interpreter: decided here, once.

Triton reads ``TRITON_INTERPRET`` when a ``@triton.jit`` function is defined, i.e. when a kernel
module is first imported; flipping the variable afterwards changes nothing. So the switch must be
set before any kernel module is imported, and every kernel module reads it once, at import, through
``interpreted()``. This module imports no kernel (and no Triton), so it is safe to call first.
"""

from __future__ import annotations

import os
import sys

import torch

# The modules that define @triton.jit functions (imported through fastrecur_kernels.ops).
_KERNEL_MODULES = ("relpos_attention", "bottleneck", "factor_loss", "corrupt")


def interpreted() -> bool:
    """True when kernels defined from now on run in the interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET") == "1"


def use_interpreter(device_type: str | None = None) -> bool:
    """Switch the interpreter on where kernels will see CPU tensors; returns whether it is on.

    ``device_type="cpu"``: kernels will run on CPU tensors, so the interpreter must be on.
    ``None`` (test and benchmark harnesses): on unless a CUDA device is present; an explicit
    ``TRITON_INTERPRET`` in the environment is kept. Raises RuntimeError when the interpreter is
    needed but the kernels were already imported compiled (restart Python with TRITON_INTERPRET=1).
    """
    if device_type is None:
        if "TRITON_INTERPRET" in os.environ or torch.cuda.is_available():
            return interpreted()
    elif device_type != "cpu":
        return interpreted()
    if not interpreted():
        package = __name__.rpartition(".")[0]
        loaded = [name for name in _KERNEL_MODULES if f"{package}.{name}" in sys.modules]
        if loaded:
            raise RuntimeError(
                "the kernels run on the CPU only in Triton's interpreter, but they were already imported "
                "without it: set TRITON_INTERPRET=1 before starting Python"
            )
        os.environ["TRITON_INTERPRET"] = "1"
    return True
