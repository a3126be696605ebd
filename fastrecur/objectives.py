"""The losses of the paper's other arms (docs/method.md §10); the method's own step is in ``train``.

* ``unrolled_loss`` — continuous latent recurrence: one forward pass unrolls ``K`` iterations from
  the input ``S_0`` (``h_{t+1} = Encoder(h_t)``, the heads reading each ``h_t``) and one backward
  goes through all of them (BPTT, optionally truncated). Supervised per iteration (the targets
  ``S_1 … S_K``; the authors' "nointerm": mean cross-entropy per iteration, summed over iterations)
  or on the final state only (one target, the solved sequence, read after the last iteration).
* ``next_token_loss`` — the chain-of-thought baseline: next-token cross-entropy on the counted tokens.

Each returns what the trainer's step needs: ``total`` (to back-propagate), ``per_factor``,
``correct``, ``corrupted`` (None: these arms have no error correction) and ``positions``.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from fastrecur_kernels.reference import masked_mean

from .backends import Backend
from .model import RecurrentTransformer


def unrolled_loss(
    module: torch.nn.Module,
    backend: Backend,
    model: RecurrentTransformer,
    tokens: torch.Tensor,
    targets: torch.Tensor,
    num_iters: int,
    *,
    truncation: Optional[int],
    weights: tuple,
    token_mask: Optional[torch.Tensor],
    normalizer: Optional[float] = None,
) -> dict:
    """``Σ_k loss(heads(h_k), targets[k])`` over the supervised iterations.

    ``module`` is the (possibly wrapped) ``ContinuousRecurrence`` around ``model``; ``tokens``
    ``[B, L, 6]`` the input ``S_0``; ``targets`` ``[K, B, L, 6]`` supervises every iteration
    (``K = num_iters``), ``[1, B, L, 6]`` only the last one. ``normalizer`` (data-parallel) is
    the loss denominator over all supervised iterations, as in the method's step.
    """
    hidden = module(tokens, num_iters, truncation)
    if targets.shape[0] not in (1, num_iters):
        raise ValueError(f"targets must supervise every iteration ({num_iters}) or the last one, got {targets.shape[0]}")
    supervised = hidden if targets.shape[0] == num_iters else hidden[-1:]
    per_iteration_normalizer = normalizer / len(supervised) if normalizer is not None else None
    total, per_factor, correct = 0.0, 0.0, []
    for z, target in zip(supervised, targets):
        out = backend.readout_loss(model, z, target, weights, token_mask, per_iteration_normalizer)
        total = total + out.total
        per_factor = per_factor + out.per_factor
        correct.append(out.correct)
    positions = num_iters * tokens.shape[0] * tokens.shape[1]  # sequence positions computed
    return {"total": total, "per_factor": per_factor, "correct": torch.stack(correct), "corrupted": None, "positions": positions}


def next_token_loss(module: torch.nn.Module, tokens: torch.Tensor, counted: torch.Tensor, normalizer: Optional[float] = None) -> dict:
    """Cross-entropy of ``tokens[:, 1:]`` given ``tokens[:, :-1]`` ``[B, L]``, averaged over the
    ``counted`` next tokens (bool ``[B, L − 1]``; ``normalizer`` replaces their count)."""
    logits = module(tokens[:, :-1])
    targets = tokens[:, 1:]
    compute = torch.promote_types(logits.dtype, torch.float32)
    ce = F.cross_entropy(logits.flatten(0, 1).to(compute), targets.flatten(), reduction="none").view_as(targets)
    total = masked_mean(ce, counted, normalizer)
    correct = logits.detach().argmax(dim=-1) == targets
    return {"total": total, "per_factor": total.detach().new_zeros(0), "correct": correct, "corrupted": None, "positions": targets.numel()}
