"""Where things are in a tokenized graph, computed from the graph itself (not read off a plot).

For every position of a batch of sequences: is it a variable, an RHS (a node's definition) or an
operand occurrence; which equation it belongs to; where its variable is defined; what the node's
value and depth are. From these, :func:`key_categories` sorts every (query, key) pair into the
categories of the attention summary.

Inputs are the solved sequences (``labels``) and ``dataset_info`` (``info``): channel 0 is the
node depth at RHS positions (−1 elsewhere), channels 1, 3, 5, … the positions of the definitions
of the equation's operands (a leaf's channel 1 is the position of its constant).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..data import SYN_EQ_SEP, SYN_PAD, SYN_VALUE, SYN_VARIABLE, SYNTAX, VALUE, VARIABLE

# Attention summary categories, in priority order: a key counts for the first that applies.
CATEGORIES = ("self", "definition", "same_variable", "own_operands", "operand_definitions", "other")
CATEGORY_HELP = {
    "self": "the query position itself (for an RHS query this is also its variable's definition)",
    "definition": "the defining (RHS) occurrence of the query's variable",
    "same_variable": "other occurrences of the query's variable",
    "own_operands": "the operand tokens (variables, constants) of the query's own equation",
    "operand_definitions": "the definitions of the operands of the query's own equation",
    "other": "everything else",
}
QUERY_KINDS = ("rhs", "operand")  # a variable at a node's definition, or a variable used as an operand


@dataclass
class GraphPositions:
    """Per-position facts of a batch ``[B, L]`` (−1 where a fact does not apply)."""

    real: torch.Tensor  # bool: not padding
    is_variable: torch.Tensor  # bool
    is_rhs: torch.Tensor  # bool: the RHS variable of an equation (a node's definition)
    is_operand: torch.Tensor  # bool: a variable or constant on an equation's left-hand side
    variable: torch.Tensor  # VARIABLE index of variables, −1 elsewhere
    equation: torch.Tensor  # equation number of every position
    definition: torch.Tensor  # position of the RHS defining this position's variable
    operand_definitions: torch.Tensor  # [B, L, F] definitions of the operands of this position's equation
    value: torch.Tensor  # value of the node named at this position (variables only)
    depth: torch.Tensor  # depth of the node named at this position (variables only)

    @property
    def is_operand_variable(self) -> torch.Tensor:
        return self.is_variable & ~self.is_rhs


def graph_positions(labels: torch.Tensor, info: torch.Tensor) -> GraphPositions:
    """:class:`GraphPositions` of solved sequences ``labels`` ``[B, L, 6]`` with their ``info`` ``[B, L, C]``."""
    B, L, _ = labels.shape
    device = labels.device
    syntax = labels[..., SYNTAX]
    real = syntax != SYN_PAD
    is_variable = syntax == SYN_VARIABLE
    is_rhs = info[..., 0] >= 0
    equation = torch.cumsum(syntax == SYN_EQ_SEP, dim=1)  # a separator opens the next equation
    # An equation is "LHS = RHS": every operand or constant in it that is not its RHS is on the left.
    is_operand = real & ((syntax == SYN_VARIABLE) | (syntax == SYN_VALUE)) & ~is_rhs

    # The RHS position of every variable, looked up for every variable occurrence.
    positions = torch.arange(L, device=device).expand(B, L)
    variable = torch.where(is_variable, labels[..., VARIABLE], -1)
    sink = int(variable.max()) + 1
    variable = torch.where(is_variable, variable, sink)
    table = torch.full((B, sink + 1), -1, dtype=torch.int64, device=device)
    table.scatter_(1, torch.where(is_rhs, variable, sink), torch.where(is_rhs, positions, -1))
    table[:, -1] = -1
    definition = table.gather(1, variable)

    # The RHS position of every equation, then the operand definitions stored there.
    rhs_of_equation = torch.full((B, L + 1), -1, dtype=torch.int64, device=device)
    rhs_of_equation.scatter_(1, torch.where(is_rhs, equation, L), torch.where(is_rhs, positions, -1))
    rhs_of_equation[:, L] = -1
    own_rhs = rhs_of_equation.gather(1, equation.clamp(max=L))
    operand_channels = info[..., 1::2]  # [B, L, F]
    operand_definitions = operand_channels.gather(1, own_rhs.clamp(min=0).unsqueeze(-1).expand_as(operand_channels))
    operand_definitions = torch.where((own_rhs >= 0).unsqueeze(-1), operand_definitions, -1)

    has_definition = definition >= 0
    safe = definition.clamp(min=0)
    value = torch.where(has_definition, labels[..., VALUE].gather(1, safe), -1)
    depth = torch.where(has_definition, info[..., 0].gather(1, safe), -1)
    return GraphPositions(
        real=real,
        is_variable=is_variable,
        is_rhs=is_rhs,
        is_operand=is_operand,
        variable=torch.where(is_variable, variable, -1),
        equation=equation,
        definition=definition,
        operand_definitions=operand_definitions,
        value=value,
        depth=depth,
    )


def key_categories(pos: GraphPositions) -> torch.Tensor:
    """``[B, L(query), L(key)]`` uint8: the index in :data:`CATEGORIES` of every pair (causal keys only
    matter; future keys get ``other``)."""
    B, L = pos.real.shape
    keys = torch.arange(L, device=pos.real.device).view(1, 1, L)
    itself = torch.eye(L, dtype=torch.bool, device=pos.real.device).expand(B, L, L)
    definition = keys == pos.definition.unsqueeze(-1)
    same_variable = (pos.variable.unsqueeze(-1) == pos.variable.unsqueeze(1)) & pos.is_variable.unsqueeze(-1)
    own_operands = (pos.equation.unsqueeze(-1) == pos.equation.unsqueeze(1)) & pos.is_operand.unsqueeze(1)
    operand_definitions = (keys.unsqueeze(-1) == pos.operand_definitions.unsqueeze(2)).any(-1)
    category = torch.full((B, L, L), len(CATEGORIES) - 1, dtype=torch.uint8, device=pos.real.device)
    for index, mask in reversed(list(enumerate((itself, definition, same_variable, own_operands, operand_definitions)))):
        category[mask] = index  # reversed: the earlier (higher-priority) category is written last
    return category


def query_kinds(pos: GraphPositions) -> torch.Tensor:
    """``[B, L]`` index into :data:`QUERY_KINDS` for variable queries, −1 for every other position."""
    kind = torch.full_like(pos.equation, -1)
    kind[pos.is_rhs] = 0
    kind[pos.is_operand_variable & pos.real] = 1
    return kind
