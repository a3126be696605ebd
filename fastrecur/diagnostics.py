"""What a model has learned so far, split by what each node needs (docs/learning.md).

To write a node's value at its right-hand side (RHS), one iteration of the block must

* (a) read the operand names of its own equation (local: 2, 4 or 6 positions back);
* (b) find each operand's *defining* RHS elsewhere by name and read its value there — a content
  lookup, often further back than the relative-position window can tell apart, with the same name
  also standing as an operand in other equations;
* (c) fold the operand values with the operations (mod p).

Leaves need only a local copy of the constant two positions back; copy nodes (one operand) need
(a) + (b); k-ary nodes need all three. Splitting the VALUE accuracy at the nodes an iteration must
solve by these categories shows which skill a run has acquired, and when (the trainer logs it at every
validation as ``val/tf/<category>``).

The accuracies are *teacher-forced*: a node of depth ``d`` is predicted from the teacher state
``S_d``, as in training, so they measure the one-iteration skill without the compounding of errors
in closed-loop rollouts.

It also defines the *constant-answer floor*: with ADD, a graph whose leaves are all 0 has every node
0, and a model that writes one value everywhere "completely solves" it without having learned
anything. Accuracies are reported beside that floor, and without those graphs.
"""

from __future__ import annotations

from typing import Callable

import torch

from .data import VALUE, GraphDataset, teacher_states

# Bins of the distance (in positions) from an RHS back to its farthest operand's definition.
DISTANCE_BINS = (0, 8, 16, 32, 64, 128, 256, 512, 1 << 30)
# Their names in the accuracy dicts: dist_0_8, dist_8_16, …, dist_512_inf.
DISTANCE_BIN_NAMES = tuple(
    f"dist_{lo}_{hi if hi < DISTANCE_BINS[-1] else 'inf'}" for lo, hi in zip(DISTANCE_BINS[:-1], DISTANCE_BINS[1:])
)


def node_categories(ds: GraphDataset, window: int) -> dict[str, torch.Tensor]:
    """Boolean ``[N, L]`` masks over RHS positions, by what the node needs, plus ``distance`` (int64).

    A node is ``far`` when some operand's definition lies at a distance the position table cannot
    tell apart (every distance ≥ ``window − 1`` shares the clamped bucket): only content finds it.
    """
    info = ds.info
    depth = info[..., 0]
    is_rhs = depth >= 0
    position = torch.arange(info.shape[1], device=info.device).view(1, -1, 1)
    operand_position = info[..., 1::2]  # pos(u_1), pos(u_2), pos(u_3); −1 when absent
    present = operand_position >= 0
    num_operands = present.sum(-1)
    distance = torch.where(present, position - operand_position, 0).amax(-1)
    leaf = is_rhs & (depth == 0)
    inner = is_rhs & ~leaf
    copy, kary = inner & (num_operands == 1), inner & (num_operands >= 2)
    far = distance >= window - 1
    return {
        "leaf": leaf,
        "copy": copy,
        "kary": kary,
        "near": inner & ~far,
        "far": inner & far,
        "copy_far": copy & far,
        "kary_far": kary & far,
        "distance": torch.where(inner, distance, -1),
    }


@torch.no_grad()
def teacher_forced_value_correct(
    value_logits: Callable[[torch.Tensor], torch.Tensor], ds: GraphDataset, batch_size: int = 256
) -> torch.Tensor:
    """bool ``[N, L]``: the VALUE argmax is right at each RHS, given the teacher state of its depth.

    ``value_logits(tokens [B, L, 6]) -> [B, L, V]`` runs one iteration of the model.
    """
    N, L = ds.depth.shape
    correct = torch.zeros(N, L, dtype=torch.bool)
    for start in range(0, N, batch_size):
        batch = ds[start : start + batch_size]
        width = int(batch.lengths.max())  # trailing pads cannot change earlier positions (causal)
        depth = batch.depth[:, :width]
        num_iters = int(depth.max()) + 1
        inputs, targets = teacher_states(batch.tokens[:, :width], batch.labels[:, :width], depth, num_iters)
        K, B, _, F = inputs.shape
        predicted = value_logits(inputs.reshape(K * B, width, F)).argmax(-1).view(K, B, width).cpu()
        hit = predicted == targets[..., VALUE]  # [K, B, width]
        # A node of depth d is solved by iteration d: read hit[d] at its position.
        at_own_iteration = hit.gather(0, depth.clamp_min(0).unsqueeze(0)).squeeze(0)
        correct[start : start + len(batch), :width] = at_own_iteration & (depth >= 0)
    return correct


