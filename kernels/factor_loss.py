"""Fused multi-factor cross-entropy with per-token correctness (docs/method.md §4.3, §4.6).

The six output heads produce one row of logits per token, the factors' blocks side by side
(``[T, ΣV]``, ΣV = 167 by default). The training loss is

    loss = Σ_f w_f · mean_{counted tokens} CE(logits[:, block f], targets[:, f]),   w = (1,1,1,1,0,0)

where every token counts unless a mask drops it (the authors' "faithful" loss counts every token,
pads included). One kernel pass over the logits computes, per token and factor, the log-sum-exp,
the loss, the argmax (for accuracy metrics) and — Liger-style — the gradient of the weighted total,
``w_f · (softmax − onehot) / count``, written straight into a buffer in the logits' dtype. Softmax
is never stored; the backward only scales that buffer by the incoming gradient.

Per-token losses are reduced per block of tokens into a small ``[blocks, F + 1]`` table (the extra
column holds the weighted total) that torch sums afterwards: deterministic, no atomics.

Factor sizes and weights are compile-time constants (one compilation per model configuration), so
each factor is processed on a tile of its own padded width, not the whole row, and a factor with
weight 0 gets an exactly-zero gradient without any arithmetic.

The head GEMM (z → logits) stays outside, in cuBLAS. At the paper's training shape the logits are
57,344 × 167 bf16 ≈ 19 MB, so fusing the GEMM would save about 40 MB of traffic per step (the
logits write and read; ≈13 µs at H100 bandwidth, an estimate, not a measurement) but would need
hand-written dz = dlogits·W and dW = dlogitsᵀ·z kernels; not worth it at this vocabulary size.

Below: the kernel, its launcher ``factor_loss_forward`` and the argument checks. The public,
differentiable entry point is the custom op ``fastrecur_kernels.ops.factor_loss``; the plain-PyTorch
math it is tested against is ``fastrecur_kernels.reference.factor_loss_reference``.
"""

from __future__ import annotations

from typing import Sequence

import torch
import triton
import triton.language as tl

from ._common import check_vocab_sizes, factor_starts

# --------------------------------------------------------------------------------------------------
# Triton kernel
# --------------------------------------------------------------------------------------------------


@triton.jit
def _factor_loss_kernel(
    logits_ptr,  # [T, ΣV], row stride stride_logits, any float dtype
    targets_ptr,  # [T, F] integer, contiguous
    mask_ptr,  # [T] uint8 (1 = token counts); unused without HAS_MASK
    count_ptr,  # [1] fp32 number of counted tokens, clamped to >= 1; unused without HAS_MASK
    dlogits_ptr,  # [T, ΣV] out, row stride stride_dlogits: gradient of the weighted total; unused without COMPUTE_GRAD
    partial_ptr,  # [num_blocks, F_PAD] fp32 out: per-block loss sums, column F = weighted total
    correct_ptr,  # [T, F] uint8 out: argmax == target
    T,
    stride_logits,
    stride_dlogits,
    VOCAB: tl.constexpr,  # tuple: vocabulary size of each factor
    STARTS: tl.constexpr,  # tuple: offset of each factor's block in a logits row
    PADDED: tl.constexpr,  # tuple: next power of two >= VOCAB[f], the tile width
    WEIGHTS: tl.constexpr,  # tuple of floats: the loss weight of each factor
    NUM_FACTORS: tl.constexpr,
    F_PAD: tl.constexpr,  # next power of two >= NUM_FACTORS + 1
    HAS_MASK: tl.constexpr,
    COMPUTE_GRAD: tl.constexpr,
    BLOCK_T: tl.constexpr,
):
    pid = tl.program_id(0)
    # 64-bit block base (T * ΣV may exceed 2**31), 32-bit offsets within the block.
    first_row = pid.to(tl.int64) * BLOCK_T
    logits_ptr += first_row * stride_logits
    dlogits_ptr += first_row * stride_dlogits
    targets_ptr += first_row * NUM_FACTORS
    correct_ptr += first_row * NUM_FACTORS
    r = tl.arange(0, BLOCK_T)
    rows = pid * BLOCK_T + r
    row_ok = rows < T
    fcols = tl.arange(0, F_PAD)

    counted = row_ok
    if HAS_MASK:
        counted = counted & (tl.load(mask_ptr + rows, mask=row_ok, other=0) != 0)
        inv_count = 1.0 / tl.load(count_ptr)
    else:
        inv_count = 1.0 / T

    targets = tl.load(
        targets_ptr + r[:, None] * NUM_FACTORS + fcols[None, :],
        mask=row_ok[:, None] & (fcols[None, :] < NUM_FACTORS),
        other=0,
    ).to(tl.int32)
    sums = tl.zeros([F_PAD], dtype=tl.float32)
    correct = tl.zeros([BLOCK_T, F_PAD], dtype=tl.int1)

    for f in tl.static_range(NUM_FACTORS):
        cols = tl.arange(0, PADDED[f])
        col_ok = cols < VOCAB[f]
        in_row = STARTS[f] + cols[None, :]
        tile_ok = row_ok[:, None] & col_ok[None, :]
        # Rows past T read zeros (finite, so no NaN arises); padding columns are −inf.
        x = tl.load(logits_ptr + r[:, None] * stride_logits + in_row, mask=tile_ok, other=0.0).to(tl.float32)
        x = tl.where(col_ok[None, :], x, float("-inf"))

        row_max = tl.max(x, axis=1)
        e = tl.exp(x - row_max[:, None])
        denom = tl.sum(e, axis=1)
        lse = row_max + tl.log(denom)

        # Column f of the targets tile (exactly one non-zero term per row).
        t = tl.sum(tl.where(fcols[None, :] == f, targets, 0), axis=1)
        is_target = cols[None, :] == t[:, None]
        x_t = tl.sum(tl.where(is_target, x, 0.0), axis=1)
        # An out-of-range target has no logit: its loss is NaN rather than a silent wrong number.
        t_ok = (t >= 0) & (t < VOCAB[f])
        loss = tl.where(counted, tl.where(t_ok, lse - x_t, float("nan")), 0.0)
        loss_sum = tl.sum(loss, axis=0)
        sums += tl.where(fcols == f, loss_sum, 0.0)
        if WEIGHTS[f] != 0.0:
            sums += tl.where(fcols == NUM_FACTORS, WEIGHTS[f] * loss_sum, 0.0)

        # tl.argmax returns the first maximal index, like torch.argmax.
        correct = tl.where(fcols[None, :] == f, (tl.argmax(x, axis=1) == t)[:, None], correct)

        if COMPUTE_GRAD:
            if WEIGHTS[f] != 0.0:
                scale = tl.where(counted, WEIGHTS[f] * inv_count, 0.0)
                grad = (e / denom[:, None] - is_target.to(tl.float32)) * scale[:, None]
            else:
                grad = tl.zeros_like(x)
            dlogits_tile = dlogits_ptr + r[:, None] * stride_dlogits + in_row
            tl.store(dlogits_tile, grad.to(dlogits_ptr.dtype.element_ty), mask=tile_ok)

    tl.store(partial_ptr + pid * F_PAD + fcols, sums)
    tl.store(
        correct_ptr + r[:, None] * NUM_FACTORS + fcols[None, :],
        correct.to(tl.uint8),
        mask=row_ok[:, None] & (fcols[None, :] < NUM_FACTORS),
    )


