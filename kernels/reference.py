"""The plain-PyTorch math of every fused op: the one reference shared by the kernel tests, the
benchmarks and fastrecur's ``reference`` backend.

Only torch is needed here (no Triton), so the readable backend runs on any machine. Each function is
the definition its kernel is tested against, written for clarity rather than speed (attention
materializes every ``[B, H, L, L]`` score):

* relative-position attention — ``relpos_attention_reference``, and the probabilities it weights
  ``v`` with, ``relpos_attention_probs_reference`` (docs/method.md §2.3);
* the discrete bottleneck — ``decode_reference`` (logits → tokens) and ``bottleneck_reference``
  (hidden state → heads → tokens → re-embedding) (§3.1);
* the six-factor loss — ``factor_loss_reference`` (§4.3);
* teacher states and error-correction noise — ``teacher_states_reference``,
  ``corrupt_values_reference``, ``corrupt_teacher_states_reference`` (§4.1, §5).

The factor layout (which factor holds VALUE, which factors a decode resets) is always an argument:
it belongs to the caller (fastrecur defines it once, in ``fastrecur.data.vocab``).
"""

from __future__ import annotations

import math
from typing import NamedTuple, Optional, Sequence, Union

import torch
import torch.nn.functional as F

Tensor = torch.Tensor

# --------------------------------------------------------------------------------------------------
# Attention with DeBERTa-style relative positions
# --------------------------------------------------------------------------------------------------
#
# Every attention implementation has this signature:
#
#     attn(q, k, v, pos_k, pos_q, *, window, shift, causal, dropout_p, length_scale_from=0) -> o
#
# q, k, v: [B, H, L, d]; pos_k = K^r (the position table projected for the c2p term) and
# pos_q = Q^r (p2c term): [W, H, d], or None when that term is off; o: [B, H, L, d] in q's dtype.
# The score of query i and key j is
#
#     S(i, j) = (q_i·k_j + q_i·K^r[r(i,j)] + k_j·Q^r[r(i,j)]) / sqrt(c·d),   c = 1 + #terms on
#     r(i, j) = clamp(j − i, −W+1+s, s) − (−W+1+s)
#
# with S(i, j) = −inf for j > i when causal. The p2c term indexes the table with the same bucket as
# c2p (the authors' choice, unlike the original DeBERTa).
#
# Log-length scaling (off by default; not in the authors' model): with length_scale_from = L0 > 0,
# row i of S is multiplied by τ_i = max(1, ln(i+1) / ln L0). A query that sees more keys than L0 gets
# proportionally sharper logits, so its softmax does not flatten as the number of competing keys
# grows (the "log n" scaling of Chiang & Cholak 2022, Su 2021's entropy-invariant scale); queries at
# positions < L0 are unchanged. Used at evaluation time only with L0 ≥ the longest training sequence,
# a model sees exactly its trained attention on training-length inputs; trained in with a smaller
# L0, the model learns with it (the gradients carry τ_i as well).


def relative_buckets(len_q: int, len_k: int, window: int, shift: int, device=None) -> Tensor:
    """``r(i, j) = clamp(j − i, −W+1+s, s) − (−W+1+s)`` as a ``[len_q, len_k]`` int64 tensor."""
    lo = -window + 1 + shift
    i = torch.arange(len_q, device=device)[:, None]
    j = torch.arange(len_k, device=device)[None, :]
    return (j - i).clamp(lo, shift) - lo


def length_scales(
    length: int, length_scale_from: int, *, device=None, first_query: int = 0, dtype: torch.dtype = torch.float32
) -> Tensor:
    """``τ_i = max(1, ln(i+1) / ln L0)`` for the queries ``first_query ≤ i < length`` (``[length −
    first_query]``); all ones when ``length_scale_from`` (L0) is 0 (off)."""
    i = torch.arange(first_query, length, device=device, dtype=dtype)
    if not length_scale_from:
        return torch.ones_like(i)
    return (torch.log1p(i) / math.log(length_scale_from)).clamp_min(1.0)


