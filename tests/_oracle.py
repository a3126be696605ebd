"""A stand-in for a trained model that executes the algorithm exactly, for evaluator tests.

``OracleModel(dataset)`` maps a state to one-hot logits of the next teacher state: it fills the
values of the shallowest unsolved depth level (one level per iteration, like a perfect model), so a
graph of depth ``d`` is solved after ``d + 1`` iterations and unchanged from then on. Graphs are
recognized by their structure (the SYNTAX/VARIABLE/OPERATION factors never change during a rollout).
``wrong`` lists ``(sample, position)`` slots where the oracle writes a wrong value.
"""

from __future__ import annotations

import torch
from torch import nn

from fastrecur.data import VALUE, GraphDataset


class OracleModel(nn.Module):
    def __init__(self, dataset: GraphDataset, wrong: tuple = ()):
        super().__init__()
        from fastrecur.model import ModelConfig

        self.config = ModelConfig(vocab_sizes=dataset.vocab.sizes, hidden_size=8, num_heads=1, num_layers=1)
        self.empty = dataset.vocab.value_empty
        self.sizes = dataset.vocab.sizes
        self.lookup = {}
        labels = dataset.labels.clone()
        for sample, position in wrong:
            labels[sample, position, VALUE] = (labels[sample, position, VALUE] + 1) % dataset.vocab.mod_val
        for i in range(len(dataset)):
            key = self._key(dataset.tokens[i])
            self.lookup[key] = (labels[i], dataset.depth[i])

    @staticmethod
    def _key(row: torch.Tensor) -> bytes:
        structure = row[..., :3]
        real = structure[:, 0] != 3  # drop trailing pads: rollouts trim them
        return structure[: int(real.nonzero().max()) + 1].numpy().tobytes()

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        nxt = x.clone()
        for b in range(x.shape[0]):
            labels, depth = self.lookup[self._key(x[b])]
            L = x.shape[1]
            labels, depth = labels[:L], depth[:L]
            unsolved = (depth >= 0) & (x[b, :, VALUE] == self.empty)
            if unsolved.any():
                level = depth[unsolved].min()
                fill = depth == level
                nxt[b, fill, VALUE] = labels[fill, VALUE]
        return [torch.nn.functional.one_hot(nxt[..., f], v).float() * 10 for f, v in enumerate(self.sizes)]
