"""What a dataset of random arithmetic graphs looks like: :class:`DagConfig` (docs/method.md §1.1, §1.8).

Every knob is validated when the config is built, so generation itself never fails half-way: in
particular ``max_length`` must hold the longest sequence these settings can produce.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..errors import ConfigError
from .vocab import Vocab, check_ops

# Values stay below mod_val, so a product stays below mod_val**2; keep that inside int64.
MAX_MOD_VAL = 2**31 - 1
# OOD sets that outgrow the authors' length are padded to a multiple of this (kernel tile size).
LENGTH_ALIGNMENT = 64
_INTEGER_FIELDS = (
    "num_nodes", "num_leaf_nodes", "min_fan_in", "max_fan_in", "max_depth", "mod_val", "num_vars", "max_length"
)


@dataclass(frozen=True)
class DagConfig:
    """Settings of one family of graphs. Defaults are the authors' training set (docs/method.md §1.8).

    * ``num_nodes`` graph size n; the first ``num_leaf_nodes`` nodes in creation order are constants.
    * ``min_fan_in``/``max_fan_in``: each other node combines k parents, k uniform in this range
      (capped by the number of candidate parents).
    * ``max_depth``: only nodes of depth < max_depth may be parents, so depths never exceed it.
    * ``func_vocab``: operations ⊆ {ADD, SUB, MUL}; their order fixes the OPERATION indices.
    * ``mod_val``: the modulus p; all values lie in [0, p).
    * ``num_vars``: size of the variable-name pool the nodes are named from (≥ num_nodes).
    * ``shuffle_node_names``: name nodes by a random injective map onto the pool (the authors'
      behaviour — their renaming step makes their own ``shuffle_node_name`` flag irrelevant). When
      False, the node created t-th is named ``x_t``, which exposes the creation order (for debugging
      and tests).
    * ``max_length``: padded sequence length L.
    """

    num_nodes: int = 32
    num_leaf_nodes: int = 6
    min_fan_in: int = 1
    max_fan_in: int = 3
    max_depth: int = 6
    func_vocab: tuple[str, ...] = ("ADD",)
    mod_val: int = 23
    num_vars: int = 128
    shuffle_node_names: bool = True
    max_length: int = 256

    def __post_init__(self) -> None:
        object.__setattr__(self, "func_vocab", tuple(self.func_vocab))
        for name in _INTEGER_FIELDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"{name}={value!r} must be an integer")
        if not isinstance(self.shuffle_node_names, bool):
            raise ConfigError(f"shuffle_node_names={self.shuffle_node_names!r} must be true or false")
        if self.num_leaf_nodes < 1:
            raise ConfigError(f"num_leaf_nodes={self.num_leaf_nodes} must be >= 1: graphs start from constants")
        if self.num_leaf_nodes >= self.num_nodes:
            raise ConfigError(
                f"num_leaf_nodes={self.num_leaf_nodes} must be smaller than num_nodes={self.num_nodes}: "
                "lower num_leaf_nodes or raise num_nodes"
            )
        if not 1 <= self.min_fan_in <= self.max_fan_in:
            raise ConfigError(
                f"fan-in range [{self.min_fan_in}, {self.max_fan_in}] is invalid: need 1 <= min_fan_in <= max_fan_in"
            )
        if self.max_depth < 1:
            raise ConfigError(f"max_depth={self.max_depth} must be >= 1")
        check_ops(self.func_vocab)
        if not 2 <= self.mod_val <= MAX_MOD_VAL:
            raise ConfigError(f"mod_val={self.mod_val} must lie in [2, {MAX_MOD_VAL}]; the authors use 23")
        if self.num_vars < self.num_nodes:
            raise ConfigError(
                f"num_vars={self.num_vars} is smaller than num_nodes={self.num_nodes}: every node needs its own "
                f"name; raise num_vars to at least {self.num_nodes}"
            )
        needed = self.required_length
        if self.max_length < needed:
            raise ConfigError(
                f"max_length={self.max_length} is too short for these graphs: the longest possible needs "
                f"{needed} tokens; raise max_length to at least {needed}"
            )

    @property
    def required_length(self) -> int:
        """The longest sequence these settings can produce (every node at its largest fan-in)."""
        return required_length(self.num_nodes, self.num_leaf_nodes, self.max_fan_in)

    @property
    def info_channels(self) -> int:
        """Channels of ``dataset_info``: depth plus the 2k−1 left-hand-side tokens of a k-ary node."""
        return 2 * self.max_fan_in

    def vocab(self) -> Vocab:
        """The tokenizer these graphs are written with."""
        return Vocab(self.num_vars, self.func_vocab, self.mod_val)

    def replace(self, **changes) -> "DagConfig":
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)


def required_length(num_nodes: int, num_leaf_nodes: int, max_fan_in: int) -> int:
    """Worst-case token count: 3 per leaf, 2k+1 per k-ary node (k ≤ the t nodes created before it),
    and one separator between consecutive equations."""
    equations = 3 * num_leaf_nodes + sum(2 * min(max_fan_in, t) + 1 for t in range(num_leaf_nodes, num_nodes))
    return equations + num_nodes - 1


def ood_config(
    base: DagConfig,
    num_nodes: int,
    *,
    base_length: int = 1024,
    num_leaf_nodes: int = 6,
    min_fan_in: int = 1,
    max_fan_in: int = 3,
) -> DagConfig:
    """Settings of an OOD evaluation set of ``num_nodes``-node graphs (docs/method.md §6.1).

    As the authors: 6 leaves, fan-in 1–3, ``max_depth = num_nodes`` (unbounded), operations, modulus
    and name pool from ``base`` (the authors hard-code mod 23, which is what every shipped config
    uses; any other value would not fit the tokenizer). The length is ``base_length`` (the authors'
    max(train L, val L) = 1024) unless the graphs can be longer: then the required length rounded up
    to a multiple of :data:`LENGTH_ALIGNMENT`.
    """
    needed = required_length(num_nodes, num_leaf_nodes, max_fan_in)
    length = max(base_length, -(-needed // LENGTH_ALIGNMENT) * LENGTH_ALIGNMENT)
    return base.replace(
        num_nodes=num_nodes,
        num_leaf_nodes=num_leaf_nodes,
        min_fan_in=min_fan_in,
        max_fan_in=max_fan_in,
        max_depth=num_nodes,
        shuffle_node_names=True,
        max_length=length,
    )
