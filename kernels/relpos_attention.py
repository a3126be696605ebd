"""Flash attention with DeBERTa-style relative positions (docs/method.md §2.3): forward and backward.

For one head, with ``q, k, v`` of shape ``[L, d]`` and the projected position tables
``K^r = pos_k`` (c2p term) and ``Q^r = pos_q`` (p2c term) of shape ``[W, d]``::

    z(i, j) = q_i·k_j + q_i·K^r[r(i,j)] + k_j·Q^r[r(i,j)]        r(i,j) = clamp(j−i, −W+1+s, s) + W−1−s
    o_i     = Σ_j softmax_j(z(i, j) / sqrt(c·d)) · v_j             c = 1 + #position terms on

with ``z = −inf`` for ``j > i`` when causal, and dropout on the probabilities. Nothing of size
L×L reaches memory: the kernels stream key/value tiles with an online softmax (FlashAttention-2).

**Band and far field.** ``r`` only varies on the diagonals ``−W+1+s < j−i < s``. Outside that band
every pair uses one clamped bucket ``f`` (0 for keys far in the past, W−1 for keys at or beyond
``i+s``), so a tile lying entirely outside it has the score ``q_i·k_j + a_i + b_j`` with the per-row
scalar ``a_i = q_i·K^r_f`` and the per-key scalar ``b_j = k_j·Q^r_f``: a plain flash tile plus one
row and one column vector, which is exact (no softmax-invariance argument needed). Only tiles
intersecting the band gather per-pair terms. They use two small matmuls on the tensor cores,
``C = q·K^rᵀ`` ([BLOCK_M, W], once per query block) and ``P = k·Q^rᵀ`` over the W_SLICE ≥
BLOCK_M + BLOCK_N − 1 consecutive table rows the tile's buckets span ([BLOCK_N, W_SLICE], per band tile),
and ``tl.gather`` the entry of bucket ``r(i, j)`` for every pair. With W = 64 and 64×64 tiles that is
the diagonal tile and its left neighbour: 7 of 10 causal tiles at L = 256, 31 of 136 at L = 1024.

**Backward** (deterministic, no atomics). Let ``dz`` be the gradient of the raw score. Then
``dq_i = Σ_j dz_ij (k_j + K^r[r])``, ``dk_j = Σ_i dz_ij (q_i + Q^r[r])``, and the table gradients are
``dK^r = Gᵀ·q`` and ``dQ^r = H·k`` with the bucket-aggregated scores ``G[i, w] = Σ_{j: r(i,j)=w} dz_ij``
and ``H[w, j] = Σ_{i: r(i,j)=w} dz_ij``. Two kernels, each owning its outputs:

* the dq kernel (one query block, looping over keys) accumulates ``G``: inside the band each
  ``(i, w)`` is a single key ``j = i + w − (W−1−s)``, so ``G`` is a *skewed copy* of the ``dz`` tile
  (one ``tl.gather``); the two clamped buckets are masked row sums, and far tiles add their row sums
  to bucket 0 or W−1. It ends with ``dq += G·K^r`` and writes its partial ``Gᵀ·q``;
* the dk/dv kernel (one key block, looping over queries) does the same for ``H`` in transposed tiles
  and writes its partial ``H·k``.

The partial tables (``[#blocks, B·H, W, d]``, fp32) are summed in torch, so every gradient is
bitwise reproducible. The dq kernel also computes ``Δ_i = dO_i·O_i`` for its rows, which the dk/dv
kernel (launched after it) reads.

**Dropout** masks are never stored. A pair ``(i, j)`` of head ``b·H+h`` is kept iff 31 bits of
Philox-4x32-10 are ``>= round(p·2³¹)``. The counter is ``(i·⌈L/4⌉ + j//4, b·H+h, 0, 0)`` and the
key the 62-bit seed; the four output words go to the keys ``4·(j//4) … +3``. Splitting the
position over two counter words avoids the int32 overflow of a flat ``((b·H+h)·L + i)·L + j``
offset (≥ 2³¹ at the training shape with L = 1024); ``i·⌈L/4⌉ + j//4`` fits int32 for L < 92,681.
The mask depends on ``(seed, b, h, i, j)`` only, not on block sizes, so the backward kernels
regenerate it in their own tiling, and ``dropout_keep_mask`` returns it for tests.

**Registers.** A spill costs far more on Hopper than a smaller tile, so nothing of size [W, d] is
held through the tile loops (band tiles read their table slice, the final table products re-read
``K^r``/``Q^r``), and with ``D_CHUNK < d`` every product over the head dim (scores, ``dO·vᵀ``, the
position products, the table gradients) reads its operands ``D_CHUNK`` columns at a time from L1/L2
instead of holding q and dO (dk/dv: k and v) as whole MMA operands (``_dot_hd``). ``SM90_CONFIGS``
picks tiles and chunks per kernel, dtype and head dim so that no launched variant spills.

**Numerics.** Products accumulate in fp32; the softmax runs in the exp2 domain with fp32
statistics; fp32 inputs use 3xTF32 matmuls (errors at the level of fp32 rounding, unlike plain
TF32), bf16/fp16 inputs the tensor cores with fp32 accumulation; the once-per-program table products
of the backward (``G·K^r``, ``Gᵀ·q`` …) take fp32 operands. Outputs are in the input dtype, table
gradients in the tables' dtype.

Below: the Triton kernels and their launchers (``_forward``, ``_backward``), the argument checks and
``dropout_keep_mask``. The public, differentiable entry point is ``fastrecur_kernels.ops.relpos_attention``
(a ``torch.library`` custom op with a registered backward); the plain-PyTorch math it is tested
against is ``fastrecur_kernels.reference.relpos_attention_reference``.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
import triton
import triton.language as tl

from .interpreter import interpreted
from .reference import check_attention_inputs

# Decided when the module is imported, like the @triton.jit decorators below.
INTERPRETED = interpreted()
SUPPORTED_DTYPES = (torch.float32, torch.bfloat16, torch.float16)
MAX_HEAD_DIM = 128
MAX_DROPOUT_LEN = 92_680  # i·⌈L/4⌉ + j//4 < 2³¹
# A new seed must not trigger a recompile (Triton specializes integer arguments on their value).
SEED_ARGS = ["seed_lo", "seed_hi"]


# --------------------------------------------------------------------------------------------------
# Triton helpers
# --------------------------------------------------------------------------------------------------


@triton.jit
def _buckets(i, j, WINDOW: tl.constexpr, SHIFT: tl.constexpr):
    """``r(i, j) = clamp(j − i, −W+1+s, s) + W−1−s`` for broadcastable int32 index tensors."""
    return tl.minimum(tl.maximum(j - i + (WINDOW - 1 - SHIFT), 0), WINDOW - 1)


@triton.jit
def _dot(a, b, DOT_PRECISION: tl.constexpr, DOT_UPCAST: tl.constexpr):
    """``a @ b`` with fp32 accumulation. Triton's CPU interpreter (3.6 and 3.9) hands bf16 storage
    integers to numpy.matmul, so there ``DOT_UPCAST`` widens the operands to fp32 first — exact,
    and the same products as the GPU's bf16 MMA with fp32 accumulation."""
    if DOT_UPCAST:
        a = a.to(tl.float32)
        b = b.to(tl.float32)
    return tl.dot(a, b, input_precision=DOT_PRECISION)


@triton.jit
def _load_rows(base, rows, stride, offs_d, n_rows, HEAD_DIM: tl.constexpr):
    """A ``[len(rows), D_PAD]`` tile of a row-major ``[n_rows, HEAD_DIM]`` matrix; zero padding."""
    mask = (rows[:, None] < n_rows) & (offs_d[None, :] < HEAD_DIM)
    return tl.load(base + rows[:, None] * stride + offs_d[None, :], mask=mask, other=0.0)


@triton.jit
def _load_cols(base, rows, stride, offs_d, n_rows, HEAD_DIM: tl.constexpr):
    """The same tile transposed: ``[D_PAD, len(rows)]``."""
    mask = (offs_d[:, None] < HEAD_DIM) & (rows[None, :] < n_rows)
    return tl.load(base + rows[None, :] * stride + offs_d[:, None], mask=mask, other=0.0)


@triton.jit
def _load_vec(base, offs_d, HEAD_DIM: tl.constexpr):
    """One table row as fp32 ``[D_PAD]``."""
    return tl.load(base + offs_d, mask=offs_d < HEAD_DIM, other=0.0).to(tl.float32)


@triton.jit
def _dropout_bits(seed_lo, seed_hi, bh, offs_i, start_j, L, BLOCK_I: tl.constexpr, BLOCK_J: tl.constexpr):
    """31 uniform random bits (int32 >= 0) for the pairs ``offs_i × [start_j, start_j + BLOCK_J)``
    of head ``bh``; ``start_j`` must be a multiple of 4. See the module docstring for the counter."""
    groups = start_j // 4 + tl.arange(0, BLOCK_J // 4)
    c0 = offs_i[:, None] * tl.cdiv(L, 4) + groups[None, :]  # [BLOCK_I, BLOCK_J // 4] int32
    zero = c0 * 0
    seed = (seed_hi.to(tl.uint64) << 31) | seed_lo.to(tl.uint64)
    r0, r1, r2, r3 = tl.philox(seed, c0, zero + bh, zero, zero)
    # Interleave the four words so that key 4g + u gets word u: join → [.., BLOCK_J // 4, 2, 2].
    bits = tl.reshape(tl.join(tl.join(r0, r2), tl.join(r1, r3)), (BLOCK_I, BLOCK_J))
    return (bits >> 1).to(tl.int32, bitcast=True)


