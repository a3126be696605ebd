"""Teacher states and error-correction noise for the fast training path (docs/method.md §4.1, §4.2, §5).

From one batch (``input``, ``labels``, node ``depth``; depth −1 off the right-hand-side slots) and
the number of iterations ``K``, one kernel pass writes every iteration's input and target:

    S_0 = input,  S_k = input with VALUE := label VALUE where 0 ≤ depth ≤ k − 1
    inputs[k] = S_k (then corrupted),  targets[k] = S_{k+1},   k = 0 … K − 1

and, in the same pass, the error-correction corruption of the inputs (never the targets):

1. candidate slots of iteration ``k`` by strategy — ``last``: depth == k (the authors' code: the
   slots this iteration must fill), ``previous``: depth == k − 1 (the comment's intent: values
   filled by the previous iteration), ``random``: 0 ≤ depth ≤ k;
2. each candidate is corrupted independently with probability ``token_prob`` (0: teacher states
   only — whether a training step is corrupted at all is decided by the caller);
3. its VALUE becomes uniform over the whole VALUE vocabulary ``{0, …, value_vocab_size − 1}``
   (residues, N/A and EMPTY alike, so a corruption can be a no-op). Other factors are untouched.

All randomness is Philox keyed by the seed: the (coin, value) pair of slot (k, position) is counter
1 + k·B·L + position (counter 0 stays unused, so a seed gives the same noise as it always has), so
the result depends only on (seed, shapes) — not on block sizes or the device.

Below: the kernel and its launcher ``corrupt_teacher_states_forward``. The public entry point is the
custom op ``fastrecur_kernels.ops.corrupt_teacher_states``; the plain-PyTorch math it is tested
against is ``fastrecur_kernels.reference.corrupt_teacher_states_reference``.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ._common import resolve_seed
from .reference import CORRUPTION_STRATEGIES as STRATEGIES

# --------------------------------------------------------------------------------------------------
# Triton kernel
# --------------------------------------------------------------------------------------------------


@triton.jit
def _teacher_corrupt_kernel(
    input_ptr,  # [N, F] integer tokens, N = B * L, contiguous
    labels_ptr,  # [N, F] same dtype
    depth_ptr,  # [N] integer, −1 off RHS slots
    inputs_out_ptr,  # [K, N, F] out
    targets_out_ptr,  # [K, N, F] out
    corrupted_ptr,  # [K, N] uint8 out
    N,
    K,
    seed,
    token_prob,
    value_vocab_size,
    NUM_FACTORS: tl.constexpr,
    F_PAD: tl.constexpr,  # next power of two >= NUM_FACTORS
    VALUE_FACTOR: tl.constexpr,
    STRATEGY: tl.constexpr,  # 0 last, 1 previous, 2 random
    BLOCK: tl.constexpr,
):
    pos = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)  # int64: K * N * F may be large
    ok = pos < N
    fcols = tl.arange(0, F_PAD)
    tile_ok = ok[:, None] & (fcols[None, :] < NUM_FACTORS)
    tile_offsets = pos[:, None] * NUM_FACTORS + fcols[None, :]

    tokens = tl.load(input_ptr + tile_offsets, mask=tile_ok, other=0)
    in_value = tl.load(input_ptr + pos * NUM_FACTORS + VALUE_FACTOR, mask=ok, other=0)
    label_value = tl.load(labels_ptr + pos * NUM_FACTORS + VALUE_FACTOR, mask=ok, other=0)
    depth = tl.load(depth_ptr + pos, mask=ok, other=-1)
    is_value = fcols[None, :] == VALUE_FACTOR

    for k in range(K):
        k64 = tl.cast(k, tl.int64)
        # Teacher states: S_k reveals depths 0..k−1, S_{k+1} reveals depths 0..k.
        value_k = tl.where((depth >= 0) & (depth < k), label_value, in_value)
        value_next = tl.where((depth >= 0) & (depth <= k), label_value, in_value)

        if STRATEGY == 0:
            candidate = depth == k
        elif STRATEGY == 1:
            candidate = (depth == k - 1) & (depth >= 0)
        else:
            candidate = (depth >= 0) & (depth <= k)
        u_coin, u_value, _, _ = tl.rand4x(seed, 1 + k64 * N + pos)
        corrupted = candidate & (u_coin < token_prob) & ok
        # floor(u · V) with u < 1; the clamp guards fp32 rounding up to V.
        noise = tl.minimum((u_value * value_vocab_size).to(tl.int32), value_vocab_size - 1)
        value_in = tl.where(corrupted, noise.to(value_k.dtype), value_k)

        out_offsets = k64 * N * NUM_FACTORS + tile_offsets
        tl.store(inputs_out_ptr + out_offsets, tl.where(is_value, value_in[:, None], tokens), mask=tile_ok)
        tl.store(targets_out_ptr + out_offsets, tl.where(is_value, value_next[:, None], tokens), mask=tile_ok)
        tl.store(corrupted_ptr + k64 * N + pos, corrupted.to(tl.uint8), mask=ok)


# 128 positions × 8 (padded) factors of int64 per 4 warps: ≈95 registers per thread on sm_90.
_BLOCK = 128
_NUM_WARPS = 4


# --------------------------------------------------------------------------------------------------
# Launcher
# --------------------------------------------------------------------------------------------------


def _check_args(input, labels, depth, num_steps, value_vocab_size, token_prob, strategy, value_factor):
    if input.dim() != 3:
        raise ValueError(f"input must be [B, L, F], got shape {tuple(input.shape)}")
    if labels.shape != input.shape:
        raise ValueError(f"labels must have the shape of input {tuple(input.shape)}, got {tuple(labels.shape)}")
    if depth.shape != input.shape[:2]:
        raise ValueError(f"depth must be [B, L] = {tuple(input.shape[:2])}, got {tuple(depth.shape)}")
    for name, t in (("input", input), ("labels", labels), ("depth", depth)):
        if t.dtype.is_floating_point or t.dtype == torch.bool or t.is_complex():
            raise TypeError(f"{name} must be an integer tensor, got {t.dtype}")
        if t.device != input.device:
            raise ValueError(f"{name} is on {t.device} but input is on {input.device}")
    if labels.dtype != input.dtype:
        raise TypeError(f"labels dtype {labels.dtype} differs from input dtype {input.dtype}")
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    if not 0 <= value_factor < input.shape[2]:
        raise ValueError(f"value_factor={value_factor} is not a factor index in [0, {input.shape[2]})")
    if value_vocab_size < 1:
        raise ValueError(f"value_vocab_size must be >= 1, got {value_vocab_size}")
    if not 0.0 <= token_prob <= 1.0:
        raise ValueError(f"token_prob must be in [0, 1], got {token_prob}")
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")


def corrupt_teacher_states_forward(
    input: torch.Tensor,
    labels: torch.Tensor,
    depth: torch.Tensor,
    num_steps: int,
    *,
    value_vocab_size: int,
    token_prob: float,
    strategy: str,
    value_factor: int,
    seed: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every iteration's teacher input (with error-correction noise) and target, in one pass.

    Args:
        input: ``[B, L, F]`` integer tokens of ``S_0`` (RHS VALUE slots hold EMPTY).
        labels: ``[B, L, F]`` the solved sequence, same dtype.
        depth: ``[B, L]`` integer node depth at RHS slots, −1 elsewhere (batch_info channel 0).
        num_steps: ``K``, the number of iterations (``D_batch + 1`` in the authors' fast path).
        value_vocab_size: size of the VALUE vocabulary (``p + 2``); noise is uniform over it.
        token_prob: probability that each candidate slot is corrupted (authors: 0.5); 0 gives the
            teacher states alone.
        strategy: ``"last"`` (depth == k, authors' code), ``"previous"`` (depth == k − 1),
            ``"random"`` (0 ≤ depth ≤ k).
        value_factor: index of the VALUE factor (the caller's factor layout).
        seed: Philox key (used modulo 2**31); None draws one from torch's default CPU generator.

    Returns:
        ``inputs`` ``[K, B, L, F]`` (corrupted ``S_0 … S_{K−1}``), ``targets`` ``[K, B, L, F]``
        (``S_1 … S_K``, never corrupted), both in ``input.dtype``, and ``corrupted`` ``[K, B, L]``
        bool (the slots whose VALUE was replaced).
    """
    _check_args(input, labels, depth, num_steps, value_vocab_size, token_prob, strategy, value_factor)
    batch, length, num_factors = input.shape
    n_pos = batch * length
    inputs = torch.empty((num_steps, batch, length, num_factors), dtype=input.dtype, device=input.device)
    targets = torch.empty_like(inputs)
    corrupted = torch.empty((num_steps, batch, length), dtype=torch.uint8, device=input.device)
    if n_pos > 0:
        _teacher_corrupt_kernel[(triton.cdiv(n_pos, _BLOCK),)](
            input.contiguous(), labels.contiguous(), depth.contiguous(), inputs, targets, corrupted,
            n_pos, num_steps, resolve_seed(seed), float(token_prob), int(value_vocab_size),
            NUM_FACTORS=num_factors,
            F_PAD=triton.next_power_of_2(num_factors),
            VALUE_FACTOR=value_factor,
            STRATEGY=STRATEGIES.index(strategy),
            BLOCK=_BLOCK,
            num_warps=_NUM_WARPS,
        )  # fmt: skip
    return inputs, targets, corrupted.view(torch.bool)


# --------------------------------------------------------------------------------------------------
# Ahead-of-time compile cases (scripts/check_sm90_compile.py)
# --------------------------------------------------------------------------------------------------


def sm90_compile_cases() -> list:
    """The kernel for int64 tokens (the data format), 6 factors, VALUE = 3, every strategy."""
    cases = []
    for strategy in range(len(STRATEGIES)):
        signature = {
            "input_ptr": "*i64", "labels_ptr": "*i64", "depth_ptr": "*i64",
            "inputs_out_ptr": "*i64", "targets_out_ptr": "*i64", "corrupted_ptr": "*u8",
            "N": "i32", "K": "i32", "seed": "i32", "token_prob": "fp32",
            "value_vocab_size": "i32",
        }  # fmt: skip
        constexprs = dict(NUM_FACTORS=6, F_PAD=8, VALUE_FACTOR=3, STRATEGY=strategy, BLOCK=_BLOCK)
        signature.update({name: "constexpr" for name in constexprs})
        label = dict(tokens="int64", strategy=STRATEGIES[strategy])
        cases.append((_teacher_corrupt_kernel, signature, constexprs, {"num_warps": _NUM_WARPS}, label))
    return cases
