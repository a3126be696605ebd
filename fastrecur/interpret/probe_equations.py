"""Controlled probe equations (the authors' ``conduct_controlled_exp.py``, docs/method.md §9).

From a solved graph (the teacher state ``S_{D+1}``: every node's value is written at its RHS) a
probe equation ``<EQ_SEP> var_0 OP var_1 … = rhs`` is appended after the last real token. One
batch varies one slot and keeps the others fixed: an operand slot ``var_s`` runs through every
variable the graph defines, the ``rhs`` slot through names the graph does not use. Measured at the
probe's RHS (the last query), per layer and head:

* the variance across the batch of the head's own contribution to the residual stream (its
  attention-weighted values through its slice of ``W_o``, bias excluded) divided by the contribution's
  mean squared norm — near 0 when the head ignores the varied slot, larger when it reacts to it;
* the entropy of the head's attention distribution;
* the cosine similarity between heads' attention distributions (every layer's heads together);

and the accuracy of the VALUE prediction at the probe's RHS (the true value is the fold of the
operands' values with the probe's operation).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Optional

import numpy as np
import torch

from ..data import VALUE, GraphDataset
from ..model import RecurrentTransformer
from .positions import graph_positions
from .recorder import head_contributions, recording

_FOLD = {
    "ADD": lambda a, b, p: (a + b) % p,
    "SUB": lambda a, b, p: (a - b) % p,
    "MUL": lambda a, b, p: (a * b) % p,
}


def slot_names(arity: int) -> tuple[str, ...]:
    return tuple(f"var_{s}" for s in range(arity)) + ("rhs",)


@dataclass
class ProbeBatch:
    graph: int  # index of the graph in the dataset
    slot: str  # the slot that varies across the batch
    tokens: torch.Tensor  # [V, T, 6]: the solved graph followed by the probe equation (its RHS is last)
    target: torch.Tensor  # [V] true value of the probe's RHS


def probe_batches(
    dataset: GraphDataset, *, arity: int, num_graphs: int, seed: int = 0, max_variants: int = 32
) -> Iterator[ProbeBatch]:
    """Batches of probe equations for the first ``num_graphs`` graphs, one per graph and slot.

    An ``rhs`` batch is skipped for a graph that uses every name of the pool (no free name).
    """
    if arity < 1:
        raise ValueError(f"probe arity must be >= 1, got {arity}")
    vocab = dataset.vocab
    op = vocab.ops[0]
    rng = np.random.default_rng(seed)
    for g in range(min(num_graphs, len(dataset))):
        graph = dataset[g]
        length = int(graph.lengths[0])
        pos = graph_positions(graph.labels, graph.info)
        rhs = pos.is_rhs[0]
        names = pos.variable[0][rhs].tolist()
        value_of = dict(zip(names, pos.value[0][rhs].tolist()))
        free = sorted(set(range(vocab.num_vars)) - set(names))
        # The fillers every slot keeps while another slot varies: random, so that no slot is tied to
        # the graph's first names (operand names may repeat only when the graph has too few).
        base = list(rng.choice(names, size=arity, replace=len(names) < arity)) + [rng.choice(free) if free else None]
        variants = {f"var_{s}": [(s, name) for name in _fillers(rng, names, max_variants)] for s in range(arity)}
        if free:
            variants["rhs"] = [(arity, name) for name in _fillers(rng, free, max_variants)]
        for slot, changes in variants.items():
            rows, targets = [], []
            for index, name in changes:
                filled = list(base)
                filled[index] = name
                if filled[arity] is None:  # no free name for the RHS: reuse one (only when rhs is not probed)
                    filled[arity] = names[-1]
                operands = [int(v) for v in filled[:arity]]
                words = ["<EQ_SEP>", f"x_{operands[0]}"]
                for operand in operands[1:]:
                    words += [op, f"x_{operand}"]
                words += ["=", f"x_{int(filled[arity])}"]
                rows.append(torch.cat([graph.labels[0, :length], vocab.encode(words)]))
                value = value_of[operands[0]]
                for operand in operands[1:]:
                    value = _FOLD[op](value, value_of[operand], vocab.mod_val)
                targets.append(value)
            yield ProbeBatch(g, slot, torch.stack(rows), torch.tensor(targets))


def _fillers(rng: np.random.Generator, pool: list[int], count: int) -> list[int]:
    """Up to ``count`` distinct names of ``pool``, drawn at random, sorted."""
    return sorted(int(v) for v in rng.choice(pool, size=min(count, len(pool)), replace=False))


@torch.no_grad()
def run_probe_equations(
    model: RecurrentTransformer,
    dataset: GraphDataset,
    *,
    arity: int,
    num_graphs: int,
    seed: int = 0,
    progress=None,
) -> dict:
    """Per slot: VALUE accuracy at the probe's RHS and per (layer, head) the variance ratio and entropy;
    plus the head×head similarity of attention distributions averaged over every batch."""
    cfg = model.config
    device = next(model.parameters()).device
    slots = slot_names(arity)
    shape = (cfg.num_layers, cfg.num_heads, len(slots))
    ratio, entropy = np.zeros(shape), np.zeros(shape)
    batches, correct, probes = np.zeros(len(slots)), np.zeros(len(slots)), np.zeros(len(slots))
    similarity: Optional[torch.Tensor] = None
    with recording(model, attention="last") as rec:
        for batch in probe_batches(dataset, arity=arity, num_graphs=num_graphs, seed=seed):
            s = slots.index(batch.slot)
            logits = model(batch.tokens.to(device))
            correct[s] += float((logits[VALUE][:, -1].argmax(-1).cpu() == batch.target).sum())
            probes[s] += len(batch.target)
            batches[s] += 1
            last = []  # every layer's attention at the probe's RHS: [V, H, T]
            for layer, record in enumerate(rec.layers):
                contribution = head_contributions(model, layer, record.head_outputs[:, :, -1])  # [V, H, D]
                ratio[layer, :, s] += variance_ratio(contribution).cpu().numpy()
                p = record.probs[:, :, -1]
                entropy[layer, :, s] += attention_entropy(p).mean(0).cpu().numpy()
                last.append(p)
            rec.clear()
            sims = cosine_similarity_matrix(torch.cat(last, dim=1)).sum(0).cpu()
            similarity = sims if similarity is None else similarity + sims
            if progress is not None:
                progress.update(1)
    seen = np.where(batches > 0, batches, np.nan)  # a slot never probed (no free RHS name) reads NaN
    return {
        "slots": list(slots),
        "operation": dataset.vocab.ops[0],
        "batches": batches.astype(int).tolist(),
        "probes": probes.astype(int).tolist(),
        "value_accuracy": (correct / np.where(probes > 0, probes, np.nan)).tolist(),
        "variance_ratio": (ratio / seen).tolist(),  # [layer][head][slot]
        "entropy": (entropy / seen).tolist(),
        "similarity": (similarity / probes.sum()).tolist() if similarity is not None else [],
    }


def variance_ratio(contribution: torch.Tensor) -> torch.Tensor:
    """``[V, H, D]`` → ``[H]``: ``Σ_dims Var_V(c) / mean_V ‖c‖²`` (population variance; 0 when constant)."""
    c = contribution.double()
    variance = c.var(dim=0, unbiased=False).sum(-1)
    mean_square = c.pow(2).sum(-1).mean(0)
    return (variance / mean_square.clamp_min(1e-30)).float()


def attention_entropy(p: torch.Tensor) -> torch.Tensor:
    """Entropy (nats) of distributions over the last dimension."""
    return -(p * p.clamp_min(1e-30).log()).sum(-1)


def cosine_similarity_matrix(p: torch.Tensor) -> torch.Tensor:
    """``[V, N, T]`` distributions → ``[V, N, N]`` cosine similarities."""
    unit = torch.nn.functional.normalize(p.double(), dim=-1)
    return unit @ unit.transpose(-1, -2)
