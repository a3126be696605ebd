"""The discrete bottleneck between recurrence iterations (docs/method.md §2.1, §2.4, §3.1), inference path.

One iteration ends with six small affine heads on the final hidden state ``z``, a per-factor
decode (argmax, or a Gumbel-max sample), and the re-embedding of the decoded tokens as the next
iteration's input. This module fuses the steps into one kernel:

    logits = z @ W.T + b                  W = torch.cat(six head weights)  [ΣV, D], b [ΣV]
    tok_f  = argmax_{v < V_f} logits[off_f + v] (+ Gumbel noise g when sampling)
    x      = Σ_f E[off_f + tok_f]         E = torch.cat(six embedding tables)  [ΣV, D]

Logits never reach memory: per token the kernel reads ``z`` (D values), writes six int64 tokens
and, when given the embedding table, the next embedding (D values); without it the re-embedding is
skipped (fastrecur's evaluator feeds the tokens back through the model, which embeds them itself).
``W`` and ``E`` are tiny (≈64k rows×cols) and stay in L2.

**Sampling.** For ``tau > 0`` the authors call ``gumbel_softmax(logits, tau, hard=True)`` and take
the argmax. ``gumbel_softmax`` adds the noise *before* dividing by ``tau``, so the argmax is
``argmax(logits + g)`` with ``g = −log(−log u)``, ``u ~ U(0, 1)`` — the Gumbel-max trick, an exact
sample of ``softmax(logits)`` whatever ``tau > 0`` is (docs/method.md §3.1). ``tau`` therefore only selects
argmax (``tau == 0``) versus sampling (``tau > 0``); the same seed gives the same tokens for every
positive ``tau``.

**Random numbers** come from Triton's counter-based Philox generator, keyed by the seed and counted
by (token, group of four vocabulary columns), so a sample depends only on (seed, token index,
column), not on block sizes or on the GPU, and nothing is stored.

**Ties** are broken like ``torch.argmax``: the first maximal index wins.

Below: the kernel and its launcher ``bottleneck_forward``. The public entry point is the custom op
``fastrecur_kernels.ops.bottleneck``; the plain-PyTorch math it is tested against is
``fastrecur_kernels.reference.bottleneck_reference``.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
import triton
import triton.language as tl

from ._common import check_vocab_sizes, factor_starts, resolve_seed
from .interpreter import interpreted

# Decided when the module is imported, like the @triton.jit decorators below.
INTERPRETED = interpreted()


# --------------------------------------------------------------------------------------------------
# Triton kernel
# --------------------------------------------------------------------------------------------------


@triton.jit
def _bottleneck_kernel(
    z_ptr,  # [T, D] hidden states, row stride stride_z
    w_ptr,  # [V, D] concatenated head weights (same dtype as z), contiguous
    b_ptr,  # [V] concatenated head biases
    emb_ptr,  # [V, D] concatenated embedding tables, contiguous; unused without EMBED
    tokens_ptr,  # [T, F] int64 out
    out_ptr,  # [T, D] out, dtype of emb; unused without EMBED
    T,
    D,
    V,
    stride_z,
    seed,
    VOCAB: tl.constexpr,  # tuple: vocabulary size of each factor
    STARTS: tl.constexpr,  # tuple: offset of each factor in the concatenated vocabulary
    NUM_FACTORS: tl.constexpr,
    F_PAD: tl.constexpr,  # next power of two >= NUM_FACTORS
    RESET_MASK: tl.constexpr,  # bit f set: factor f is forced to token 0
    SAMPLE: tl.constexpr,  # Gumbel-max sampling instead of argmax
    EMBED: tl.constexpr,  # also write the re-embedding of the decoded tokens
    DOT_PRECISION: tl.constexpr,  # "ieee" for fp32 inputs (no TF32 rounding of the logits)
    DOT_UPCAST: tl.constexpr,  # widen GEMM operands to fp32 (only for the interpreter, see below)
    BLOCK_T: tl.constexpr,
    BLOCK_V: tl.constexpr,  # next power of two >= V (>= 16 for tl.dot)
    BLOCK_K: tl.constexpr,  # reduction chunk of the head GEMM
    BLOCK_D: tl.constexpr,  # column chunk of the embedding gather
):
    pid = tl.program_id(0)
    # 64-bit block base (T * D may exceed 2**31), 32-bit offsets within the block.
    first_row = pid.to(tl.int64) * BLOCK_T
    z_ptr += first_row * stride_z
    tokens_ptr += first_row * NUM_FACTORS
    out_ptr += first_row * D
    r = tl.arange(0, BLOCK_T)
    rows = pid * BLOCK_T + r
    row_ok = rows < T
    cols = tl.arange(0, BLOCK_V)
    col_ok = cols < V

    # ---- logits = z @ W.T + b, a [BLOCK_T, BLOCK_V] fp32 tile kept in registers -----------------
    logits = tl.zeros([BLOCK_T, BLOCK_V], dtype=tl.float32)
    for k0 in range(0, D, BLOCK_K):
        ks = k0 + tl.arange(0, BLOCK_K)
        k_ok = ks < D
        z = tl.load(z_ptr + r[:, None] * stride_z + ks[None, :], mask=row_ok[:, None] & k_ok[None, :], other=0.0)
        # W.T tile [BLOCK_K, BLOCK_V]: column v of the tile is row v of W.
        w_t = tl.load(w_ptr + cols[None, :] * D + ks[:, None], mask=k_ok[:, None] & col_ok[None, :], other=0.0)
        if DOT_UPCAST:
            z = z.to(tl.float32)
            w_t = w_t.to(tl.float32)
        logits = tl.dot(z, w_t, logits, input_precision=DOT_PRECISION)
    logits += tl.load(b_ptr + cols, mask=col_ok, other=0.0).to(tl.float32)[None, :]

    if SAMPLE:
        # One Philox call yields four uniforms: counter (token, j) feeds columns 4j .. 4j+3.
        # join(join(u0, u1), join(u2, u3)) has shape [BLOCK_T, BLOCK_V/4, 2, 2] and flattens to
        # column order u0, u1, u2, u3 within each group of four.
        groups = tl.arange(0, BLOCK_V // 4)
        counters = (first_row + r)[:, None] * tl.cdiv(V, 4) + groups[None, :]
        u0, u1, u2, u3 = tl.rand4x(seed, counters)
        u = tl.reshape(tl.join(tl.join(u0, u1), tl.join(u2, u3)), [BLOCK_T, BLOCK_V])
        # u == 0 gives −inf noise: that column simply cannot win (probability 2**-30 per draw).
        logits += -tl.log(-tl.log(u))

    # ---- per-factor decode -------------------------------------------------------------------------
    fcols = tl.arange(0, F_PAD)
    tokens = tl.zeros([BLOCK_T, F_PAD], dtype=tl.int32)  # index within the factor's vocabulary
    rows_in_e = tl.zeros([BLOCK_T, F_PAD], dtype=tl.int32)  # row of the concatenated embedding table
    for f in tl.static_range(NUM_FACTORS):
        if (RESET_MASK >> f) & 1:
            tok_f = tl.zeros([BLOCK_T], dtype=tl.int32)
        else:
            in_f = (cols >= STARTS[f]) & (cols < STARTS[f] + VOCAB[f])
            # Columns of other factors become −inf; tl.argmax breaks ties to the left like torch.
            tok_f = tl.argmax(tl.where(in_f[None, :], logits, float("-inf")), axis=1).to(tl.int32) - STARTS[f]
        tokens = tl.where(fcols[None, :] == f, tok_f[:, None], tokens)
        rows_in_e = tl.where(fcols[None, :] == f, (tok_f + STARTS[f])[:, None], rows_in_e)
    tl.store(
        tokens_ptr + r[:, None] * NUM_FACTORS + fcols[None, :],
        tokens.to(tl.int64),
        mask=row_ok[:, None] & (fcols[None, :] < NUM_FACTORS),
    )

    # ---- re-embedding: x = E[row_0] + E[row_1] + ... in factor order, fp32 accumulation -------------
    if EMBED:
        for d0 in range(0, D, BLOCK_D):
            ds = d0 + tl.arange(0, BLOCK_D)
            d_ok = ds < D
            acc = tl.zeros([BLOCK_T, BLOCK_D], dtype=tl.float32)
            for f in tl.static_range(NUM_FACTORS):
                # Exactly one non-zero entry per row: the sum extracts column f without a gather.
                e_row = tl.sum(tl.where(fcols[None, :] == f, rows_in_e, 0), axis=1)
                acc += tl.load(emb_ptr + e_row[:, None] * D + ds[None, :], mask=row_ok[:, None] & d_ok[None, :], other=0.0)
            tl.store(
                out_ptr + r[:, None] * D + ds[None, :],
                acc.to(out_ptr.dtype.element_ty),
                mask=row_ok[:, None] & d_ok[None, :],
            )


# Launch configuration, chosen with ptxas register reports for sm_90 (no GPU timings yet).
# bf16/fp16: BLOCK_T = 64 rows fill one Hopper warpgroup MMA (M = 64); 8 warps split the
# [64, BLOCK_V] fp32 accumulator (64 registers per thread at ΣV ≤ 256); the per-factor argmax needs
# about as much again, and BLOCK_K = BLOCK_D = 32 keeps the kernel just under 255 registers without
# spills. fp32 ("ieee" products on CUDA cores) needs smaller tiles: BLOCK_T = 32, BLOCK_K = 16,
# one pipeline stage.
_NUM_WARPS = 8


def _launch_params(vocab_total: int, num_factors: int, dtype: torch.dtype) -> dict:
    wide = dtype == torch.float32
    return dict(
        F_PAD=triton.next_power_of_2(num_factors),
        BLOCK_T=32 if wide else 64,
        BLOCK_V=max(16, triton.next_power_of_2(vocab_total)),
        BLOCK_K=16 if wide else 32,
        BLOCK_D=32,
        num_warps=_NUM_WARPS,
        num_stages=1 if wide else 3,
    )


def _interpreter_dot_upcast(dtype: torch.dtype) -> bool:
    """Whether ``tl.dot`` operands must be widened to fp32 before the product.

    Triton's CPU interpreter (3.6 and 3.9) stores bf16 as uint16 and hands those integers to
    ``numpy.matmul``, so a bf16 ``tl.dot`` returns garbage there. Widening is exact (bf16 ⊂ fp32)
    and gives the fp32-accumulated products the GPU's bf16 MMA computes; compiled kernels keep
    native bf16 operands."""
    return dtype == torch.bfloat16 and INTERPRETED


# --------------------------------------------------------------------------------------------------
# Launcher
# --------------------------------------------------------------------------------------------------


def bottleneck_forward(
    z: torch.Tensor,
    head_weight: torch.Tensor,
    head_bias: torch.Tensor,
    embedding: Optional[torch.Tensor],
    vocab_sizes: Sequence[int],
    *,
    reset_factors: Sequence[int],
    tau: float = 0.0,
    seed: int | None = None,
) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Decode the heads' logits of ``z`` (and re-embed the decoded tokens), without storing logits.

    Args:
        z: ``[..., D]`` final hidden states (fp32, bf16 or fp16).
        head_weight: ``[ΣV, D]`` the six heads' weights concatenated in factor order
            (``torch.cat([h.weight for h in heads])``); cast to ``z.dtype`` for the GEMM.
        head_bias: ``[ΣV]`` the heads' biases concatenated likewise.
        embedding: ``[ΣV, D]`` the six embedding tables concatenated in factor order, or None to
            skip the re-embedding.
        vocab_sizes: the factor vocabulary sizes, e.g. ``(7, 129, 2, 25, 2, 2)``; they sum to ΣV.
        tau: 0 decodes by argmax (ties: first maximal index); any ``tau > 0`` draws a Gumbel-max
            sample, an exact sample of ``softmax(logits)`` independent of ``tau`` (module docstring).
        seed: Philox key for sampling (used modulo 2**31); None draws one from torch's default
            CPU generator. Ignored when ``tau == 0``.
        reset_factors: factors whose token is forced to 0 (FALSE) before re-embedding, e.g.
            REGRET and MODIFICATION; the caller's factor layout decides which.

    Returns:
        ``tokens`` ``[..., F]`` int64 (index within each factor's vocabulary) and
        ``x`` ``[..., D]`` in ``embedding.dtype``: ``Σ_f embedding[off_f + tokens[..., f]]`` summed in
        factor order in fp32 (None without an embedding table). Not differentiable (the bottleneck
        is discrete).
    """
    sizes = check_vocab_sizes(vocab_sizes)
    num_factors, vocab_total = len(sizes), sum(sizes)
    if z.dim() < 2:
        raise ValueError(f"z must be [..., D], got shape {tuple(z.shape)}")
    d_model = z.shape[-1]
    if head_weight.shape != (vocab_total, d_model):
        raise ValueError(f"head_weight must be [ΣV={vocab_total}, D={d_model}], got {tuple(head_weight.shape)}")
    if head_bias.shape != (vocab_total,):
        raise ValueError(f"head_bias must be [ΣV={vocab_total}], got {tuple(head_bias.shape)}")
    if embedding is not None and embedding.shape != (vocab_total, d_model):
        raise ValueError(f"embedding must be [ΣV={vocab_total}, D={d_model}], got {tuple(embedding.shape)}")
    for name, t in (("z", z), ("head_weight", head_weight), ("head_bias", head_bias), ("embedding", embedding)):
        if t is None:
            continue
        if not t.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got {t.dtype}")
        if t.device != z.device:
            raise ValueError(f"{name} is on {t.device} but z is on {z.device}")
    if z.dtype not in (torch.float32, torch.bfloat16, torch.float16):
        raise TypeError(f"z must be fp32, bf16 or fp16, got {z.dtype}")
    if tau < 0:
        raise ValueError(f"tau must be >= 0, got {tau}")
    reset = tuple(int(f) for f in reset_factors)
    if any(not 0 <= f < num_factors for f in reset):
        raise ValueError(f"reset_factors {list(reset)} must be factor indices in [0, {num_factors})")

    lead_shape = z.shape[:-1]
    z2 = z.reshape(-1, d_model)
    if z2.stride(-1) != 1:
        z2 = z2.contiguous()
    n_tokens = z2.shape[0]
    weight = head_weight.to(z.dtype).contiguous()
    embed = embedding is not None
    tokens = torch.empty((n_tokens, num_factors), dtype=torch.int64, device=z.device)
    # Without EMBED the kernel never touches emb_ptr / out_ptr: z2 stands in for both.
    emb = embedding.contiguous() if embed else z2
    out = torch.empty((n_tokens, d_model), dtype=embedding.dtype, device=z.device) if embed else z2
    if n_tokens > 0:
        sample = tau > 0
        params = _launch_params(vocab_total, num_factors, z.dtype)
        _bottleneck_kernel[(triton.cdiv(n_tokens, params["BLOCK_T"]),)](
            z2, weight, head_bias.contiguous(), emb, tokens, out,
            n_tokens, d_model, vocab_total, z2.stride(0),
            resolve_seed(seed) if sample else 0,
            VOCAB=sizes,
            STARTS=factor_starts(sizes),
            NUM_FACTORS=num_factors,
            RESET_MASK=sum(1 << f for f in set(reset)),
            SAMPLE=sample,
            EMBED=embed,
            DOT_PRECISION="ieee" if z.dtype == torch.float32 else "tf32",
            DOT_UPCAST=_interpreter_dot_upcast(z.dtype),
            **params,
        )  # fmt: skip
    x = out.reshape(*lead_shape, d_model) if embed else None
    return tokens.reshape(*lead_shape, num_factors), x


