"""Greedy generation for the chain-of-thought baseline (docs/method.md §10.4), batched, with a KV cache.

The authors decode one graph at a time and recompute the whole prefix for every new token (no
cache, cubic in the length). Here a batch of prompts of different lengths advances in lockstep,
one position per step for every row: a row still inside its prompt takes its own prompt token
(teacher forcing), the others the argmax of their logits. Attention is causal and every row sits at
the same position, so each row gets exactly the tokens it would get alone — no padding mask, no
position shift. With ``use_cache`` the shortest prompt is run once and every later step feeds one
position against the cached keys and values; without, the whole prefix is recomputed each step.
"""

from __future__ import annotations

import torch

from .data.cot import PAD
from .model import CoTTransformer


@torch.no_grad()
def greedy_generate(
    model: CoTTransformer,
    tokens: torch.Tensor,
    prompt_lengths: torch.Tensor,
    lengths: torch.Tensor,
    *,
    use_cache: bool = True,
) -> torch.Tensor:
    """Each row's prompt continued greedily up to its own length; ``[B, max(lengths)]``.

    ``tokens`` ``[B, ≥ max(prompt_lengths)]``: only the prompt positions ``< prompt_lengths[b]`` are
    read. Row ``b`` holds its prompt, then greedy tokens up to position ``lengths[b]`` (the
    reference length: generation halts there), then ``<PAD>``. The caller chooses eval mode.
    """
    B = tokens.shape[0]
    if prompt_lengths.shape != (B,) or lengths.shape != (B,) or bool((lengths < prompt_lengths).any()) or int(prompt_lengths.min()) < 1:
        raise ValueError("prompt_lengths and lengths must be [B] with 1 <= prompt_lengths <= lengths")
    device = tokens.device
    total, shortest = int(lengths.max()), int(prompt_lengths.min())
    prompt_lengths, lengths = prompt_lengths.to(device), lengths.to(device)
    width = min(tokens.shape[1], total)
    positions = torch.arange(total, device=device)
    out = torch.full((B, total), PAD, dtype=torch.int64, device=device)
    out[:, :width] = torch.where(positions[:width] < prompt_lengths[:, None], tokens[:, :width], PAD)

    cache = model.new_cache(B, total) if use_cache else None
    if use_cache and shortest < total:
        logits = model(out[:, :shortest], cache)[:, -1]
    for t in range(shortest, total):
        if not use_cache:
            logits = model(out[:, :t])[:, -1]
        pick = torch.where(t < lengths, logits.argmax(dim=-1), PAD)
        out[:, t] = torch.where(t < prompt_lengths, out[:, t], pick)
        if use_cache and t + 1 < total:
            logits = model(out[:, t : t + 1], cache)[:, -1]
    return out
