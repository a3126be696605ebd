"""The factored tokenizer (docs/method.md §1.5): every position is six indices, one per factor.

Index layout, identical to the authors' tokenizer:

* SYNTAX: ``VARIABLE, OPERATION, VALUE, <PAD>, <UNK>, =, <EQ_SEP>``
* VARIABLE: ``x_0 … x_{N-1}, N/A``
* OPERATION: the operation names in config order, then ``N/A``
* VALUE: ``'0' … 'p-1', N/A, EMPTY``
* REGRET, MODIFICATION: ``FALSE, TRUE`` (always FALSE in data)

Surface text is the authors' token strings separated by spaces (``x_3 ADD x_7 = x_1 <EQ_SEP> …``).
A variable may carry its value as ``x_1:5``; that is our own notation, used so that solved sequences
(whose RHS variables hold values) survive a round trip through text.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Sequence

import torch

from ..errors import ConfigError, DataFormatError

# The one definition of the factor layout: names and indices, in factor order. Everything else in
# fastrecur (model heads, losses, metrics, checkpoints) and the arguments it passes to the kernels
# come from here.
FACTORS = ("SYNTAX", "VARIABLE", "OPERATION", "VALUE", "REGRET", "MODIFICATION")
SYNTAX, VARIABLE, OPERATION, VALUE, REGRET, MODIFICATION = range(6)
# Factors 0–3 carry the computation: they are trained (loss weight 1) and scored in evaluation.
SCORED_FACTORS = (SYNTAX, VARIABLE, OPERATION, VALUE)
# REGRET and MODIFICATION are always FALSE in data and their heads are never trained (loss weight 0):
# a rollout resets them to FALSE after every step (docs/method.md §3.1).
RESET_FACTORS = (REGRET, MODIFICATION)
FALSE = 0  # index of FALSE in the REGRET and MODIFICATION vocabularies

SYNTAX_TOKENS = ("VARIABLE", "OPERATION", "VALUE", "<PAD>", "<UNK>", "=", "<EQ_SEP>")
SYN_VARIABLE, SYN_OPERATION, SYN_VALUE, SYN_PAD, SYN_UNK, SYN_EQ, SYN_EQ_SEP = range(7)

KNOWN_OPS = ("ADD", "SUB", "MUL")
NA = "N/A"
EMPTY = "EMPTY"
BOOL_TOKENS = ("FALSE", "TRUE")  # index FALSE = 0, TRUE = 1

# vocab.json keys of the per-factor index→token tables, in factor order.
_JSON_TABLES = ("syntax", "variable", "operation", "value", "regret", "modification")
# Surface tokens that are their own SYNTAX value.
_SPECIAL = {"<PAD>": SYN_PAD, "<UNK>": SYN_UNK, "=": SYN_EQ, "<EQ_SEP>": SYN_EQ_SEP}


@dataclass(frozen=True)
class Vocab:
    """The vocabularies of the six factors for ``num_vars`` variable names, ``ops`` and modulus ``mod_val``."""

    num_vars: int
    ops: tuple[str, ...]
    mod_val: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "ops", tuple(self.ops))
        if isinstance(self.num_vars, bool) or not isinstance(self.num_vars, int) or self.num_vars < 1:
            raise ConfigError(f"num_vars={self.num_vars!r} must be a positive integer (the variable-name pool size)")
        if isinstance(self.mod_val, bool) or not isinstance(self.mod_val, int) or self.mod_val < 2:
            raise ConfigError(f"mod_val={self.mod_val!r} must be an integer >= 2; use e.g. mod_val: 23")
        check_ops(self.ops)

    # ----------------------------------------------------------------- layout
    @property
    def sizes(self) -> tuple[int, int, int, int, int, int]:
        """Vocabulary size of each factor, in factor order."""
        return (len(SYNTAX_TOKENS), self.num_vars + 1, len(self.ops) + 1, self.mod_val + 2, 2, 2)

    @property
    def var_na(self) -> int:
        return self.num_vars

    @property
    def op_na(self) -> int:
        return len(self.ops)

    @property
    def value_na(self) -> int:
        return self.mod_val

    @property
    def value_empty(self) -> int:
        return self.mod_val + 1

    @property
    def pad_token(self) -> tuple[int, int, int, int, int, int]:
        return (SYN_PAD, self.var_na, self.op_na, self.value_na, 0, 0)

    def tables(self) -> tuple[tuple[str, ...], ...]:
        """index → token for every factor, in factor order."""
        return (
            SYNTAX_TOKENS,
            tuple(f"x_{i}" for i in range(self.num_vars)) + (NA,),
            self.ops + (NA,),
            tuple(str(v) for v in range(self.mod_val)) + (NA, EMPTY),
            BOOL_TOKENS,
            BOOL_TOKENS,
        )

    @cached_property
    def _op_index(self) -> dict[str, int]:
        return {op: i for i, op in enumerate(self.ops)}

    # ------------------------------------------------------------ text <-> ids
    def encode(self, text: str | Sequence[str]) -> torch.Tensor:
        """Surface tokens (a space-separated string or a list) → ``[T, 6]`` int64 factor indices.

        A variable is ``x_i`` (VALUE = EMPTY) or ``x_i:v`` (VALUE = v); a constant is ``'0' … 'p-1'``.
        """
        tokens = text.split() if isinstance(text, str) else list(text)
        rows = [self._encode_token(tok) for tok in tokens]
        return torch.tensor(rows, dtype=torch.int64).reshape(len(rows), len(FACTORS))

    def _encode_token(self, tok: str) -> tuple[int, ...]:
        na_var, na_op, na_val = self.var_na, self.op_na, self.value_na
        if tok in _SPECIAL:
            return (_SPECIAL[tok], na_var, na_op, na_val, 0, 0)
        if tok in self._op_index:
            return (SYN_OPERATION, na_var, self._op_index[tok], na_val, 0, 0)
        if _is_uint(tok):
            return (SYN_VALUE, na_var, na_op, self._value_index(tok, tok), 0, 0)
        name, _, value = tok.partition(":")
        if name.startswith("x_") and _is_uint(name[2:]) and int(name[2:]) < self.num_vars:
            value_index = self._value_index(value, tok) if value else self.value_empty
            return (SYN_VARIABLE, int(name[2:]), na_op, value_index, 0, 0)
        raise DataFormatError(
            f"unknown token {tok!r}: expected x_0…x_{self.num_vars - 1} (optionally x_i:value), "
            f"an operation of {list(self.ops)}, a constant 0…{self.mod_val - 1}, '=', '<EQ_SEP>' or '<PAD>'"
        )

    def _value_index(self, value: str, tok: str) -> int:
        if not _is_uint(value) or int(value) >= self.mod_val:
            raise DataFormatError(f"token {tok!r}: value {value!r} is not a residue 0…{self.mod_val - 1}")
        return int(value)

    def decode(self, indices: torch.Tensor | Sequence[Sequence[int]], with_values: bool = False) -> list[str]:
        """``[T, 6]`` factor indices → surface tokens (by SYNTAX, as the authors' tokenizer does).

        With ``with_values`` a variable whose VALUE is a residue is written ``x_i:v``, so that
        ``encode(decode(x, with_values=True))`` reproduces any well-formed sequence exactly.
        """
        rows = indices.tolist() if isinstance(indices, torch.Tensor) else [list(r) for r in indices]
        syntax, variables, ops, values = self.tables()[:4]
        out = []
        for row in rows:
            syn, var, op, val = row[:4]
            if syn == SYN_VARIABLE:
                tok = variables[var]
                if with_values and val < self.mod_val:
                    tok = f"{tok}:{val}"
            elif syn == SYN_OPERATION:
                tok = ops[op]
            elif syn == SYN_VALUE:
                tok = values[val]
            else:
                tok = syntax[syn]
            out.append(tok)
        return out

    def format_sample(self, sample: torch.Tensor, depth: torch.Tensor | None = None) -> str:
        """A readable view of one sequence ``[L, 6]``: one equation per line with the RHS value.

        The value column shows the VALUE factor of the RHS variable (``?`` while it is EMPTY), so the
        same printer serves inputs, labels and intermediate states; ``depth`` ([L], e.g. ``info[..., 0]``)
        adds each node's depth.
        """
        syntax = sample[:, SYNTAX]
        length = int((syntax != SYN_PAD).sum())
        words = self.decode(sample[:length])
        lines, start = [], 0
        for end in range(length + 1):
            if end < length and int(syntax[end]) != SYN_EQ_SEP:
                continue
            if end > start:
                rhs = end - 1
                value = int(sample[rhs, VALUE])
                shown = str(value) if value < self.mod_val else ("?" if value == self.value_empty else NA)
                line = f"{' '.join(words[start:end]):<40} {words[rhs]} = {shown}"
                if depth is not None:
                    line += f"   (depth {int(depth[rhs])})"
                lines.append(line)
            start = end + 1
        return "\n".join(lines)

    # ------------------------------------------------------------- vocab.json
    def to_dict(self) -> dict[str, Any]:
        """The vocabulary description of ``vocab.json`` (the authors' tokenizer, as plain data)."""
        out: dict[str, Any] = {"factors": list(FACTORS), "vocab_sizes": list(self.sizes), "mod_val": self.mod_val}
        for key, table in zip(_JSON_TABLES, self.tables()):
            out[key] = {str(i): tok for i, tok in enumerate(table)}
        return out

    @classmethod
    def from_dict(cls, data: Any, source: str = "vocabulary") -> "Vocab":
        """Rebuild from :meth:`to_dict` output; any deviation from the layout is a :class:`DataFormatError`."""
        if not isinstance(data, dict):
            raise DataFormatError(f"{source}: expected a JSON object with 'factors', 'vocab_sizes', 'mod_val', …")
        missing = [k for k in ("factors", "vocab_sizes", "mod_val", *_JSON_TABLES) if k not in data]
        if missing:
            raise DataFormatError(f"{source}: missing keys {missing}; write it with Vocab.to_json")
        try:
            tables = [[data[key][str(i)] for i in range(len(data[key]))] for key in _JSON_TABLES]
        except (KeyError, TypeError):
            raise DataFormatError(f"{source}: each factor table must map '0', '1', … to tokens") from None
        variables, ops = tables[VARIABLE], tables[OPERATION]
        if not ops or ops[-1] != NA or not variables or variables[-1] != NA:
            raise DataFormatError(f"{source}: the 'variable' and 'operation' tables must end with 'N/A'")
        try:
            vocab = cls(num_vars=len(variables) - 1, ops=tuple(ops[:-1]), mod_val=data["mod_val"])
        except ConfigError as exc:
            raise DataFormatError(f"{source}: {exc}") from None
        if [list(t) for t in vocab.tables()] != tables or list(data["factors"]) != list(FACTORS):
            raise DataFormatError(
                f"{source}: factor tables do not follow the tokenizer layout (docs/method.md §1.5) for "
                f"{vocab.num_vars} variables, ops {list(vocab.ops)}, mod_val {vocab.mod_val}"
            )
        if list(data["vocab_sizes"]) != list(vocab.sizes):
            raise DataFormatError(f"{source}: vocab_sizes {data['vocab_sizes']} != table sizes {list(vocab.sizes)}")
        return vocab

    def to_json(self, path: str | os.PathLike) -> None:
        # indent=1 and no trailing newline: byte-identical to the authors' vocab.json.
        with open(path, "w") as f:
            json.dump(self.to_dict(), f, indent=1)

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> "Vocab":
        try:
            with open(path) as f:
                data = json.load(f)
        except (OSError, ValueError) as exc:
            raise DataFormatError(
                f"cannot read vocabulary {path}: {exc}; pass the vocab.json written beside the data"
            ) from None
        return cls.from_dict(data, source=str(path))


def _is_uint(text: str) -> bool:
    return text.isascii() and text.isdigit()


def check_ops(ops: Sequence[str]) -> None:
    """Raise :class:`ConfigError` unless ``ops`` is a non-empty, duplicate-free subset of ADD/SUB/MUL."""
    if not ops:
        raise ConfigError(f"func_vocab is empty: list at least one operation of {list(KNOWN_OPS)}")
    unknown = [op for op in ops if op not in KNOWN_OPS]
    if unknown:
        raise ConfigError(f"unknown operation(s) {unknown} in func_vocab: use only {list(KNOWN_OPS)}")
    if len(set(ops)) != len(ops):
        raise ConfigError(f"func_vocab {list(ops)} repeats an operation: list each at most once")
