"""YAML as fastrecur reads it: PyYAML's safe loader, with YAML 1.2's numbers.

PyYAML implements YAML 1.1, where a float needs a dot and a signed exponent: ``1e-3`` and
``1.0e5`` load as the strings "1e-3" and "1.0e5". YAML 1.2 — and anyone writing a learning rate —
reads them as numbers, and so does ``Loader``: it adds the exponent forms as an implicit float
resolver (on a subclass; PyYAML's own ``SafeLoader`` is left as it is). Every YAML fastrecur reads
goes through it: config files, ``section.key=value`` overrides, the authors' config files.
"""

from __future__ import annotations

import os
import re
from typing import Any

import yaml

from .errors import ConfigError


class Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that also reads ``1e-3``, ``1E5``, ``2.5e3``, ``.5e-2`` as floats."""


# Checked after PyYAML's own resolvers (so "10" stays an int and a dotted float stays as it was).
Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def load_yaml(stream) -> Any:
    """Parse a YAML string or stream (raises ``yaml.YAMLError`` on bad syntax)."""
    return yaml.load(stream, Loader=Loader)


def read_yaml_mapping(path: str, error: type[Exception] = ConfigError) -> dict:
    """The top-level mapping of the YAML file ``path`` (an empty file is ``{}``); a missing file,
    bad syntax or another kind of top level raises ``error`` naming the path."""
    if not os.path.isfile(path):
        raise error(f"{path}: file not found")
    try:
        with open(path) as f:
            data = load_yaml(f)
    except yaml.YAMLError as exc:
        raise error(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise error(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data