def scale_by_length(scores: Tensor, length_scale_from: int, *, first_query: int = 0) -> Tensor:
    """``scores`` ``[..., Lq, Lk]`` (query rows ``first_query …``, in at least float32) with row i ×
    ``τ_i`` (``length_scales``); returned unchanged when ``length_scale_from`` is 0."""
    if not length_scale_from:
        return scores
    dtype = torch.promote_types(scores.dtype, torch.float32)
    tau = length_scales(first_query + scores.shape[-2], length_scale_from, device=scores.device, first_query=first_query, dtype=dtype)
    return scores.to(dtype) * tau[:, None]


def attention_scale(head_dim: int, pos_k: Optional[Tensor], pos_q: Optional[Tensor]) -> float:
    """``(c·d)^(-1/2)`` with ``c = 1 + number of enabled position terms``."""
    num_terms = 1 + (pos_k is not None) + (pos_q is not None)
    return 1.0 / math.sqrt(num_terms * head_dim)


def check_attention_inputs(q, k, v, pos_k, pos_q, window: int, shift: int, length_scale_from: int = 0) -> None:
    """Raise a clear ValueError when the arguments do not fit the attention interface (``v`` may be
    None when only the probabilities are asked for)."""
    if isinstance(length_scale_from, bool) or not isinstance(length_scale_from, int) or length_scale_from < 0 or length_scale_from == 1:
        raise ValueError(f"length_scale_from must be 0 (off) or an int >= 2, got {length_scale_from!r}")
    for name, t in (("q", q), ("k", k), ("v", v), ("pos_k", pos_k), ("pos_q", pos_q)):
        if t is not None and not isinstance(t, torch.Tensor):
            raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if q.dim() != 4 or k.shape != q.shape or (v is not None and v.shape != q.shape):
        shapes = ", ".join(str(tuple(t.shape)) for t in (q, k, v) if t is not None)
        raise ValueError(f"q, k{', v' if v is not None else ''} must all be [B, H, L, d]; got {shapes}")
    if not isinstance(window, int) or window < 1:
        raise ValueError(f"window must be an int >= 1, got {window!r}")
    if not isinstance(shift, int) or not 0 <= shift < window:
        raise ValueError(f"shift must be an int in [0, window), got shift={shift!r} with window={window}")
    _, H, _, d = q.shape
    for name, table in (("pos_k", pos_k), ("pos_q", pos_q)):
        if table is not None and tuple(table.shape) != (window, H, d):
            raise ValueError(f"{name} must be [window, H, d] = {(window, H, d)}, got {tuple(table.shape)}")


def relpos_attention_probs_reference(
    q: Tensor,
    k: Tensor,
    pos_k: Optional[Tensor],
    pos_q: Optional[Tensor],
    *,
    window: int = 64,
    shift: int = 0,
    causal: bool = True,
    first_query: int = 0,
    length_scale_from: int = 0,
) -> Tensor:
    """The attention probabilities ``softmax_j S(i, j)`` of the queries ``i ≥ first_query``:
    ``[B, H, L − first_query, L]``, in at least float32 (float64 stays float64).

    ``relpos_attention_reference`` multiplies them by ``v``; interpretability tools read them
    directly, and ``first_query = L − 1`` gives the last query's row without the ``[B, H, L, L]`` rest.
    """
    check_attention_inputs(q, k, None, pos_k, pos_q, window, shift, length_scale_from)
    B, H, L, d = q.shape
    if not 0 <= first_query < max(L, 1):
        raise ValueError(f"first_query must be in [0, L) = [0, {L}), got {first_query}")
    q = q[:, :, first_query:]
    bucket = relative_buckets(L, L, window, shift, device=q.device)[first_query:]  # [L(i ≥ first_query), L(j)]
    index = bucket.expand(B, H, *bucket.shape)

    scores = q @ k.transpose(-1, -2)  # content→content
    if pos_k is not None:  # c2p: q_i · K^r[r(i, j)]
        c2p = torch.einsum("bhid,whd->bhiw", q, pos_k)  # [B, H, L(i), W]
        scores = scores + torch.gather(c2p, 3, index)
    if pos_q is not None:  # p2c: k_j · Q^r[r(i, j)]
        p2c = torch.einsum("bhjd,whd->bhwj", k, pos_q)  # [B, H, W, L(j)]
        scores = scores + torch.gather(p2c, 2, index)
    scores = scores * attention_scale(d, pos_k, pos_q)
    scores = scale_by_length(scores, length_scale_from, first_query=first_query)

    if causal:
        future = torch.ones(L, L, dtype=torch.bool, device=q.device).triu(1)[first_query:]
        scores = scores.masked_fill(future, float("-inf"))
    softmax_dtype = torch.promote_types(scores.dtype, torch.float32)
    return torch.softmax(scores.to(softmax_dtype), dim=-1)


