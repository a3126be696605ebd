"""Training batches from the configured source, addressable by step.

Both sources are pure functions of ``(seed, step)``, which is what makes resumed runs exact and lets
data-parallel ranks take disjoint slices of the same global batch (``rank::world_size`` split of
each global batch of ``batch_size`` graphs):

* ``stream`` — fresh graphs from the seeded generator (global graph index ``step·B + i``);
* ``files``  — a fixed file (ours or the authors'), reshuffled each epoch with a permutation seeded by
  ``(seed, epoch)``; the last partial batch of an epoch is dropped so every step has ``B`` graphs.
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Iterator

import torch

from .compat import load_upstream_dataset
from .config import DataSettings
from .data import DagConfig, GraphDataset, GraphStream, Vocab
from .errors import ConfigError


def training_vocab(data: DataSettings) -> Vocab:
    if data.source == "stream":
        return DagConfig(**data.train).vocab()
    return load_training_file(data).vocab


def training_max_depth(data: DataSettings) -> int:
    """The deepest graph the training data can hold: ``max_depth`` of the stream, or the file's deepest."""
    if data.source == "stream":
        return int(DagConfig(**data.train).max_depth)
    return int(load_training_file(data).depth.max())


def _vocab_path(data_file: str, vocab_file) -> str:
    path = vocab_file or os.path.join(os.path.dirname(os.path.abspath(data_file)), "vocab.json")
    if not os.path.isfile(path):
        raise ConfigError(f"no vocabulary for {data_file}: put vocab.json beside it or set data.vocab_file")
    return path


@lru_cache(maxsize=4)
def _load(data_file: str, vocab_file: str) -> GraphDataset:
    return load_upstream_dataset(data_file, vocab_file)


def load_training_file(data: DataSettings) -> GraphDataset:
    return _load(os.path.abspath(data.train_file), _vocab_path(data.train_file, data.vocab_file))


def training_batches(
    data: DataSettings, batch_size: int, seed: int, start_step: int = 0, rank: int = 0, world_size: int = 1
) -> Iterator[GraphDataset]:
    """This rank's share of global batches ``start_step, start_step + 1, …`` (endless)."""
    if batch_size % world_size:
        raise ConfigError(f"train.batch_size={batch_size} must be divisible by the number of processes ({world_size})")
    if data.source == "stream":
        return iter(GraphStream(DagConfig(**data.train), seed, batch_size, start_step=start_step, rank=rank, world_size=world_size))
    return _file_batches(load_training_file(data), batch_size, seed, start_step, rank, world_size)


def _file_batches(ds: GraphDataset, batch_size: int, seed: int, start_step: int, rank: int, world_size: int):
    steps_per_epoch = len(ds) // batch_size
    if steps_per_epoch == 0:
        raise ConfigError(f"train.batch_size={batch_size} is larger than the training file ({len(ds)} graphs)")
    per_rank = batch_size // world_size
    step, epoch, perm = start_step, None, None
    while True:
        e, i = divmod(step, steps_per_epoch)
        if e != epoch:
            epoch = e
            perm = torch.randperm(len(ds), generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))
        idx = perm[i * batch_size : (i + 1) * batch_size][rank * per_rank : (rank + 1) * per_rank]
        yield ds[idx]
        step += 1
