"""The recurrence around the block: the discrete bottleneck and closed-loop rollouts (docs/method.md §3).

One discrete iteration: embed the state ``s_t`` → encoder → six logit tensors → decode every factor
at every position (argmax, or a Gumbel-max sample) → ``s_{t+1}``. REGRET and MODIFICATION are
reset to FALSE after each step: their heads are never trained (loss weight 0), so feeding back
their raw argmax would inject untrained embedding rows (docs/method.md §8.1).

The continuous "nointerm" variant (docs/method.md §3.2) skips the bottleneck: ``h_{t+1} = Encoder(h_t)``.
``unroll_continuous`` is its one definition, differentiable (training back-propagates through the
unrolled iterations, optionally truncated); ``ContinuousRecurrence`` wraps it as a module, so that
DDP and ``torch.compile`` see the whole unrolled forward pass.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

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


def unroll_continuous(
    model: RecurrentTransformer, tokens: torch.Tensor, num_loops: int, truncation: Optional[int] = None
) -> list[torch.Tensor]:
    """The hidden states ``[h_1, …, h_K]`` (``K = num_loops``) of ``h_0 = embed(s_0)``,
    ``h_{t+1} = Encoder(h_t)`` (no re-embedding; the heads read each ``h_t``).

    Differentiable: a loss on any ``h_t`` back-propagates through every iteration before it (BPTT).
    ``truncation = T`` cuts that graph every ``T`` iterations: ``h_T, h_2T, …`` enter the next
    iteration detached, so the gradient of ``h_t`` reaches back to iteration ``T·⌊(t−1)/T⌋ + 1``
    only (and the embedding only from ``h_1 … h_T``).
    """
    if num_loops < 1:
        raise ValueError(f"num_loops must be >= 1, got {num_loops}")
    if truncation is not None and truncation < 1:
        raise ValueError(f"truncation must be >= 1 or None, got {truncation}")
    h = model.embed(tokens)
    hidden = []
    for t in range(num_loops):
        if truncation is not None and t > 0 and t % truncation == 0:
            h = h.detach()
        h = model.encode(h)
        hidden.append(h)
    return hidden


class ContinuousRecurrence(nn.Module):
    """``unroll_continuous`` as a module around ``model`` (which it holds as ``model``): training
    wraps this, so one forward call — the one DDP and ``torch.compile`` see — covers all iterations."""

    def __init__(self, model: RecurrentTransformer):
        super().__init__()
        self.model = model

    def forward(self, tokens: torch.Tensor, num_loops: int, truncation: Optional[int] = None) -> list[torch.Tensor]:
        return unroll_continuous(self.model, tokens, num_loops, truncation)


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
    states = [tokens]
    if num_loops:
        states += [decode(model.readout(h)) for h in unroll_continuous(model, tokens, num_loops)]
    return states if return_all else states[-1]