# Launch configuration, chosen with ptxas register reports for sm_90 (no GPU timings yet): the
# compiler spreads each row over all warps; 8 tokens × 4 warps take ≈110–170 registers per thread
# under Triton 3.9 (≈140–215 under 3.6) without spills; 16 tokens need 8 warps and ≈205 registers.
_BLOCK_T = 8
_NUM_WARPS = 4


def _constexprs(sizes: tuple[int, ...], weights: tuple[float, ...]) -> dict:
    return dict(
        VOCAB=sizes,
        STARTS=factor_starts(sizes),
        PADDED=tuple(triton.next_power_of_2(v) for v in sizes),
        WEIGHTS=weights,
        NUM_FACTORS=len(sizes),
        F_PAD=triton.next_power_of_2(len(sizes) + 1),
        BLOCK_T=_BLOCK_T,
    )


# --------------------------------------------------------------------------------------------------
# Launcher
# --------------------------------------------------------------------------------------------------


def factor_loss_forward(logits, targets, mask, sizes, weights, compute_grad: bool):
    """One kernel pass over 2-D ``logits`` ``[T, ΣV]``: ``(total, per_factor, correct, dlogits)``.

    ``dlogits`` (None unless ``compute_grad``) is the gradient of ``total`` — computed here, so the
    backward of ``fastrecur_kernels.ops.factor_loss`` is one scaling pass.
    """
    n_tokens, num_factors = targets.shape
    params = _constexprs(sizes, weights)
    num_blocks = triton.cdiv(n_tokens, _BLOCK_T)
    # Same strides as logits where they are dense (padded rows come back contiguous).
    dlogits = torch.empty_like(logits) if compute_grad else None
    partial = torch.empty((num_blocks, params["F_PAD"]), dtype=torch.float32, device=logits.device)
    correct = torch.empty((n_tokens, num_factors), dtype=torch.uint8, device=logits.device)
    if mask is not None:
        # On the device: no host sync. An all-masked batch gives loss 0 and gradient 0.
        count = mask.sum(dtype=torch.float32).clamp_min(1.0).reshape(1)
        mask_arg, count_arg = mask.contiguous().view(torch.uint8), count
    else:
        count = float(max(n_tokens, 1))
        mask_arg, count_arg = correct, partial  # never read (HAS_MASK=False); same pointer types
    if n_tokens > 0:
        _factor_loss_kernel[(num_blocks,)](
            logits, targets, mask_arg, count_arg, dlogits if compute_grad else logits, partial, correct,
            n_tokens, logits.stride(0), dlogits.stride(0) if compute_grad else 0,
            HAS_MASK=mask is not None,
            COMPUTE_GRAD=compute_grad,
            num_warps=_NUM_WARPS,
            **params,
        )  # fmt: skip
    sums = partial.sum(dim=0)
    per_factor = sums[:num_factors] / count
    total = (sums[num_factors] / count).reshape(())
    return total, per_factor, correct.view(torch.bool), dlogits


