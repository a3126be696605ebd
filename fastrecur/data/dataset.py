"""Datasets of tokenized graphs and the tensors built from them (docs/method.md §1.6–1.7, §4.1).

Everything here is pure torch and runs on whatever device its tensors are on; no function loops
over tokens or samples.
"""

from __future__ import annotations

import numbers
from functools import cached_property
from typing import Any, Sequence

import torch

from fastrecur_kernels.reference import teacher_states_reference

from ..errors import DataFormatError
from .vocab import FACTORS, SYN_EQ, SYN_EQ_SEP, SYN_PAD, SYN_VARIABLE, SYNTAX, VALUE, VARIABLE, Vocab

SPEC_KEYS = (
    "min_depth",
    "mean_depth",
    "max_depth",
    "min_non_pad_len",
    "mean_non_pad_len",
    "max_non_pad_len",
    "orig_seq_len",
)


class GraphDataset:
    """``N`` solved sequences with their per-position info, and the model inputs derived from them.

    * ``labels`` [N, L, 6]: the solved sequence (RHS variables hold their values).
    * ``info`` [N, L, C]: channel 0 = node depth at RHS positions (−1 elsewhere), then the
      equation's left-hand side (docs/method.md §1.6).
    * ``tokens`` [N, L, 6]: the input, ``labels`` with the VALUE of every variable set to EMPTY.
    * ``spec``: statistics the authors store with evaluation sets (see :func:`dataset_spec`).

    Indexing (an int, a slice, a list or a tensor of indices) gives a dataset of those samples
    (an int keeps the sample dimension); a subset carries no ``spec``, which describes a whole file.
    """

    def __init__(self, labels: torch.Tensor, info: torch.Tensor, vocab: Vocab, spec: dict[str, Any] | None = None):
        if labels.dim() != 3 or labels.shape[-1] != len(FACTORS):
            raise DataFormatError(f"labels must be [N, L, {len(FACTORS)}], got {list(labels.shape)}")
        if info.dim() != 3 or info.shape[:2] != labels.shape[:2]:
            raise DataFormatError(
                f"info must be [N, L, C] with N, L of the labels {list(labels.shape[:2])}, got {list(info.shape)}"
            )
        if labels.dtype != torch.int64 or info.dtype != torch.int64:
            raise DataFormatError(f"labels and info must be int64, got {labels.dtype} and {info.dtype}")
        self.labels = labels
        self.info = info
        self.vocab = vocab
        self.spec = spec

    @cached_property
    def tokens(self) -> torch.Tensor:
        return make_inputs(self.labels, self.vocab)

    @property
    def depth(self) -> torch.Tensor:
        """[N, L] node depth at RHS positions, −1 elsewhere."""
        return self.info[..., 0]

    @property
    def lengths(self) -> torch.Tensor:
        """[N] number of non-pad positions."""
        return (self.labels[..., SYNTAX] != SYN_PAD).sum(dim=1)

    @property
    def max_depth(self) -> int:
        return int(self.depth.max()) if len(self) else 0

    def __len__(self) -> int:
        return self.labels.shape[0]

    def __getitem__(self, index: int | slice | Sequence[int] | torch.Tensor) -> "GraphDataset":
        if isinstance(index, torch.Tensor) and index.dim() == 0:
            index = int(index)
        if isinstance(index, numbers.Integral):
            index = int(index)
            if not -len(self) <= index < len(self):
                raise IndexError(f"sample {index} out of range for {len(self)} samples")
            index = slice(index, index + 1 or None)
        return GraphDataset(self.labels[index], self.info[index], self.vocab)

    def to(self, device: torch.device | str) -> "GraphDataset":
        """The same samples with their tensors on ``device``."""
        return GraphDataset(self.labels.to(device), self.info.to(device), self.vocab, self.spec)

    def __repr__(self) -> str:
        n, L, _ = self.labels.shape
        return f"GraphDataset(samples={n}, length={L}, vocab_sizes={self.vocab.sizes})"


def make_inputs(labels: torch.Tensor, vocab: Vocab) -> torch.Tensor:
    """The model input (docs/method.md §1.7): ``labels`` with the VALUE of every variable token set to EMPTY."""
    tokens = labels.clone()
    is_variable = labels[..., SYNTAX] == SYN_VARIABLE
    tokens[..., VALUE] = torch.where(is_variable, vocab.value_empty, labels[..., VALUE])
    return tokens


