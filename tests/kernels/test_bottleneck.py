"""The bottleneck op: fused heads → argmax / Gumbel-max → re-embedding, against a float64 reference."""

import functools

import pytest
import torch
from _stats import chi2_statistic, chi2_upper_quantile

from fastrecur_kernels import ops
from fastrecur_kernels.reference import bottleneck_reference as _bottleneck_reference

PAPER_VOCAB = (7, 129, 2, 25, 2, 2)
RESET = (4, 5)  # REGRET and MODIFICATION in fastrecur's layout
# The tests' default layout; every call may name its own reset factors.
bottleneck = functools.partial(ops.bottleneck, reset_factors=RESET)
bottleneck_reference = functools.partial(_bottleneck_reference, reset_factors=RESET)


def make_heads(n_tokens, d_model, sizes, dtype, device, seed):
    g = torch.Generator().manual_seed(seed)
    vocab_total = sum(sizes)
    z = torch.randn(n_tokens, d_model, generator=g)
    weight = torch.randn(vocab_total, d_model, generator=g) / d_model**0.5
    bias = torch.randn(vocab_total, generator=g) * 0.1
    emb = torch.randn(vocab_total, d_model, generator=g)
    return z.to(device, dtype), weight.to(device, dtype), bias.to(device), emb.to(device)


def check_tokens(tokens, logits64, sizes, reset, tol):
    """Tokens equal the float64 argmax wherever the top-2 gap exceeds ``tol``; at genuine near-ties
    (gap ≤ tol, reachable by fp32/bf16-MMA rounding) the pick must still be within ``tol`` of the max."""
    start = 0
    for f, size in enumerate(sizes):
        got = tokens[..., f]
        if f in reset:
            assert torch.all(got == 0), f"reset factor {f} not zero"
        else:
            chunk = logits64[..., start : start + size]
            top = chunk.max(dim=-1).values
            picked = chunk.gather(-1, got.clamp(0, size - 1).unsqueeze(-1)).squeeze(-1)
            assert torch.all((got >= 0) & (got < size)), f"factor {f}: token out of range"
            assert torch.all(top - picked <= tol), f"factor {f}: picked logit below the max by > {tol}"
            if size > 1:
                second = chunk.topk(2, dim=-1).values[..., 1]
                clear = (top - second) > tol
                want = chunk.argmax(dim=-1)
                assert torch.equal(got[clear], want[clear]), f"factor {f}: argmax differs"
        start += size


@pytest.mark.parametrize(
    "dtype,sizes,d_model,n_tokens",
    [
        (torch.float32, PAPER_VOCAB, 64, 150),
        (torch.bfloat16, PAPER_VOCAB, 48, 150),  # D not a multiple of the GEMM chunk
        (torch.float16, (3, 17, 1, 40), 32, 70),  # other vocabularies, a 1-entry factor
    ],
)
@pytest.mark.parametrize("reset", [(4, 5), ()])
def test_argmax_tokens_and_embeddings_match_reference(device, poisoned_empty, dtype, sizes, d_model, n_tokens, reset):
    reset = tuple(f for f in reset if f < len(sizes))
    z, weight, bias, emb = make_heads(n_tokens, d_model, sizes, dtype, device, seed=n_tokens + d_model)
    tokens, x = bottleneck(z, weight, bias, emb, sizes, reset_factors=reset)
    assert tokens.shape == (n_tokens, len(sizes)) and tokens.dtype == torch.int64
    assert x.shape == (n_tokens, d_model) and x.dtype == emb.dtype
    assert torch.all(tokens >= 0), "token left unwritten"
    assert torch.all(torch.isfinite(x)), "embedding left unwritten"

    logits64 = torch.nn.functional.linear(z.double(), weight.double(), bias.double())
    check_tokens(tokens, logits64, sizes, reset, tol=1e-5 if dtype == torch.float32 else 1e-4)
    ref_tokens, ref_x = bottleneck_reference(
        z.double(), weight.double(), bias.double(), emb, sizes, reset_factors=reset
    )
    same = (ref_tokens == tokens).all(dim=-1)
    assert same.double().mean() > 0.95
    # The re-embedding (fp32 sum in factor order) is exact wherever the tokens agree.
    assert torch.equal(x[same], ref_x[same])


@pytest.mark.parametrize("dtype,tau", [(torch.float32, 0.0), (torch.bfloat16, 0.0), (torch.bfloat16, 1.0)])
def test_tokens_only_without_an_embedding_table(device, poisoned_empty, dtype, tau):
    """What fastrecur's evaluator runs: no table, no re-embedding, the same tokens."""
    z, weight, bias, emb = make_heads(130, 48, PAPER_VOCAB, dtype, device, seed=12)
    tokens, x = bottleneck(z, weight, bias, None, PAPER_VOCAB, tau=tau, seed=3)
    with_table, _ = bottleneck(z, weight, bias, emb, PAPER_VOCAB, tau=tau, seed=3)
    assert x is None
    assert torch.all(tokens >= 0), "token left unwritten"
    assert torch.equal(tokens, with_table)


def test_exact_ties_pick_the_first_index(device):
    sizes = (7, 129, 2, 25, 2, 2)
    z, weight, bias, emb = make_heads(64, 32, sizes, torch.float32, device, seed=3)
    # Columns 5 and 9 of VARIABLE (rows 7+5, 7+9) are identical and far above the rest.
    weight[7 + 9] = weight[7 + 5]
    bias[7 + 5] = bias[7 + 9] = 100.0
    tokens, _ = bottleneck(z, weight, bias, emb, sizes)
    assert torch.all(tokens[:, 1] == 5)


