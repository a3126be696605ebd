"""The factor-loss op: fused multi-factor cross-entropy, gradients and correctness vs. the reference."""

import pytest
import torch

from fastrecur_kernels.ops import factor_loss
from fastrecur_kernels.reference import factor_loss_reference

PAPER_VOCAB = (7, 129, 2, 25, 2, 2)
PAPER_WEIGHTS = (1.0, 1.0, 1.0, 1.0, 0.0, 0.0)


def make_batch(n_tokens, sizes, dtype, device, seed, masked):
    g = torch.Generator().manual_seed(seed)
    logits = (torch.randn(n_tokens, sum(sizes), generator=g) * 3).to(device, dtype)
    targets = torch.stack([torch.randint(0, v, (n_tokens,), generator=g) for v in sizes], dim=-1).to(device)
    mask = (torch.rand(n_tokens, generator=g) < 0.7).to(device) if masked else None
    return logits, targets, mask


def factor_columns(sizes, f):
    start = sum(sizes[:f])
    return slice(start, start + sizes[f])


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize(
    "sizes,weights", [(PAPER_VOCAB, PAPER_WEIGHTS), ((5, 40, 1, 17), (0.5, 2.0, 1.0, 0.0))]
)  # fmt: skip
def test_loss_and_gradient_match_reference(device, poisoned_empty, dtype, masked, sizes, weights):
    n_tokens = 150  # not a multiple of the block
    logits, targets, mask = make_batch(n_tokens, sizes, dtype, device, seed=len(sizes) * 10 + masked, masked=masked)
    x = logits.clone().requires_grad_()
    out = factor_loss(x, targets, sizes, weights, mask)
    (out.total * 2.5).backward()  # the incoming gradient scales dlogits
    ref_x = logits.clone().requires_grad_()
    ref = factor_loss_reference(ref_x, targets, sizes, weights, mask)
    (ref.total * 2.5).backward()

    assert out.total.shape == () and out.per_factor.shape == (len(sizes),)
    assert torch.all(torch.isfinite(out.per_factor)) and torch.all(torch.isfinite(x.grad)), "output left unwritten"
    assert torch.all(out.correct.view(torch.uint8) <= 1), "correctness left unwritten"
    torch.testing.assert_close(out.per_factor, ref.per_factor, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.total, ref.total.float(), rtol=1e-5, atol=1e-5)
    assert torch.equal(out.correct, ref.correct)
    assert x.grad.dtype == dtype
    # fp32: a few ulp; bf16: torch's bf16 tolerance (one rounding of the same fp32 value — the
    # interpreter truncates where the GPU and torch round to nearest).
    tol = dict(rtol=1e-4, atol=1e-7) if dtype == torch.float32 else dict(rtol=1.6e-2, atol=1e-5)
    torch.testing.assert_close(x.grad, ref_x.grad, **tol)
    for f, w in enumerate(weights):
        if w == 0:
            assert torch.all(x.grad[:, factor_columns(sizes, f)] == 0), f"factor {f} has weight 0 but a gradient"
    if mask is not None:
        assert torch.all(x.grad[~mask] == 0), "masked tokens received a gradient"


def test_outputs_without_grad_and_leading_dims(device):
    logits, targets, _ = make_batch(2 * 37, PAPER_VOCAB, torch.bfloat16, device, seed=1, masked=False)
    with torch.no_grad():
        out = factor_loss(logits.view(2, 37, -1), targets.view(2, 37, 6), PAPER_VOCAB, PAPER_WEIGHTS)
    ref = factor_loss_reference(logits, targets, PAPER_VOCAB, PAPER_WEIGHTS)
    assert out.correct.shape == (2, 37, 6)
    assert not out.total.requires_grad
    torch.testing.assert_close(out.per_factor, ref.per_factor, rtol=1e-5, atol=1e-5)
    assert torch.equal(out.correct.view(-1, 6), ref.correct)


def test_padded_logits_rows(device):
    """Logits as a view into rows padded to 176 columns (aligned loads); dlogits comes back dense."""
    logits, targets, _ = make_batch(30, PAPER_VOCAB, torch.bfloat16, device, seed=6, masked=False)
    padded = torch.full((30, 176), float("nan"), dtype=torch.bfloat16, device=device)
    padded[:, :167] = logits
    x = padded.requires_grad_()
    out = factor_loss(x[:, :167], targets, PAPER_VOCAB, PAPER_WEIGHTS)
    out.total.backward()
    ref_x = logits.clone().requires_grad_()
    ref = factor_loss_reference(ref_x, targets, PAPER_VOCAB, PAPER_WEIGHTS)
    ref.total.backward()
    torch.testing.assert_close(out.per_factor, ref.per_factor, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(x.grad[:, :167], ref_x.grad, rtol=1.6e-2, atol=1e-5)
    assert torch.all(x.grad[:, 167:] == 0)


def test_only_the_total_is_differentiable(device):
    logits, targets, _ = make_batch(20, PAPER_VOCAB, torch.float32, device, seed=2, masked=False)
    out = factor_loss(logits.requires_grad_(), targets, PAPER_VOCAB, PAPER_WEIGHTS)
    assert out.total.requires_grad
    assert not out.per_factor.requires_grad and not out.correct.requires_grad


def test_all_masked_batch_gives_zero_loss_and_gradient(device):
    logits, targets, _ = make_batch(20, PAPER_VOCAB, torch.float32, device, seed=3, masked=False)
    x = logits.requires_grad_()
    mask = torch.zeros(20, dtype=torch.bool, device=device)
    out = factor_loss(x, targets, PAPER_VOCAB, PAPER_WEIGHTS, mask)
    out.total.backward()
    assert out.total.item() == 0 and torch.all(out.per_factor == 0) and torch.all(x.grad == 0)


def test_out_of_range_target_gives_nan(device):
    logits, targets, _ = make_batch(20, PAPER_VOCAB, torch.float32, device, seed=4, masked=False)
    targets[3, 3] = 25  # VALUE has 25 entries: index 25 does not exist
    out = factor_loss(logits, targets, PAPER_VOCAB, PAPER_WEIGHTS)
    assert torch.isnan(out.per_factor[3]) and torch.isnan(out.total)
    assert torch.all(torch.isfinite(out.per_factor[[0, 1, 2, 4, 5]]))


def test_bad_arguments_raise(device):
    logits, targets, mask = make_batch(10, PAPER_VOCAB, torch.float32, device, seed=5, masked=True)
    with pytest.raises(ValueError, match="logits must be"):
        factor_loss(logits[:, :-1], targets, PAPER_VOCAB, PAPER_WEIGHTS)
    with pytest.raises(ValueError, match="targets must be"):
        factor_loss(logits, targets[:, :5], PAPER_VOCAB, PAPER_WEIGHTS)
    with pytest.raises(ValueError, match="weights"):
        factor_loss(logits, targets, PAPER_VOCAB, PAPER_WEIGHTS[:5])
    with pytest.raises(ValueError, match="mask must be"):
        factor_loss(logits, targets, PAPER_VOCAB, PAPER_WEIGHTS, mask[:5])
    with pytest.raises(TypeError, match="mask must be"):
        factor_loss(logits, targets, PAPER_VOCAB, PAPER_WEIGHTS, mask.long())
    with pytest.raises(TypeError, match="targets must be"):
        factor_loss(logits, targets.float(), PAPER_VOCAB, PAPER_WEIGHTS)
    with pytest.raises(TypeError, match="logits must be"):
        factor_loss(logits.long(), targets, PAPER_VOCAB, PAPER_WEIGHTS)
