"""Mixtures and curricula of training graphs (fastrecur/data/schedule.py)."""

import pytest
import torch

from fastrecur.data import DagConfig, GraphStream
from fastrecur.data.schedule import concat_datasets, max_depth, scheduled_batches, split_counts, training_schedule
from fastrecur.errors import ConfigError

TRAIN = dict(num_nodes=4, num_leaf_nodes=2, min_fan_in=1, max_fan_in=2, max_depth=2, mod_val=3, num_vars=12, max_length=24)
BIG = dict(num_nodes=6, max_depth=3, max_length=40)


def nodes_per_graph(batch) -> list[int]:
    return (batch.depth >= 0).sum(dim=1).tolist()


def take(iterator, n):
    return [next(iterator) for _ in range(n)]


def test_one_family_is_the_plain_stream():
    stages = training_schedule(TRAIN)
    got = take(scheduled_batches(stages, 8, 5, 3, 0, 1), 2)
    want = take(GraphStream(DagConfig(**TRAIN), 5, 8, start_step=3), 2)
    assert all(torch.equal(g.labels, w.labels) and torch.equal(g.info, w.info) for g, w in zip(got, want))


def test_a_mixture_splits_every_batch_by_its_shares():
    stages = training_schedule(TRAIN, mix=[{"share": 3}, {"share": 1, **BIG}])
    for batch in take(scheduled_batches(stages, 32, 0, 0, 0, 1), 3):
        assert nodes_per_graph(batch) == [4] * 24 + [6] * 8
        assert batch.labels.shape[1] == 40  # padded to the longer family
        short = batch[:24]
        assert (short.labels[:, 24:] == torch.tensor(short.vocab.pad_token)).all()
        assert (short.info[:, 24:] == -1).all()


def test_a_curriculum_switches_at_its_step_and_resumes_exactly():
    stages = training_schedule(TRAIN, curriculum=[{"until_step": 3, **BIG, "min_fan_in": 1, "max_fan_in": 1}])
    batches = take(scheduled_batches(stages, 8, 1, 0, 0, 1), 5)
    for step, batch in enumerate(batches):
        assert set(nodes_per_graph(batch)) == ({6} if step < 3 else {4})
        if step < 3:  # copies only: one operand per node, so info holds depth and one position
            assert batch.info.shape[-1] == 2
    for start in (2, 3, 4):
        resumed = next(scheduled_batches(stages, 8, 1, start, 0, 1))
        assert torch.equal(resumed.labels, batches[start].labels)
    halves = [next(scheduled_batches(stages, 8, 1, 4, rank, 2)) for rank in (0, 1)]
    assert torch.equal(torch.cat([h.labels for h in halves]), batches[4].labels)
    assert max_depth(stages) == 3


def test_split_counts_sum_to_the_batch():
    assert split_counts(32, (0.5, 0.5)) == [16, 16]
    assert split_counts(10, (1 / 3, 1 / 3, 1 / 3)) in ([4, 3, 3], [3, 4, 3], [3, 3, 4])
    assert sum(split_counts(7, (0.1, 0.2, 0.7))) == 7


def test_concat_keeps_each_part():
    a = next(GraphStream(DagConfig(**TRAIN), 0, 3))
    b = next(GraphStream(DagConfig(**{**TRAIN, **BIG}), 0, 2))
    both = concat_datasets([a, b])
    assert torch.equal(both.labels[:3, :24], a.labels) and torch.equal(both.labels[3:], b.labels)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"mix": [{"share": 0}]}, "share=0 is invalid"),
        ({"mix": [{"share": 1, "mod_val": 5}]}, "one tokenizer"),
        ({"mix": [{"share": 1, "colour": 2}]}, "colour"),
        ({"mix": {"share": 1}}, "a list"),
        ({"curriculum": [{"until_step": 0}]}, "until_step=0 is invalid"),
        ({"curriculum": [{"until_step": 5}, {"until_step": 5}]}, "until_step=5 is invalid"),
        ({"curriculum": [{"until_step": 5, "num_nodes": 40}]}, "num_vars=12 is smaller than num_nodes=40"),
    ],
)
def test_bad_schedules_fail_in_one_line(kwargs, message):
    with pytest.raises(ConfigError, match=message) as err:
        training_schedule(TRAIN, **kwargs)
    assert "\n" not in str(err.value)