@triton.jit
def _dot_hd(
    a, b_t, A, rows_a, stride_a, n_a, B, rows_b, stride_b, n_b,
    HEAD_DIM: tl.constexpr, D_PAD: tl.constexpr, D_CHUNK: tl.constexpr,
    DOT_PRECISION: tl.constexpr, DOT_UPCAST: tl.constexpr,
):  # fmt: skip
    """``A[rows_a]·B[rows_b]ᵀ``, a product over the head dim, as fp32 ``[len(rows_a), len(rows_b)]``.

    With one chunk (``D_CHUNK == D_PAD``) that is ``a·b_t``, the tiles the caller holds. Otherwise
    ``a`` and ``b_t`` go unused and the operands are read ``D_CHUNK`` columns at a time (L1/L2 hits:
    the program has just read them), so that no operand of head-dim width stays in registers
    through a tile loop. An MMA operand costs a warp a whole [16, d] row block, and 3xTF32 splits
    every fp32 operand in two: holding q and dO (dk/dv: k and v) whole spills in most fp32 rows and
    some bf16 ones (``SM90_CONFIGS`` says which chunk).
    """
    if D_CHUNK == D_PAD:
        return _dot(a, b_t, DOT_PRECISION, DOT_UPCAST)
    acc = tl.zeros([a.shape[0], b_t.shape[1]], tl.float32)
    for c in range(0, D_PAD, D_CHUNK):
        offs_c = c + tl.arange(0, D_CHUNK)
        a_c = _load_rows(A, rows_a, stride_a, offs_c, n_a, HEAD_DIM)
        b_c = _load_cols(B, rows_b, stride_b, offs_c, n_b, HEAD_DIM)
        acc += _dot(a_c, b_c, DOT_PRECISION, DOT_UPCAST)
    return acc


@triton.jit
def _slice_start(start_m, start_n, WINDOW: tl.constexpr, SHIFT: tl.constexpr, W_SLICE: tl.constexpr,
                 BLOCK_M: tl.constexpr):  # fmt: skip
    """First of the ``W_SLICE`` consecutive table rows that hold every bucket of the band tile of the
    queries ``[start_m, start_m + BLOCK_M)`` and the keys from ``start_n``: its buckets are the
    clamped ``lowest … lowest + BLOCK_M + BLOCK_N − 2``, so ``W_SLICE >= min(BLOCK_M + BLOCK_N − 1, W)``
    rows suffice (the launcher's choice)."""
    lowest = start_n - (start_m + BLOCK_M - 1) + (WINDOW - 1 - SHIFT)  # the bottom-left pair's, unclamped
    return tl.maximum(tl.minimum(tl.maximum(lowest, 0), WINDOW - W_SLICE), 0)


@triton.jit
def _table_slice_product(
    x_t, X, offs_x, stride_x, TABLE, stride_tw, first, offs_d, L,
    HEAD_DIM: tl.constexpr, D_PAD: tl.constexpr, D_CHUNK: tl.constexpr, WINDOW: tl.constexpr,
    W_SLICE: tl.constexpr, DOT_PRECISION: tl.constexpr, DOT_UPCAST: tl.constexpr,
):  # fmt: skip
    """``x·T[first : first + W_SLICE]ᵀ`` [len(offs_x), W_SLICE] for the rows ``x = X[offs_x]`` (held
    transposed as ``x_t`` [D_PAD, len(offs_x)]) and a position table ``T`` (rows past W are zero)."""
    rows = first + tl.arange(0, W_SLICE)
    table = _load_rows(TABLE, rows, stride_tw, offs_d, WINDOW, HEAD_DIM)
    return _dot_hd(tl.trans(x_t), tl.trans(table), X, offs_x, stride_x, L, TABLE, rows, stride_tw, WINDOW,
                   HEAD_DIM, D_PAD, D_CHUNK, DOT_PRECISION, DOT_UPCAST)  # fmt: skip


@triton.jit
def _row_scores(
    z, k_t, c2p, far_row, qr_far, K, PQ, stride_kl, stride_pqw, start_m, offs_m, start_n, offs_n, offs_d, L,
    HEAD_DIM: tl.constexpr, D_PAD: tl.constexpr, D_CHUNK: tl.constexpr, WINDOW: tl.constexpr,
    SHIFT: tl.constexpr, W_SLICE: tl.constexpr, BAND: tl.constexpr, CAUSAL: tl.constexpr,
    HAS_C2P: tl.constexpr, HAS_P2C: tl.constexpr, DOT_PRECISION: tl.constexpr, DOT_UPCAST: tl.constexpr,
    BLOCK_M: tl.constexpr,
):  # fmt: skip
    """Raw scores ``z`` of a [BLOCK_M, BLOCK_N] tile (queries × keys) from its content scores
    ``z = q·kᵀ``; ``-inf`` where masked.

    ``c2p = q·K^rᵀ`` [BLOCK_M, W_PAD] serves band tiles, which compute ``k·Q^rᵀ`` over the W_SLICE
    table rows they use; a far tile adds ``far_row = q·K^r_f`` [BLOCK_M] and ``k·Q^r_f``
    (``qr_far = Q^r_f`` [D_PAD], fp32).
    """
    if BAND:
        r = _buckets(offs_m[:, None], offs_n[None, :], WINDOW, SHIFT)
        if HAS_C2P:
            z += tl.gather(c2p, r, 1)  # C[i, r(i, j)]
        if HAS_P2C:
            # P = k·Q^rᵀ [BLOCK_N, W_SLICE], not Pᵀ: the wide W side is the product's N dimension,
            # which the warps split, so no warp holds all of the table slice.
            first = _slice_start(start_m, start_n, WINDOW, SHIFT, W_SLICE, BLOCK_M)
            p2c = _table_slice_product(k_t, K, offs_n, stride_kl, PQ, stride_pqw, first, offs_d, L, HEAD_DIM, D_PAD,
                                       D_CHUNK, WINDOW, W_SLICE, DOT_PRECISION, DOT_UPCAST)  # fmt: skip
            z += tl.trans(tl.gather(p2c, tl.trans(r - first), 1))  # P[j, r(i, j)]
        valid = offs_n[None, :] < L
        if CAUSAL:
            valid &= offs_n[None, :] <= offs_m[:, None]
        z = tl.where(valid, z, float("-inf"))
    else:
        if HAS_P2C:
            far_col = tl.sum(k_t.to(tl.float32) * qr_far[:, None], 0)
        else:
            far_col = tl.zeros_like(offs_n).to(tl.float32)
        # Keys past L only occur in the last, far-high tile (bidirectional); -inf removes them.
        far_col = tl.where(offs_n < L, far_col, float("-inf"))
        z += far_row[:, None] + far_col[None, :]
    return z


@triton.jit
def _col_scores(
    z_t, q_t, p2c, far_col, kr_far, Q, PK, stride_ql, stride_pkw, start_m, offs_m, start_n, offs_n, offs_d, L,
    HEAD_DIM: tl.constexpr, D_PAD: tl.constexpr, D_CHUNK: tl.constexpr, WINDOW: tl.constexpr,
    SHIFT: tl.constexpr, W_SLICE: tl.constexpr, BAND: tl.constexpr, CAUSAL: tl.constexpr,
    HAS_C2P: tl.constexpr, HAS_P2C: tl.constexpr, DOT_PRECISION: tl.constexpr, DOT_UPCAST: tl.constexpr,
    BLOCK_M: tl.constexpr,
):  # fmt: skip
    """``_row_scores`` transposed: ``zᵀ`` of a [BLOCK_N, BLOCK_M] tile (keys × queries) from ``z_t = k·qᵀ``.

    ``p2c = k·Q^rᵀ`` [BLOCK_N, W_PAD] serves band tiles, which compute ``q·K^rᵀ`` over the W_SLICE
    table rows they use; a far tile adds ``far_col = k·Q^r_f`` [BLOCK_N] (``-inf`` past L) and
    ``q·K^r_f`` (``kr_far = K^r_f``).
    """
    if BAND:
        r_t = _buckets(offs_m[None, :], offs_n[:, None], WINDOW, SHIFT)
        if HAS_C2P:
            first = _slice_start(start_m, start_n, WINDOW, SHIFT, W_SLICE, BLOCK_M)
            # [BLOCK_M, W_SLICE], W as the N dimension as in _row_scores.
            c2p = _table_slice_product(q_t, Q, offs_m, stride_ql, PK, stride_pkw, first, offs_d, L, HEAD_DIM, D_PAD,
                                       D_CHUNK, WINDOW, W_SLICE, DOT_PRECISION, DOT_UPCAST)  # fmt: skip
            z_t += tl.trans(tl.gather(c2p, tl.trans(r_t - first), 1))  # C[i, r(i, j)]
        if HAS_P2C:
            z_t += tl.gather(p2c, r_t, 1)  # P[j, r(i, j)]
        valid = offs_n[:, None] < L
        if CAUSAL:
            valid &= offs_n[:, None] <= offs_m[None, :]
        z_t = tl.where(valid, z_t, float("-inf"))
    else:
        if HAS_C2P:
            far_row = tl.sum(q_t.to(tl.float32) * kr_far[:, None], 0)
        else:
            far_row = tl.zeros_like(offs_m).to(tl.float32)
        z_t += far_col[:, None] + far_row[None, :]
    return z_t


@triton.jit
def _skewed_buckets(ds, offs_rows, start_cols, SIGN: tl.constexpr, WINDOW: tl.constexpr, SHIFT: tl.constexpr,
                    W_PAD: tl.constexpr, BLOCK_COLS: tl.constexpr):  # fmt: skip
    """Interior buckets ``0 < w < W−1`` of a band tile of ``ds`` [rows, BLOCK_COLS] as [rows, W_PAD].

    Row x and bucket w meet a single column y: ``y = x + SIGN·(w − (W−1−s))`` (SIGN = +1 for
    query rows / key columns, −1 for key rows / query columns). The clamped buckets 0 and W−1 are
    summed by the caller.
    """
    w = tl.arange(0, W_PAD)[None, :]
    col = offs_rows[:, None] - start_cols + SIGN * (w - (WINDOW - 1 - SHIFT))
    inside = (col >= 0) & (col < BLOCK_COLS) & (w > 0) & (w < WINDOW - 1)
    skew = tl.gather(ds, tl.minimum(tl.maximum(col, 0), BLOCK_COLS - 1), 1)
    return tl.where(inside, skew, 0.0)