def relpos_attention_reference(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    pos_k: Optional[Tensor],
    pos_q: Optional[Tensor],
    *,
    window: int = 64,
    shift: int = 0,
    causal: bool = True,
    dropout_p: float = 0.0,
    dropout_mask: Optional[Tensor] = None,
    length_scale_from: int = 0,
) -> Tensor:
    """Attention with every score materialized (``relpos_attention_probs_reference``); softmax in at
    least float32 (float64 stays float64), probabilities cast back to ``q``'s dtype.

    ``dropout_mask`` (bool ``[B, H, L, L]``, True = keep) replaces the random mask, so that a kernel
    with its own RNG can be checked exactly once it reveals its mask.
    """
    check_attention_inputs(q, k, v, pos_k, pos_q, window, shift, length_scale_from)
    probs = relpos_attention_probs_reference(
        q, k, pos_k, pos_q, window=window, shift=shift, causal=causal, length_scale_from=length_scale_from
    )
    probs = probs.to(q.dtype)
    if dropout_mask is not None:
        probs = probs * dropout_mask.to(probs.dtype) / (1.0 - dropout_p)
    elif dropout_p > 0.0:
        probs = F.dropout(probs, p=dropout_p, training=True)
    return probs @ v


# --------------------------------------------------------------------------------------------------
# The discrete bottleneck
# --------------------------------------------------------------------------------------------------


def gumbel_noise(shape, *, device=None, generator: Optional[torch.Generator] = None) -> Tensor:
    """Gumbel(0, 1) noise ``−log(−log u)`` in float32, ``u ~ U(0, 1)`` clamped away from 0 so that
    the noise stays finite. ``argmax(logits + noise)`` is an exact sample of ``softmax(logits)``."""
    u = torch.rand(shape, generator=generator, device=device, dtype=torch.float32)
    return -torch.log(-torch.log(u.clamp_min(torch.finfo(torch.float32).tiny)))


def reset_factors_reference(tokens: Tensor, factors: Sequence[int]) -> Tensor:
    """A copy of ``tokens`` ``[..., F]`` with the given factors set to index 0 (FALSE)."""
    tokens = tokens.clone()
    tokens[..., list(factors)] = 0
    return tokens


def decode_reference(
    logits: Sequence[Tensor], *, reset_factors: Sequence[int], noise: Optional[Sequence[Tensor]] = None
) -> Tensor:
    """Per-factor argmax of ``logits[f]`` (``[..., V_f]``), of ``logits[f] + noise[f]`` in at least
    float32 when noise is given; ties go to the first index. Returns int64 ``[..., F]`` with the
    ``reset_factors`` set to 0 (FALSE)."""
    picks = []
    for f, lg in enumerate(logits):
        if noise is not None:
            lg = lg.to(torch.promote_types(lg.dtype, torch.float32)) + noise[f]
        picks.append(lg.argmax(dim=-1))
    return reset_factors_reference(torch.stack(picks, dim=-1), reset_factors)


