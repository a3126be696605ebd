"""The ``triton`` backend: the fused kernels of ``fastrecur_kernels`` in the training and evaluation step.

Same weights, same checkpoints, same math as the ``reference`` backend:

* attention — the flash kernel with in-kernel relative positions (no ``[B, H, L, L]`` tensors);
* teacher states + error-correction noise — one pass;
* loss — one head GEMM (cuBLAS) into a row-padded logits buffer, then the fused six-factor
  cross-entropy with per-token correctness;
* evaluation step — heads → argmax → next tokens without writing logits.

All kernels go through the ``torch.library`` custom ops of ``fastrecur_kernels.ops``, so
``torch.compile`` can wrap the step without graph breaks. On a CPU the kernels run in Triton's
interpreter (slow; used to check equivalence with the reference in CI).
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from fastrecur_kernels.interpreter import use_interpreter
from fastrecur_kernels.reference import FactorLoss

from ..data.vocab import RESET_FACTORS, VALUE
from ..errors import ConfigError
from ..model import RecurrentTransformer
from .base import Backend, LossOutput, TeacherBatch, core_model

LOGITS_ROW_ALIGN = 8  # pad the logits' rows (ΣV = 167 → 168) so the loss kernel's row loads are aligned


def _import_ops(device: torch.device):
    try:
        use_interpreter(device.type)  # on a CPU the kernels must be defined in the interpreter
    except RuntimeError as exc:
        raise ConfigError(f"backend 'triton' on the CPU: {exc}") from None
    try:
        from fastrecur_kernels import ops
    except ImportError as exc:
        raise ConfigError(f"backend 'triton' needs the triton package ({exc}); use backend=reference") from exc
    return ops


def _core(model) -> RecurrentTransformer:
    core = core_model(model)
    if not isinstance(core, RecurrentTransformer):
        raise TypeError(f"the triton backend needs a RecurrentTransformer, got {type(model).__name__}")
    return core


class TritonBackend(Backend):
    name = "triton"

    def __init__(self, device: torch.device):
        self.ops = _import_ops(device)
        self.attention = self._attention

    def _attention(self, q, k, v, pos_k, pos_q, *, window, shift, causal, dropout_p, length_scale_from=0):
        return self.ops.relpos_attention(
            q, k, v, pos_k, pos_q, window=window, shift=shift, causal=causal, dropout_p=dropout_p,
            length_scale_from=length_scale_from,
        )  # fmt: skip

    def teacher_batch(
        self, tokens, labels, depth, num_iters, *, corrupt, strategy, token_prob, value_vocab_size, generator
    ) -> TeacherBatch:
        # The kernel's noise is keyed by this seed, drawn on every step (corrupted or not) so that
        # the generator advances the same way either way.
        seed = int(torch.randint(0, 2**31 - 1, (), generator=generator))
        inputs, targets, corrupted = self.ops.corrupt_teacher_states(
            tokens, labels, depth, num_iters,
            value_vocab_size=value_vocab_size, token_prob=token_prob if corrupt else 0.0,
            strategy=strategy, value_factor=VALUE, seed=seed,
        )  # fmt: skip
        return TeacherBatch(inputs, targets, corrupted if corrupt else None)

    @staticmethod
    def padded_heads(model: RecurrentTransformer) -> tuple[torch.Tensor, torch.Tensor]:
        """Concatenated head weight/bias with zero rows appended up to a multiple of LOGITS_ROW_ALIGN."""
        weight, bias = model.head_weight(), model.head_bias()
        pad = -weight.shape[0] % LOGITS_ROW_ALIGN
        if pad:
            weight = torch.cat([weight, weight.new_zeros(pad, weight.shape[1])])
            bias = torch.cat([bias, bias.new_zeros(pad)])
        return weight, bias

    def loss(
        self,
        model,
        inputs: torch.Tensor,
        targets: torch.Tensor,
        weights,
        token_mask: Optional[torch.Tensor],
        normalizer: Optional[float] = None,
    ) -> LossOutput:
        z = model(inputs, hidden=True)  # through the wrapper, so DDP's hooks see the forward pass
        return self.readout_loss(_core(model), z, targets, weights, token_mask, normalizer)

    def readout_loss(self, model: RecurrentTransformer, z: torch.Tensor, targets, weights, token_mask, normalizer=None) -> LossOutput:
        sizes = model.config.vocab_sizes
        weight, bias = self.padded_heads(model)
        N, L, _ = z.shape
        logits = F.linear(z, weight, bias).view(N * L, -1)[:, : sum(sizes)]
        mask = token_mask.reshape(-1) if token_mask is not None else None
        out = self.ops.factor_loss(logits, targets.reshape(N * L, -1), sizes, _floats(weights), mask)
        total, per_factor = out.total, out.per_factor
        if normalizer is not None:  # means over the local count → sums over the global count / world size
            count = mask.sum() if mask is not None else torch.tensor(float(N * L), device=z.device)
            total = total * (count / normalizer)
            per_factor = per_factor * (count / normalizer)
        return FactorLoss(total, per_factor.detach(), out.correct.view(N, L, -1))

    @torch.no_grad()
    def decode_step(self, model, state: torch.Tensor) -> torch.Tensor:
        core = _core(model)
        z = model(state, hidden=True)
        # Tokens only: the next iteration goes through the model, which embeds them itself.
        tokens, _ = self.ops.bottleneck(
            z, core.head_weight(), core.head_bias(), None, core.config.vocab_sizes, reset_factors=RESET_FACTORS
        )
        return tokens


def _floats(weights) -> tuple[float, ...]:
    if isinstance(weights, torch.Tensor):
        raise TypeError("pass loss weights as a tuple of floats (a tensor would need a device sync)")
    return tuple(float(w) for w in weights)