@triton.jit
def _store_table_partial(
    PART, block, bh, n_bh, g, X, rows, stride_x, n_rows, scale, offs_w,
    WINDOW: tl.constexpr, HEAD_DIM: tl.constexpr, D_PAD: tl.constexpr, D_CHUNK: tl.constexpr,
):  # fmt: skip
    """Write one program's table gradient ``scale·gᵀ·X[rows]`` ([W, d], fp32; ``g`` is [len(rows), W_PAD])
    into ``PART[block, bh]``, D_CHUNK columns at a time. Once per program: fp32 operands (3xTF32),
    no 16-bit rounding of the bucket sums."""
    base = PART + ((block.to(tl.int64) * n_bh + bh) * WINDOW) * HEAD_DIM
    g_t = tl.trans(g)
    for c in range(0, D_PAD, D_CHUNK):
        offs_c = c + tl.arange(0, D_CHUNK)
        x = _load_rows(X, rows, stride_x, offs_c, n_rows, HEAD_DIM).to(tl.float32)
        part = tl.dot(g_t, x, input_precision="tf32x3") * scale
        mask = (offs_w[:, None] < WINDOW) & (offs_c[None, :] < HEAD_DIM)
        tl.store(base + offs_w[:, None] * HEAD_DIM + offs_c[None, :], part, mask=mask)


@triton.jit
def _length_scales(offs, inv_log_scale_from, BLOCK: tl.constexpr, LENGTH_SCALED: tl.constexpr):
    """τ_i = max(1, ln(i+1) / ln L0) of the query rows ``offs`` (``reference.length_scales``), given
    ``inv_log_scale_from`` = 1/ln L0; ones when log-length scaling is off (folded away by the compiler)."""
    if LENGTH_SCALED:
        return tl.maximum(tl.log(offs.to(tl.float32) + 1.0) * inv_log_scale_from, 1.0)
    else:
        return tl.full([BLOCK], 1.0, tl.float32)


# --------------------------------------------------------------------------------------------------
# Forward
# --------------------------------------------------------------------------------------------------


@triton.jit
def _fwd_tiles(
    acc, l_i, m_i, q, c2p, far_row, qr_far, Q, K, V, PQ, stride_ql, stride_kl, stride_vl, stride_pqw,
    start_m, offs_m, offs_d, start, end, L, seed_lo, seed_hi, bh, drop_threshold, qk_scale,
    HEAD_DIM: tl.constexpr, D_PAD: tl.constexpr, D_CHUNK: tl.constexpr, WINDOW: tl.constexpr,
    SHIFT: tl.constexpr, W_SLICE: tl.constexpr, BAND: tl.constexpr, CAUSAL: tl.constexpr,
    HAS_C2P: tl.constexpr, HAS_P2C: tl.constexpr, DROPOUT: tl.constexpr, DOT_PRECISION: tl.constexpr,
    DOT_UPCAST: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
):  # fmt: skip
    """Online-softmax update over the key tiles ``[start, end)`` of one query block (``qk_scale``:
    ``[BLOCK_M]``, each row's softmax scale in the log2 domain)."""
    for start_n in range(start, end, BLOCK_N):
        offs_n = start_n + tl.arange(0, BLOCK_N)
        k_t = _load_cols(K, offs_n, stride_kl, offs_d, L, HEAD_DIM)
        v = _load_rows(V, offs_n, stride_vl, offs_d, L, HEAD_DIM)
        z = _dot_hd(q, k_t, Q, offs_m, stride_ql, L, K, offs_n, stride_kl, L,
                    HEAD_DIM, D_PAD, D_CHUNK, DOT_PRECISION, DOT_UPCAST)  # fmt: skip
        z = _row_scores(z, k_t, c2p, far_row, qr_far, K, PQ, stride_kl, stride_pqw, start_m, offs_m, start_n, offs_n,
                        offs_d, L, HEAD_DIM, D_PAD, D_CHUNK, WINDOW, SHIFT, W_SLICE, BAND, CAUSAL, HAS_C2P, HAS_P2C,
                        DOT_PRECISION, DOT_UPCAST, BLOCK_M)  # fmt: skip
        z = z * qk_scale[:, None]  # log2 domain
        # m_new is finite: the first tile a row meets holds a valid key for it (far tiles are
        # unmasked, and a row's first band tile starts at or before the row).
        m_new = tl.maximum(m_i, tl.max(z, 1))
        p = tl.math.exp2(z - m_new[:, None])
        alpha = tl.math.exp2(m_i - m_new)
        l_i = l_i * alpha + tl.sum(p, 1)  # the softmax denominator counts dropped entries too
        if DROPOUT:
            keep = _dropout_bits(seed_lo, seed_hi, bh, offs_m, start_n, L, BLOCK_M, BLOCK_N) >= drop_threshold
            p = tl.where(keep, p, 0.0)
        acc = acc * alpha[:, None] + _dot(p.to(v.dtype), v, DOT_PRECISION, DOT_UPCAST)
        m_i = m_new
    return acc, l_i, m_i


@triton.jit(do_not_specialize=SEED_ARGS)
def _fwd_kernel(
    Q, K, V, PK, PQ, O, LSE,
    stride_qb, stride_qh, stride_ql, stride_kb, stride_kh, stride_kl, stride_vb, stride_vh, stride_vl,
    stride_ob, stride_oh, stride_ol, stride_pkw, stride_pkh, stride_pqw, stride_pqh,
    H, L, seed_lo, seed_hi, drop_threshold, qk_scale, out_scale, inv_log_scale_from,
    HEAD_DIM: tl.constexpr, D_PAD: tl.constexpr, D_CHUNK: tl.constexpr, WINDOW: tl.constexpr,
    SHIFT: tl.constexpr, W_PAD: tl.constexpr, W_SLICE: tl.constexpr, CAUSAL: tl.constexpr,
    HAS_C2P: tl.constexpr, HAS_P2C: tl.constexpr, DROPOUT: tl.constexpr, LENGTH_SCALED: tl.constexpr,
    DOT_PRECISION: tl.constexpr, DOT_UPCAST: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
):  # fmt: skip
    """One program = one query block of one (batch, head). Grid: (⌈L/BLOCK_M⌉, B·H)."""
    start_m = tl.program_id(0) * BLOCK_M
    bh = tl.program_id(1)
    b, h = bh // H, bh % H
    # 64-bit base offsets: B·H·L·d elements can exceed 2³¹.
    Q += b.to(tl.int64) * stride_qb + h.to(tl.int64) * stride_qh
    K += b.to(tl.int64) * stride_kb + h.to(tl.int64) * stride_kh
    V += b.to(tl.int64) * stride_vb + h.to(tl.int64) * stride_vh
    O += b.to(tl.int64) * stride_ob + h.to(tl.int64) * stride_oh
    PK += h * stride_pkh
    PQ += h * stride_pqh

    offs_m = start_m + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, D_PAD)
    offs_w = tl.arange(0, W_PAD)
    q = _load_rows(Q, offs_m, stride_ql, offs_d, L, HEAD_DIM)
    # Log-length scaling: row i's softmax scale × τ_i.
    row_scale = qk_scale * _length_scales(offs_m, inv_log_scale_from, BLOCK_M, LENGTH_SCALED)

    # Position terms of this query block: C = q·K^rᵀ for band tiles, q·K^r_f for far tiles.
    c2p = tl.zeros([BLOCK_M, W_PAD], tl.float32)
    row_low = tl.zeros([BLOCK_M], tl.float32)
    row_top = tl.zeros([BLOCK_M], tl.float32)
    if HAS_C2P:
        kr = _load_rows(PK, offs_w, stride_pkw, offs_d, WINDOW, HEAD_DIM)
        c2p = _dot_hd(q, tl.trans(kr), Q, offs_m, stride_ql, L, PK, offs_w, stride_pkw, WINDOW,
                      HEAD_DIM, D_PAD, D_CHUNK, DOT_PRECISION, DOT_UPCAST)  # fmt: skip
        row_low = tl.sum(q.to(tl.float32) * _load_vec(PK, offs_d, HEAD_DIM)[None, :], 1)
        row_top = tl.sum(q.to(tl.float32) * _load_vec(PK + (WINDOW - 1) * stride_pkw, offs_d, HEAD_DIM)[None, :], 1)
    qr_low = tl.zeros([D_PAD], tl.float32)
    qr_top = tl.zeros([D_PAD], tl.float32)
    if HAS_P2C:  # Q^r_f for far tiles (band tiles read the rows of Q^r they need)
        qr_low = _load_vec(PQ, offs_d, HEAD_DIM)
        qr_top = _load_vec(PQ + (WINDOW - 1) * stride_pqw, offs_d, HEAD_DIM)

    # Key ranges: [0, low_end) far in the past (bucket 0) for every row of the block,
    # [low_end, band_end) band tiles, [band_end, L) at or beyond i + s (bucket W−1; bidirectional only).
    low_end = tl.maximum(start_m + (SHIFT - WINDOW + 2), 0) // BLOCK_N * BLOCK_N
    if CAUSAL:
        band_end = tl.minimum(start_m + BLOCK_M, L)
    else:
        band_end = tl.minimum(tl.cdiv(start_m + BLOCK_M - 1 + SHIFT, BLOCK_N) * BLOCK_N, L)

    acc = tl.zeros([BLOCK_M, D_PAD], tl.float32)
    l_i = tl.zeros([BLOCK_M], tl.float32)
    m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)
    acc, l_i, m_i = _fwd_tiles(
        acc, l_i, m_i, q, c2p, row_low, qr_low, Q, K, V, PQ, stride_ql, stride_kl, stride_vl, stride_pqw,
        start_m, offs_m, offs_d, 0, low_end, L, seed_lo, seed_hi, bh, drop_threshold, row_scale,
        HEAD_DIM, D_PAD, D_CHUNK, WINDOW, SHIFT, W_SLICE, False, CAUSAL, HAS_C2P, HAS_P2C, DROPOUT,
        DOT_PRECISION, DOT_UPCAST, BLOCK_M, BLOCK_N,
    )  # fmt: skip
    acc, l_i, m_i = _fwd_tiles(
        acc, l_i, m_i, q, c2p, row_low, qr_low, Q, K, V, PQ, stride_ql, stride_kl, stride_vl, stride_pqw,
        start_m, offs_m, offs_d, low_end, band_end, L, seed_lo, seed_hi, bh, drop_threshold, row_scale,
        HEAD_DIM, D_PAD, D_CHUNK, WINDOW, SHIFT, W_SLICE, True, CAUSAL, HAS_C2P, HAS_P2C, DROPOUT,
        DOT_PRECISION, DOT_UPCAST, BLOCK_M, BLOCK_N,
    )  # fmt: skip
    if not CAUSAL:
        acc, l_i, m_i = _fwd_tiles(
            acc, l_i, m_i, q, c2p, row_top, qr_top, Q, K, V, PQ, stride_ql, stride_kl, stride_vl, stride_pqw,
            start_m, offs_m, offs_d, band_end, L, L, seed_lo, seed_hi, bh, drop_threshold, row_scale,
            HEAD_DIM, D_PAD, D_CHUNK, WINDOW, SHIFT, W_SLICE, False, CAUSAL, HAS_C2P, HAS_P2C, DROPOUT,
            DOT_PRECISION, DOT_UPCAST, BLOCK_M, BLOCK_N,
        )  # fmt: skip

    o = acc * (out_scale / l_i)[:, None]  # out_scale = 1/(1−p) restores the expectation under dropout
    row_ok = offs_m < L
    tl.store(O + offs_m[:, None] * stride_ol + offs_d[None, :], o.to(O.dtype.element_ty),
             mask=row_ok[:, None] & (offs_d[None, :] < HEAD_DIM))  # fmt: skip
    tl.store(LSE + bh.to(tl.int64) * L + offs_m, m_i + tl.math.log2(l_i), mask=row_ok)