ROLES = ("keep", "solve", "wait")


@torch.no_grad()
def iteration_role_accuracy(
    value_logits: Callable[[torch.Tensor], torch.Tensor], ds: GraphDataset, extra_iterations: int = 1, batch_size: int = 64
) -> list[dict[str, tuple[int, int]]]:
    """Teacher-forced VALUE hits per iteration ``k``, split by what the iteration must do at each RHS.

    From teacher state ``S_k`` an iteration must *keep* the values of depth ``< k`` it is given,
    *solve* the nodes of depth ``k``, and leave the deeper ones EMPTY (*wait*). A closed loop that
    fails beyond the training depth shows here as a role that breaks at some ``k`` only: a model that
    writes guesses into slots whose operands are unknown (wait), or rewrites values it was given
    (keep). Returns, for ``k = 0 … max depth + extra_iterations``, ``{role: (hits, count)}``.
    """
    num_iters = int(ds.depth.max()) + 1 + extra_iterations
    totals = [{role: [0, 0] for role in ROLES} for _ in range(num_iters)]
    for start in range(0, len(ds), batch_size):
        batch = ds[start : start + batch_size]
        width = int(batch.lengths.max())  # trailing pads cannot change earlier positions (causal)
        depth = batch.depth[:, :width]
        inputs, targets = teacher_states(batch.tokens[:, :width], batch.labels[:, :width], depth, num_iters)
        rhs = depth >= 0
        for k in range(num_iters):
            hit = value_logits(inputs[k]).argmax(-1).cpu() == targets[k][..., VALUE]
            for role, mask in (("keep", rhs & (depth < k)), ("solve", depth == k), ("wait", depth > k)):
                totals[k][role][0] += int((hit & mask).sum())
                totals[k][role][1] += int(mask.sum())
    return [{role: tuple(hc) for role, hc in row.items()} for row in totals]


def split_accuracy(correct: torch.Tensor, categories: dict[str, torch.Tensor]) -> dict[str, float]:
    """Accuracy per category and per distance bin (all inner nodes, then copy and k-ary nodes apart:
    ``dist_16_32``, ``copy_dist_16_32``, ``kary_dist_16_32``); categories without nodes are left out.

    The split by kind tells a one-name lookup from a two-name one: the demo's failed seeds solved
    copies at every distance and lost k-ary nodes whose operands were defined far back (§3 of
    docs/learning.md)."""
    out = {}
    for name, mask in categories.items():
        if name != "distance" and mask.any():
            out[name] = float((correct & mask).sum()) / float(mask.sum())
    distance = categories["distance"]
    for prefix, kind in (("", None), ("copy_", "copy"), ("kary_", "kary")):
        for name, lo, hi in zip(DISTANCE_BIN_NAMES, DISTANCE_BINS[:-1], DISTANCE_BINS[1:]):
            mask = (distance >= lo) & (distance < hi)
            if kind is not None:
                mask &= categories[kind]
            if mask.any():
                out[prefix + name] = float((correct & mask).sum()) / float(mask.sum())
    return out


def node_skill_accuracy(value_logits, ds: GraphDataset, window: int) -> dict[str, float]:
    """Teacher-forced VALUE accuracy per node category (see the module docstring)."""
    return split_accuracy(teacher_forced_value_correct(value_logits, ds), node_categories(ds, window))


def constant_answer_graphs(labels: torch.Tensor, depth: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(trivial [N] bool, value [N] int64)``: graphs whose node values are all one residue, and that
    residue (−1 for the others). A model writing that one value everywhere would solve them."""
    values = labels[..., VALUE]
    rhs = depth >= 0
    some_value = torch.where(rhs, values, -1).amax(dim=1)
    trivial = torch.where(rhs, values == some_value.unsqueeze(1), True).all(dim=1)
    return trivial, torch.where(trivial, some_value, -1)
