"""Linear probes of the latent state: what a linear read-out of the residual stream knows, per
iteration of the recurrence and per layer.

The model is rolled out from the input (discrete: argmax fed back, ``fastrecur.rollout``; or
continuous "nointerm": ``h_{t+1} = Encoder(h_t)``, ``fastrecur.rollout_continuous``). At every
iteration ``t`` the residual stream is read at a fixed sample of variable occurrences (RHS and
operand occurrences) after every layer (layer 0 is the encoder's input). For each (iteration,
layer, occurrence kind) a ridge-regression probe onto one-hot targets is fitted on 75 % of the
graphs and scored on the rest, for three targets:

* ``value`` — the value of the node named at the occurrence;
* ``depth`` — that node's depth;
* ``solved`` — whether the node is solved yet: its RHS holds the right value in the state that
  iteration ``t`` reads (the discrete state ``s_t``; in a continuous rollout, the decoded readout of
  the previous iteration). Nothing is solved at the first iteration, whose input hides every value.

Each score comes with two references: chance (the majority class of the training split, scored on
the test split) and the same probe trained on shuffled labels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..data import VALUE, GraphDataset
from ..model import RecurrentTransformer
from ..recurrence import rollout, rollout_continuous
from .heads import trimmed
from .positions import QUERY_KINDS, GraphPositions, graph_positions
from .recorder import Recording, recording

TARGETS = ("value", "depth", "solved")


@dataclass
class ProbeScore:
    accuracy: float  # held-out accuracy of the probe
    chance: float  # held-out accuracy of always predicting the training split's majority class
    shuffled: float  # held-out accuracy of the probe trained on shuffled labels


def ridge_probe(
    x: torch.Tensor,
    y: torch.Tensor,
    train: torch.Tensor,
    num_classes: int,
    *,
    ridge: float = 1e-3,
    generator: torch.Generator | None = None,
) -> ProbeScore:
    """Closed-form ridge regression of one-hot ``y`` on standardized ``x`` ``[N, D]``; argmax predicts.

    ``train`` (bool ``[N]``) selects the fitting split, the rest is scored. The penalty is
    ``ridge · N_train`` on the standardized features (the bias is not penalized).
    """
    return ridge_probes(x, [(y, num_classes)], train, ridge=ridge, generator=generator)[0]


def ridge_probes(
    x: torch.Tensor,
    targets: list[tuple[torch.Tensor, int]],
    train: torch.Tensor,
    *,
    ridge: float = 1e-3,
    generator: torch.Generator | None = None,
) -> list[ProbeScore]:
    """:func:`ridge_probe` for several ``(labels, num_classes)`` targets of the same features (one solve)."""
    x = x.double()
    test = ~train
    if int(train.sum()) == 0 or int(test.sum()) == 0:
        raise ValueError("a probe needs samples in both the training and the held-out split")
    mean, std = x[train].mean(0), x[train].std(0, unbiased=False).clamp_min(1e-6)
    z = torch.cat([(x - mean) / std, torch.ones(len(x), 1, dtype=x.dtype)], dim=1)
    zt = z[train]
    gram = zt.T @ zt
    penalty = torch.eye(gram.shape[0], dtype=x.dtype) * ridge * len(zt)
    penalty[-1, -1] = 0.0
    columns = []  # per target: its one-hot labels, then the same labels shuffled
    for y, num_classes in targets:
        y_train = y[train].long()
        shuffled = y_train[torch.randperm(len(y_train), generator=generator)]
        columns += [_one_hot(y_train, num_classes), _one_hot(shuffled, num_classes)]
    weights = torch.linalg.solve(gram + penalty, zt.T @ torch.cat(columns, dim=1))
    scores = z[test] @ weights
    out, start = [], 0
    for y, num_classes in targets:
        truth = y[test].long()
        fitted = scores[:, start : start + num_classes].argmax(1)
        control = scores[:, start + num_classes : start + 2 * num_classes].argmax(1)
        start += 2 * num_classes
        majority = int(torch.bincount(y[train].long(), minlength=num_classes).argmax())
        out.append(ProbeScore(_accuracy(fitted, truth), _accuracy(torch.full_like(truth, majority), truth), _accuracy(control, truth)))
    return out


def _accuracy(predicted: torch.Tensor, truth: torch.Tensor) -> float:
    return float((predicted == truth).double().mean())


def _one_hot(y: torch.Tensor, num_classes: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(y, num_classes).double()


@dataclass
class Occurrences:
    """A sample of variable occurrences and the residual stream there."""

    graph: torch.Tensor  # [N] graph index in the dataset
    position: torch.Tensor  # [N] position in the sequence
    kind: torch.Tensor  # [N] index into QUERY_KINDS
    value: torch.Tensor  # [N]
    depth: torch.Tensor  # [N]
    solved: torch.Tensor  # [iterations, N] bool: the node's value is right in the state iteration t reads
    features: torch.Tensor  # [iterations, layers + 1, N, D] float32 on the CPU


def sample_occurrences(pos: GraphPositions, max_occurrences: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(graph, position)`` of up to ``max_occurrences`` variable occurrences, drawn uniformly, sorted."""
    graph, position = torch.nonzero(pos.is_variable & pos.real, as_tuple=True)
    if len(graph) > max_occurrences:
        keep = torch.randperm(len(graph), generator=torch.Generator().manual_seed(seed))[:max_occurrences]
        keep = keep.sort().values
        graph, position = graph[keep], position[keep]
    return graph, position


