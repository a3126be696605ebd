"""The reference attention against an independent per-(i, j) loop of docs/method.md §2.3 (float64)."""

import math

import pytest
import torch

from fastrecur_kernels.reference import (
    length_scales,
    relative_buckets,
    relpos_attention_probs_reference,
    relpos_attention_reference,
)


def loop_attention(q, k, v, pos_k, pos_q, window, shift, causal, length_scale_from=0):
    """docs/method.md §2.3 written out one score at a time, sharing no code with the reference."""
    B, H, L, d = q.shape
    terms = 1 + (pos_k is not None) + (pos_q is not None)
    out = torch.zeros_like(q)
    for b in range(B):
        for h in range(H):
            for i in range(L):
                scores = []
                for j in range(L):
                    if causal and j > i:
                        scores.append(-math.inf)
                        continue
                    r = min(max(j - i, -window + 1 + shift), shift) + window - 1 - shift
                    s = float(q[b, h, i] @ k[b, h, j])
                    if pos_k is not None:
                        s += float(q[b, h, i] @ pos_k[r, h])
                    if pos_q is not None:
                        s += float(k[b, h, j] @ pos_q[r, h])
                    tau = max(1.0, math.log(i + 1) / math.log(length_scale_from)) if length_scale_from else 1.0
                    scores.append(tau * s / math.sqrt(terms * d))
                m = max(scores)
                w = [math.exp(s - m) for s in scores]
                z = sum(w)
                out[b, h, i] = sum((w[j] / z) * v[b, h, j] for j in range(L))
    return out


@pytest.mark.parametrize(
    "L,window,shift,d,terms,causal",
    [
        (9, 4, 0, 8, (True, True), True),  # window smaller than L
        (7, 16, 0, 16, (True, True), True),  # window larger than L
        (10, 5, 2, 24, (True, True), True),  # shift != 0
        (8, 6, 3, 64, (True, True), False),  # bidirectional, future buckets used
        (6, 4, 0, 8, (True, False), True),  # c2p only
        (6, 4, 1, 8, (False, True), True),  # p2c only
        (6, 4, 0, 8, (False, False), True),  # content only
    ],
)
def test_reference_matches_loop(L, window, shift, d, terms, causal):
    g = torch.Generator().manual_seed(L * 100 + window)
    B, H = 2, 2
    q, k, v = (torch.randn(B, H, L, d, generator=g, dtype=torch.float64) for _ in range(3))
    pos_k = torch.randn(window, H, d, generator=g, dtype=torch.float64) if terms[0] else None
    pos_q = torch.randn(window, H, d, generator=g, dtype=torch.float64) if terms[1] else None
    got = relpos_attention_reference(q, k, v, pos_k, pos_q, window=window, shift=shift, causal=causal)
    want = loop_attention(q, k, v, pos_k, pos_q, window, shift, causal)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("terms", [(True, True), (True, False), (False, True), (False, False)])
@pytest.mark.parametrize("causal,shift", [(True, 0), (False, 2)])
def test_probabilities_weight_v_as_the_loop_does_and_any_suffix_of_queries_alike(terms, causal, shift):
    g = torch.Generator().manual_seed(1)
    B, H, L, d, W = 2, 3, 11, 8, 5
    q, k, v = (torch.randn(B, H, L, d, generator=g, dtype=torch.float64) for _ in range(3))
    pos_k = torch.randn(W, H, d, generator=g, dtype=torch.float64) if terms[0] else None
    pos_q = torch.randn(W, H, d, generator=g, dtype=torch.float64) if terms[1] else None
    probs = relpos_attention_probs_reference(q, k, pos_k, pos_q, window=W, shift=shift, causal=causal)
    assert probs.shape == (B, H, L, L) and probs.dtype == torch.float64
    torch.testing.assert_close(probs @ v, loop_attention(q, k, v, pos_k, pos_q, W, shift, causal), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(probs.sum(-1), torch.ones(B, H, L, dtype=torch.float64))
    assert (probs.triu(1) == 0).all() == causal
    for first in (L - 1, 4):  # the rows of the last queries alone, without the others
        suffix = relpos_attention_probs_reference(q, k, pos_k, pos_q, window=W, shift=shift, causal=causal, first_query=first)
        torch.testing.assert_close(suffix, probs[:, :, first:], rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="first_query"):
        relpos_attention_probs_reference(q, k, pos_k, pos_q, window=W, shift=shift, causal=causal, first_query=L)


def test_buckets_default_window():
    r = relative_buckets(100, 100, window=64, shift=0)
    assert r[10, 10] == 63 and r[10, 9] == 62 and r[80, 17] == 0 and r[80, 0] == 0
    assert r[0, 5] == 63  # future keys map to the top bucket (masked when causal)


def test_shape_errors():
    q = torch.randn(1, 2, 5, 8)
    with pytest.raises(ValueError, match="pos_k must be"):
        relpos_attention_reference(q, q, q, torch.randn(3, 2, 8), None, window=4)
    with pytest.raises(ValueError, match="shift"):
        relpos_attention_reference(q, q, q, None, None, window=4, shift=4)


@pytest.mark.parametrize("causal,shift", [(True, 0), (False, 2)])
def test_length_scaling_matches_loop(causal, shift):
    """Log-length scaling: row i of the scores × max(1, ln(i+1)/ln L0), here from L0 = 3 of 11 rows."""
    g = torch.Generator().manual_seed(11)
    B, H, L, d, W = 2, 2, 11, 8, 4
    q, k, v = (torch.randn(B, H, L, d, generator=g, dtype=torch.float64) for _ in range(3))
    pos_k, pos_q = (torch.randn(W, H, d, generator=g, dtype=torch.float64) for _ in range(2))
    got = relpos_attention_reference(q, k, v, pos_k, pos_q, window=W, shift=shift, causal=causal, length_scale_from=3)
    want = loop_attention(q, k, v, pos_k, pos_q, W, shift, causal, length_scale_from=3)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)
    plain = relpos_attention_reference(q, k, v, pos_k, pos_q, window=W, shift=shift, causal=causal)
    assert (got - plain)[:, :, 3:].abs().max() > 1e-3  # rows from L0 on do change…
    # …rows before L0 do not: their multiplier is 1 (ln(i+1) ≤ ln L0)
    torch.testing.assert_close(got[:, :, :2] if not causal else got[:, :, :3], (plain[:, :, :2] if not causal else plain[:, :, :3]))
    # a suffix of query rows sees the same multipliers as the full matrix
    probs = relpos_attention_probs_reference(q, k, pos_k, pos_q, window=W, shift=shift, causal=causal, length_scale_from=3)
    tail = relpos_attention_probs_reference(q, k, pos_k, pos_q, window=W, shift=shift, causal=causal, first_query=7, length_scale_from=3)
    torch.testing.assert_close(tail, probs[:, :, 7:])


def test_length_scales_values_and_errors():
    torch.testing.assert_close(length_scales(4, 0), torch.ones(4))
    torch.testing.assert_close(length_scales(5, 2), torch.tensor([1.0, 1.0, math.log(3) / math.log(2), 2.0, math.log(5) / math.log(2)]))
    q = torch.randn(1, 1, 4, 8)
    for bad in (1, -2, 2.5, True):
        with pytest.raises(ValueError, match="length_scale_from"):
            relpos_attention_reference(q, q, q, None, None, window=4, length_scale_from=bad)