# --------------------------------------------------------------------------------------------------
# Backward
# --------------------------------------------------------------------------------------------------


@triton.jit
def _dq_tiles(
    dq, g_band, g_low, g_top, q, do, lse, delta, c2p, far_row, qr_far, Q, K, V, DO, PQ,
    stride_ql, stride_kl, stride_vl, stride_dol, stride_pqw, start_m, offs_m, offs_d, start, end, L,
    seed_lo, seed_hi, bh, drop_threshold, row_scale, drop_scale,
    HEAD_DIM: tl.constexpr, D_PAD: tl.constexpr, D_CHUNK: tl.constexpr, WINDOW: tl.constexpr,
    SHIFT: tl.constexpr, W_PAD: tl.constexpr, W_SLICE: tl.constexpr, MODE: tl.constexpr,
    CAUSAL: tl.constexpr, HAS_C2P: tl.constexpr, HAS_P2C: tl.constexpr, DROPOUT: tl.constexpr,
    DOT_PRECISION: tl.constexpr, DOT_UPCAST: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
):  # fmt: skip
    """dq and the c2p bucket sums ``G`` over the key tiles ``[start, end)`` of one query block
    (``row_scale``: ``[BLOCK_M]``, each row's softmax scale in the log2 domain, as in the forward).

    MODE: 0 = far tiles in bucket 0, 1 = band tiles, 2 = far tiles in bucket W−1.
    ``ds = P ∘ (dP − Δ)`` is the score gradient without the softmax scale (applied once at the end).
    """
    for start_n in range(start, end, BLOCK_N):
        offs_n = start_n + tl.arange(0, BLOCK_N)
        k_t = _load_cols(K, offs_n, stride_kl, offs_d, L, HEAD_DIM)
        v_t = _load_cols(V, offs_n, stride_vl, offs_d, L, HEAD_DIM)
        z = _dot_hd(q, k_t, Q, offs_m, stride_ql, L, K, offs_n, stride_kl, L,
                    HEAD_DIM, D_PAD, D_CHUNK, DOT_PRECISION, DOT_UPCAST)  # fmt: skip
        z = _row_scores(z, k_t, c2p, far_row, qr_far, K, PQ, stride_kl, stride_pqw, start_m, offs_m, start_n, offs_n,
                        offs_d, L, HEAD_DIM, D_PAD, D_CHUNK, WINDOW, SHIFT, W_SLICE, MODE == 1, CAUSAL, HAS_C2P,
                        HAS_P2C, DOT_PRECISION, DOT_UPCAST, BLOCK_M)  # fmt: skip
        p = tl.math.exp2(z * row_scale[:, None] - lse[:, None])
        dp = _dot_hd(do, v_t, DO, offs_m, stride_dol, L, V, offs_n, stride_vl, L,
                     HEAD_DIM, D_PAD, D_CHUNK, DOT_PRECISION, DOT_UPCAST)  # fmt: skip
        if DROPOUT:
            keep = _dropout_bits(seed_lo, seed_hi, bh, offs_m, start_n, L, BLOCK_M, BLOCK_N) >= drop_threshold
            dp = tl.where(keep, dp * drop_scale, 0.0)
        ds = p * (dp - delta[:, None])
        dq += _dot(ds.to(k_t.dtype), tl.trans(k_t), DOT_PRECISION, DOT_UPCAST)
        if HAS_C2P:
            if MODE == 0:
                g_low += tl.sum(ds, 1)
            elif MODE == 2:
                g_top += tl.sum(ds, 1)
            else:
                g_band += _skewed_buckets(ds, offs_m, start_n, 1, WINDOW, SHIFT, W_PAD, BLOCK_N)
                r = _buckets(offs_m[:, None], offs_n[None, :], WINDOW, SHIFT)
                g_low += tl.sum(tl.where(r == 0, ds, 0.0), 1)
                if WINDOW > 1:  # with W = 1 bucket 0 is bucket W−1: counted once, above
                    g_top += tl.sum(tl.where(r == WINDOW - 1, ds, 0.0), 1)
    return dq, g_band, g_low, g_top