# --------------------------------------------------------------------------------------------------
# Argument checks
# --------------------------------------------------------------------------------------------------


def check_args(
    logits: torch.Tensor,
    targets: torch.Tensor,
    vocab_sizes: Sequence[int],
    weights: Sequence[float],
    mask: torch.Tensor | None,
) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """Check the arguments of ``ops.factor_loss``; returns the sizes and weights as ints and floats.

    Args:
        logits: ``[..., ΣV]`` the factors' logits side by side in factor order (any float dtype;
            the math is fp32). Its gradient comes back in the same dtype.
        targets: ``[..., F]`` integer target index of each factor (within the factor's vocabulary).
        vocab_sizes: the factor vocabulary sizes, e.g. ``(7, 129, 2, 25, 2, 2)``; they sum to ΣV.
        weights: ``F`` floats, the factor weights of the total, e.g. ``(1, 1, 1, 1, 0, 0)``.
            A factor with weight 0 gets exactly zero gradient. Each distinct (vocab_sizes, weights)
            compiles the kernel once.
        mask: optional ``[...]`` bool, True = the token counts (e.g. False on padding). None counts
            every token — the authors' loss. Means are over counted tokens (at least 1).

    ``ops.factor_loss`` returns ``FactorLoss(total, per_factor, correct)``. Only ``total`` is
    differentiable. An out-of-range target makes its factor's loss NaN (no device-side check, no
    sync); factors with weight 0 do not enter the total at all, so their NaN does not reach it.
    """
    sizes = check_vocab_sizes(vocab_sizes)
    num_factors, vocab_total = len(sizes), sum(sizes)
    w = tuple(float(x) for x in weights)
    if len(w) != num_factors:
        raise ValueError(f"weights has {len(w)} entries but there are {num_factors} factors")
    if logits.dim() < 1 or logits.shape[-1] != vocab_total:
        raise ValueError(f"logits must be [..., ΣV={vocab_total}], got {tuple(logits.shape)}")
    if not logits.is_floating_point():
        raise TypeError(f"logits must be a floating-point tensor, got {logits.dtype}")
    lead_shape = logits.shape[:-1]
    if targets.shape != (*lead_shape, num_factors):
        raise ValueError(f"targets must be {[*lead_shape, num_factors]}, got {list(targets.shape)}")
    if targets.dtype.is_floating_point or targets.dtype == torch.bool or targets.is_complex():
        raise TypeError(f"targets must be an integer tensor, got {targets.dtype}")
    if mask is not None:
        if mask.shape != lead_shape:
            raise ValueError(f"mask must be {list(lead_shape)}, got {list(mask.shape)}")
        if mask.dtype != torch.bool:
            raise TypeError(f"mask must be a bool tensor, got {mask.dtype}")
    for name, t in (("targets", targets), ("mask", mask)):
        if t is not None and t.device != logits.device:
            raise ValueError(f"{name} is on {t.device} but logits is on {logits.device}")
    return sizes, w


# --------------------------------------------------------------------------------------------------
# Ahead-of-time compile cases (scripts/check_sm90_compile.py)
# --------------------------------------------------------------------------------------------------


def sm90_compile_cases() -> list:
    """The kernel at the paper's shape (vocab 7/129/2/25/2/2, weights 1/1/1/1/0/0): bf16 logits with
    and without a mask, training (gradient) and evaluation, and fp32 logits."""
    cases = []
    for dtype, has_mask, compute_grad in [
        ("bf16", False, True),
        ("bf16", True, True),
        ("bf16", True, False),
        ("fp32", False, True),
    ]:
        signature = {
            "logits_ptr": f"*{dtype}", "targets_ptr": "*i64", "mask_ptr": "*u8", "count_ptr": "*fp32",
            "dlogits_ptr": f"*{dtype}", "partial_ptr": "*fp32", "correct_ptr": "*u8",
            "T": "i32", "stride_logits": "i32", "stride_dlogits": "i32",
        }  # fmt: skip
        constexprs = dict(
            HAS_MASK=has_mask,
            COMPUTE_GRAD=compute_grad,
            **_constexprs((7, 129, 2, 25, 2, 2), (1.0, 1.0, 1.0, 1.0, 0.0, 0.0)),
        )
        signature.update({name: "constexpr" for name in constexprs})
        label = dict(logits=dtype, mask=has_mask, gradient=compute_grad, vocab="paper")
        cases.append((_factor_loss_kernel, signature, constexprs, {"num_warps": _NUM_WARPS}, label))
    return cases
