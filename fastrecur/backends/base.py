"""What a backend is: the four hot operations of a training or evaluation step.

The trainer and the evaluator only talk to this interface, so every backend shares weights,
checkpoints and code paths:

* ``attention`` — plugged into every layer of the model by ``bind`` (the one call that attaches a
  backend to a model; the trainer and the evaluator make it for the model they are given);
* ``teacher_batch`` — teacher states ``S_k`` / targets ``S_{k+1}`` and error-correction noise;
* ``loss`` — the six heads' weighted cross-entropy plus per-token correctness for metrics
  (``readout_loss``: the same from a hidden state the caller computed, e.g. a continuous recurrence);
* ``decode_step`` — one closed-loop iteration for evaluation (logits → argmax → next state).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from fastrecur_kernels.reference import FactorLoss

from ..model import AttentionFn, EncoderModel, RecurrentTransformer

# What ``Backend.loss`` returns: ``total`` (Σ_f w_f · mean CE_f, differentiable), ``per_factor``
# ([6] mean CE per factor, detached) and ``correct`` (bool [N, L, 6]: argmax == target).
LossOutput = FactorLoss


@dataclass
class TeacherBatch:
    inputs: torch.Tensor  # [K, B, L, 6] iteration inputs S_0 … S_{K−1} (possibly corrupted)
    targets: torch.Tensor  # [K, B, L, 6] S_1 … S_K
    corrupted: Optional[torch.Tensor]  # bool [K, B, L], or None on an uncorrupted step


def core_model(model) -> Optional[EncoderModel]:
    """The model (``RecurrentTransformer`` or ``CoTTransformer``) under DDP, ``torch.compile`` and
    recurrence wrappers, or None when ``model`` is something else (e.g. a test stand-in with a
    forward of its own)."""
    while not isinstance(model, EncoderModel):
        model = getattr(model, "module", None) or getattr(model, "_orig_mod", None) or getattr(model, "model", None)
        if model is None:
            return None
    return model


class Backend:
    """The interface. Subclasses set ``name`` and ``attention`` and implement the three methods."""

    name: str
    attention: AttentionFn

    def bind(self, model):
        """Route every attention layer of ``model`` (through DDP / compile wrappers) through this
        backend; returns ``model``. A stand-in that is no ``EncoderModel`` has no attention layers
        to route."""
        core = core_model(model)
        if core is not None:
            core.set_attention(self.attention)
        return model

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
        """Inputs ``S_0 … S_{K−1}`` and targets ``S_1 … S_K`` (``K = num_iters``) of a batch; on a
        corrupted step, noise in the inputs' VALUE slots drawn from ``generator`` (a CPU generator)."""
        raise NotImplementedError

    def loss(
        self,
        model,
        inputs: torch.Tensor,
        targets: torch.Tensor,
        weights: tuple,
        token_mask: Optional[torch.Tensor],
        normalizer: Optional[float] = None,
    ) -> LossOutput:
        """``Σ_f weights[f] · mean CE_f`` over the counted tokens (all when ``token_mask`` is None).

        ``normalizer`` replaces the local token count as the denominator (data-parallel training
        divides by the global count / world size, so averaging gradients over ranks gives the
        single-process mean).
        """
        raise NotImplementedError

    def readout_loss(self, model: RecurrentTransformer, z: torch.Tensor, targets, weights, token_mask, normalizer=None) -> LossOutput:
        """``loss`` of the heads of ``model`` (the bare model, no wrapper) read at hidden states ``z`` ``[N, L, D]``."""
        raise NotImplementedError

    def decode_step(self, model, state: torch.Tensor) -> torch.Tensor:
        """One closed-loop iteration: the next state ``[B, L, 6]`` (argmax, REGRET/MODIFICATION reset)."""
        raise NotImplementedError
