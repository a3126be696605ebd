"""What graphs a training stream draws at each step: one family, a mixture, or a curriculum.

* ``train`` — one :class:`DagConfig` (as a dict of its knobs): every batch holds these graphs;
* ``mix`` — ``[{share: 1, <overrides of train>}, …]``: every batch is split among the components
  in these proportions (e.g. half 4-node, half 8-node graphs);
* ``curriculum`` — ``[{until_step: 1000, <overrides of train>, mix: […]}, …]``: stages used, in
  order, before ``train`` (+ ``mix``) takes over for the rest of the run.

Every component must share the tokenizer of ``train`` (names, operations, modulus), so that one
model reads all of them. Each (stage, component) is its own seeded stream indexed by the global step,
so the batch of any step is fixed whatever step a run resumes from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Optional

import torch

from ..errors import ConfigError
from .config import DagConfig
from .dataset import GraphDataset
from .generate import GraphStream


@dataclass(frozen=True)
class Stage:
    """Until step ``until_step`` (None: the rest of the run) batches mix ``configs`` by ``shares``."""

    until_step: Optional[int]
    configs: tuple[DagConfig, ...]
    shares: tuple[float, ...]


def training_schedule(train: dict, mix: Optional[list] = None, curriculum: Optional[list] = None) -> list[Stage]:
    """The stages of a stream; raises ``ConfigError`` (one line) on any invalid stage or component."""
    vocab = _dag("data.train", train).vocab()

    def components(where: str, base: dict, items) -> tuple[tuple[DagConfig, ...], tuple[float, ...]]:
        if not items:
            return (_dag(where, base),), (1.0,)
        if not isinstance(items, list):
            raise ConfigError(f"{where}.mix={items!r} is invalid: a list of {{share: …, <graph settings>}}")
        configs, shares = [], []
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                raise ConfigError(f"{where}.mix[{i}]={item!r} is invalid: a mapping {{share: …, <graph settings>}}")
            item = dict(item)
            share = item.pop("share", None)
            if isinstance(share, bool) or not isinstance(share, (int, float)) or not share > 0:
                raise ConfigError(f"{where}.mix[{i}].share={share!r} is invalid: a positive number")
            config = _dag(f"{where}.mix[{i}]", {**base, **item})
            if config.vocab() != vocab:
                raise ConfigError(f"{where}.mix[{i}]: must keep data.train's num_vars, func_vocab and mod_val (one tokenizer)")
            configs.append(config)
            shares.append(float(share))
        return tuple(configs), tuple(s / sum(shares) for s in shares)

    stages, last = [], 0
    if curriculum is not None and not isinstance(curriculum, list):
        raise ConfigError(f"data.curriculum={curriculum!r} is invalid: a list of {{until_step: …, <graph settings>}}")
    for i, raw in enumerate(curriculum or []):
        where = f"data.curriculum[{i}]"
        if not isinstance(raw, dict):
            raise ConfigError(f"{where}={raw!r} is invalid: a mapping {{until_step: …, <graph settings>}}")
        raw = dict(raw)
        until = raw.pop("until_step", None)
        if isinstance(until, bool) or not isinstance(until, int) or until <= last:
            raise ConfigError(f"{where}.until_step={until!r} is invalid: step counts must increase from stage to stage")
        configs, shares = components(where, {**train, **raw}, raw.pop("mix", None))
        if configs[0].vocab() != vocab:
            raise ConfigError(f"{where}: must keep data.train's num_vars, func_vocab and mod_val (one tokenizer)")
        stages.append(Stage(until, configs, shares))
        last = until
    stages.append(Stage(None, *components("data", train, mix)))
    return stages


def scheduled_batches(stages: list[Stage], batch_size: int, seed, start_step: int, rank: int, world_size: int) -> Iterator[GraphDataset]:
    """This rank's share of global batches ``start_step, start_step + 1, …`` of a schedule (endless)."""
    if len(stages) == 1 and len(stages[0].configs) == 1:  # one family: the plain stream
        yield from GraphStream(stages[0].configs[0], seed, batch_size, start_step=start_step, rank=rank, world_size=world_size)
        return
    per_rank = batch_size // world_size
    step, current, streams = start_step, None, []
    while True:
        index = next(i for i, s in enumerate(stages) if s.until_step is None or step < s.until_step)
        if index != current:
            current, stage = index, stages[index]
            streams = [
                GraphStream(config, (*_words(seed), 1 + index, c), count, start_step=step)
                for c, (config, count) in enumerate(zip(stage.configs, split_counts(batch_size, stage.shares)))
                if count
            ]
        batch = concat_datasets([next(s) for s in streams])
        yield batch[rank * per_rank : (rank + 1) * per_rank]
        step += 1


def max_depth(stages: list[Stage]) -> int:
    """The deepest graph any stage can produce."""
    return max(c.max_depth for s in stages for c in s.configs)


def split_counts(total: int, shares: tuple[float, ...]) -> list[int]:
    """Integer counts summing to ``total`` in the given proportions (largest remainders first)."""
    exact = [total * s for s in shares]
    counts = [int(x) for x in exact]
    for i in sorted(range(len(exact)), key=lambda i: counts[i] - exact[i])[: total - sum(counts)]:
        counts[i] += 1
    return counts


def concat_datasets(parts: list[GraphDataset]) -> GraphDataset:
    """The samples of several datasets of one tokenizer, right-padded to the longest length."""
    vocab = parts[0].vocab
    length = max(p.labels.shape[1] for p in parts)
    channels = max(p.info.shape[2] for p in parts)
    pad = torch.tensor(vocab.pad_token, dtype=torch.int64)
    labels, info = [], []
    for p in parts:
        n, L, C = p.info.shape
        padded_labels = pad.expand(n, length, pad.numel()).clone()
        padded_labels[:, :L] = p.labels
        padded_info = torch.full((n, length, channels), -1, dtype=torch.int64)
        padded_info[:, :L, :C] = p.info
        labels.append(padded_labels)
        info.append(padded_info)
    return GraphDataset(torch.cat(labels), torch.cat(info), vocab)


def _dag(where: str, settings: dict) -> DagConfig:
    if not isinstance(settings, dict):
        raise ConfigError(f"{where} must be a mapping of graph settings, got {settings!r}")
    try:
        return DagConfig(**settings)
    except TypeError as exc:  # an unknown key
        raise ConfigError(f"{where}: {exc}") from exc
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def _words(seed) -> tuple[int, ...]:
    return (seed,) if isinstance(seed, int) else tuple(seed)
