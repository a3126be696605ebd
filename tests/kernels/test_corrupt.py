"""The corruption op: teacher states exactly, error-correction noise on the right slots at the right rates."""

import functools

import pytest
import torch
from _stats import binomial_bounds, chi2_statistic, chi2_upper_quantile

from fastrecur_kernels import ops
from fastrecur_kernels.reference import CORRUPTION_STRATEGIES as STRATEGIES
from fastrecur_kernels.reference import corrupt_teacher_states_reference, corruption_candidates_reference
from fastrecur_kernels.reference import teacher_states_reference as _teacher_states

VALUE = 3
VALUE_VOCAB = 25  # p + 2 with p = 23
EMPTY = 24
# The tests' default layout and settings; every call may name its own.
corrupt_teacher_states = functools.partial(ops.corrupt_teacher_states, value_factor=VALUE, token_prob=0.5, strategy="last")


def teacher_states_reference(input, labels, depth, num_steps, *, value_factor=VALUE):
    """``[K + 1, B, L, F]``: ``S_0 … S_K``."""
    inputs, targets = _teacher_states(input, labels, depth, num_steps, value_factor=value_factor)
    return torch.cat([inputs[:1], targets])


def make_batch(batch, length, device, seed, max_depth=5):
    """Random tokens; about a third of the slots are RHS slots with depth 0..max_depth whose input
    VALUE is EMPTY and whose label VALUE is a residue; the rest have depth −1."""
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, 7, (batch, length, 6), generator=g)
    rhs = torch.rand(batch, length, generator=g) < 0.35
    depth = torch.where(rhs, torch.randint(0, max_depth + 1, (batch, length), generator=g), -1)
    inputs = tokens.clone()
    inputs[..., VALUE] = torch.where(rhs, EMPTY, tokens[..., VALUE])
    labels = tokens.clone()
    labels[..., VALUE] = torch.where(rhs, torch.randint(0, 23, (batch, length), generator=g), tokens[..., VALUE])
    return inputs.to(device), labels.to(device), depth.to(device)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_full_corruption_hits_exactly_the_candidates(device, poisoned_empty, strategy):
    inputs, labels, depth = make_batch(3, 70, device, seed=1)
    num_steps = 8  # more iterations than depths: the last targets are the solved state
    x, y, corrupted = corrupt_teacher_states(
        inputs, labels, depth, num_steps, value_vocab_size=VALUE_VOCAB, token_prob=1.0, strategy=strategy, seed=5,
    )  # fmt: skip
    assert torch.all(x >= 0) and torch.all(y >= 0), "token left unwritten"
    assert torch.all(corrupted.view(torch.uint8) <= 1), "mask left unwritten"
    states = teacher_states_reference(inputs, labels, depth, num_steps)
    assert torch.equal(y, states[1:]), "targets must be the clean teacher states S_1..S_K"
    assert torch.equal(y[-1], labels), "S_K is the solved sequence once K > max depth"
    assert torch.equal(corrupted, corruption_candidates_reference(depth, num_steps, strategy))
    assert corrupted.any()
    other = [f for f in range(6) if f != VALUE]
    assert torch.equal(x[..., other], states[:-1][..., other]), "only the VALUE factor may change"
    assert torch.equal(x[~corrupted], states[:-1][~corrupted])
    assert torch.all((x[..., VALUE] >= 0) & (x[..., VALUE] < VALUE_VOCAB))


def test_teacher_states_without_corruption(device):
    inputs, labels, depth = make_batch(2, 50, device, seed=2)
    x, y, corrupted = corrupt_teacher_states(inputs, labels, depth, 4, value_vocab_size=VALUE_VOCAB, token_prob=0.0)
    states = teacher_states_reference(inputs, labels, depth, 4)
    assert not corrupted.any()
    assert torch.equal(x, states[:-1]) and torch.equal(y, states[1:])
    assert torch.equal(x[0], inputs), "S_0 is the input"


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_tokenwise_rate_within_binomial_bounds(device, strategy):
    inputs, labels, depth = make_batch(8, 128, device, seed=3)
    token_prob, num_steps = 0.3, 7
    _, _, corrupted = corrupt_teacher_states(
        inputs, labels, depth, num_steps, value_vocab_size=VALUE_VOCAB, token_prob=token_prob, strategy=strategy,
        seed=11,
    )  # fmt: skip
    candidates = corruption_candidates_reference(depth, num_steps, strategy)
    assert not (corrupted & ~candidates).any(), "corruption outside the candidate slots"
    lo, hi = binomial_bounds(int(candidates.sum()), token_prob)
    assert lo <= int(corrupted.sum()) <= hi


