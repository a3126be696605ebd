"""DagConfig validation, sequence lengths and OOD settings (docs/method.md §1.4, §1.8, §6.1)."""

from __future__ import annotations

import pytest

from fastrecur.data import DagConfig, GraphStream, generate_dataset, graph_batch, ood_config, required_length
from fastrecur.errors import ConfigError


def test_defaults_are_the_authors_training_set():
    cfg = DagConfig()
    assert (cfg.num_nodes, cfg.num_leaf_nodes, cfg.min_fan_in, cfg.max_fan_in, cfg.max_depth) == (32, 6, 1, 3, 6)
    assert (cfg.func_vocab, cfg.mod_val, cfg.num_vars, cfg.max_length) == (("ADD",), 23, 128, 256)
    assert cfg.shuffle_node_names
    assert cfg.vocab().sizes == (7, 129, 2, 25, 2, 2) and cfg.info_channels == 6


def test_required_length_formula():
    # 6 leaves · 3 tokens, 26 ternary nodes · 7 tokens, 31 separators (docs/method.md §1.4).
    assert required_length(32, 6, 3) == 18 + 26 * 7 + 31 == 231
    assert required_length(128, 6, 3) == 999  # fits the authors' 1024
    assert required_length(4, 1, 3) == 3 + 3 + 5 + 7 + 3  # early nodes have fewer than 3 parents to pick


@pytest.mark.parametrize(
    "changes,match",
    [
        (dict(num_leaf_nodes=32), r"num_leaf_nodes=32 must be smaller than num_nodes=32"),
        (dict(num_leaf_nodes=0), "num_leaf_nodes"),
        (dict(max_length=200), r"max_length=200 is too short.*needs 231 tokens; raise max_length to at least 231"),
        (dict(num_vars=31), r"num_vars=31 is smaller than num_nodes=32.*at least 32"),
        (dict(func_vocab=("ADD", "POW")), r"unknown operation\(s\) \['POW'\]"),
        (dict(func_vocab=()), "func_vocab is empty"),
        (dict(mod_val=1), r"mod_val=1 must lie in \[2"),
        (dict(min_fan_in=0), "fan-in range"),
        (dict(min_fan_in=3, max_fan_in=2), "fan-in range"),
        (dict(max_depth=0), "max_depth"),
        (dict(num_nodes="32"), "num_nodes='32' must be an integer"),
        (dict(max_length=256.0), "must be an integer"),
        (dict(shuffle_node_names="yes"), "true or false"),
    ],
)
def test_bad_settings_name_the_problem_and_the_fix(changes, match):
    with pytest.raises(ConfigError, match=match) as err:
        DagConfig(**changes)
    assert "\n" not in str(err.value)


def test_bad_generation_arguments():
    cfg = DagConfig()
    for call in (
        lambda: generate_dataset(cfg, 10, seed=-1),
        lambda: generate_dataset(cfg, 10, seed=0, workers=0),
        lambda: generate_dataset(cfg, -1, seed=0),
        lambda: graph_batch(cfg, 0, -5, 3),
        lambda: GraphStream(cfg, 0, batch_size=30, world_size=4),
        lambda: GraphStream(cfg, 0, batch_size=32, rank=4, world_size=4),
    ):
        with pytest.raises(ConfigError):
            call()


def test_ood_settings():
    base = DagConfig()
    for n in range(8, 129, 8):
        cfg = ood_config(base, n)
        assert (cfg.num_nodes, cfg.max_depth, cfg.num_leaf_nodes, cfg.min_fan_in, cfg.max_fan_in) == (n, n, 6, 1, 3)
        assert cfg.max_length == 1024 and (cfg.mod_val, cfg.func_vocab) == (23, ("ADD",))
    wide = base.replace(num_vars=512)
    assert ood_config(wide, 136).max_length == 1088  # needs 1063
    assert ood_config(wide, 256).max_length == 2048  # needs 2023
    assert ood_config(wide, 512).max_length == 4096  # needs 4071
    with pytest.raises(ConfigError, match="num_vars=128 is smaller than num_nodes=256"):
        ood_config(base, 256)