def bottleneck_reference(
    z: Tensor,
    head_weight: Tensor,
    head_bias: Tensor,
    embedding: Tensor,
    vocab_sizes: Sequence[int],
    *,
    reset_factors: Sequence[int],
    noise: Optional[Tensor] = None,
) -> tuple[Tensor, Tensor]:
    """Heads → decode → re-embedding: logits ``z·Wᵀ + b`` in at least float32 (float64 stays
    float64), ``decode_reference`` of their factor blocks (``noise`` ``[..., ΣV]``: Gumbel noise to
    sample, None = argmax), then ``Σ_f embedding[off_f + token_f]`` summed in factor order in at
    least float32. Returns ``(tokens, x)``, ``x`` in ``embedding``'s dtype."""
    compute = torch.promote_types(z.dtype, torch.float32)
    sizes = [int(v) for v in vocab_sizes]
    logits = F.linear(z.to(compute), head_weight.to(compute), head_bias.to(compute))
    per_factor_noise = None if noise is None else noise.to(compute).split(sizes, dim=-1)
    tokens = decode_reference(logits.split(sizes, dim=-1), reset_factors=reset_factors, noise=per_factor_noise)
    acc_dtype = torch.promote_types(embedding.dtype, torch.float32)
    x = None
    for f, table in enumerate(embedding.split(sizes, dim=0)):
        rows = F.embedding(tokens[..., f], table.to(acc_dtype))
        x = rows if x is None else x + rows
    return tokens, x.to(embedding.dtype)


# --------------------------------------------------------------------------------------------------
# The six-factor loss
# --------------------------------------------------------------------------------------------------


class FactorLoss(NamedTuple):
    total: Tensor  # [] Σ_f w_f · per_factor[f]; differentiable w.r.t. the logits
    per_factor: Tensor  # [F] mean loss of each factor over the counted tokens (no grad)
    correct: Tensor  # [..., F] bool, argmax(logits of factor f) == target (no grad)


def masked_mean(values: Tensor, mask: Optional[Tensor], normalizer: Optional[float] = None) -> Tensor:
    """Mean of ``values`` over the tokens ``mask`` counts (all without a mask, at least one);
    ``normalizer`` replaces the count as the denominator."""
    total = values.sum() if mask is None else (values * mask).sum()
    if normalizer is not None:
        return total / normalizer
    return total / (values.numel() if mask is None else mask.sum().clamp_min(1))


def factor_loss_reference(
    logits: Union[Tensor, Sequence[Tensor]],
    targets: Tensor,
    vocab_sizes: Sequence[int],
    weights: Sequence[float],
    mask: Optional[Tensor] = None,
    *,
    normalizer: Optional[float] = None,
) -> FactorLoss:
    """``Σ_f weights[f] · mean CE_f`` with per-token correctness.

    ``logits``: the factors' blocks side by side ``[..., ΣV]``, or the per-factor tensors
    ``[..., V_f]`` as the model's heads produce them; ``targets`` ``[..., F]``; ``mask`` ``[...]``
    bool, True = the token counts (None: every token counts). Cross-entropies in at least float32.
    ``normalizer`` replaces the token count as the denominator (data-parallel training divides by
    the global count / world size, so averaging gradients over processes gives one process's mean).
    A weight-0 factor still enters the sum as 0·loss, so its head gets a zero (not a missing)
    gradient.
    """
    if isinstance(logits, Tensor):
        logits = logits.split([int(v) for v in vocab_sizes], dim=-1)
    per_factor, correct = [], []
    for f, lg in enumerate(logits):
        target = targets[..., f]
        compute = torch.promote_types(lg.dtype, torch.float32)
        ce = F.cross_entropy(lg.flatten(0, -2).to(compute), target.flatten(), reduction="none").view_as(target)
        per_factor.append(masked_mean(ce, mask, normalizer))
        correct.append(lg.argmax(-1) == target)
    total = sum(float(w) * loss for w, loss in zip(weights, per_factor))
    return FactorLoss(total, torch.stack(per_factor).detach(), torch.stack(correct, -1))


# --------------------------------------------------------------------------------------------------
# Teacher states and error-correction noise
# --------------------------------------------------------------------------------------------------

CORRUPTION_STRATEGIES = ("last", "previous", "random")


