"""The authors' ``data_config.yaml`` (``dag_config``, ``val_dag_config``, ``data_dir``, …), read as is.

Their keys map onto :class:`DagConfig`; keys that change nothing in their generator are accepted
and ignored (``max_comp_depth`` is only passed along, ``verbose`` only draws plots — here it prints
the first graph; ``tokenizer_file_name`` names a pickle of their tokenizer class, for which we write
``vocab.json``). Both splits share one tokenizer, as in their ``generate_data.py``: its name pool
is the largest ``num_nodes`` of the file, its operations and modulus are the training split's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from ..errors import ConfigError
from ..yaml_loading import load_yaml
from .config import DagConfig
from .vocab import Vocab

SPLIT_KEYS = ("dag_config", "val_dag_config")  # the order the authors generate them in
_TOP_KEYS = {"dag_config", "val_dag_config", "data_dir", "tokenizer_file_name"}
_REQUIRED = {
    "num_nodes",
    "num_leaf_nodes",
    "min_fan_in_deg",
    "max_fan_in_deg",
    "max_depth",
    "func_vocab",
    "mod_val",
    "max_length",
    "num_samples",
    "data_file_name",
}
_OPTIONAL = {"max_comp_depth", "fix_graph", "verbose", "shuffle_node_name"}


@dataclass(frozen=True)
class SplitConfig:
    """One split of the file: where it goes, how many graphs, and what they look like."""

    key: str
    config: DagConfig
    num_samples: int
    file_name: str
    verbose: bool


@dataclass(frozen=True)
class DataConfigFile:
    splits: tuple[SplitConfig, ...]
    data_dir: str
    vocab: Vocab

    @property
    def train(self) -> SplitConfig:
        return self.splits[0]


def read_data_config(path: str, num_vars: int | None = None, num_samples: int | None = None) -> DataConfigFile:
    """Parse ``path``; ``num_vars`` / ``num_samples`` override the name pool / every split's size."""
    try:
        with open(path) as f:
            raw = load_yaml(f)
    except OSError as exc:
        raise ConfigError(f"cannot read data config {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML ({str(exc).splitlines()[0]}); fix the syntax") from None
    if not isinstance(raw, dict) or "dag_config" not in raw:
        raise ConfigError(f"{path}: expected a mapping with 'dag_config' (and optionally 'val_dag_config', 'data_dir')")
    unknown = sorted(set(raw) - _TOP_KEYS)
    if unknown:
        raise ConfigError(f"{path}: unknown top-level key(s) {unknown}; allowed: {sorted(_TOP_KEYS)}")
    sections = {key: _section(path, key, raw[key]) for key in SPLIT_KEYS if raw.get(key) is not None}
    sizes = [s["num_nodes"] for s in sections.values() if isinstance(s["num_nodes"], int)]
    pool = num_vars if num_vars is not None else max(sizes, default=1)  # a bad num_nodes fails in DagConfig
    splits = tuple(_split(path, key, section, pool, num_samples) for key, section in sections.items())
    train = splits[0].config
    for split in splits[1:]:
        if (split.config.func_vocab, split.config.mod_val) != (train.func_vocab, train.mod_val):
            raise ConfigError(
                f"{path}: {split.key} has func_vocab {list(split.config.func_vocab)}, mod_val {split.config.mod_val} "
                f"but dag_config has {list(train.func_vocab)}, {train.mod_val}; both splits share one tokenizer, "
                "make them equal"
            )
    data_dir = raw.get("data_dir", "data")
    if not isinstance(data_dir, str) or not data_dir:
        raise ConfigError(f"{path}: data_dir={data_dir!r} must be a directory name")
    return DataConfigFile(splits=splits, data_dir=data_dir, vocab=train.vocab())


def _section(path: str, key: str, section: Any) -> dict[str, Any]:
    if not isinstance(section, dict):
        raise ConfigError(f"{path}: {key} must be a mapping of generator settings")
    unknown = sorted(set(section) - _REQUIRED - _OPTIONAL)
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {unknown} in {key}; allowed: {sorted(_REQUIRED | _OPTIONAL)}")
    missing = sorted(_REQUIRED - set(section))
    if missing:
        raise ConfigError(f"{path}: {key} is missing {missing}")
    if section.get("fix_graph", False):
        raise ConfigError(
            f"{path}: {key}.fix_graph: true is not supported (the authors' generator crashes on it: the fixed "
            "graph is never built); set fix_graph: false"
        )
    return section


def _split(path: str, key: str, section: dict[str, Any], num_vars: int, num_samples: int | None) -> SplitConfig:
    if not isinstance(section["func_vocab"], list):
        raise ConfigError(f"{path}: {key}.func_vocab={section['func_vocab']!r} must be a list such as [ADD]")
    try:
        config = DagConfig(
            num_nodes=section["num_nodes"],
            num_leaf_nodes=section["num_leaf_nodes"],
            min_fan_in=section["min_fan_in_deg"],
            max_fan_in=section["max_fan_in_deg"],
            max_depth=section["max_depth"],
            func_vocab=tuple(section["func_vocab"]),
            mod_val=section["mod_val"],
            num_vars=num_vars,
            shuffle_node_names=section.get("shuffle_node_name", True),
            max_length=section["max_length"],
        )
    except (ConfigError, TypeError) as exc:
        raise ConfigError(f"{path}: {key}: {exc}") from None
    size = section["num_samples"] if num_samples is None else num_samples
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ConfigError(f"{path}: {key}.num_samples={size!r} must be a positive integer")
    name = section["data_file_name"]
    if not isinstance(name, str) or not name or "/" in name:
        raise ConfigError(f"{path}: {key}.data_file_name={name!r} must be a plain file name such as train_data.pt")
    verbose = bool(section.get("verbose", False))
    return SplitConfig(key=key, config=config, num_samples=size, file_name=name, verbose=verbose)
