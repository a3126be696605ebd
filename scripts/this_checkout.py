"""Make ``import fastrecur`` and ``import fastrecur_kernels`` this checkout's, installed or not.

The scripts run on machines where fastrecur may be installed from another tree, or not at all (a
fresh clone on a lent GPU): the folder ``kernels/`` is the package ``fastrecur_kernels`` (a
package-dir mapping, so ``sys.path`` alone does not find it), and fastrecur is found through
``sys.path``. Call ``use_this_checkout()`` before importing either.
"""

from __future__ import annotations

import importlib.util
import os
import sys

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def use_this_checkout() -> str:
    """Put the repository first on ``sys.path`` and bind ``fastrecur_kernels`` to its ``kernels/``;
    returns the repository's path."""
    if REPO not in sys.path:
        sys.path.insert(0, REPO)
    loaded = sys.modules.get("fastrecur_kernels")
    folder = os.path.join(REPO, "kernels")
    if loaded is None or os.path.dirname(os.path.abspath(loaded.__file__)) != folder:
        spec = importlib.util.spec_from_file_location(
            "fastrecur_kernels", os.path.join(folder, "__init__.py"), submodule_search_locations=[folder]
        )
        package = importlib.util.module_from_spec(spec)
        sys.modules["fastrecur_kernels"] = package
        spec.loader.exec_module(package)
    return REPO
