"""Where heads look: the share of each head's attention that goes to graph-defined places.

For every variable query (an RHS, or a variable used as an operand) and every head, the attention
distribution over the causal keys is split into :data:`~.positions.CATEGORIES` (the defining
occurrence of the query's variable, other occurrences of it, the operand tokens of the query's
own equation, the definitions of those operands, everything else), with the positions computed
from the graph. Shares are averaged over queries of each kind.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from ..data import GraphDataset
from ..model import RecurrentTransformer
from .positions import CATEGORIES, QUERY_KINDS, graph_positions, key_categories, query_kinds
from .recorder import recording

STATES = ("input", "solved")  # the sequence the model reads: S_0 (values hidden) or the solved S_{D+1}
# At most this many attention probabilities (all layers of one batch) are held at once: batches of
# long sequences are split further (2**28 float32 = 1 GiB).
PROBABILITY_BUDGET = 2**28


class HeadShares:
    """Accumulates ``share[layer, head, kind, category]`` over batches."""

    def __init__(self, num_layers: int, num_heads: int):
        self.sums = torch.zeros(num_layers, num_heads, len(QUERY_KINDS), len(CATEGORIES), dtype=torch.float64)
        self.counts = torch.zeros(len(QUERY_KINDS), dtype=torch.float64)

    def add(self, probs: list[torch.Tensor], categories: torch.Tensor, kinds: torch.Tensor) -> None:
        """``probs``: per layer ``[B, H, L, L]``; ``categories`` ``[B, L, L]``; ``kinds`` ``[B, L]`` (−1: not a query)."""
        index = categories.long().unsqueeze(1)  # [B, 1, L, L]
        for layer, p in enumerate(probs):
            B, H, L, _ = p.shape
            share = p.new_zeros(B, H, L, len(CATEGORIES)).scatter_add_(3, index.expand(B, H, L, L), p)
            for kind in range(len(QUERY_KINDS)):
                selected = (kinds == kind).view(B, 1, L, 1)
                self.sums[layer, :, kind] += (share * selected).sum(dim=(0, 2)).double().cpu()
        for kind in range(len(QUERY_KINDS)):
            self.counts[kind] += float((kinds == kind).sum())

    def result(self) -> np.ndarray:
        """Mean share per query ``[layers, heads, kinds, categories]`` (NaN for a kind never seen)."""
        return (self.sums / self.counts.view(1, 1, -1, 1)).numpy()


def state_tokens(dataset: GraphDataset, state: str) -> torch.Tensor:
    if state not in STATES:
        raise ValueError(f"state={state!r}: use one of {STATES}")
    return dataset.tokens if state == "input" else dataset.labels


def trimmed(dataset: GraphDataset) -> GraphDataset:
    """The same graphs without the trailing positions that are padding in every one of them.

    Attention is causal and padding trails, so real positions compute the same with or without it.
    """
    length = max(int(dataset.lengths.max()), 1)
    return GraphDataset(dataset.labels[:, :length], dataset.info[:, :length], dataset.vocab)


@torch.no_grad()
def head_shares(
    model: RecurrentTransformer,
    dataset: GraphDataset,
    *,
    state: str = "input",
    batch_size: int = 32,
    progress=None,
) -> np.ndarray:
    """Mean attention share ``[layers, heads, kinds, categories]`` over all variable queries of ``dataset``."""
    cfg = model.config
    shares = HeadShares(cfg.num_layers, cfg.num_heads)
    device = next(model.parameters()).device
    length = int(dataset.lengths.max())
    batch_size = max(1, min(batch_size, PROBABILITY_BUDGET // (cfg.num_layers * cfg.num_heads * length * length)))
    with recording(model, attention="all") as rec:
        for start in range(0, len(dataset), batch_size):
            batch = trimmed(dataset[start : start + batch_size]).to(device)
            pos = graph_positions(batch.labels, batch.info)
            model(state_tokens(batch, state))
            shares.add([layer.probs for layer in rec.layers], key_categories(pos), query_kinds(pos))
            rec.clear()
            if progress is not None:
                progress.update(len(batch))
    return shares.result()


@dataclass
class AttentionMap:
    """One graph's attention, every layer and head, on its real positions."""

    tokens: list[str]  # readable token of every position
    probs: np.ndarray  # [layers, heads, L, L]
    definition: np.ndarray  # [L] position defining the variable at each position (−1: not a variable)


@torch.no_grad()
def attention_maps(
    model: RecurrentTransformer, dataset: GraphDataset, indices: list[int], *, state: str = "input"
) -> list[AttentionMap]:
    device = next(model.parameters()).device
    maps = []
    with recording(model, attention="all") as rec:
        for index in indices:
            graph = trimmed(dataset[index]).to(device)
            model(state_tokens(graph, state))
            probs = np.stack([layer.probs[0].cpu().numpy() for layer in rec.layers])
            rec.clear()
            pos = graph_positions(graph.labels, graph.info)
            words = dataset.vocab.decode(graph.labels[0].cpu())
            maps.append(AttentionMap([short_token(w) for w in words], probs, pos.definition[0].cpu().numpy()))
    return maps


_SHORT = {"ADD": "+", "SUB": "-", "MUL": "*", "<EQ_SEP>": "|", "<PAD>": "", "<UNK>": "?"}


def short_token(word: str) -> str:
    return _SHORT.get(word, word.replace("x_", "x"))


def dominant_category(shares: np.ndarray, kind: int, threshold: float = 0.5) -> list[list[Optional[str]]]:
    """Per layer and head, the category holding more than ``threshold`` of the attention (or None)."""
    out = []
    for layer in shares[:, :, kind]:
        row = []
        for head in layer:
            best = int(np.nanargmax(head)) if np.isfinite(head).any() else 0
            row.append(CATEGORIES[best] if head[best] > threshold else None)
        out.append(row)
    return out
