"""Small helpers shared by the kernel modules (seeds, vocabulary offsets, argument checks)."""

from __future__ import annotations

from typing import Sequence

import torch


def resolve_seed(seed: int | None) -> int:
    """The Philox key for a call: ``seed`` modulo 2**31, or a fresh one from torch's default CPU
    generator when ``seed`` is None (so ``torch.manual_seed`` makes runs repeatable; no device sync)."""
    if seed is None:
        return int(torch.randint(0, 2**31 - 1, (1,)).item())
    return int(seed) % 2**31


def factor_starts(vocab_sizes: Sequence[int]) -> tuple[int, ...]:
    """Offset of each factor's block in the concatenated vocabulary: ``(0, V_0, V_0 + V_1, ...)``."""
    starts, total = [], 0
    for v in vocab_sizes:
        starts.append(total)
        total += int(v)
    return tuple(starts)


def check_vocab_sizes(vocab_sizes: Sequence[int]) -> tuple[int, ...]:
    sizes = tuple(int(v) for v in vocab_sizes)
    if not sizes or any(v < 1 for v in sizes):
        raise ValueError(f"vocab_sizes must be a non-empty list of positive sizes, got {list(vocab_sizes)}")
    return sizes