@triton.jit(do_not_specialize=SEED_ARGS)
def _bwd_dq_kernel(
    Q, K, V, PK, PQ, O, DO, LSE, DELTA, DQ, DPK_PART,
    stride_qb, stride_qh, stride_ql, stride_kb, stride_kh, stride_kl, stride_vb, stride_vh, stride_vl,
    stride_ob, stride_oh, stride_ol, stride_dob, stride_doh, stride_dol, stride_dqb, stride_dqh, stride_dql,
    stride_pkw, stride_pkh, stride_pqw, stride_pqh,
    H, L, seed_lo, seed_hi, drop_threshold, qk_scale, sm_scale, drop_scale, inv_log_scale_from,
    HEAD_DIM: tl.constexpr, D_PAD: tl.constexpr, D_CHUNK: tl.constexpr, WINDOW: tl.constexpr,
    SHIFT: tl.constexpr, W_PAD: tl.constexpr, W_SLICE: tl.constexpr, CAUSAL: tl.constexpr,
    HAS_C2P: tl.constexpr, HAS_P2C: tl.constexpr, DROPOUT: tl.constexpr, LENGTH_SCALED: tl.constexpr,
    DOT_PRECISION: tl.constexpr, DOT_UPCAST: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
):  # fmt: skip
    """dq, Δ and this block's partial dK^r. Grid: (⌈L/BLOCK_M⌉, B·H); launched before dk/dv."""
    pid_m = tl.program_id(0)
    start_m = pid_m * BLOCK_M
    bh = tl.program_id(1)
    b, h = bh // H, bh % H
    Q += b.to(tl.int64) * stride_qb + h.to(tl.int64) * stride_qh
    K += b.to(tl.int64) * stride_kb + h.to(tl.int64) * stride_kh
    V += b.to(tl.int64) * stride_vb + h.to(tl.int64) * stride_vh
    O += b.to(tl.int64) * stride_ob + h.to(tl.int64) * stride_oh
    DO += b.to(tl.int64) * stride_dob + h.to(tl.int64) * stride_doh
    DQ += b.to(tl.int64) * stride_dqb + h.to(tl.int64) * stride_dqh
    PK += h * stride_pkh
    PQ += h * stride_pqh

    offs_m = start_m + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, D_PAD)
    offs_w = tl.arange(0, W_PAD)
    row_ok = offs_m < L
    q = _load_rows(Q, offs_m, stride_ql, offs_d, L, HEAD_DIM)
    do = _load_rows(DO, offs_m, stride_dol, offs_d, L, HEAD_DIM)
    o = _load_rows(O, offs_m, stride_ol, offs_d, L, HEAD_DIM)
    delta = tl.sum(do.to(tl.float32) * o.to(tl.float32), 1)  # Δ_i = dO_i·O_i = Σ_j P_ij dP_ij
    tl.store(DELTA + bh.to(tl.int64) * L + offs_m, delta, mask=row_ok)
    # +inf for padding rows makes their P exactly 0 (no overflow into 0·inf).
    lse = tl.load(LSE + bh.to(tl.int64) * L + offs_m, mask=row_ok, other=float("inf"))

    c2p = tl.zeros([BLOCK_M, W_PAD], tl.float32)
    row_low = tl.zeros([BLOCK_M], tl.float32)
    row_top = tl.zeros([BLOCK_M], tl.float32)
    if HAS_C2P:
        kr = _load_rows(PK, offs_w, stride_pkw, offs_d, WINDOW, HEAD_DIM)
        c2p = _dot_hd(q, tl.trans(kr), Q, offs_m, stride_ql, L, PK, offs_w, stride_pkw, WINDOW,
                      HEAD_DIM, D_PAD, D_CHUNK, DOT_PRECISION, DOT_UPCAST)  # fmt: skip
        row_low = tl.sum(q.to(tl.float32) * _load_vec(PK, offs_d, HEAD_DIM)[None, :], 1)
        row_top = tl.sum(q.to(tl.float32) * _load_vec(PK + (WINDOW - 1) * stride_pkw, offs_d, HEAD_DIM)[None, :], 1)
    qr_low = tl.zeros([D_PAD], tl.float32)
    qr_top = tl.zeros([D_PAD], tl.float32)
    if HAS_P2C:  # Q^r_f for far tiles (band tiles read the rows of Q^r they need)
        qr_low = _load_vec(PQ, offs_d, HEAD_DIM)
        qr_top = _load_vec(PQ + (WINDOW - 1) * stride_pqw, offs_d, HEAD_DIM)

    low_end = tl.maximum(start_m + (SHIFT - WINDOW + 2), 0) // BLOCK_N * BLOCK_N
    if CAUSAL:
        band_end = tl.minimum(start_m + BLOCK_M, L)
    else:
        band_end = tl.minimum(tl.cdiv(start_m + BLOCK_M - 1 + SHIFT, BLOCK_N) * BLOCK_N, L)

    # Log-length scaling: the score of row i is τ_i·z_i, so its gradient is τ_i·ds_i (τ_i applied once,
    # at the end, with the softmax scale).
    tau = _length_scales(offs_m, inv_log_scale_from, BLOCK_M, LENGTH_SCALED)
    row_scale = qk_scale * tau

    dq = tl.zeros([BLOCK_M, D_PAD], tl.float32)
    g_band = tl.zeros([BLOCK_M, W_PAD], tl.float32)
    g_low = tl.zeros([BLOCK_M], tl.float32)
    g_top = tl.zeros([BLOCK_M], tl.float32)
    dq, g_band, g_low, g_top = _dq_tiles(
        dq, g_band, g_low, g_top, q, do, lse, delta, c2p, row_low, qr_low, Q, K, V, DO, PQ,
        stride_ql, stride_kl, stride_vl, stride_dol, stride_pqw, start_m, offs_m, offs_d, 0, low_end, L,
        seed_lo, seed_hi, bh, drop_threshold, row_scale, drop_scale, HEAD_DIM, D_PAD, D_CHUNK, WINDOW, SHIFT,
        W_PAD, W_SLICE, 0, CAUSAL, HAS_C2P, HAS_P2C, DROPOUT, DOT_PRECISION, DOT_UPCAST, BLOCK_M, BLOCK_N,
    )  # fmt: skip
    dq, g_band, g_low, g_top = _dq_tiles(
        dq, g_band, g_low, g_top, q, do, lse, delta, c2p, row_low, qr_low, Q, K, V, DO, PQ,
        stride_ql, stride_kl, stride_vl, stride_dol, stride_pqw, start_m, offs_m, offs_d, low_end, band_end, L,
        seed_lo, seed_hi, bh, drop_threshold, row_scale, drop_scale, HEAD_DIM, D_PAD, D_CHUNK, WINDOW, SHIFT,
        W_PAD, W_SLICE, 1, CAUSAL, HAS_C2P, HAS_P2C, DROPOUT, DOT_PRECISION, DOT_UPCAST, BLOCK_M, BLOCK_N,
    )  # fmt: skip
    if not CAUSAL:
        dq, g_band, g_low, g_top = _dq_tiles(
            dq, g_band, g_low, g_top, q, do, lse, delta, c2p, row_top, qr_top, Q, K, V, DO, PQ,
            stride_ql, stride_kl, stride_vl, stride_dol, stride_pqw, start_m, offs_m, offs_d, band_end, L, L,
            seed_lo, seed_hi, bh, drop_threshold, row_scale, drop_scale, HEAD_DIM, D_PAD, D_CHUNK, WINDOW, SHIFT,
            W_PAD, W_SLICE, 2, CAUSAL, HAS_C2P, HAS_P2C, DROPOUT, DOT_PRECISION, DOT_UPCAST, BLOCK_M, BLOCK_N,
        )  # fmt: skip

    if HAS_C2P:
        # G[i, w]; with W = 1 both clamped sums land in bucket 0 (they cover disjoint pairs).
        w = offs_w[None, :]
        g = g_band + tl.where(w == 0, g_low[:, None], 0.0) + tl.where(w == WINDOW - 1, g_top[:, None], 0.0)
        # Once per program, K^r read again rather than held through the loops: fp32 operands
        # (3xTF32), no 16-bit rounding of the bucket sums.
        kr = _load_rows(PK, offs_w, stride_pkw, offs_d, WINDOW, HEAD_DIM)
        dq += tl.dot(g, kr.to(tl.float32), input_precision="tf32x3")
        _store_table_partial(DPK_PART, pid_m, bh, tl.num_programs(1), g * tau[:, None], Q, offs_m, stride_ql, L,
                             sm_scale, offs_w, WINDOW, HEAD_DIM, D_PAD, D_CHUNK)  # fmt: skip
    dq = dq * (sm_scale * tau)[:, None]
    tl.store(DQ + offs_m[:, None] * stride_dql + offs_d[None, :], dq.to(DQ.dtype.element_ty),
             mask=row_ok[:, None] & (offs_d[None, :] < HEAD_DIM))  # fmt: skip


@triton.jit
def _dkdv_tiles(
    dk, dv, h_band, h_low, h_top, k, v, p2c, far_col, kr_far, Q, K, V, DO, PK, LSE, DELTA,
    stride_ql, stride_kl, stride_vl, stride_dol, stride_pkw, start_n, offs_n, offs_d, start, end, L,
    seed_lo, seed_hi, bh, drop_threshold, qk_scale, drop_scale, inv_log_scale_from,
    HEAD_DIM: tl.constexpr, D_PAD: tl.constexpr, D_CHUNK: tl.constexpr, WINDOW: tl.constexpr,
    SHIFT: tl.constexpr, W_PAD: tl.constexpr, W_SLICE: tl.constexpr, MODE: tl.constexpr,
    CAUSAL: tl.constexpr, HAS_C2P: tl.constexpr, HAS_P2C: tl.constexpr, DROPOUT: tl.constexpr,
    LENGTH_SCALED: tl.constexpr, DOT_PRECISION: tl.constexpr, DOT_UPCAST: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
):  # fmt: skip
    """dk, dv and the p2c bucket sums ``Hᵀ`` over the query tiles ``[start, end)`` of one key block,
    in transposed tiles (keys × queries). MODE as in ``_dq_tiles``. ``ds`` carries each query's
    log-length scale τ (the softmax scale is applied once, at the end)."""
    for start_m in range(start, end, BLOCK_M):
        offs_m = start_m + tl.arange(0, BLOCK_M)
        q_t = _load_cols(Q, offs_m, stride_ql, offs_d, L, HEAD_DIM)
        do = _load_rows(DO, offs_m, stride_dol, offs_d, L, HEAD_DIM)
        # Padding query rows: lse = +inf gives P = 0, and their dO and Δ are 0.
        lse = tl.load(LSE + offs_m, mask=offs_m < L, other=float("inf"))
        delta = tl.load(DELTA + offs_m, mask=offs_m < L, other=0.0)
        z_t = _dot_hd(k, q_t, K, offs_n, stride_kl, L, Q, offs_m, stride_ql, L,
                      HEAD_DIM, D_PAD, D_CHUNK, DOT_PRECISION, DOT_UPCAST)  # fmt: skip
        z_t = _col_scores(z_t, q_t, p2c, far_col, kr_far, Q, PK, stride_ql, stride_pkw, start_m, offs_m, start_n,
                          offs_n, offs_d, L, HEAD_DIM, D_PAD, D_CHUNK, WINDOW, SHIFT, W_SLICE, MODE == 1, CAUSAL,
                          HAS_C2P, HAS_P2C, DOT_PRECISION, DOT_UPCAST, BLOCK_M)  # fmt: skip
        tau = _length_scales(offs_m, inv_log_scale_from, BLOCK_M, LENGTH_SCALED)
        p_t = tl.math.exp2(z_t * (qk_scale * tau)[None, :] - lse[None, :])
        dp_t = _dot_hd(v, tl.trans(do), V, offs_n, stride_vl, L, DO, offs_m, stride_dol, L,
                       HEAD_DIM, D_PAD, D_CHUNK, DOT_PRECISION, DOT_UPCAST)  # fmt: skip
        if DROPOUT:
            # Generated in the (query, key) orientation of the forward, then transposed.
            bits = _dropout_bits(seed_lo, seed_hi, bh, offs_m, start_n, L, BLOCK_M, BLOCK_N)
            keep_t = tl.trans(bits) >= drop_threshold
            dv += _dot(tl.where(keep_t, p_t * drop_scale, 0.0).to(do.dtype), do, DOT_PRECISION, DOT_UPCAST)
            dp_t = tl.where(keep_t, dp_t * drop_scale, 0.0)
        else:
            dv += _dot(p_t.to(do.dtype), do, DOT_PRECISION, DOT_UPCAST)
        ds_t = p_t * (dp_t - delta[None, :]) * tau[None, :]
        dk += _dot(ds_t.to(q_t.dtype), tl.trans(q_t), DOT_PRECISION, DOT_UPCAST)
        if HAS_P2C:
            if MODE == 0:
                h_low += tl.sum(ds_t, 1)
            elif MODE == 2:
                h_top += tl.sum(ds_t, 1)
            else:
                h_band += _skewed_buckets(ds_t, offs_n, start_m, -1, WINDOW, SHIFT, W_PAD, BLOCK_M)
                r_t = _buckets(offs_m[None, :], offs_n[:, None], WINDOW, SHIFT)
                h_low += tl.sum(tl.where(r_t == 0, ds_t, 0.0), 1)
                if WINDOW > 1:
                    h_top += tl.sum(tl.where(r_t == WINDOW - 1, ds_t, 0.0), 1)
    return dk, dv, h_band, h_low, h_top


