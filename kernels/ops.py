"""The fused kernels' public entry points: one ``torch.library`` custom op per fused op.

These functions are what callers use (fastrecur's ``triton`` backend, the kernel tests and the
benchmarks alike). Each op is one opaque node to ``torch.compile`` (no graph break, no tracing into
Triton launches), with a fake implementation for shape propagation and, where it has a gradient, a
registered backward:

* ``relpos_attention`` — ``fastrecur::relpos_attention`` (+ ``relpos_attention_backward``),
  kernels in ``relpos_attention.py``; differentiable in q, k, v and both position tables;
* ``factor_loss`` — ``fastrecur::factor_loss`` (``factor_loss.py``; the forward also returns the
  logits' gradient); differentiable in the logits;
* ``bottleneck`` — ``fastrecur::bottleneck`` (``bottleneck.py``; no gradient);
* ``corrupt_teacher_states`` — ``fastrecur::corrupt_teacher_states`` (``corrupt.py``; no gradient).

The plain-PyTorch math of each is in ``reference.py``. Random seeds travel as CPU int64 scalar
tensors, not Python ints: a compiled graph would otherwise specialize on (and recompile for) every
new seed. Reading a CPU scalar never syncs the GPU.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import Tensor

from . import bottleneck as _bottleneck
from . import corrupt as _corrupt
from . import factor_loss as _factor_loss
from . import relpos_attention as _attention
from .reference import FactorLoss


def _new_seed() -> Tensor:
    return torch.randint(0, 2**62, (), dtype=torch.int64)


def _seed_tensor(seed: Optional[int]) -> Tensor:
    return _new_seed() if seed is None else torch.tensor(int(seed), dtype=torch.int64)


def _no_tensor(like: Tensor) -> Tensor:
    """Custom ops cannot return None: a missing output (a switched-off table's gradient, a skipped
    re-embedding) is an empty tensor."""
    return like.new_empty(0)


# --- attention ------------------------------------------------------------------------------------


@torch.library.custom_op("fastrecur::relpos_attention", mutates_args=())
def _attention_op(
    q: Tensor, k: Tensor, v: Tensor, pos_k: Optional[Tensor], pos_q: Optional[Tensor],
    window: int, shift: int, causal: bool, dropout_p: float, seed: Tensor, length_scale_from: int = 0,
) -> tuple[Tensor, Tensor]:  # fmt: skip
    return _attention._forward(q, k, v, pos_k, pos_q, window, shift, causal, dropout_p, int(seed), length_scale_from)


@_attention_op.register_fake
def _(q, k, v, pos_k, pos_q, window, shift, causal, dropout_p, seed, length_scale_from=0):
    B, H, L, _ = q.shape
    return torch.empty_like(q), q.new_empty((B * H, L), dtype=torch.float32)


@torch.library.custom_op("fastrecur::relpos_attention_backward", mutates_args=())
def _attention_backward_op(
    do: Tensor, q: Tensor, k: Tensor, v: Tensor, pos_k: Optional[Tensor], pos_q: Optional[Tensor],
    o: Tensor, lse: Tensor, window: int, shift: int, causal: bool, dropout_p: float, seed: Tensor,
    length_scale_from: int = 0,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:  # fmt: skip
    dq, dk, dv, dpk, dpq = _attention._backward(
        do, q, k, v, pos_k, pos_q, o, lse, window, shift, causal, dropout_p, int(seed), length_scale_from
    )
    # The kernel reduces table gradients into transposed views; an op's outputs must have the
    # (contiguous) strides its fake implementation promises.
    tables = [t.contiguous() if t is not None else _no_tensor(q) for t in (dpk, dpq)]
    return dq, dk, dv, *tables


@_attention_backward_op.register_fake
def _(do, q, k, v, pos_k, pos_q, o, lse, window, shift, causal, dropout_p, seed, length_scale_from=0):
    tables = [torch.empty(t.shape, dtype=t.dtype, device=t.device) if t is not None else _no_tensor(q) for t in (pos_k, pos_q)]
    return torch.empty_like(q), torch.empty_like(k), torch.empty_like(v), *tables


def _attention_setup(ctx, inputs, output):
    q, k, v, pos_k, pos_q, window, shift, causal, dropout_p, seed, length_scale_from = inputs
    o, lse = output
    ctx.save_for_backward(q, k, v, pos_k, pos_q, o, lse, seed)
    ctx.args = (window, shift, causal, dropout_p)
    ctx.length_scale_from = length_scale_from


def _attention_backward(ctx, grad_o, grad_lse):
    q, k, v, pos_k, pos_q, o, lse, seed = ctx.saved_tensors
    do = _attention._last_dim_contiguous(grad_o)
    dq, dk, dv, dpk, dpq = _attention_backward_op(do, q, k, v, pos_k, pos_q, o, lse, *ctx.args, seed, ctx.length_scale_from)
    return dq, dk, dv, dpk if pos_k is not None else None, dpq if pos_q is not None else None, None, None, None, None, None, None


torch.library.register_autograd("fastrecur::relpos_attention", _attention_backward, setup_context=_attention_setup)


def relpos_attention(
    q: Tensor, k: Tensor, v: Tensor, pos_k: Optional[Tensor], pos_q: Optional[Tensor], *,
    window: int = 64, shift: int = 0, causal: bool = True, dropout_p: float = 0.0, seed: Optional[int] = None,
    length_scale_from: int = 0,
) -> Tensor:  # fmt: skip
    """Fused attention with relative positions (``relpos_attention.py``); differentiable in all five inputs.

    ``q, k, v``: ``[B, H, L, d]`` (any strides; d a multiple of 8, at most 128); ``pos_k`` = K^r and
    ``pos_q`` = Q^r: ``[W, H, d]`` or None to switch that term off (the scale is 1/sqrt(c·d), c = 1 +
    #terms on). All in one dtype (fp32, bf16 or fp16) on one device. Returns ``o`` ``[B, H, L, d]``
    in the input dtype. With ``dropout_p > 0`` the mask is drawn from ``seed`` (62 bits used;
    None = a fresh seed from torch's default CPU generator, so ``torch.manual_seed`` makes runs
    repeatable without a device sync); ``relpos_attention.dropout_keep_mask`` reproduces it.
    ``length_scale_from`` = L0 > 0 turns on log-length scaling (``reference.length_scales``): query i's
    scores are multiplied by max(1, ln(i+1)/ln L0), in the forward and the backward.
    """
    _attention._check_inputs(q, k, v, pos_k, pos_q, window, shift, dropout_p, length_scale_from)
    q, k, v = (_attention._last_dim_contiguous(t) for t in (q, k, v))
    pos_k, pos_q = (t if t is None else _attention._last_dim_contiguous(t) for t in (pos_k, pos_q))
    o, _ = _attention_op(
        q, k, v, pos_k, pos_q, int(window), int(shift), bool(causal), float(dropout_p), _seed_tensor(seed), int(length_scale_from)
    )
    return o


# --- factor loss ----------------------------------------------------------------------------------


@torch.library.custom_op("fastrecur::factor_loss", mutates_args=())
def _factor_loss_op(
    logits: Tensor, targets: Tensor, mask: Optional[Tensor], vocab_sizes: list[int], weights: list[float], compute_grad: bool
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    total, per_factor, correct, dlogits = _factor_loss.factor_loss_forward(
        logits, targets, mask, tuple(vocab_sizes), tuple(weights), compute_grad
    )
    return total, per_factor, correct, dlogits if dlogits is not None else _no_tensor(logits)


@_factor_loss_op.register_fake
def _(logits, targets, mask, vocab_sizes, weights, compute_grad):
    f = len(vocab_sizes)
    return (
        logits.new_empty((), dtype=torch.float32),
        logits.new_empty((f,), dtype=torch.float32),
        targets.new_empty(targets.shape, dtype=torch.bool),
        torch.empty_like(logits) if compute_grad else _no_tensor(logits),
    )


def _factor_loss_setup(ctx, inputs, output):
    ctx.save_for_backward(output[3])
    ctx.mark_non_differentiable(output[1], output[2], output[3])


def _factor_loss_backward(ctx, grad_total, grad_per_factor, grad_correct, grad_dlogits):
    (dlogits,) = ctx.saved_tensors
    return dlogits * grad_total.to(dlogits.dtype), None, None, None, None, None


torch.library.register_autograd("fastrecur::factor_loss", _factor_loss_backward, setup_context=_factor_loss_setup)


def factor_loss(
    logits: Tensor, targets: Tensor, vocab_sizes: Sequence[int], weights: Sequence[float], mask: Optional[Tensor] = None
) -> FactorLoss:
    """Fused cross-entropy of every factor, its weighted total and per-token correctness
    (``factor_loss.py``; arguments in ``factor_loss.check_args``): ``logits`` ``[..., ΣV]``,
    ``targets`` ``[..., F]``, ``mask`` ``[...]`` bool or None. Only ``total`` is differentiable."""
    sizes, w = _factor_loss.check_args(logits, targets, vocab_sizes, weights, mask)
    lead_shape = logits.shape[:-1]
    logits2 = logits.reshape(-1, sum(sizes))
    if logits2.stride(-1) != 1:
        logits2 = logits2.contiguous()
    mask2 = None if mask is None else mask.reshape(-1)
    compute_grad = logits.requires_grad and torch.is_grad_enabled()
    total, per_factor, correct, _ = _factor_loss_op(
        logits2, targets.reshape(-1, len(sizes)).contiguous(), mask2, list(sizes), list(w), compute_grad
    )
    return FactorLoss(total, per_factor, correct.reshape(*lead_shape, len(sizes)))


# --- bottleneck and corruption (no gradients) -----------------------------------------------------


@torch.library.custom_op("fastrecur::bottleneck", mutates_args=())
def _bottleneck_op(
    z: Tensor, head_weight: Tensor, head_bias: Tensor, embedding: Optional[Tensor],
    vocab_sizes: list[int], reset_factors: list[int], tau: float, seed: Tensor,
) -> tuple[Tensor, Tensor]:  # fmt: skip
    tokens, x = _bottleneck.bottleneck_forward(
        z, head_weight, head_bias, embedding, vocab_sizes, reset_factors=reset_factors, tau=tau, seed=int(seed)
    )
    return tokens, x if x is not None else _no_tensor(z)


@_bottleneck_op.register_fake
def _(z, head_weight, head_bias, embedding, vocab_sizes, reset_factors, tau, seed):
    lead = z.shape[:-1]
    tokens = z.new_empty((*lead, len(vocab_sizes)), dtype=torch.int64)
    x = z.new_empty((*lead, z.shape[-1]), dtype=embedding.dtype) if embedding is not None else _no_tensor(z)
    return tokens, x


def bottleneck(
    z: Tensor, head_weight: Tensor, head_bias: Tensor, embedding: Optional[Tensor], vocab_sizes: Sequence[int], *,
    reset_factors: Sequence[int], tau: float = 0.0, seed: Optional[int] = None,
) -> tuple[Tensor, Optional[Tensor]]:  # fmt: skip
    """Heads → per-factor argmax or Gumbel-max sample → (re-embedding) without storing logits
    (``bottleneck.bottleneck_forward`` documents every argument). Returns ``(tokens, x)``, ``x``
    None when ``embedding`` is None."""
    tokens, x = _bottleneck_op(
        z, head_weight, head_bias, embedding, list(vocab_sizes), [int(f) for f in reset_factors], float(tau),
        _seed_tensor(seed),
    )  # fmt: skip
    return tokens, x if embedding is not None else None


@torch.library.custom_op("fastrecur::corrupt_teacher_states", mutates_args=())
def _corrupt_op(
    input: Tensor, labels: Tensor, depth: Tensor, num_steps: int, value_vocab_size: int,
    token_prob: float, strategy: str, value_factor: int, seed: Tensor,
) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
    return _corrupt.corrupt_teacher_states_forward(
        input, labels, depth, num_steps, value_vocab_size=value_vocab_size, token_prob=token_prob,
        strategy=strategy, value_factor=value_factor, seed=int(seed),
    )  # fmt: skip


@_corrupt_op.register_fake
def _(input, labels, depth, num_steps, value_vocab_size, token_prob, strategy, value_factor, seed):
    states = input.new_empty((num_steps, *input.shape))
    return states, torch.empty_like(states), input.new_empty((num_steps, *depth.shape), dtype=torch.bool)


def corrupt_teacher_states(
    input: Tensor, labels: Tensor, depth: Tensor, num_steps: int, *, value_vocab_size: int,
    token_prob: float, strategy: str, value_factor: int, seed: Optional[int] = None,
) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
    """Every iteration's teacher input (with error-correction noise) and target in one pass
    (``corrupt.corrupt_teacher_states_forward`` documents every argument): returns
    ``(inputs, targets, corrupted)``."""
    return _corrupt_op(
        input, labels, depth, int(num_steps), int(value_vocab_size), float(token_prob), strategy, int(value_factor),
        _seed_tensor(seed),
    )  # fmt: skip