@torch.no_grad()
def collect_occurrences(
    model: RecurrentTransformer,
    dataset: GraphDataset,
    *,
    num_iters: int,
    continuous: bool = False,
    batch_size: int = 32,
    max_occurrences: int = 4000,
    seed: int = 0,
    progress=None,
) -> Occurrences:
    """Roll the model out for ``num_iters`` iterations and keep the residual stream at sampled occurrences."""
    device = next(model.parameters()).device
    pos = graph_positions(dataset.labels, dataset.info)
    graph, position = sample_occurrences(pos, max_occurrences, seed)
    kind = torch.where(pos.is_rhs[graph, position], 0, 1)
    definition = pos.definition[graph, position]
    solved_chunks = []  # per batch: [iterations, occurrences in the batch]
    per_batch: list[list[list[torch.Tensor]]] = []  # [batch][iteration][layer]: the stream at the batch's occurrences
    with recording(model, attention=None) as rec:
        for start in range(0, len(dataset), batch_size):
            in_batch = (graph >= start) & (graph < start + batch_size)
            if not in_batch.any():
                continue
            rows, cols = (graph[in_batch] - start).to(device), position[in_batch].to(device)
            collected: list[list[torch.Tensor]] = []  # one entry per encoder pass (= iteration): every layer's stream

            def listener(r: Recording) -> None:
                collected.append([h[rows, cols].float().cpu() for h in r.hidden_states()])

            rec.listeners.append(listener)
            batch = trimmed(dataset[start : start + batch_size]).to(device)
            states = (rollout_continuous if continuous else rollout)(model, batch.tokens, num_iters, return_all=True)
            rec.listeners.remove(listener)
            defined_at = definition[in_batch].to(device)
            truth = batch.labels[rows, defined_at, VALUE]
            solved_chunks.append(torch.stack([s[rows, defined_at, VALUE] == truth for s in states[:-1]]).cpu())
            rec.clear()
            per_batch.append(collected)
            if progress is not None:
                progress.update(len(batch))
    num_layers = len(per_batch[0][0])
    features = torch.stack(
        [torch.stack([torch.cat([chunk[t][layer] for chunk in per_batch]) for layer in range(num_layers)]) for t in range(num_iters)]
    )
    solved = torch.cat(solved_chunks, dim=1)
    return Occurrences(graph, position, kind, pos.value[graph, position], pos.depth[graph, position], solved, features)


def probe_latents(occ: Occurrences, *, mod_val: int, test_fraction: float = 0.25, seed: int = 0, ridge: float = 1e-3) -> dict:
    """Probe scores ``[iteration][layer]`` for every target and occurrence kind, split by graph."""
    rng = torch.Generator().manual_seed(seed)
    graphs = occ.graph.unique()
    test_graphs = graphs[torch.randperm(len(graphs), generator=rng)[: max(1, round(test_fraction * len(graphs)))]]
    train = ~torch.isin(occ.graph, test_graphs)
    num_iters, num_layers = occ.features.shape[:2]
    max_depth = int(occ.depth.max())
    out: dict = {"num_occurrences": {k: int((occ.kind == i).sum()) for i, k in enumerate(QUERY_KINDS)}}
    for target in TARGETS:
        out[target] = {}
    for kind_index, kind in enumerate(QUERY_KINDS):
        selected = occ.kind == kind_index
        if int((selected & train).sum()) == 0 or int((selected & ~train).sum()) == 0:
            continue  # e.g. a sample too small to hold this kind in both splits
        tables = {target: {"accuracy": [], "chance": [], "shuffled": []} for target in TARGETS}
        for t in range(num_iters):
            targets = [_target(target, occ, t, mod_val, max_depth) for target in TARGETS]
            targets = [(labels[selected], classes) for labels, classes in targets]
            per_layer = [
                ridge_probes(occ.features[t, layer][selected], targets, train[selected], ridge=ridge, generator=rng)
                for layer in range(num_layers)
            ]
            for index, target in enumerate(TARGETS):
                for key in ("accuracy", "chance", "shuffled"):
                    tables[target][key].append([getattr(scores[index], key) for scores in per_layer])
        for target in TARGETS:
            out[target][kind] = tables[target]
    return out


def _target(target: str, occ: Occurrences, iteration: int, mod_val: int, max_depth: int) -> tuple[torch.Tensor, int]:
    if target == "value":
        return occ.value, mod_val
    if target == "depth":
        return occ.depth, max_depth + 1
    return occ.solved[iteration].long(), 2