def teacher_states_reference(
    tokens: Tensor,
    labels: Tensor,
    depth: Tensor,
    num_steps: int,
    *,
    value_factor: int,
    value_empty: Optional[int] = None,
) -> tuple[Tensor, Tensor]:
    """Per-iteration inputs and targets of algorithmic supervision (docs/method.md §4.1).

    ``S_k`` is ``tokens`` with the VALUE of every right-hand-side slot of depth ``0 ≤ dep ≤ k−1``
    taken from ``labels`` (``depth`` is −1 off those slots). Returns ``(inputs, targets)``, each
    ``[num_steps, B, L, F]`` with ``inputs[k] = S_k`` and ``targets[k] = S_{k+1}``: separate
    tensors, so inputs may be corrupted in place. With ``value_empty`` given, the slots not yet
    solved in ``S_k`` hold that index instead of whatever ``tokens`` holds there.
    """
    if num_steps < 1:
        raise ValueError(f"num_steps={num_steps} must be >= 1")
    steps = torch.arange(num_steps + 1, device=depth.device).view(-1, 1, 1)
    is_rhs = depth >= 0
    solved = is_rhs & (depth < steps)  # [K+1, B, L]
    unsolved_value = tokens[..., value_factor]
    if value_empty is not None:
        unsolved_value = torch.where(is_rhs, value_empty, unsolved_value)
    states = tokens.unsqueeze(0).repeat(num_steps + 1, 1, 1, 1)
    states[..., value_factor] = torch.where(solved, labels[..., value_factor], unsolved_value)
    return states[:-1].clone(), states[1:]


def corruption_candidates_reference(depth: Tensor, num_steps: int, strategy: str) -> Tensor:
    """Bool ``[K, B, L]``: the slots of each iteration input a strategy may corrupt (right-hand-side
    slots only): ``last`` depth == k, ``previous`` depth == k − 1, ``random`` depth ≤ k."""
    k = torch.arange(num_steps, device=depth.device).view(-1, 1, 1)
    d = depth.unsqueeze(0)
    on_rhs = d >= 0
    if strategy == "last":
        return on_rhs & (d == k)
    if strategy == "previous":
        return on_rhs & (d == k - 1)
    if strategy == "random":
        return on_rhs & (d <= k)
    raise ValueError(f"strategy must be one of {CORRUPTION_STRATEGIES}, got {strategy!r}")


def corrupt_values_reference(
    inputs: Tensor,
    depth: Tensor,
    *,
    strategy: str,
    token_prob: float,
    value_vocab_size: int,
    value_factor: int,
    generator: Optional[torch.Generator] = None,
) -> tuple[Tensor, Tensor]:
    """Error-correction noise on the VALUE factor of ``inputs`` ``[K, B, L, F]`` (docs/method.md §5).

    Each candidate slot is corrupted with probability ``token_prob``; its VALUE becomes uniform over
    the whole VALUE vocabulary ``{0, …, value_vocab_size − 1}``. Returns a new tensor and the bool
    ``[K, B, L]`` mask of corrupted slots. Random numbers come from ``generator`` on its own device
    (a CPU generator repeats exactly on any device), the coins first, then the replacement values.
    """
    candidates = corruption_candidates_reference(depth, inputs.shape[0], strategy)
    draw_on = generator.device if generator is not None else inputs.device
    coins = torch.rand(candidates.shape, generator=generator, device=draw_on).to(inputs.device)
    mask = candidates & (coins < token_prob)
    noise = torch.randint(0, value_vocab_size, candidates.shape, generator=generator, device=draw_on).to(inputs.device)
    out = inputs.clone()
    out[..., value_factor] = torch.where(mask, noise.to(inputs.dtype), inputs[..., value_factor])
    return out, mask


def corrupt_teacher_states_reference(
    tokens: Tensor,
    labels: Tensor,
    depth: Tensor,
    num_steps: int,
    *,
    value_vocab_size: int,
    token_prob: float,
    strategy: str,
    value_factor: int,
    generator: Optional[torch.Generator] = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """``teacher_states_reference`` then ``corrupt_values_reference`` of the inputs: returns
    ``(inputs, targets, corrupted)``; the targets are never corrupted."""
    inputs, targets = teacher_states_reference(tokens, labels, depth, num_steps, value_factor=value_factor)
    inputs, corrupted = corrupt_values_reference(
        inputs, depth, strategy=strategy, token_prob=token_prob, value_vocab_size=value_vocab_size,
        value_factor=value_factor, generator=generator,
    )  # fmt: skip
    return inputs, targets, corrupted
