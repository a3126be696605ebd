"""Reading ``.pt`` / ``.ckpt`` files without running anything they contain.

Such a file is a pickle, and unpickling an arbitrary pickle calls whatever functions it names
(``os.system`` included). So every file fastrecur reads goes through ``torch.load(...,
weights_only=True)``: torch's own unpickler, which rebuilds tensors and plain Python containers,
imports nothing, and calls only functions on an allow-list. ``load_weights_only`` adds, for the
duration of one call:

* ``allow`` — further globals the caller accepts as real objects (``NUMPY_ARRAYS``: numpy arrays
  and their dtypes, which fastrecur's first checkpoint format held);
* ``stand_in`` — a rule naming the globals to replace by inert placeholders instead (the authors'
  Lightning checkpoints pickle classes of their own code base, and bound methods).

The globals a file names are listed first by a static scan of its pickle (nothing runs). Any global
that is neither on torch's list nor allowed nor given a placeholder is refused: ``UnsafeFileError``,
one line naming the global and the file, and nothing from the file has run.

A placeholder runs nothing: called or instantiated, it returns an empty ``collections.Counter`` — a
dict that torch's unpickler may fill with the pickled object's items and attributes (it is the one
type torch lets receive both). The placeholder for ``builtins.getattr`` (how a bound method is
pickled) therefore yields an empty Counter instead of looking anything up.
"""

from __future__ import annotations

import _compat_pickle
import sys
from collections import Counter
from typing import Any, Callable, Optional

import numpy as np
import torch

from .errors import UnsafeFileError

_multiarray = getattr(np, "_core", None) or np.core  # numpy ≥ 2 moved numpy.core to numpy._core

# numpy arrays pickle as _reconstruct(ndarray, shape, dtype) followed by their raw data; the path of
# _reconstruct depends on the numpy version that wrote the file, so both spellings are accepted.
# A dtype is rebuilt as an instance of its own class (numpy.dtypes.Float32DType, …), which torch's
# unpickler must be allowed to fill in too.
NUMPY_ARRAYS = (
    np.ndarray,
    np.dtype,
    *sorted({type(np.dtype(t)) for t in set(np.sctypeDict.values())}, key=lambda c: c.__name__),
    (_multiarray.multiarray._reconstruct, "numpy.core.multiarray._reconstruct"),
    (_multiarray.multiarray._reconstruct, "numpy._core.multiarray._reconstruct"),
    (_multiarray.multiarray.scalar, "numpy.core.multiarray.scalar"),
    (_multiarray.multiarray.scalar, "numpy._core.multiarray.scalar"),
)


def load_weights_only(
    path: str,
    *,
    allow: tuple = (),
    stand_in: Optional[Callable[[str], bool]] = None,
) -> Any:
    """``torch.load(path, map_location="cpu", weights_only=True)`` with ``allow`` accepted and the
    globals for which ``stand_in(name)`` is true replaced by placeholders; any other global the file
    names raises ``UnsafeFileError`` before anything is unpickled.

    Other failures (a missing, truncated or foreign file) propagate as torch raises them.
    """
    with torch.serialization.safe_globals(list(allow)):
        try:
            unknown = sorted(torch.serialization.get_unsafe_globals_in_checkpoint(path))
        except ValueError:  # not torch's zip format (e.g. a legacy file): torch.load decides alone
            unknown = []
        refused = [name for name in unknown if stand_in is None or not stand_in(name)]
        if refused:
            more = f" (and {len(refused) - 1} more)" if len(refused) > 1 else ""
            raise UnsafeFileError(
                f"{path}: refused to load: it names {python3_name(refused[0])}{more}, which is not on the allow-list "
                "of what a file may contain (unpickling it could run code); nothing from the file was run"
            )
        with torch.serialization.safe_globals([_placeholder(name) for name in unknown]):
            return torch.load(path, map_location="cpu", weights_only=True)


def _placeholder(name: str) -> type:
    """An inert class registered under ``name`` (``module.qualname``) that returns an empty Counter."""
    module, _, qualname = name.rpartition(".")

    def new(cls, *args, **kwargs):
        return Counter()

    return type(qualname, (), {"__new__": new, "__module__": module, "__qualname__": qualname})


def python3_name(name: str) -> str:
    """A global as Python 3 spells it: pickles of protocol ≤ 2 (``torch.save``'s) write the Python 2
    names of standard-library modules (``subprocess.call`` is written ``commands.call``)."""
    module, _, attribute = name.rpartition(".")
    if (module, attribute) in _compat_pickle.NAME_MAPPING:
        module, attribute = _compat_pickle.NAME_MAPPING[(module, attribute)]
    else:
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
    return f"{module}.{attribute}"


def is_standard_library(name: str) -> bool:
    """Whether the global ``name`` (``module.qualname``, either Python's spelling) belongs to Python's
    standard library."""
    return python3_name(name).split(".", 1)[0] in sys.stdlib_module_names
