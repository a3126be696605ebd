"""Evaluation of the chain-of-thought baseline (docs/method.md §10.4): greedy generation after each
prompt, scored against the reference CoT of the same graphs.

Generation runs exactly as many tokens as the reference CoT (``fastrecur.generation``), batched,
with a KV cache (``use_cache=False``: the authors' recomputation of the whole prefix). Metrics, over
the CoT tokens (after ``<COT>``, up to the reference length):

* ``fully_solved`` — the whole generated CoT equals the reference (the CoT "% completely solved");
* ``value_acc`` — the value ending each step right (one per node: the node-value accuracy);
* ``token_acc`` and ``token_acc_by_class`` — per token, overall and per class of the reference
  token (variable, value, operation, syntax);
* ``teacher_forced_token_acc`` — next-token accuracy given the reference prefix;
* ``generated_tokens`` — tokens generated per graph (mean, max).
"""

from __future__ import annotations

from typing import Optional

import torch

from .backends import Backend, ReferenceBackend
from .config import EvalSettings
from .data import GraphDataset
from .data.cot import TOKEN_CLASSES, CoTVocab, cot_sequences
from .errors import ConfigError
from .generation import greedy_generate
from .model import CoTTransformer, length_scaling_context


class CoTEvaluator:
    """Evaluates a ``CoTTransformer`` on factored graph datasets (serialized as ``cot_type``)."""

    def __init__(
        self,
        model: CoTTransformer,
        cot_type: str,
        settings: EvalSettings,
        device: torch.device,
        backend: Optional[Backend] = None,
        use_cache: bool = True,
    ):
        self.model = model
        self.cot_type = cot_type
        self.settings = settings
        self.device = device
        self.use_cache = use_cache
        (backend or ReferenceBackend()).bind(model)

    @torch.no_grad()
    def evaluate(self, dataset: GraphDataset, progress=None) -> dict:
        cot_vocab = CoTVocab.of(dataset.vocab)
        if (cot_vocab.size,) != tuple(self.model.config.vocab_sizes):
            raise ConfigError(
                f"the data's CoT vocabulary ({cot_vocab.size} tokens) does not match the model's {list(self.model.config.vocab_sizes)} "
                "(variable pool, operations and modulus must be those it was trained with)"
            )
        was_training = self.model.training
        self.model.eval()
        try:
            with length_scaling_context(self.model, self.settings.length_scaling):
                return self._evaluate(dataset, cot_vocab, progress)
        finally:
            self.model.train(was_training)

    def _evaluate(self, ds: GraphDataset, cot_vocab: CoTVocab, progress) -> dict:
        cb = cot_sequences(ds.labels, ds.vocab, self.cot_type)
        sums = torch.zeros(4 + 2 * len(TOKEN_CLASSES), dtype=torch.float64)  # see `score`
        order = torch.argsort(cb.lengths)  # rows of similar length: fewer steps past a row's end
        for start in range(0, len(ds), self.settings.batch_size):
            rows = order[start : start + self.settings.batch_size]
            width = int(cb.lengths[rows].max())
            tokens = cb.tokens[rows, :width].to(self.device)
            prompt, lengths = cb.prompt_lengths[rows].to(self.device), cb.lengths[rows].to(self.device)
            generated = greedy_generate(self.model, tokens, prompt, lengths, use_cache=self.use_cache)
            teacher_forced = self.model(tokens[:, :-1]).argmax(dim=-1)
            sums += self._score(tokens, generated, teacher_forced, prompt, lengths, cb.answers[rows, :width].to(self.device), cot_vocab)
            if progress is not None:
                progress.update(len(rows))
        n = len(ds)
        fully, value_right, values, tf_right, *per_class = sums.tolist()
        right, count = per_class[: len(TOKEN_CLASSES)], per_class[len(TOKEN_CLASSES) :]
        generated_tokens = (cb.lengths - cb.prompt_lengths).double()
        sample_depth = ds.depth.max(dim=1).values
        return {
            "num_graphs": n,
            "fully_solved": fully / n,
            "value_acc": value_right / max(values, 1.0),
            "token_acc": sum(right) / max(sum(count), 1.0),
            "token_acc_by_class": {name: r / c for name, r, c in zip(TOKEN_CLASSES, right, count) if c > 0},
            "teacher_forced_token_acc": tf_right / max(sum(count), 1.0),
            "generated_tokens": {"mean": float(generated_tokens.mean()), "max": int(generated_tokens.max())},
            "policy": f"greedy ({self.cot_type})",
            "graph_depth": {"min": int(sample_depth.min()), "mean": float(sample_depth.float().mean()), "max": int(sample_depth.max())},
        }

    @staticmethod
    def _score(tokens, generated, teacher_forced, prompt, lengths, answers, cot_vocab: CoTVocab) -> torch.Tensor:
        """``[whole CoT right, values right, values, teacher-forced right, right per class…, count per class…]``."""
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        cot = (positions >= prompt[:, None]) & (positions < lengths[:, None])
        right = generated == tokens
        classes = cot_vocab.token_class(tokens)
        # teacher_forced[:, i] predicts position i + 1
        tf_right = torch.zeros_like(right)
        tf_right[:, 1:] = teacher_forced == tokens[:, 1:]
        per_class = [((classes == c) & cot & right).sum() for c in range(len(TOKEN_CLASSES))]
        counts = [((classes == c) & cot).sum() for c in range(len(TOKEN_CLASSES))]
        stats = [(right | ~cot).all(dim=1).sum(), (right & answers).sum(), answers.sum(), (tf_right & cot).sum(), *per_class, *counts]
        return torch.stack(stats).double().cpu()
