"""Sampling random arithmetic DAGs, many at once (docs/method.md §1.1–1.3).

The graphs of one block are built together: the only Python loop runs over the creation index
``t`` (a node's parents must exist before it), and every step works on all graphs of the block
as numpy arrays. All nodes are indexed by creation order ``0 … n-1``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import DagConfig

# Operation kinds by name, numbered as the candidate results in the fold below; a config's
# func_vocab order gives their OPERATION indices instead.
_OP_KIND = {"ADD": 0, "SUB": 1, "MUL": 2}


@dataclass(frozen=True)
class GraphBlock:
    """``B`` graphs of ``n`` nodes, indexed by creation order (``F`` = max_fan_in).

    * ``parents`` [B, n, F]: operand j of each node (creation index) in fold order; −1 past its fan-in.
    * ``ops`` [B, n, F]: OPERATION index combining operand j (j ≥ 1) into the fold; −1 elsewhere.
    * ``fan_in`` [B, n]: number of parents (0 for leaves).
    * ``value`` [B, n], ``depth`` [B, n]: node value in [0, p) and longest-path depth.
    * ``order`` [B, n]: creation index of the node whose equation comes s-th in the sequence.
    * ``name`` [B, n]: variable-pool index naming each node.
    """

    parents: np.ndarray
    ops: np.ndarray
    fan_in: np.ndarray
    value: np.ndarray
    depth: np.ndarray
    order: np.ndarray
    name: np.ndarray


def sample_graphs(config: DagConfig, rng: np.random.Generator, count: int) -> GraphBlock:
    """Draw ``count`` independent graphs (docs/method.md §1.1), in the sequence order of §1.2, named per §1.3."""
    B, n, F = count, config.num_nodes, config.max_fan_in
    leaves, p = config.num_leaf_nodes, config.mod_val
    rows = np.arange(B)
    # All randomness is drawn up front (fewer RNG calls), in a fixed order so that seeded runs
    # repeat; the names come last, so `shuffle_node_names` changes nothing but the names.
    leaf_values = rng.integers(0, p, size=(B, leaves))
    fan_in_draw = rng.random((n, B))
    pick_draw = rng.random((n, F, B))
    op_draw = rng.integers(0, len(config.func_vocab), size=(n, F, B))

    parents = np.full((B, n, F), -1, dtype=np.int64)
    ops = np.full((B, n, F), -1, dtype=np.int64)
    fan_in = np.zeros((B, n), dtype=np.int64)
    value = np.zeros((B, n), dtype=np.int64)
    depth = np.zeros((B, n), dtype=np.int64)
    value[:, :leaves] = leaf_values
    # Candidate parents (depth < max_depth) of each graph, in creation order; leaves always qualify.
    candidates = np.zeros((B, n), dtype=np.int64)
    candidates[:, :leaves] = np.arange(leaves)
    num_candidates = np.full(B, leaves, dtype=np.int64)
    op_kind = np.array([_OP_KIND[op] for op in config.func_vocab])

    for t in range(leaves, n):
        low = np.minimum(config.min_fan_in, num_candidates)
        high = np.minimum(F, num_candidates)
        k = low + (fan_in_draw[t] * (high - low + 1)).astype(np.int64)
        fan_in[:, t] = k
        # k distinct candidate slots, uniformly and in random order: the j-th draw picks the r-th
        # slot not taken yet, r uniform on the remaining count. Draws past k are discarded.
        slots = np.zeros((F, B), dtype=np.int64)
        for j in range(min(F, t)):
            r = (pick_draw[t, j] * np.maximum(num_candidates - j, 1)).astype(np.int64)
            for taken in np.sort(slots[:j], axis=0):
                r += r >= taken
            slots[j] = r
        active = np.arange(F)[:, None] < k  # [F, B]: operand j is used
        chosen = candidates[rows, np.minimum(slots, num_candidates - 1)]  # [F, B] creation indices
        chosen = np.where(active, chosen, -1)
        parents[:, t] = chosen.T
        depth[:, t] = 1 + np.max(np.where(active, depth[rows, chosen], -1), axis=0)
        # Left fold: val = u_1; val = op_j(val, u_j) for j = 2..k, all modulo p (Python-style for SUB).
        acc = value[rows, chosen[0]]
        for j in range(1, min(F, t)):
            operand = value[rows, chosen[j]]
            kind = op_kind[op_draw[t, j]]
            folded = np.choose(kind, (acc + operand, acc - operand, acc * operand)) % p
            acc = np.where(active[j], folded, acc)
            ops[:, t, j] = np.where(active[j], op_draw[t, j], -1)
        value[:, t] = acc
        # A node shallower than max_depth becomes a candidate parent for later nodes.
        grows = depth[:, t] < config.max_depth
        candidates[rows[grows], num_candidates[grows]] = t
        num_candidates += grows

    order = equation_order(parents, depth)
    if config.shuffle_node_names:
        name = np.argsort(rng.random((B, config.num_vars)), axis=1)[:, :n]
    else:
        name = np.broadcast_to(np.arange(n), (B, n)).copy()
    return GraphBlock(parents=parents, ops=ops, fan_in=fan_in, value=value, depth=depth, order=order, name=name)


def equation_order(parents: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """The order of networkx ``topological_sort`` on each graph (docs/method.md §1.2), as creation indices.

    networkx emits Kahn generations (= depth levels here). Within a level a node is emitted while
    its latest-emitted parent is processed, children of one parent in creation order; so the key is
    (depth, rank of the latest-emitted parent, creation index). The parent ranks depend on the order
    of the level above, so the sort is repeated until nothing changes: after i rounds levels 0…i
    are final, hence at most max-depth + 1 rounds.
    """
    B, n, _ = parents.shape
    rows = np.arange(B)[:, None, None]
    has_parent = parents >= 0
    creation = np.arange(n)
    parent_rank = np.zeros((B, n), dtype=np.int64)  # leaves keep 0: they sort by creation index
    while True:
        order = np.argsort((depth * n + parent_rank) * n + creation, axis=1)
        rank = np.empty_like(order)
        np.put_along_axis(rank, order, creation[None, :], axis=1)
        latest = np.where(has_parent, rank[rows, np.maximum(parents, 0)], 0).max(axis=2)
        if np.array_equal(latest, parent_rank):
            return order
        parent_rank = latest
