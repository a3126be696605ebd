"""Writing graphs as token sequences (docs/method.md §1.4) and the authors' saved tensors (§1.6).

Every sequence position is computed directly: which equation it falls in (a cumulative count of
equation starts) and its offset there decide the token. No loop over tokens or graphs.
"""

from __future__ import annotations

import numpy as np

from .config import DagConfig
from .graphs import GraphBlock
from .vocab import FACTORS, FALSE, OPERATION, RESET_FACTORS, SYNTAX, VALUE, VARIABLE, Vocab
from .vocab import SYN_EQ, SYN_EQ_SEP, SYN_OPERATION, SYN_PAD, SYN_VALUE, SYN_VARIABLE


def serialize(block: GraphBlock, config: DagConfig, vocab: Vocab) -> tuple[np.ndarray, np.ndarray]:
    """``(labels [B, L, 6], info [B, L, 2F])`` int64 for the graphs of ``block``.

    ``labels`` is the solved sequence: every RHS variable holds its node's value, operand variables
    hold EMPTY. ``info`` is −1 except at RHS positions: ``[depth, then the left-hand side token by
    token]`` with an operand replaced by the position of its own RHS, an operation by its index and
    a leaf constant by its position (RHS − 2).
    """
    B, n, F = block.parents.shape
    L = config.max_length
    rows = np.arange(B)[:, None]
    node = block.order  # [B, n]: the node whose equation comes s-th

    # Equation layout per slot: a leaf or a copy has 3 tokens, a k-ary node 2k+1; one separator after each.
    width = np.maximum(block.fan_in[rows, node], 1)
    eq_len = 2 * width + 1
    start = np.cumsum(eq_len + 1, axis=1) - (eq_len + 1)
    rhs_pos = start + eq_len - 1
    rhs_pos_of_node = np.empty_like(rhs_pos)
    np.put_along_axis(rhs_pos_of_node, node, rhs_pos, axis=1)

    # Each position's equation slot and offset j within it.
    starts = np.zeros((B, L), dtype=np.int64)
    np.put_along_axis(starts, start, 1, axis=1)
    slot = np.cumsum(starts, axis=1) - 1
    j = np.arange(L) - start[rows, slot]
    at = node[rows, slot]  # the node each position belongs to
    w = width[rows, slot]
    in_sequence = np.arange(L) < rhs_pos[:, -1:] + 1
    leaf = block.fan_in[rows, at] == 0
    lhs = in_sequence & (j < 2 * w - 1)
    is_const = lhs & leaf
    is_operand = lhs & ~leaf & (j % 2 == 0)
    is_op = lhs & ~leaf & (j % 2 == 1)
    is_eq = in_sequence & (j == 2 * w - 1)
    is_rhs = in_sequence & (j == 2 * w)
    is_sep = in_sequence & (j == 2 * w + 1)

    operand = block.parents[rows, at, np.minimum(j // 2, F - 1)]
    labels = np.empty((B, L, len(FACTORS)), dtype=np.int64)
    labels[..., SYNTAX] = np.select(
        [is_const, is_operand | is_rhs, is_op, is_eq, is_sep],
        [SYN_VALUE, SYN_VARIABLE, SYN_OPERATION, SYN_EQ, SYN_EQ_SEP],
        default=SYN_PAD,
    )
    operand_name = np.where(is_operand, block.name[rows, operand], vocab.var_na)
    labels[..., VARIABLE] = np.where(is_rhs, block.name[rows, at], operand_name)
    labels[..., OPERATION] = np.where(is_op, block.ops[rows, at, np.minimum((j + 1) // 2, F - 1)], vocab.op_na)
    hidden = np.where(is_operand, vocab.value_empty, vocab.value_na)
    labels[..., VALUE] = np.where(is_const | is_rhs, block.value[rows, at], hidden)
    labels[..., list(RESET_FACTORS)] = FALSE  # REGRET and MODIFICATION: always FALSE in data

    # dataset_info rows [depth, operand 1, op 2, operand 2, …], one per equation, at the RHS position.
    parents = block.parents[rows, node]  # [B, n, F] in fold order
    operand_rhs = np.where(parents >= 0, rhs_pos_of_node[rows[..., None], np.maximum(parents, 0)], -1)
    operand_rhs[..., 0] = np.where(parents[..., 0] >= 0, operand_rhs[..., 0], rhs_pos - 2)  # a leaf's constant
    rows_info = np.empty((B, n, 2 * F), dtype=np.int64)
    rows_info[..., 0] = block.depth[rows, node]
    rows_info[..., 1::2] = operand_rhs
    rows_info[..., 2::2] = block.ops[rows, node][..., 1:]
    info = np.full((B, L, 2 * F), -1, dtype=np.int64)
    info[rows, rhs_pos] = rows_info
    return labels, info
