"""Error-correction noise on teacher inputs (SPEC §5), in plain PyTorch.

On a corrupted step, each candidate VALUE slot of iteration input ``S_k`` is replaced, with
probability ``token_prob``, by an index drawn uniformly from the whole VALUE vocabulary
``{0, …, p+1}`` (so a "corruption" may write N/A or EMPTY). Targets are never corrupted: the model
learns to overwrite whatever sits in a slot with the right value.

Candidate slots of iteration ``k`` (RHS positions only, ``depth ≥ 0``):

* ``last``     — ``depth == k``: the slots this iteration must fill (what the authors' code does);
* ``previous`` — ``depth == k − 1``: the values filled by the previous iteration (the intent stated
  in the authors' comment, SPEC §11.2);
* ``random``   — ``0 ≤ depth ≤ k``: the slots to fill and every value filled before.
"""

from __future__ import annotations

from typing import Optional

import torch

VALUE = 3  # index of the VALUE factor


def candidate_slots(depth: torch.Tensor, num_iters: int, strategy: str) -> torch.Tensor:
    """Bool ``[K, B, L]``: which slots of each iteration input may be corrupted."""
    k = torch.arange(num_iters, device=depth.device).view(-1, 1, 1)
    d = depth.unsqueeze(0)
    on_rhs = d >= 0
    if strategy == "last":
        return on_rhs & (d == k)
    if strategy == "previous":
        return on_rhs & (d == k - 1)
    if strategy == "random":
        return on_rhs & (d <= k)
    raise ValueError(f"unknown corruption strategy {strategy!r}: last, previous or random")


def corrupt_values(
    inputs: torch.Tensor,
    depth: torch.Tensor,
    *,
    strategy: str,
    token_prob: float,
    value_vocab_size: int,
    generator: Optional[torch.Generator] = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Corrupt the VALUE factor of ``inputs`` ``[K, B, L, 6]`` (a new tensor is returned).

    Returns ``(corrupted_inputs, mask)`` with ``mask`` bool ``[K, B, L]`` marking corrupted slots.
    Random numbers come from ``generator`` (a CPU generator, so runs repeat exactly on any device).
    """
    K = inputs.shape[0]
    candidates = candidate_slots(depth, K, strategy)
    coins = torch.rand(candidates.shape, generator=generator).to(inputs.device)
    mask = candidates & (coins < token_prob)
    noise = torch.randint(0, value_vocab_size, candidates.shape, generator=generator).to(inputs.device)
    out = inputs.clone()
    out[..., VALUE] = torch.where(mask, noise, inputs[..., VALUE])
    return out, mask
