"""Seeded graph generation addressable by global graph index.

Graph ``g`` of a (config, seed) stream is graph ``g % BLOCK_SIZE`` of block ``g // BLOCK_SIZE``,
and each block is drawn from its own RNG seeded by (seed, block). So any range of graphs is the
same however it is split — across calls, resumed runs, processes or data-parallel ranks.
"""

from __future__ import annotations

import multiprocessing
import sys
from concurrent.futures import ProcessPoolExecutor
from itertools import repeat
from typing import Callable, Iterator, Sequence

import numpy as np
import torch

from ..errors import ConfigError
from .config import DagConfig
from .dataset import GraphDataset
from .graphs import sample_graphs
from .serialize import serialize
from .vocab import Vocab

BLOCK_SIZE = 256
Seed = int | Sequence[int]
Block = tuple[np.ndarray, np.ndarray]  # (labels, info) of BLOCK_SIZE graphs


def _entropy(seed: Seed) -> list[int]:
    words = [seed] if isinstance(seed, (int, np.integer)) else list(seed)
    if not words or any(isinstance(w, bool) or not isinstance(w, (int, np.integer)) or w < 0 for w in words):
        raise ConfigError(f"seed={seed!r} must be a non-negative integer or a non-empty list of them")
    return [int(w) for w in words]


def generate_block(config: DagConfig, seed: Seed, block: int) -> Block:
    """The ``BLOCK_SIZE`` graphs of block ``block``: int64 ``(labels [B, L, 6], info [B, L, 2F])``."""
    rng = np.random.default_rng(np.random.SeedSequence(_entropy(seed), spawn_key=(block,)))
    return serialize(sample_graphs(config, rng, BLOCK_SIZE), config, config.vocab())


def _assemble(vocab: Vocab, start: int, count: int, get_block: Callable[[int], Block]) -> GraphDataset:
    """Graphs ``[start, start + count)`` cut from the blocks that hold them (copied, never views of a block)."""
    if start < 0 or count < 0:
        raise ConfigError(f"graph range start={start}, count={count} must be non-negative")
    stop = start + count
    first, last = start // BLOCK_SIZE, max(stop - 1, start) // BLOCK_SIZE  # one block at least: shapes
    pieces = []
    for index in range(first, last + 1):
        offset = index * BLOCK_SIZE
        window = slice(max(start, offset) - offset, min(stop, offset + BLOCK_SIZE) - offset)
        labels, info = get_block(index)
        pieces.append((labels[window], info[window]))
    labels, info = (np.concatenate([piece[i] for piece in pieces]) for i in (0, 1))  # copies
    return GraphDataset(torch.from_numpy(labels), torch.from_numpy(info), vocab)


def graph_batch(config: DagConfig, seed: Seed, start: int, count: int) -> GraphDataset:
    """Graphs with global indices ``[start, start + count)`` of the stream (config, seed)."""
    return _assemble(config.vocab(), start, count, lambda b: generate_block(config, seed, b))


def _compact_dtype(config: DagConfig) -> type:
    """The smallest integer type holding every index and position, to ship blocks between processes cheaply."""
    largest = max(config.num_vars + 1, config.mod_val + 2, config.max_length)
    return np.int16 if largest < 2**15 else np.int32 if largest < 2**31 else np.int64


def _compact_block(config: DagConfig, seed: Seed, block: int) -> Block:
    dtype = _compact_dtype(config)
    labels, info = generate_block(config, seed, block)
    return labels.astype(dtype), info.astype(dtype)


def generate_dataset(
    config: DagConfig,
    num_samples: int,
    seed: Seed,
    workers: int = 1,
    progress: Callable[[int], None] | None = None,
) -> GraphDataset:
    """The first ``num_samples`` graphs of the stream (config, seed); identical for any ``workers``.

    ``workers > 1`` generates blocks in that many processes. ``progress(k)`` is called after each
    block with the number of graphs it added.
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"workers={workers!r} must be a positive integer")
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 0:
        raise ConfigError(f"num_samples={num_samples!r} must be a non-negative integer")
    _entropy(seed)  # fail here, not inside a worker
    labels = torch.empty((num_samples, config.max_length, 6), dtype=torch.int64)
    info = torch.empty((num_samples, config.max_length, config.info_channels), dtype=torch.int64)
    num_blocks = -(-num_samples // BLOCK_SIZE)
    if workers == 1 or num_blocks <= 1:
        blocks: Iterator[Block] = (generate_block(config, seed, b) for b in range(num_blocks))
        _fill(labels, info, blocks, progress)
    else:
        # fork starts workers instantly; they run numpy only, never torch, so forking is safe.
        context = multiprocessing.get_context("fork" if sys.platform == "linux" else None)
        with ProcessPoolExecutor(min(workers, num_blocks), mp_context=context) as pool:
            _fill(labels, info, pool.map(_compact_block, repeat(config), repeat(seed), range(num_blocks)), progress)
    return GraphDataset(labels, info, config.vocab())


def _fill(
    labels: torch.Tensor, info: torch.Tensor, blocks: Iterator[Block], progress: Callable[[int], None] | None
) -> None:
    # Copy through numpy views: torch's threaded copy is needlessly slow on a busy machine.
    labels_out, info_out = labels.numpy(), info.numpy()
    for index, (block_labels, block_info) in enumerate(blocks):
        start = index * BLOCK_SIZE
        count = min(BLOCK_SIZE, len(labels_out) - start)
        labels_out[start : start + count] = block_labels[:count]
        info_out[start : start + count] = block_info[:count]
        if progress is not None:
            progress(count)


class GraphStream:
    """An endless, seeded stream of training batches; step ``s`` holds global graphs ``[s·B, (s+1)·B)``.

    Each rank of ``world_size`` gets its own contiguous ``batch_size // world_size`` graphs of every
    global batch, so ranks see disjoint data and the union is independent of ``world_size``.
    ``start_step`` resumes a run; :attr:`step` is the step the next batch belongs to.
    """

    def __init__(
        self,
        config: DagConfig,
        seed: Seed,
        batch_size: int,
        start_step: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ):
        if batch_size < 1 or world_size < 1 or batch_size % world_size:
            raise ConfigError(
                f"batch_size={batch_size} must be a positive multiple of world_size={world_size}: "
                "each rank takes an equal share of every global batch"
            )
        if not 0 <= rank < world_size:
            raise ConfigError(f"rank={rank} must lie in [0, world_size={world_size})")
        if start_step < 0:
            raise ConfigError(f"start_step={start_step} must be >= 0")
        _entropy(seed)
        self.config = config
        self.seed = seed
        self.batch_size = batch_size
        self.rank = rank
        self.world_size = world_size
        self.step = start_step
        self._vocab = config.vocab()
        self._cached: tuple[int, Block] | None = None  # consecutive batches mostly share a block

    def __iter__(self) -> "GraphStream":
        return self

    def __next__(self) -> GraphDataset:
        share = self.batch_size // self.world_size
        start = self.step * self.batch_size + self.rank * share
        batch = _assemble(self._vocab, start, share, self._block)
        self.step += 1
        return batch

    def _block(self, index: int) -> Block:
        if self._cached is None or self._cached[0] != index:
            self._cached = (index, generate_block(self.config, self.seed, index))
        return self._cached[1]
