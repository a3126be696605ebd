"""The chain-of-thought serialization of the authors' CoT baseline (docs/method.md §10.4), written
from the same graphs as the factored sequences.

A CoT sequence is the graph's equations — same equations, same order, same names as the factored
sequence — as tokens of one vocabulary, then ``<COT>``, then one step per equation in the same
order, joined by ``<EQ_SEP>``, then ``<PAD>``:

* ``eq-val``: a leaf ``c = x_r`` gives ``x_r = c``; any other node ``x_r = <its left-hand side> = v``
  (``x_7 = x_1 ADD x_2 = 16``; a copy node ``x_r = x_a = v``);
* ``val``: every node gives ``x_r = v``.

The vocabulary, in index order as the authors': ``<PAD> <UNK> = <EQ_SEP> <COT>``, the values
``0 … p−1``, the operations, ``x_0 … x_{N−1}``: ``5 + p + |ops| + N`` tokens (157 for theirs).

Sequences are derived from the solved factored sequences (``labels``), which hold every equation,
its place, its names and every node's value: a CoT batch is exactly the graphs of the factored
batch. Like ``serialize``, every output position is computed directly (which step it falls in and
its offset there); nothing loops over graphs or tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from ..errors import ConfigError, DataFormatError
from .config import DagConfig, required_length
from .vocab import OPERATION, SYN_EQ, SYN_EQ_SEP, SYN_OPERATION, SYN_PAD, SYN_UNK, SYN_VALUE, SYN_VARIABLE, SYNTAX, VALUE, VARIABLE, Vocab

COT_TYPES = ("eq-val", "val")
SPECIAL_TOKENS = ("<PAD>", "<UNK>", "=", "<EQ_SEP>", "<COT>")
PAD, UNK, EQ, EQ_SEP, COT = range(len(SPECIAL_TOKENS))
# Classes of reference tokens for per-class accuracy (the authors classify by the *predicted*
# token, docs/method.md §10.4; fastrecur by the reference token, so every class has a fixed count).
TOKEN_CLASSES = ("syntax", "variable", "value", "operation")
CLASS_SYNTAX, CLASS_VARIABLE, CLASS_VALUE, CLASS_OPERATION = range(len(TOKEN_CLASSES))


@dataclass(frozen=True)
class CoTVocab:
    """The single CoT vocabulary for ``num_vars`` names, ``ops`` and modulus ``mod_val``."""

    num_vars: int
    ops: tuple[str, ...]
    mod_val: int

    @classmethod
    def of(cls, vocab: Vocab) -> "CoTVocab":
        """The CoT vocabulary of the graphs a factored vocabulary writes."""
        return cls(vocab.num_vars, tuple(vocab.ops), vocab.mod_val)

    @property
    def value_offset(self) -> int:
        return len(SPECIAL_TOKENS)

    @property
    def op_offset(self) -> int:
        return self.value_offset + self.mod_val

    @property
    def var_offset(self) -> int:
        return self.op_offset + len(self.ops)

    @property
    def size(self) -> int:
        return self.var_offset + self.num_vars

    def tokens(self) -> tuple[str, ...]:
        """index → token."""
        values = tuple(str(v) for v in range(self.mod_val))
        return SPECIAL_TOKENS + values + tuple(self.ops) + tuple(f"x_{i}" for i in range(self.num_vars))

    def encode(self, text: str | Sequence[str]) -> torch.Tensor:
        """Surface tokens (a space-separated string or a list) → int64 ``[T]``."""
        index = {tok: i for i, tok in enumerate(self.tokens())}
        words = text.split() if isinstance(text, str) else list(text)
        unknown = [w for w in words if w not in index]
        if unknown:
            raise DataFormatError(f"unknown CoT token(s) {unknown[:5]}: the vocabulary has {self.size} tokens (x_0…x_{self.num_vars - 1}, 0…{self.mod_val - 1}, {list(self.ops)}, {list(SPECIAL_TOKENS)})")
        return torch.tensor([index[w] for w in words], dtype=torch.int64)

    def decode(self, ids: torch.Tensor | Sequence[int]) -> list[str]:
        table = self.tokens()
        return [table[i] for i in (ids.tolist() if isinstance(ids, torch.Tensor) else ids)]

    def token_class(self, ids: torch.Tensor) -> torch.Tensor:
        """The class (``TOKEN_CLASSES`` index) of every token id."""
        cls = torch.full_like(ids, CLASS_SYNTAX)
        cls = torch.where((ids >= self.value_offset) & (ids < self.op_offset), CLASS_VALUE, cls)
        cls = torch.where((ids >= self.op_offset) & (ids < self.var_offset), CLASS_OPERATION, cls)
        return torch.where(ids >= self.var_offset, CLASS_VARIABLE, cls)


def check_cot_type(cot_type: str) -> None:
    if cot_type not in COT_TYPES:
        raise ConfigError(f"cot_type={cot_type!r} is invalid: allowed values are {', '.join(COT_TYPES)}")


def cot_required_length(config: DagConfig, cot_type: str) -> int:
    """The longest CoT sequence ``config``'s graphs can produce: the factored equations, ``<COT>``,
    and every step at its largest (a k-ary step of ``eq-val`` has ``2k + 3`` tokens, a leaf's 3),
    with separators between the steps."""
    check_cot_type(cot_type)
    n, leaves, fan_in = config.num_nodes, config.num_leaf_nodes, config.max_fan_in
    if cot_type == "val":
        steps = 3 * n
    else:
        steps = 3 * leaves + sum(2 * min(fan_in, t) + 3 for t in range(leaves, n))
    return required_length(n, leaves, fan_in) + 1 + steps + n - 1


@dataclass
class CoTBatch:
    """CoT sequences of ``N`` graphs.

    * ``tokens`` ``[N, L]`` int64: prompt (equations + ``<COT>``), steps, then ``<PAD>``;
    * ``prompt_lengths`` ``[N]``: positions up to and including ``<COT>``;
    * ``lengths`` ``[N]``: positions up to the end of the last step;
    * ``answers`` ``[N, L]`` bool: the value token that ends each step — one per node, the CoT
      counterpart of the node values a recurrent model writes.
    """

    tokens: torch.Tensor
    prompt_lengths: torch.Tensor
    lengths: torch.Tensor
    answers: torch.Tensor


def surface_ids(labels: torch.Tensor, cot_vocab: CoTVocab) -> torch.Tensor:
    """``[N, L]`` CoT token ids of factored sequences (a variable's VALUE factor is dropped)."""
    syntax = labels[..., SYNTAX]
    ids = torch.full_like(syntax, PAD)
    ids = torch.where(syntax == SYN_VARIABLE, cot_vocab.var_offset + labels[..., VARIABLE], ids)
    ids = torch.where(syntax == SYN_OPERATION, cot_vocab.op_offset + labels[..., OPERATION], ids)
    ids = torch.where(syntax == SYN_VALUE, cot_vocab.value_offset + labels[..., VALUE], ids)
    ids = torch.where(syntax == SYN_EQ, EQ, ids)
    ids = torch.where(syntax == SYN_EQ_SEP, EQ_SEP, ids)
    return torch.where(syntax == SYN_UNK, UNK, ids)


def cot_sequences(labels: torch.Tensor, vocab: Vocab, cot_type: str, length: int | None = None) -> CoTBatch:
    """The CoT sequences of the solved factored sequences ``labels`` ``[N, L, 6]``.

    ``length`` pads to that many positions (it must hold the longest sequence); None: the longest.
    """
    check_cot_type(cot_type)
    cot_vocab = CoTVocab.of(vocab)
    N, L, _ = labels.shape
    device = labels.device
    syntax = labels[..., SYNTAX]
    ids = surface_ids(labels, cot_vocab)
    prompt = (syntax != SYN_PAD).sum(dim=1)  # factored length; <COT> goes there
    positions = torch.arange(L, device=device).expand(N, L)

    # Per equation e: its first position, its right-hand side, whether it is a leaf.
    is_rhs = torch.zeros_like(syntax, dtype=torch.bool)
    is_rhs[:, 1:] = (syntax[:, 1:] == SYN_VARIABLE) & (syntax[:, :-1] == SYN_EQ)
    equation = torch.cumsum(syntax == SYN_EQ_SEP, dim=1)
    E = int(is_rhs.sum(dim=1).max()) if N else 0
    sink = E  # column for positions that are not an equation's start or RHS
    rhs = torch.full((N, E + 1), -1, dtype=torch.int64, device=device)
    rhs.scatter_(1, torch.where(is_rhs, equation, sink), positions)
    in_equation = (syntax != SYN_PAD) & (syntax != SYN_EQ_SEP)
    start = torch.full((N, E + 1), L, dtype=torch.int64, device=device)
    start.scatter_reduce_(1, torch.where(in_equation, equation, sink), positions, reduce="amin")
    rhs, start = rhs[:, :E], start[:, :E]
    exists = rhs >= 0
    rhs, start = rhs.clamp(min=0), start.clamp(max=L - 1)
    leaf = syntax.gather(1, start) == SYN_VALUE
    lhs_length = rhs - 1 - start  # tokens before the '='

    # Step layout after <COT>: a step of step_length tokens, then a separator (none after the last).
    if cot_type == "val":
        step_length = torch.full_like(rhs, 3)
    else:
        step_length = torch.where(leaf, 3, lhs_length + 4)
    step_length = torch.where(exists, step_length, 0)
    step_start = prompt[:, None] + 1 + torch.cumsum(step_length + 1, dim=1) - (step_length + 1)
    lengths = prompt + (step_length + exists.long()).sum(dim=1)  # separators: one fewer than steps, plus <COT>
    width = int(lengths.max()) if N else 0
    if length is not None:
        if length < width:
            raise ConfigError(f"CoT length {length} is too short: these graphs need {width} positions")
        width = length

    q = torch.arange(width, device=device).expand(N, width)
    marks = torch.zeros(N, width + 1, dtype=torch.int64, device=device)
    marks.scatter_add_(1, torch.where(exists, step_start, width).clamp(max=width), exists.long())
    step = torch.cumsum(marks[:, :width], dim=1) - 1  # −1 before the first step
    e = step.clamp(min=0)
    offset = q - step_start.gather(1, e)
    size = step_length.gather(1, e)
    at_rhs = rhs.gather(1, e)
    rhs_token = ids.gather(1, at_rhs)
    value_token = cot_vocab.value_offset + labels[..., VALUE].gather(1, at_rhs)
    lhs_token = ids.gather(1, (start.gather(1, e) + offset - 2).clamp(0, L - 1))
    computed_eq_val = (cot_type == "eq-val") & ~leaf.gather(1, e)

    token = torch.where(offset == 0, rhs_token, EQ)  # offset 1 is '='
    token = torch.where(computed_eq_val & (offset >= 2) & (offset < size - 2), lhs_token, token)
    token = torch.where(offset == size - 1, value_token, token)
    token = torch.where(offset == size, EQ_SEP, token)
    in_steps = (step >= 0) & (q < lengths[:, None])
    token = torch.where(in_steps, token, PAD)
    factored = torch.full((N, width), PAD, dtype=torch.int64, device=device)
    factored[:, : min(L, width)] = ids[:, :width]
    token = torch.where(q < prompt[:, None], factored, token)
    token = torch.where(q == prompt[:, None], COT, token)
    return CoTBatch(token, prompt + 1, lengths, in_steps & (offset == size - 1))
