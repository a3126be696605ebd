"""The recurrence around the block: the discrete bottleneck and closed-loop rollouts (docs/method.md §3).

One discrete iteration: embed the state ``s_t`` → encoder → six logit tensors → decode every factor
at every position (argmax, or a Gumbel-max sample) → ``s_{t+1}``. REGRET and MODIFICATION are
reset to FALSE after each step: their heads are never trained (loss weight 0), so feeding back
their raw argmax would inject untrained embedding rows (docs/method.md §8.1).

The continuous "nointerm" variant (docs/method.md §3.2) skips the bottleneck: ``h_{t+1} = Encoder(h_t)``.
"""

from __future__ import annotations

from typing import Optional

import torch

from fastrecur_kernels.reference import decode_reference, gumbel_noise, reset_factors_reference

from .data.vocab import RESET_FACTORS
from .model import RecurrentTransformer


def decode(
    logits: list[torch.Tensor],
    temperature: float = 0.0,
    generator: Optional[torch.Generator] = None,
) -> torch.Tensor:
    """Per-factor argmax (``temperature == 0``) or an exact sample from ``softmax(logits)``.

    For ``temperature > 0`` this is the authors' ``gumbel_softmax(hard=True)`` followed by argmax,
    which equals ``argmax(logits + g)`` with Gumbel noise ``g``: the temperature rescales
    ``logits + g`` and cannot move the argmax, so every ``τ > 0`` samples from ``softmax(logits)``
    itself (docs/method.md §3.1). Returns int64 ``[..., num_factors]``.
    """
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    noise = None
    if temperature > 0:
        noise = [gumbel_noise(lg.shape, device=lg.device, generator=generator) for lg in logits]
    return decode_reference(logits, reset_factors=(), noise=noise)


def reset_dead_factors(tokens: torch.Tensor) -> torch.Tensor:
    """Set REGRET and MODIFICATION to FALSE (returns a new tensor)."""
    return reset_factors_reference(tokens, RESET_FACTORS)


@torch.no_grad()
def rollout(
    model: RecurrentTransformer,
    tokens: torch.Tensor,
    num_loops: int,
    *,
    return_all: bool = False,
    temperature: float = 0.0,
    reset: bool = True,
    generator: Optional[torch.Generator] = None,
):
    """Run ``num_loops`` closed-loop discrete iterations from ``tokens`` ``[B, L, 6]``.

    Each iteration feeds back the decoded state (argmax by default), with REGRET/MODIFICATION
    reset to FALSE unless ``reset=False`` (the authors' offline evaluator does not reset; docs/method.md §8.1).
    Returns the final state ``[B, L, 6]``, or with ``return_all`` a list of the ``num_loops + 1``
    states ``[s_0, …, s_T]``. The caller chooses train/eval mode (eval: no dropout).
    """
    if num_loops < 0:
        raise ValueError(f"num_loops must be >= 0, got {num_loops}")
    state = tokens
    states = [state]
    for _ in range(num_loops):
        state = decode(model(state), temperature, generator)
        if reset:
            state = reset_dead_factors(state)
        states.append(state)
    return states if return_all else state


@torch.no_grad()
def rollout_continuous(
    model: RecurrentTransformer,
    tokens: torch.Tensor,
    num_loops: int,
    *,
    return_all: bool = False,
):
    """The "nointerm" recurrence: ``h_0 = embed(s_0)``, ``h_{t+1} = Encoder(h_t)`` (no re-embedding).

    Decoded states are returned for metrics only; they are never fed back.
    """
    h = model.embed(tokens)
    states = [tokens]
    for _ in range(num_loops):
        h = model.encode(h)
        states.append(decode(model.readout(h)))
    return states if return_all else states[-1]
