"""Backends: the same model math, computed by plain PyTorch (``reference``) or fused kernels (``triton``).

A backend supplies the four hot operations of a training or evaluation step; the trainer and the
evaluator only talk to this interface, so both backends share weights, checkpoints and code paths:

* ``attention`` — plugged into every layer of the model (``RecurrentTransformer.set_attention``);
* ``teacher_batch`` — teacher states ``S_k`` / targets ``S_{k+1}`` and error-correction noise;
* ``loss`` — the six heads' weighted cross-entropy plus per-token correctness for metrics;
* ``decode_step`` — one closed-loop iteration for evaluation (logits → argmax → next state).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F

from .attention import AttentionFn, relpos_attention_reference
from .corruption import corrupt_values
from .data import teacher_states
from .errors import ConfigError
from .model import RecurrentTransformer
from .recurrence import decode, reset_dead_factors


@dataclass
class LossOutput:
    total: torch.Tensor  # scalar: Σ_f w_f · mean CE_f
    per_factor: torch.Tensor  # [6] mean CE per factor (detached)
    correct: torch.Tensor  # bool [N, L, 6]: argmax == target


@dataclass
class TeacherBatch:
    inputs: torch.Tensor  # [K, B, L, 6] iteration inputs S_0 … S_{K−1} (possibly corrupted)
    targets: torch.Tensor  # [K, B, L, 6] S_1 … S_K
    corrupted: Optional[torch.Tensor]  # bool [K, B, L], or None on an uncorrupted step


class ReferenceBackend:
    """Plain PyTorch everywhere: the readable oracle."""

    name = "reference"
    attention: AttentionFn = staticmethod(relpos_attention_reference)

    def teacher_batch(
        self,
        tokens: torch.Tensor,
        labels: torch.Tensor,
        depth: torch.Tensor,
        num_iters: int,
        *,
        corrupt: bool,
        strategy: str,
        token_prob: float,
        value_vocab_size: int,
        generator: torch.Generator,
    ) -> TeacherBatch:
        inputs, targets = teacher_states(tokens, labels, depth, num_iters)
        mask = None
        if corrupt:
            inputs, mask = corrupt_values(
                inputs, depth, strategy=strategy, token_prob=token_prob, value_vocab_size=value_vocab_size, generator=generator
            )
        return TeacherBatch(inputs, targets, mask)

    def loss(
        self,
        model: RecurrentTransformer,
        inputs: torch.Tensor,
        targets: torch.Tensor,
        weights: tuple,
        token_mask: Optional[torch.Tensor],
        normalizer: Optional[float] = None,
    ) -> LossOutput:
        """``Σ_f weights[f] · mean CE_f``; mean CE per factor over counted tokens (all tokens when ``token_mask`` is None).

        ``normalizer`` replaces the local token count as the denominator (data-parallel training
        divides by the global count / world size, so averaging gradients over ranks gives the
        single-process mean).
        """
        logits = model(inputs)
        per_factor, correct = [], []
        for f, lg in enumerate(logits):
            target = targets[..., f]
            ce = F.cross_entropy(lg.flatten(0, 1).float(), target.flatten(), reduction="none").view_as(target)
            per_factor.append(masked_mean(ce, token_mask, normalizer))
            correct.append(lg.argmax(-1) == target)
        # Zero-weight factors stay in the sum (as 0·loss): their heads get zero, not missing,
        # gradients, which data-parallel training needs.
        total = sum(float(w) * loss for w, loss in zip(weights, per_factor))
        return LossOutput(total, torch.stack(per_factor).detach(), torch.stack(correct, -1))

    @torch.no_grad()
    def decode_step(self, model: RecurrentTransformer, state: torch.Tensor) -> torch.Tensor:
        return reset_dead_factors(decode(model(state)))


def masked_mean(values: torch.Tensor, mask: Optional[torch.Tensor], normalizer: Optional[float]) -> torch.Tensor:
    total = values.sum() if mask is None else (values * mask).sum()
    if normalizer is not None:
        return total / normalizer
    return total / (values.numel() if mask is None else mask.sum().clamp_min(1))


def resolve_backend(name: str, device: torch.device):
    """``auto`` → ``triton`` on CUDA, ``reference`` elsewhere."""
    if name == "auto":
        name = "triton" if device.type == "cuda" else "reference"
    if name == "reference":
        return ReferenceBackend()
    if name == "triton":
        from .fast import TritonBackend  # imports the kernels (and Triton) only when asked for

        return TritonBackend(device)
    raise ConfigError(f"backend={name!r} is invalid: auto, reference or triton")