def assert_rounded_from(x, exact):
    """``x`` (bf16) is ``exact`` (fp32) rounded to nearest even — or, under Triton's interpreter,
    which truncates fp32 → bf16 casts, rounded toward zero."""
    nearest = exact.to(torch.bfloat16)
    if x.device.type == "cuda":
        assert torch.equal(x, nearest)
    else:
        toward_zero = (exact.view(torch.int32) & -65536).view(torch.float32).to(torch.bfloat16)
        assert torch.all((x == nearest) | (x == toward_zero))


def test_leading_dims_and_bf16_embedding(device):
    sizes = PAPER_VOCAB
    z, weight, bias, emb = make_heads(2 * 40, 32, sizes, torch.bfloat16, device, seed=4)
    emb = emb.bfloat16()
    tokens, x = bottleneck(z.view(2, 40, 32), weight, bias, emb, sizes)
    flat_tokens, flat_x = bottleneck(z, weight, bias, emb, sizes)
    assert tokens.shape == (2, 40, 6) and x.shape == (2, 40, 32) and x.dtype == torch.bfloat16
    assert torch.equal(tokens.view(-1, 6), flat_tokens) and torch.equal(x.view(-1, 32), flat_x)
    # bf16 rows summed in fp32 in factor order, rounded once.
    _, exact = bottleneck_reference(z.double(), weight.double(), bias.double(), emb.float(), sizes)
    ref_tokens, _ = bottleneck_reference(z.double(), weight.double(), bias.double(), emb, sizes)
    same = (ref_tokens == flat_tokens).all(dim=-1)
    assert same.double().mean() > 0.95
    assert_rounded_from(flat_x[same], exact[same])


def test_gumbel_samples_follow_softmax(device):
    """Every token has the same logits, so the T samples of each factor are i.i.d. draws that
    must follow softmax(logits) — whatever tau is (docs/method.md §3.1)."""
    sizes = (7, 40, 2, 25)
    n_tokens, d_model = 2048, 16
    z, weight, bias, emb = make_heads(1, d_model, sizes, torch.float32, device, seed=5)
    z = z.expand(n_tokens, d_model).contiguous()
    tokens, _ = bottleneck(z, weight * 3, bias, emb, sizes, tau=0.3, seed=1234, reset_factors=())
    logits = torch.nn.functional.linear(z[0].double(), weight.double() * 3, bias.double())
    start = 0
    for f, size in enumerate(sizes):
        probs = torch.softmax(logits[start : start + size], dim=-1).cpu()
        counts = torch.bincount(tokens[:, f].cpu(), minlength=size)
        stat, df = chi2_statistic(counts.tolist(), probs.tolist())
        assert stat < chi2_upper_quantile(df, alpha=1e-3), f"factor {f}: chi2 {stat:.1f} (df {df})"
        start += size


def test_gumbel_seed_and_tau(device):
    sizes = PAPER_VOCAB
    z, weight, bias, emb = make_heads(128, 32, sizes, torch.bfloat16, device, seed=6)
    a, xa = bottleneck(z, weight, bias, emb, sizes, tau=0.5, seed=7)
    b, xb = bottleneck(z, weight, bias, emb, sizes, tau=4.0, seed=7)
    c, _ = bottleneck(z, weight, bias, emb, sizes, tau=0.5, seed=8)
    argmax, _ = bottleneck(z, weight, bias, emb, sizes)
    assert torch.equal(a, b) and torch.equal(xa, xb), "tau > 0 must not change the sample"
    assert not torch.equal(a, c), "different seeds gave identical samples"
    assert not torch.equal(a, argmax), "sampling returned the argmax"
    torch.manual_seed(11)
    d, _ = bottleneck(z, weight, bias, emb, sizes, tau=1.0)
    torch.manual_seed(11)
    e, _ = bottleneck(z, weight, bias, emb, sizes, tau=1.0)
    assert torch.equal(d, e), "seed=None must draw from torch's default generator"


def test_bad_arguments_raise(device):
    sizes = PAPER_VOCAB
    z, weight, bias, emb = make_heads(8, 32, sizes, torch.float32, device, seed=9)
    with pytest.raises(ValueError, match="head_weight"):
        bottleneck(z, weight[:-1], bias, emb, sizes)
    with pytest.raises(ValueError, match="head_bias"):
        bottleneck(z, weight, bias[:-1], emb, sizes)
    with pytest.raises(ValueError, match="embedding"):
        bottleneck(z, weight, bias, emb[:, :-1], sizes)
    with pytest.raises(ValueError, match="head_weight"):
        bottleneck(z, weight, bias, emb, (7, 129, 2, 25, 2))
    with pytest.raises(ValueError, match="z must be"):
        bottleneck(z[0], weight, bias, emb, sizes)
    with pytest.raises(ValueError, match="vocab_sizes"):
        bottleneck(z, weight, bias, emb, (0, 167))
    with pytest.raises(ValueError, match="reset_factors"):
        bottleneck(z, weight, bias, emb, sizes, reset_factors=(6,))
    with pytest.raises(ValueError, match="tau"):
        bottleneck(z, weight, bias, emb, sizes, tau=-1.0)
    with pytest.raises(TypeError, match="z must be"):
        bottleneck(z.double(), weight, bias, emb, sizes)