def teacher_states(
    tokens: torch.Tensor,
    labels: torch.Tensor,
    depth: torch.Tensor,
    num_iters: int,
    value_empty: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-iteration inputs and targets of algorithmic supervision (docs/method.md §4.1).

    ``S_k`` is ``tokens`` with the VALUE of every RHS position of depth ``0 ≤ dep ≤ k−1`` taken from
    ``labels``. Returns ``(inputs, targets)``, each ``[num_iters, B, L, 6]`` with ``inputs[k] = S_k``
    and ``targets[k] = S_{k+1}``; the two are separate tensors, so inputs may be corrupted in place.
    With ``value_empty`` given, RHS positions not yet solved in ``S_k`` hold that index instead of
    whatever ``tokens`` holds there. (The math is the kernels' shared reference, with this
    tokenizer's VALUE factor.)
    """
    return teacher_states_reference(tokens, labels, depth, num_iters, value_factor=VALUE, value_empty=value_empty)


def input_depth(tokens: torch.Tensor, vocab: Vocab) -> torch.Tensor:
    """[B, L] depth of each RHS position (−1 elsewhere), computed from the equations in ``tokens`` alone.

    A leaf's RHS has depth 0; any other RHS has 1 + the largest depth among the RHS positions that
    define its operands. Solved by a fixed-point iteration over whole levels: after round i every
    node of depth ≤ i is final, so it stops after (max depth + 2) rounds.
    """
    B, L, _ = tokens.shape
    device = tokens.device
    syntax = tokens[..., SYNTAX]
    positions = torch.arange(L, device=device).expand(B, L)
    is_variable = syntax == SYN_VARIABLE
    is_rhs = is_variable.clone()
    is_rhs[:, 0] = False
    is_rhs[:, 1:] &= syntax[:, :-1] == SYN_EQ
    is_operand = is_variable & ~is_rhs
    # Equation number of every position (a separator counts towards the next equation).
    equation = torch.cumsum(syntax == SYN_EQ_SEP, dim=1)
    # Where each variable is defined (its RHS position); column num_vars+1 is a sink for non-RHS.
    num_vars = vocab.num_vars
    variable = tokens[..., VARIABLE].clamp(0, num_vars)
    sink = num_vars + 1
    definition = torch.full((B, num_vars + 2), L, dtype=torch.int64, device=device)
    definition.scatter_reduce_(1, torch.where(is_rhs, variable, sink), positions, reduce="amin")
    operand_definition = definition.gather(1, variable)
    is_operand &= operand_definition < L  # an operand never defined contributes nothing
    operand_equation = equation.gather(1, operand_definition.clamp(max=L - 1))
    # Operands of equation e scatter into column e; everything else into the sink column L.
    target = torch.where(is_operand, equation, L)
    depth_of_equation = torch.zeros(B, L + 1, dtype=torch.int64, device=device)
    for _ in range(L + 1):
        through = torch.where(is_operand, depth_of_equation.gather(1, operand_equation) + 1, 0)
        updated = torch.zeros_like(depth_of_equation).scatter_reduce_(1, target, through, reduce="amax")
        if torch.equal(updated, depth_of_equation):
            return torch.where(is_rhs, depth_of_equation.gather(1, equation), -1)
        depth_of_equation = updated
    raise DataFormatError("the equations reference each other in a cycle; an operand must be defined before it is used")


def dataset_spec(dataset: GraphDataset) -> dict[str, Any]:
    """The ``spec`` dict the authors store with evaluation sets, computed as they do (python scalars).

    Depth statistics are over per-sample maxima of info channel 0; lengths count positions that are
    not the pad token on all six factors; means are float32 means, as torch computes them.
    """
    depths = dataset.info[..., 0].max(dim=-1).values
    pad = torch.tensor(dataset.vocab.pad_token, dtype=dataset.labels.dtype, device=dataset.labels.device)
    lengths = (~torch.eq(dataset.labels, pad).all(dim=-1)).sum(dim=1)
    return dict(
        min_depth=depths.min().item(),
        mean_depth=depths.float().mean().item(),
        max_depth=depths.max().item(),
        min_non_pad_len=lengths.min().item(),
        mean_non_pad_len=lengths.float().mean().item(),
        max_non_pad_len=lengths.max().item(),
        orig_seq_len=dataset.labels.shape[1],
    )