@triton.jit(do_not_specialize=SEED_ARGS)
def _bwd_dkdv_kernel(
    Q, K, V, PK, PQ, DO, LSE, DELTA, DK, DV, DPQ_PART,
    stride_qb, stride_qh, stride_ql, stride_kb, stride_kh, stride_kl, stride_vb, stride_vh, stride_vl,
    stride_dob, stride_doh, stride_dol, stride_dkb, stride_dkh, stride_dkl, stride_dvb, stride_dvh, stride_dvl,
    stride_pkw, stride_pkh, stride_pqw, stride_pqh,
    H, L, seed_lo, seed_hi, drop_threshold, qk_scale, sm_scale, drop_scale, inv_log_scale_from,
    HEAD_DIM: tl.constexpr, D_PAD: tl.constexpr, D_CHUNK: tl.constexpr, WINDOW: tl.constexpr,
    SHIFT: tl.constexpr, W_PAD: tl.constexpr, W_SLICE: tl.constexpr, CAUSAL: tl.constexpr,
    HAS_C2P: tl.constexpr, HAS_P2C: tl.constexpr, DROPOUT: tl.constexpr, LENGTH_SCALED: tl.constexpr,
    DOT_PRECISION: tl.constexpr, DOT_UPCAST: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
):  # fmt: skip
    """dk, dv and this block's partial dQ^r. Grid: (⌈L/BLOCK_N⌉, B·H)."""
    pid_n = tl.program_id(0)
    start_n = pid_n * BLOCK_N
    bh = tl.program_id(1)
    b, h = bh // H, bh % H
    Q += b.to(tl.int64) * stride_qb + h.to(tl.int64) * stride_qh
    K += b.to(tl.int64) * stride_kb + h.to(tl.int64) * stride_kh
    V += b.to(tl.int64) * stride_vb + h.to(tl.int64) * stride_vh
    DO += b.to(tl.int64) * stride_dob + h.to(tl.int64) * stride_doh
    DK += b.to(tl.int64) * stride_dkb + h.to(tl.int64) * stride_dkh
    DV += b.to(tl.int64) * stride_dvb + h.to(tl.int64) * stride_dvh
    LSE += bh.to(tl.int64) * L
    DELTA += bh.to(tl.int64) * L
    PK += h * stride_pkh
    PQ += h * stride_pqh

    offs_n = start_n + tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, D_PAD)
    offs_w = tl.arange(0, W_PAD)
    col_ok = offs_n < L
    k = _load_rows(K, offs_n, stride_kl, offs_d, L, HEAD_DIM)
    v = _load_rows(V, offs_n, stride_vl, offs_d, L, HEAD_DIM)

    p2c = tl.zeros([BLOCK_N, W_PAD], tl.float32)
    col_low = tl.zeros([BLOCK_N], tl.float32)
    col_top = tl.zeros([BLOCK_N], tl.float32)
    if HAS_P2C:
        qr_t = _load_cols(PQ, offs_w, stride_pqw, offs_d, WINDOW, HEAD_DIM)
        p2c = _dot_hd(k, qr_t, K, offs_n, stride_kl, L, PQ, offs_w, stride_pqw, WINDOW,
                      HEAD_DIM, D_PAD, D_CHUNK, DOT_PRECISION, DOT_UPCAST)  # fmt: skip
        col_low = tl.sum(k.to(tl.float32) * _load_vec(PQ, offs_d, HEAD_DIM)[None, :], 1)
        col_top = tl.sum(k.to(tl.float32) * _load_vec(PQ + (WINDOW - 1) * stride_pqw, offs_d, HEAD_DIM)[None, :], 1)
    # Keys past L (last block) must get P = 0 in far tiles too.
    col_low = tl.where(col_ok, col_low, float("-inf"))
    col_top = tl.where(col_ok, col_top, float("-inf"))
    kr_low = tl.zeros([D_PAD], tl.float32)
    kr_top = tl.zeros([D_PAD], tl.float32)
    if HAS_C2P:  # K^r_f for far tiles (band tiles read the rows of K^r they need)
        kr_low = _load_vec(PK, offs_d, HEAD_DIM)
        kr_top = _load_vec(PK + (WINDOW - 1) * stride_pkw, offs_d, HEAD_DIM)

    # Query ranges: [0, band_start) see this block at or beyond i + s (bucket W−1; bidirectional only),
    # [band_start, low_start) band tiles, [low_start, L) see it far in the past (bucket 0).
    low_start = tl.cdiv(start_n + BLOCK_N + (WINDOW - 2 - SHIFT), BLOCK_M) * BLOCK_M
    if CAUSAL:
        band_start = start_n // BLOCK_M * BLOCK_M
    else:
        band_start = tl.maximum(start_n - SHIFT + 1, 0) // BLOCK_M * BLOCK_M
    band_end = tl.minimum(low_start, L)

    dk = tl.zeros([BLOCK_N, D_PAD], tl.float32)
    dv = tl.zeros([BLOCK_N, D_PAD], tl.float32)
    h_band = tl.zeros([BLOCK_N, W_PAD], tl.float32)
    h_low = tl.zeros([BLOCK_N], tl.float32)
    h_top = tl.zeros([BLOCK_N], tl.float32)
    if not CAUSAL:
        dk, dv, h_band, h_low, h_top = _dkdv_tiles(
            dk, dv, h_band, h_low, h_top, k, v, p2c, col_top, kr_top, Q, K, V, DO, PK, LSE, DELTA,
            stride_ql, stride_kl, stride_vl, stride_dol, stride_pkw, start_n, offs_n, offs_d, 0, band_start, L,
            seed_lo, seed_hi, bh, drop_threshold, qk_scale, drop_scale, inv_log_scale_from, HEAD_DIM, D_PAD, D_CHUNK,
            WINDOW, SHIFT, W_PAD, W_SLICE, 2, CAUSAL, HAS_C2P, HAS_P2C, DROPOUT, LENGTH_SCALED, DOT_PRECISION,
            DOT_UPCAST, BLOCK_M, BLOCK_N,
        )  # fmt: skip
    dk, dv, h_band, h_low, h_top = _dkdv_tiles(
        dk, dv, h_band, h_low, h_top, k, v, p2c, col_low, kr_low, Q, K, V, DO, PK, LSE, DELTA,
        stride_ql, stride_kl, stride_vl, stride_dol, stride_pkw, start_n, offs_n, offs_d, band_start, band_end, L,
        seed_lo, seed_hi, bh, drop_threshold, qk_scale, drop_scale, inv_log_scale_from, HEAD_DIM, D_PAD, D_CHUNK,
        WINDOW, SHIFT, W_PAD, W_SLICE, 1, CAUSAL, HAS_C2P, HAS_P2C, DROPOUT, LENGTH_SCALED, DOT_PRECISION,
        DOT_UPCAST, BLOCK_M, BLOCK_N,
    )  # fmt: skip
    dk, dv, h_band, h_low, h_top = _dkdv_tiles(
        dk, dv, h_band, h_low, h_top, k, v, p2c, col_low, kr_low, Q, K, V, DO, PK, LSE, DELTA,
        stride_ql, stride_kl, stride_vl, stride_dol, stride_pkw, start_n, offs_n, offs_d, low_start, L, L,
        seed_lo, seed_hi, bh, drop_threshold, qk_scale, drop_scale, inv_log_scale_from, HEAD_DIM, D_PAD, D_CHUNK,
        WINDOW, SHIFT, W_PAD, W_SLICE, 0, CAUSAL, HAS_C2P, HAS_P2C, DROPOUT, LENGTH_SCALED, DOT_PRECISION,
        DOT_UPCAST, BLOCK_M, BLOCK_N,
    )  # fmt: skip

    if HAS_P2C:
        w = offs_w[None, :]
        h_t = h_band + tl.where(w == 0, h_low[:, None], 0.0) + tl.where(w == WINDOW - 1, h_top[:, None], 0.0)
        # Q^r read again rather than held through the loops (as K^r in the dq kernel).
        qr = _load_rows(PQ, offs_w, stride_pqw, offs_d, WINDOW, HEAD_DIM)
        dk += tl.dot(h_t, qr.to(tl.float32), input_precision="tf32x3")
        _store_table_partial(DPQ_PART, pid_n, bh, tl.num_programs(1), h_t, K, offs_n, stride_kl, L, sm_scale, offs_w,
                             WINDOW, HEAD_DIM, D_PAD, D_CHUNK)  # fmt: skip
    mask = col_ok[:, None] & (offs_d[None, :] < HEAD_DIM)
    tl.store(DK + offs_n[:, None] * stride_dkl + offs_d[None, :], (dk * sm_scale).to(DK.dtype.element_ty), mask=mask)
    tl.store(DV + offs_n[:, None] * stride_dvl + offs_d[None, :], dv.to(DV.dtype.element_ty), mask=mask)


