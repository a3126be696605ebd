"""Attention with DeBERTa-style relative positions: the interface and the plain-PyTorch oracle.

Every attention implementation in fastrecur is a function with this signature::

    attn(q, k, v, pos_k, pos_q, *, window, shift, causal, dropout_p) -> o

* ``q, k, v``: ``[B, H, L, d]`` (per-head slices of the projected hidden states);
* ``pos_k``: ``[W, H, d]`` = K^r, the position table projected by ``W_rk`` (the c2p term), or None
  when that term is switched off;
* ``pos_q``: ``[W, H, d]`` = Q^r, projected by ``W_rq`` (the p2c term), or None;
* returns ``o``: ``[B, H, L, d]`` in the dtype of ``q``.

The score of query ``i`` and key ``j`` (SPEC §2.3) is::

    S(i, j) = (q_i·k_j + q_i·K^r[r(i,j)] + k_j·Q^r[r(i,j)]) / sqrt(c·d),   c = 1 + #terms on
    r(i, j) = clamp(j − i, −W+1+s, s) − (−W+1+s)

with ``S(i, j) = −inf`` for ``j > i`` when causal. Note the p2c term indexes the table with the
*same* bucket as c2p (the authors' choice, unlike original DeBERTa).

``relpos_attention_reference`` below materializes every ``[B, H, L, L]`` score tensor. It is slow
and memory-hungry on purpose: it is the readable oracle that the fused Triton kernel
(``kernels.relpos_attention``) is tested against.
"""

from __future__ import annotations

import math
from typing import Optional, Protocol

import torch
import torch.nn.functional as F


class AttentionFn(Protocol):
    def __call__(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        pos_k: Optional[torch.Tensor],
        pos_q: Optional[torch.Tensor],
        *,
        window: int,
        shift: int,
        causal: bool,
        dropout_p: float,
    ) -> torch.Tensor: ...


def relative_buckets(len_q: int, len_k: int, window: int, shift: int, device=None) -> torch.Tensor:
    """``r(i, j) = clamp(j − i, −W+1+s, s) − (−W+1+s)`` as a ``[len_q, len_k]`` int64 tensor."""
    lo = -window + 1 + shift
    i = torch.arange(len_q, device=device)[:, None]
    j = torch.arange(len_k, device=device)[None, :]
    return (j - i).clamp(lo, shift) - lo


def attention_scale(head_dim: int, pos_k: Optional[torch.Tensor], pos_q: Optional[torch.Tensor]) -> float:
    """``(c·d)^(-1/2)`` with ``c = 1 + number of enabled position terms``."""
    num_terms = 1 + (pos_k is not None) + (pos_q is not None)
    return 1.0 / math.sqrt(num_terms * head_dim)


def check_attention_inputs(q, k, v, pos_k, pos_q, window: int, shift: int) -> None:
    """Raise a clear ValueError when shapes do not fit the attention interface."""
    if q.dim() != 4 or k.shape != q.shape or v.shape != q.shape:
        raise ValueError(
            f"q, k, v must all be [B, H, L, d]; got {tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}"
        )
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    if not 0 <= shift < window:
        raise ValueError(f"shift must be in [0, window), got shift={shift} with window={window}")
    _, H, _, d = q.shape
    for name, table in (("pos_k", pos_k), ("pos_q", pos_q)):
        if table is not None and tuple(table.shape) != (window, H, d):
            raise ValueError(f"{name} must be [window, H, d] = {(window, H, d)}, got {tuple(table.shape)}")


def relpos_attention_reference(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    pos_k: Optional[torch.Tensor],
    pos_q: Optional[torch.Tensor],
    *,
    window: int = 64,
    shift: int = 0,
    causal: bool = True,
    dropout_p: float = 0.0,
    dropout_mask: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """The oracle: SPEC §2.3 with every score materialized; softmax in float32.

    ``dropout_mask`` (bool ``[B, H, L, L]``, True = keep) replaces the random mask, so that a kernel
    with its own RNG can be checked exactly once it reveals its mask.
    """
    check_attention_inputs(q, k, v, pos_k, pos_q, window, shift)
    B, H, L, d = q.shape
    bucket = relative_buckets(L, L, window, shift, device=q.device)  # [L(i), L(j)]
    index = bucket.expand(B, H, L, L)

    scores = q @ k.transpose(-1, -2)  # content→content
    if pos_k is not None:  # c2p: q_i · K^r[r(i, j)]
        c2p = torch.einsum("bhid,whd->bhiw", q, pos_k)  # [B, H, L(i), W]
        scores = scores + torch.gather(c2p, 3, index)
    if pos_q is not None:  # p2c: k_j · Q^r[r(i, j)]
        p2c = torch.einsum("bhjd,whd->bhwj", k, pos_q)  # [B, H, W, L(j)]
        scores = scores + torch.gather(p2c, 2, index)
    scores = scores * attention_scale(d, pos_k, pos_q)

    if causal:
        future = torch.ones(L, L, dtype=torch.bool, device=q.device).triu(1)
        scores = scores.masked_fill(future, float("-inf"))
    # Softmax in float32 (float64 stays float64, so the oracle can run in double precision).
    softmax_dtype = torch.promote_types(scores.dtype, torch.float32)
    probs = torch.softmax(scores.to(softmax_dtype), dim=-1).to(q.dtype)

    if dropout_mask is not None:
        probs = probs * dropout_mask.to(probs.dtype) / (1.0 - dropout_p)
    elif dropout_p > 0.0:
        probs = F.dropout(probs, p=dropout_p, training=True)
    return probs @ v
