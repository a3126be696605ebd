"""Model inputs, teacher states (docs/method.md §1.7, §4.1), depth from inputs alone, and the dataset object."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fastrecur.data import (
    DagConfig,
    GraphDataset,
    dataset_spec,
    generate_dataset,
    input_depth,
    make_inputs,
    teacher_states,
)
from fastrecur.errors import DataFormatError

EMPTY, VALUE = 24, 3  # default vocabulary: p = 23


@pytest.fixture(scope="module")
def train_set() -> GraphDataset:
    return generate_dataset(DagConfig(func_vocab=("ADD", "SUB")), 64, seed=4)


@pytest.fixture(scope="module")
def deep_set() -> GraphDataset:
    return generate_dataset(DagConfig(num_nodes=96, max_depth=96, max_length=1024, func_vocab=("MUL",)), 16, seed=8)


def test_inputs_hide_every_variable_value(train_set):
    tokens, labels = train_set.tokens, train_set.labels
    is_var = labels[..., 0] == 0
    assert (tokens[..., VALUE][is_var] == EMPTY).all()
    assert torch.equal(tokens[~is_var], labels[~is_var]), "constants and syntax stay visible"
    assert torch.equal(tokens[..., :3], labels[..., :3]) and torch.equal(tokens[..., 4:], labels[..., 4:])
    assert torch.equal(make_inputs(labels, train_set.vocab), tokens)
    assert (labels[..., VALUE][is_var] < 23).sum() == (train_set.depth >= 0).sum(), "labels solve exactly the RHS"


@pytest.mark.parametrize("num_iters", [1, 4, 7, 9])
def test_teacher_states_against_a_loop(train_set, num_iters):
    batch = train_set[8:16]
    inputs, targets = teacher_states(batch.tokens, batch.labels, batch.depth, num_iters)
    assert inputs.shape == targets.shape == (num_iters, 8, 256, 6)
    for k in range(num_iters + 1):
        state = batch.tokens.clone()
        for b in range(8):
            for i in range(256):
                if 0 <= int(batch.depth[b, i]) <= k - 1:
                    state[b, i, VALUE] = batch.labels[b, i, VALUE]
        if k < num_iters:
            assert torch.equal(inputs[k], state)
        if k > 0:
            assert torch.equal(targets[k - 1], state)
    if num_iters > batch.max_depth:
        assert torch.equal(targets[-1], batch.labels), "the last target is the solved sequence"
    snapshot = targets.clone()
    inputs.zero_()  # inputs may be corrupted in place without touching targets
    assert torch.equal(targets, snapshot)


def test_teacher_states_value_empty_overrides_unsolved_slots(train_set):
    batch = train_set[:4]
    garbage = batch.labels.clone()  # every RHS already holds its value: only value_empty hides it
    inputs, targets = teacher_states(garbage, batch.labels, batch.depth, 3, value_empty=EMPTY)
    plain, _ = teacher_states(batch.tokens, batch.labels, batch.depth, 3)
    rhs = batch.depth >= 0
    assert torch.equal(inputs[..., VALUE][:, rhs], plain[..., VALUE][:, rhs])


def test_input_depth_from_tokens_alone(train_set, deep_set):
    for ds in (train_set, deep_set):
        assert torch.equal(input_depth(ds.tokens, ds.vocab), ds.depth)
        assert torch.equal(input_depth(ds.labels, ds.vocab), ds.depth), "values do not matter"


def test_input_depth_rejects_a_cycle(train_set):
    vocab = train_set.vocab
    tokens = vocab.encode("x_1 = x_2 <EQ_SEP> x_2 = x_1").unsqueeze(0)
    with pytest.raises(DataFormatError, match="cycle"):
        input_depth(tokens, vocab)


def test_dataset_indexing_and_properties(train_set):
    ds = train_set
    assert len(ds) == 64 and ds.max_depth == int(ds.info[..., 0].max())
    assert torch.equal(ds.depth, ds.info[..., 0])
    assert torch.equal(ds.lengths, (ds.labels[..., 0] != 3).sum(1))
    assert len(ds[3]) == 1 and torch.equal(ds[3].labels[0], ds.labels[3])
    assert torch.equal(ds[-1].labels[0], ds.labels[63])
    assert torch.equal(ds[np.int64(7)].labels, ds[torch.tensor(7)].labels) and len(ds[torch.tensor(7)]) == 1
    picked = ds[torch.tensor([5, 2, 9])]
    assert torch.equal(picked.labels, ds.labels[[5, 2, 9]]) and torch.equal(picked.tokens, ds.tokens[[5, 2, 9]])
    assert len(ds[10:20]) == 10 and ds[10:20].spec is None
    with pytest.raises(IndexError):
        ds[64]
    with pytest.raises(DataFormatError):
        GraphDataset(ds.labels[..., :5], ds.info, ds.vocab)
    with pytest.raises(DataFormatError):
        GraphDataset(ds.labels, ds.info[:3], ds.vocab)


def test_spec_statistics(deep_set):
    spec = dataset_spec(deep_set)
    per_sample = deep_set.depth.max(dim=1).values
    assert spec["min_depth"] == int(per_sample.min()) and spec["max_depth"] == int(per_sample.max())
    assert spec["mean_depth"] == pytest.approx(per_sample.double().mean().item(), rel=1e-6)
    assert spec["min_non_pad_len"] == int(deep_set.lengths.min())
    assert spec["max_non_pad_len"] == int(deep_set.lengths.max())
    assert spec["mean_non_pad_len"] == pytest.approx(deep_set.lengths.double().mean().item(), rel=1e-6)
    assert spec["orig_seq_len"] == 1024
    assert all(type(v) in (int, float) for v in spec.values()), "python scalars, as the authors store them"