@triton.jit(do_not_specialize=SEED_ARGS)
def _dropout_mask_kernel(KEEP, L, seed_lo, seed_hi, drop_threshold, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    """The keep-mask of ``_dropout_bits`` as int8 ``[B·H, L, L]`` (for tests). Grid: (⌈L/BM⌉, ⌈L/BN⌉, B·H)."""
    offs_m = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    start_n = tl.program_id(1) * BLOCK_N
    offs_n = start_n + tl.arange(0, BLOCK_N)
    bh = tl.program_id(2)
    keep = _dropout_bits(seed_lo, seed_hi, bh, offs_m, start_n, L, BLOCK_M, BLOCK_N) >= drop_threshold
    ptrs = KEEP + (bh.to(tl.int64) * L + offs_m[:, None]) * L + offs_n[None, :]
    tl.store(ptrs, keep.to(tl.int8), mask=(offs_m[:, None] < L) & (offs_n[None, :] < L))


# --------------------------------------------------------------------------------------------------
# Launch configuration
# --------------------------------------------------------------------------------------------------


def _pow2(n: int, minimum: int = 16) -> int:
    """Next power of two, at least 16 (tl.dot needs M, N, K >= 16 when compiled)."""
    return max(minimum, triton.next_power_of_2(n))


# The one table of H100/H200 (sm_90) launch configurations: (kernel, operand dtype, padded head dim)
# → (BLOCK_M queries, BLOCK_N keys, D_CHUNK, warps, pipeline stages). The launcher reads it, and
# ``sm90_compile_cases`` compiles every row (scripts/check_sm90_compile.py; tests/kernels/
# test_sm90_compile.py fails on any spilled byte). Chosen from ptxas's register reports under
# Triton 3.6 and 3.9 (not yet timed on a GPU): no launched variant (causal and bidirectional, with
# and without dropout) spills under either version. D_CHUNK < d makes the products over the head
# dim read their operands D_CHUNK columns at a time instead of holding them (``_dot_hd``): fp32
# operands (3xTF32 splits each in two and runs three MMAs) need that from d = 32 on, bf16 at d = 24
# (the bidirectional variant) and 128. One pipeline stage where two spill (most of the fp32
# backward, fp32 d = 128, the bf16 backward at d = 128 and the bf16 dk/dv at d ≤ 32). Most rows sit
# close to the 255-register ceiling, where ptxas's allocation is not monotonic in tile or chunk
# size: after changing a kernel, rerun the check under both versions. fp16 uses the bf16 rows.
SM90_CONFIGS = {
    ("fwd", "bf16", 16): (64, 32, 16, 4, 2), ("fwd", "bf16", 32): (64, 64, 16, 8, 2),
    ("fwd", "bf16", 64): (64, 32, 64, 8, 2), ("fwd", "bf16", 128): (32, 32, 64, 8, 2),
    ("dq", "bf16", 16): (64, 64, 16, 8, 2), ("dq", "bf16", 32): (64, 64, 16, 8, 2),
    ("dq", "bf16", 64): (16, 32, 64, 8, 2), ("dq", "bf16", 128): (16, 16, 16, 8, 1),
    ("dkdv", "bf16", 16): (32, 64, 16, 8, 1), ("dkdv", "bf16", 32): (16, 64, 16, 8, 1),
    ("dkdv", "bf16", 64): (16, 16, 64, 8, 2), ("dkdv", "bf16", 128): (16, 16, 32, 8, 1),
    ("fwd", "fp32", 16): (64, 16, 16, 8, 2), ("fwd", "fp32", 32): (64, 16, 16, 8, 2),
    ("fwd", "fp32", 64): (16, 16, 64, 8, 2), ("fwd", "fp32", 128): (16, 16, 32, 8, 1),
    ("dq", "fp32", 16): (16, 16, 16, 8, 1), ("dq", "fp32", 32): (16, 16, 32, 8, 1),
    ("dq", "fp32", 64): (16, 16, 32, 8, 2), ("dq", "fp32", 128): (16, 16, 32, 8, 1),
    ("dkdv", "fp32", 16): (16, 16, 16, 8, 1), ("dkdv", "fp32", 32): (16, 16, 16, 8, 1),
    ("dkdv", "fp32", 64): (16, 16, 32, 8, 1), ("dkdv", "fp32", 128): (16, 16, 32, 8, 1),
}  # fmt: skip


def _dtype_class(dtype) -> str:
    return "fp32" if dtype in (torch.float32, "fp32") else "bf16"


def _config(kernel: str, d_pad: int, w_pad: int, dtype=torch.bfloat16, interpreted: bool = INTERPRETED) -> dict:
    """Launch parameters of ``kernel`` ("fwd", "dq" or "dkdv") for ``dtype`` operands.

    ``W_SLICE`` table rows cover every bucket of a band tile (``_slice_start``). The interpreter
    gets 16- and 32-wide tiles so that small test shapes still span several blocks and all three
    tile kinds, and 16-wide head-dim chunks so that both ways of ``_dot_hd`` are tested (one chunk
    at d <= 16, several above)."""
    if interpreted:  # different shapes per kernel check that nothing depends on a shared tiling
        block_m, block_n = {"fwd": (16, 16), "dq": (16, 32), "dkdv": (32, 16)}[kernel]
        d_chunk, warps, stages = 16, 1, 1
    else:
        key = (kernel, _dtype_class(dtype), d_pad)
        if key not in SM90_CONFIGS:
            raise ValueError(f"no launch configuration for {key} (padded head dims are 16, 32, 64, 128)")
        block_m, block_n, d_chunk, warps, stages = SM90_CONFIGS[key]
    return dict(BLOCK_M=block_m, BLOCK_N=block_n, D_CHUNK=min(d_chunk, d_pad),
                W_SLICE=min(_pow2(block_m + block_n - 1), w_pad), num_warps=warps, num_stages=stages)  # fmt: skip


def _dot_precision(dtype: torch.dtype) -> str:
    # fp32 inputs keep fp32 accuracy through 3xTF32 (plain TF32 would round operands to 10 bits);
    # 16-bit inputs ignore this setting.
    return "tf32x3" if dtype == torch.float32 else "tf32"


def _split_seed(seed: int) -> tuple[int, int]:
    """A 62-bit seed as two non-negative int32 kernel arguments (so the argument types never change)."""
    seed %= 2**62
    return seed & (2**31 - 1), seed >> 31


def _drop_threshold(p: float) -> int:
    """Keep iff 31 random bits >= this: P(keep) = 1 − p to within 2⁻³²."""
    return min(round(p * 2**31), 2**31 - 1)


def _strides(t: Optional[torch.Tensor], n: int) -> tuple[int, ...]:
    return t.stride()[:n] if t is not None else (0,) * n


def _last_dim_contiguous(t: torch.Tensor) -> torch.Tensor:
    return t if t.stride(-1) == 1 else t.contiguous()


# --------------------------------------------------------------------------------------------------
# Launchers
# --------------------------------------------------------------------------------------------------


def _meta(q, pos_k, pos_q, window, shift, causal, dropout_p) -> dict:
    d = q.shape[-1]
    return dict(
        HEAD_DIM=d, D_PAD=_pow2(d), WINDOW=window, SHIFT=shift, W_PAD=_pow2(window), CAUSAL=causal,
        HAS_C2P=pos_k is not None, HAS_P2C=pos_q is not None, DROPOUT=dropout_p > 0.0,
        DOT_PRECISION=_dot_precision(q.dtype), DOT_UPCAST=INTERPRETED and q.dtype == torch.bfloat16,
    )  # fmt: skip


def _inv_log(length_scale_from: int) -> float:
    """The kernels' ``inv_log_scale_from``: 1/ln L0 for log-length scaling from L0, 0.0 when off."""
    return 1.0 / math.log(length_scale_from) if length_scale_from else 0.0


def _forward(q, k, v, pos_k, pos_q, window, shift, causal, dropout_p, seed, length_scale_from=0):
    B, H, L, d = q.shape
    meta = _meta(q, pos_k, pos_q, window, shift, causal, dropout_p)
    cfg = _config("fwd", meta["D_PAD"], meta["W_PAD"], q.dtype)
    o = torch.empty_like(q)
    lse = torch.empty((B * H, L), dtype=torch.float32, device=q.device)
    scale = 1.0 / math.sqrt((1 + meta["HAS_C2P"] + meta["HAS_P2C"]) * d)
    seed_lo, seed_hi = _split_seed(seed)
    grid = (triton.cdiv(L, cfg["BLOCK_M"]), B * H)
    _fwd_kernel[grid](
        q, k, v, pos_k if pos_k is not None else q, pos_q if pos_q is not None else q, o, lse,  # q: never read
        *q.stride()[:3], *k.stride()[:3], *v.stride()[:3], *o.stride()[:3],
        *_strides(pos_k, 2), *_strides(pos_q, 2),
        H, L, seed_lo, seed_hi, _drop_threshold(dropout_p), scale * math.log2(math.e), 1.0 / (1.0 - dropout_p),
        _inv_log(length_scale_from), LENGTH_SCALED=bool(length_scale_from), **meta, **cfg,
    )  # fmt: skip
    return o, lse


def _backward(do, q, k, v, pos_k, pos_q, o, lse, window, shift, causal, dropout_p, seed, length_scale_from=0):
    B, H, L, d = q.shape
    meta = _meta(q, pos_k, pos_q, window, shift, causal, dropout_p)
    dq_cfg = _config("dq", meta["D_PAD"], meta["W_PAD"], q.dtype)
    dkdv_cfg = _config("dkdv", meta["D_PAD"], meta["W_PAD"], q.dtype)
    scale = 1.0 / math.sqrt((1 + meta["HAS_C2P"] + meta["HAS_P2C"]) * d)
    seed_lo, seed_hi = _split_seed(seed)
    common = (H, L, seed_lo, seed_hi, _drop_threshold(dropout_p), scale * math.log2(math.e), scale,
              1.0 / (1.0 - dropout_p), _inv_log(length_scale_from))  # fmt: skip
    pk = pos_k if pos_k is not None else q  # placeholders for a switched-off term: never read
    pq = pos_q if pos_q is not None else q
    table_strides = (*_strides(pos_k, 2), *_strides(pos_q, 2))

    dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
    delta = torch.empty((B * H, L), dtype=torch.float32, device=q.device)
    n_m, n_n = triton.cdiv(L, dq_cfg["BLOCK_M"]), triton.cdiv(L, dkdv_cfg["BLOCK_N"])
    # Per-block partial table gradients (lse is a never-written placeholder for a switched-off term).
    dpk_part = torch.empty((n_m, B * H, window, d), dtype=torch.float32, device=q.device) if pos_k is not None else lse
    dpq_part = torch.empty((n_n, B * H, window, d), dtype=torch.float32, device=q.device) if pos_q is not None else lse

    _bwd_dq_kernel[(n_m, B * H)](
        q, k, v, pk, pq, o, do, lse, delta, dq, dpk_part,
        *q.stride()[:3], *k.stride()[:3], *v.stride()[:3], *o.stride()[:3], *do.stride()[:3], *dq.stride()[:3],
        *table_strides, *common, LENGTH_SCALED=bool(length_scale_from), **meta, **dq_cfg,
    )  # fmt: skip
    _bwd_dkdv_kernel[(n_n, B * H)](
        q, k, v, pk, pq, do, lse, delta, dk, dv, dpq_part,
        *q.stride()[:3], *k.stride()[:3], *v.stride()[:3], *do.stride()[:3], *dk.stride()[:3], *dv.stride()[:3],
        *table_strides, *common, LENGTH_SCALED=bool(length_scale_from), **meta, **dkdv_cfg,
    )  # fmt: skip

    def reduce_table(part, table):
        # [blocks, B·H, W, d] → Σ over blocks and batch → [W, H, d]; a fixed-order, deterministic sum.
        if table is None:
            return None
        return part.view(part.shape[0], B, H, window, d).sum(dim=(0, 1)).transpose(0, 1).to(table.dtype)

    return dq, dk, dv, reduce_table(dpk_part, pos_k), reduce_table(dpq_part, pos_q)


# --------------------------------------------------------------------------------------------------
# Argument checks and the dropout mask
# --------------------------------------------------------------------------------------------------


def _check_inputs(q, k, v, pos_k, pos_q, window, shift, dropout_p, length_scale_from=0) -> None:
    """What the kernels support, then the interface's shape rules (``check_attention_inputs``)."""
    if isinstance(q, torch.Tensor) and q.dim() == 4:  # any other q is named by the interface check
        if min(q.shape[:3]) < 1:
            raise ValueError(f"q must have B, H, L >= 1, got shape {tuple(q.shape)}")
        if q.shape[3] % 8 != 0 or not 8 <= q.shape[3] <= MAX_HEAD_DIM:
            raise ValueError(f"head dim must be a multiple of 8 in [8, {MAX_HEAD_DIM}], got {q.shape[3]}")
    check_attention_inputs(q, k, v, pos_k, pos_q, window, shift, length_scale_from)
    L = q.shape[2]
    if not 0.0 <= dropout_p < 1.0:
        raise ValueError(f"dropout_p must be in [0, 1), got {dropout_p}")
    if dropout_p > 0.0 and L > MAX_DROPOUT_LEN:
        raise ValueError(f"dropout supports L <= {MAX_DROPOUT_LEN} (int32 Philox counter), got L={L}")
    if q.dtype not in SUPPORTED_DTYPES:
        raise ValueError(f"dtype must be one of {SUPPORTED_DTYPES}, got {q.dtype}")
    for name, t in (("k", k), ("v", v), ("pos_k", pos_k), ("pos_q", pos_q)):
        if t is None:
            continue
        if t.dtype != q.dtype:
            raise ValueError(f"{name} has dtype {t.dtype} but q has {q.dtype}; all inputs must share one dtype")
        if t.device != q.device:
            raise ValueError(f"{name} is on {t.device} but q is on {q.device}; all inputs must share one device")
    if q.device.type == "cpu" and not INTERPRETED:
        raise ValueError("CPU tensors need the Triton interpreter (set TRITON_INTERPRET=1 before importing kernels)")
    if q.device.type not in ("cpu", "cuda"):
        raise ValueError(f"unsupported device {q.device}; use a CUDA GPU (or the CPU with TRITON_INTERPRET=1)")


def dropout_keep_mask(seed: int, B: int, H: int, L: int, dropout_p: float, device=None) -> torch.Tensor:
    """The keep-mask (bool ``[B, H, L, L]``, True = kept) that ``ops.relpos_attention`` uses for ``seed``.

    For tests: ``relpos_attention_reference(..., dropout_mask=dropout_keep_mask(...))`` must equal the
    kernel's output. Entries of masked (future) pairs are drawn too but never used. ``device``:
    default the GPU when there is one, else the CPU (interpreter).
    """
    if not 0.0 < dropout_p < 1.0:
        raise ValueError(f"dropout_p must be in (0, 1), got {dropout_p}")
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    keep = torch.empty((B, H, L, L), dtype=torch.int8, device=device)
    seed_lo, seed_hi = _split_seed(seed)
    block = 16 if INTERPRETED else 64
    grid = (triton.cdiv(L, block), triton.cdiv(L, block), B * H)
    _dropout_mask_kernel[grid](keep, L, seed_lo, seed_hi, _drop_threshold(dropout_p), BLOCK_M=block, BLOCK_N=block)
    return keep.bool()


# --------------------------------------------------------------------------------------------------
# Ahead-of-time compile cases (scripts/check_sm90_compile.py)
# --------------------------------------------------------------------------------------------------


def _signature(fn, pointers: dict, floats: set, constexprs: dict) -> dict:
    """Argument types of ``fn``: ``pointers`` maps pointer names to element types, ``floats`` are fp32,
    constexprs are such, every other argument is i32 (strides, sizes, seeds, threshold)."""
    sig = {}
    for name in fn.arg_names:
        if name in constexprs:
            sig[name] = "constexpr"
        elif name in pointers:
            sig[name] = "*" + pointers[name]
        else:
            sig[name] = "fp32" if name in floats else "i32"
    return sig


_COMPILE_KERNELS = ("fwd", "dq", "dkdv")


def launched_variants() -> list:
    """``(dtype, head dim, window, causal, shift, dropout, length scaling, kernel)`` of every attention the
    trainer and evaluator launch, which ``sm90_compile_cases`` compiles (each a distinct kernel; together they
    cover every row of ``SM90_CONFIGS``). Both operand dtypes: bf16 under autocast (``precision:
    auto`` on a GPU), fp32 with ``precision: fp32`` and in the evaluator (no autocast)."""
    variants = []
    for dtype in ("bf16", "fp32"):
        # The paper's d = 24 (training with dropout, evaluation without), and d = 64 and 128, at W = 64.
        variants += [(dtype, d, 64, True, 0, dropout, False, kernel)
                     for d in (24, 64, 128) for dropout in (True, False) for kernel in _COMPILE_KERNELS]  # fmt: skip
        # The tiny config: d = 16, W = 8, no dropout.
        variants += [(dtype, 16, 8, True, 0, False, False, kernel) for kernel in _COMPILE_KERNELS]
    # Bidirectional attention with a shift (a converted checkpoint with causal_attn: false): training
    # in bf16 with dropout, and the evaluator's fp32 forward.
    variants += [("bf16", 24, 64, False, 4, True, False, kernel) for kernel in _COMPILE_KERNELS]
    variants.append(("fp32", 24, 64, False, 4, False, False, "fwd"))
    # Log-length scaling: trained in (model.length_scaling, bf16 with dropout), and the evaluator's
    # fp32 forward (eval.length_scaling) at the paper's and the tiny config's shapes.
    variants += [("bf16", 24, 64, True, 0, True, True, kernel) for kernel in _COMPILE_KERNELS]
    variants += [("fp32", 24, 64, True, 0, False, True, "fwd"), ("fp32", 16, 8, True, 0, False, True, "fwd")]
    return variants


def sm90_compile_cases() -> list:
    """Every launch of ``launched_variants`` as the launcher configures it (``_config``), with both
    position terms; and the dropout-mask kernel."""
    kernels = {  # kernel: (jit function, pointer arguments, fp32 scalar arguments)
        "fwd": (_fwd_kernel, ("Q", "K", "V", "PK", "PQ", "O", "LSE"), {"qk_scale", "out_scale", "inv_log_scale_from"}),
        "dq": (_bwd_dq_kernel, ("Q", "K", "V", "PK", "PQ", "O", "DO", "LSE", "DELTA", "DQ", "DPK_PART"),
               {"qk_scale", "sm_scale", "drop_scale", "inv_log_scale_from"}),
        "dkdv": (_bwd_dkdv_kernel, ("Q", "K", "V", "PK", "PQ", "DO", "LSE", "DELTA", "DK", "DV", "DPQ_PART"),
                 {"qk_scale", "sm_scale", "drop_scale", "inv_log_scale_from"}),
    }  # fmt: skip
    fp32_buffers = {"LSE", "DELTA", "DPK_PART", "DPQ_PART"}
    torch_dtype = {"bf16": torch.bfloat16, "fp32": torch.float32}
    cases = []
    for dtype, d, window, causal, shift, dropout, length_scaled, kernel in launched_variants():
        fn, pointer_names, floats = kernels[kernel]
        cfg = _config(kernel, _pow2(d), _pow2(window), torch_dtype[dtype], interpreted=False)
        options = {"num_warps": cfg.pop("num_warps"), "num_stages": cfg.pop("num_stages")}
        constexprs = dict(
            HEAD_DIM=d, D_PAD=_pow2(d), WINDOW=window, SHIFT=shift, W_PAD=_pow2(window), CAUSAL=causal, HAS_C2P=True,
            HAS_P2C=True, DROPOUT=dropout, LENGTH_SCALED=length_scaled, DOT_PRECISION=_dot_precision(torch_dtype[dtype]), DOT_UPCAST=False, **cfg,
        )  # fmt: skip
        pointers = {name: "fp32" if name in fp32_buffers else dtype for name in pointer_names}
        label = dict(dtype=dtype, d=d, W=window, causal=causal, dropout=dropout, length_scaled=length_scaled,
                     tile=f"{cfg['BLOCK_M']}x{cfg['BLOCK_N']}/{cfg['D_CHUNK']}")  # fmt: skip
        cases.append((fn, _signature(fn, pointers, floats, constexprs), constexprs, options, label))
    mask_constexprs = {"BLOCK_M": 64, "BLOCK_N": 64}
    mask_signature = _signature(_dropout_mask_kernel, {"KEEP": "i8"}, set(), mask_constexprs)
    cases.append((_dropout_mask_kernel, mask_signature, mask_constexprs, {"num_warps": 4}, {"tile": "64x64"}))
    return cases
