"""The ``reference`` backend: plain PyTorch everywhere, the readable oracle.

Every operation is the shared plain-PyTorch math of ``fastrecur_kernels.reference`` — the same
functions the kernels are tested against — with fastrecur's factor layout.
"""

from __future__ import annotations

import torch

from fastrecur_kernels.reference import (
    corrupt_teacher_states_reference,
    decode_reference,
    factor_loss_reference,
    relpos_attention_reference,
    teacher_states_reference,
)

from ..data.vocab import RESET_FACTORS, VALUE
from .base import Backend, LossOutput, TeacherBatch


class ReferenceBackend(Backend):
    name = "reference"
    attention = staticmethod(relpos_attention_reference)

    def teacher_batch(
        self, tokens, labels, depth, num_iters, *, corrupt, strategy, token_prob, value_vocab_size, generator
    ) -> TeacherBatch:
        if not corrupt:
            inputs, targets = teacher_states_reference(tokens, labels, depth, num_iters, value_factor=VALUE)
            return TeacherBatch(inputs, targets, None)
        inputs, targets, corrupted = corrupt_teacher_states_reference(
            tokens, labels, depth, num_iters, value_vocab_size=value_vocab_size, token_prob=token_prob,
            strategy=strategy, value_factor=VALUE, generator=generator,
        )  # fmt: skip
        return TeacherBatch(inputs, targets, corrupted)

    def loss(self, model, inputs, targets, weights, token_mask, normalizer=None) -> LossOutput:
        return self._factor_loss(model(inputs), targets, weights, token_mask, normalizer)

    def readout_loss(self, model, z, targets, weights, token_mask, normalizer=None) -> LossOutput:
        return self._factor_loss(model.readout(z), targets, weights, token_mask, normalizer)

    @staticmethod
    def _factor_loss(logits, targets, weights, token_mask, normalizer) -> LossOutput:
        sizes = [lg.shape[-1] for lg in logits]
        return factor_loss_reference(logits, targets, sizes, weights, token_mask, normalizer=normalizer)

    @torch.no_grad()
    def decode_step(self, model, state: torch.Tensor) -> torch.Tensor:
        return decode_reference(model(state), reset_factors=RESET_FACTORS)