# --------------------------------------------------------------------------------------------------
# Ahead-of-time compile cases (scripts/check_sm90_compile.py)
# --------------------------------------------------------------------------------------------------


def sm90_compile_cases() -> list:
    """The kernel at the paper's shape (vocab 7/129/2/25/2/2 → ΣV = 167, padded to 256; D is a
    runtime argument): tokens only (what fastrecur's evaluator runs) for bf16 and fp32 activations,
    and with the re-embedding for bf16 activations with an fp32 or bf16 embedding table and for
    fp32 activations, argmax and Gumbel sampling."""
    cases = []
    paper_vocab = (7, 129, 2, 25, 2, 2)
    for act, emb, sample, embed in [
        ("bf16", "bf16", False, False),
        ("fp32", "fp32", False, False),
        ("bf16", "fp32", False, True),
        ("bf16", "fp32", True, True),
        ("bf16", "bf16", False, True),
        ("fp32", "fp32", False, True),
        ("fp32", "fp32", True, True),
    ]:
        params = _launch_params(sum(paper_vocab), len(paper_vocab), torch.float32 if act == "fp32" else torch.bfloat16)
        options = {k: params.pop(k) for k in ("num_warps", "num_stages")}
        signature = {
            "z_ptr": f"*{act}", "w_ptr": f"*{act}", "b_ptr": "*fp32", "emb_ptr": f"*{emb}",
            "tokens_ptr": "*i64", "out_ptr": f"*{emb}",
            "T": "i32", "D": "i32", "V": "i32", "stride_z": "i32", "seed": "i32",
        }  # fmt: skip
        constexprs = dict(
            VOCAB=paper_vocab,
            STARTS=factor_starts(paper_vocab),
            NUM_FACTORS=len(paper_vocab),
            RESET_MASK=0b110000,
            SAMPLE=sample,
            EMBED=embed,
            DOT_PRECISION="ieee" if act == "fp32" else "tf32",
            DOT_UPCAST=False,
            **params,
        )
        signature.update({name: "constexpr" for name in constexprs})
        label = dict(activations=act, embedding=emb if embed else "none (tokens only)", sample=sample, vocab="paper",
                     tokens_per_program=params["BLOCK_T"])  # fmt: skip
        cases.append((_bottleneck_kernel, signature, constexprs, options, label))
    return cases