def test_replacement_values_are_uniform_over_the_value_vocabulary(device):
    inputs, labels, depth = make_batch(8, 128, device, seed=4)
    x, _, corrupted = corrupt_teacher_states(
        inputs, labels, depth, 7, value_vocab_size=VALUE_VOCAB, token_prob=1.0, strategy="random", seed=12,
    )  # fmt: skip
    values = x[..., VALUE][corrupted].cpu()
    assert values.numel() > 50 * VALUE_VOCAB
    stat, df = chi2_statistic(torch.bincount(values, minlength=VALUE_VOCAB).tolist(), [1 / VALUE_VOCAB] * VALUE_VOCAB)
    assert stat < chi2_upper_quantile(df, alpha=1e-3)


def test_seeds(device):
    inputs, labels, depth = make_batch(4, 64, device, seed=6)
    kwargs = dict(value_vocab_size=VALUE_VOCAB, token_prob=0.5, strategy="random")
    a = corrupt_teacher_states(inputs, labels, depth, 6, seed=1, **kwargs)
    b = corrupt_teacher_states(inputs, labels, depth, 6, seed=1, **kwargs)
    c = corrupt_teacher_states(inputs, labels, depth, 6, seed=2, **kwargs)
    assert all(torch.equal(u, v) for u, v in zip(a, b)), "same seed, different output"
    assert not torch.equal(a[2], c[2]) and not torch.equal(a[0], c[0]), "different seeds, same output"
    torch.manual_seed(3)
    d = corrupt_teacher_states(inputs, labels, depth, 6, **kwargs)
    torch.manual_seed(3)
    e = corrupt_teacher_states(inputs, labels, depth, 6, **kwargs)
    assert all(torch.equal(u, v) for u, v in zip(d, e)), "seed=None must draw from torch's default generator"


def test_other_value_factor_and_int32_tokens(device):
    inputs, labels, depth = make_batch(2, 40, device, seed=7)
    # Move VALUE to factor 1 and use int32 tokens.
    perm = [0, 3, 2, 1, 4, 5]
    inputs, labels = inputs[..., perm].int(), labels[..., perm].int()
    x, y, corrupted = corrupt_teacher_states(
        inputs, labels, depth, 3, value_vocab_size=VALUE_VOCAB, token_prob=1.0, value_factor=1, seed=3
    )
    states = teacher_states_reference(inputs, labels, depth, 3, value_factor=1)
    assert x.dtype == torch.int32 and torch.equal(y, states[1:])
    assert torch.equal(corrupted, corruption_candidates_reference(depth, 3, "last"))
    assert torch.equal(x[~corrupted], states[:-1][~corrupted])


def test_reference_matches_on_its_deterministic_parts(device):
    inputs, labels, depth = make_batch(2, 40, device, seed=8)
    g = torch.Generator(device=device).manual_seed(0)
    x, y, corrupted = corrupt_teacher_states_reference(
        inputs, labels, depth, 5, value_vocab_size=VALUE_VOCAB, token_prob=1.0, strategy="previous", value_factor=VALUE,
        generator=g,
    )  # fmt: skip
    kx, ky, kc = corrupt_teacher_states(inputs, labels, depth, 5, value_vocab_size=VALUE_VOCAB, token_prob=1.0, strategy="previous")
    assert torch.equal(y, ky) and torch.equal(corrupted, kc) and torch.equal(x[~corrupted], kx[~kc])


def test_bad_arguments_raise(device):
    inputs, labels, depth = make_batch(2, 10, device, seed=9)
    ok = dict(value_vocab_size=VALUE_VOCAB)
    with pytest.raises(ValueError, match="input must be"):
        corrupt_teacher_states(inputs[0], labels[0], depth, 2, **ok)
    with pytest.raises(ValueError, match="labels must"):
        corrupt_teacher_states(inputs, labels[:, :5], depth, 2, **ok)
    with pytest.raises(ValueError, match="depth must be"):
        corrupt_teacher_states(inputs, labels, depth[:, :5], 2, **ok)
    with pytest.raises(ValueError, match="num_steps"):
        corrupt_teacher_states(inputs, labels, depth, 0, **ok)
    with pytest.raises(ValueError, match="strategy"):
        corrupt_teacher_states(inputs, labels, depth, 2, strategy="first", **ok)
    with pytest.raises(ValueError, match="token_prob"):
        corrupt_teacher_states(inputs, labels, depth, 2, token_prob=1.5, **ok)
    with pytest.raises(ValueError, match="value_factor"):
        corrupt_teacher_states(inputs, labels, depth, 2, value_factor=6, **ok)
    with pytest.raises(TypeError, match="depth must be"):
        corrupt_teacher_states(inputs, labels, depth.float(), 2, **ok)
    with pytest.raises(TypeError, match="labels dtype"):
        corrupt_teacher_states(inputs, labels.int(), depth, 2, **ok)
