"""Learning diagnostics (fastrecur/diagnostics.py): node categories, teacher-forced split, constant floor."""

import sys
import os

import pytest
import torch
from _oracle import OracleModel

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "data"))
from _data_reference import parse_sample  # noqa: E402

from fastrecur.config import EvalSettings  # noqa: E402
from fastrecur.data import VALUE, DagConfig, GraphDataset, generate_dataset  # noqa: E402
from fastrecur.diagnostics import (  # noqa: E402
    constant_answer_graphs,
    iteration_role_accuracy,
    node_categories,
    node_skill_accuracy,
    split_accuracy,
    teacher_forced_value_correct,
)
from fastrecur.evaluate import Evaluator  # noqa: E402

CONFIG = DagConfig(num_nodes=9, num_leaf_nodes=2, min_fan_in=1, max_fan_in=3, max_depth=4, mod_val=5, num_vars=16, max_length=64)


@pytest.fixture(scope="module")
def graphs():
    return generate_dataset(CONFIG, 40, seed=11)


@pytest.mark.parametrize("window", [3, 5, 8, 64])
def test_categories_match_the_parsed_equations(graphs, window):
    cats = node_categories(graphs, window)
    for i in range(len(graphs)):
        equations = parse_sample(graphs.labels[i].tolist(), graphs.info[i].tolist(), CONFIG.num_vars, ["ADD"], CONFIG.mod_val)
        for eq in equations:
            r = eq.rhs_pos
            if eq.const is not None:
                assert cats["leaf"][i, r] and not (cats["copy"][i, r] or cats["kary"][i, r])
                continue
            distance = max(r - pos for _, pos in eq.operands)
            far = distance >= window - 1  # every distance from window - 1 on shares the clamped bucket
            assert bool(cats["copy"][i, r]) == (len(eq.operands) == 1)
            assert bool(cats["kary"][i, r]) == (len(eq.operands) >= 2)
            assert bool(cats["far"][i, r]) == far and bool(cats["near"][i, r]) == (not far)
            assert int(cats["distance"][i, r]) == distance
        rhs = {eq.rhs_pos for eq in equations}
        for name in ("leaf", "copy", "kary", "near", "far"):
            assert set(cats[name][i].nonzero().flatten().tolist()) <= rhs


def labels_oracle(graphs: GraphDataset, wrong: torch.Tensor | None = None):
    """One-hot VALUE logits of the solved labels: right for every node at its own iteration (the
    teacher target of a depth-d node at iteration d is its value); ``wrong`` [N, L] flips some."""
    values = graphs.labels[..., VALUE].clone()
    if wrong is not None:
        values[wrong] = (values[wrong] + 1) % graphs.vocab.mod_val

    def value_logits(tokens):
        K = tokens.shape[0] // len(graphs)
        v = values[:, : tokens.shape[1]].repeat(K, 1)
        return torch.nn.functional.one_hot(v, graphs.vocab.sizes[VALUE]).float()

    return value_logits


def test_teacher_forced_split_scores_what_the_model_gets_right(graphs):
    cats = node_categories(graphs, 5)
    perfect = teacher_forced_value_correct(labels_oracle(graphs), graphs, batch_size=len(graphs))
    assert torch.equal(perfect, graphs.depth >= 0)
    # Wrong on every k-ary node only: copies and leaves stay perfect, k-ary drops to zero.
    split = split_accuracy(
        teacher_forced_value_correct(labels_oracle(graphs, cats["kary"]), graphs, batch_size=len(graphs)), cats
    )
    assert split["leaf"] == split["copy"] == 1.0 and split["kary"] == 0.0
    expected_far = float((cats["far"] & cats["copy"]).sum()) / float(cats["far"].sum())
    assert split["far"] == pytest.approx(expected_far)
    bins = [k for k in split if k.startswith("dist_")]
    assert bins and all(split["copy_" + k] == 1.0 for k in bins if "copy_" + k in split)
    assert all(v == 0.0 for k, v in split.items() if k.startswith("kary_dist_"))
    assert any(k.startswith("kary_dist_") for k in split)
    assert node_skill_accuracy(labels_oracle(graphs), graphs[:40], 5)["kary"] == 1.0


def test_iteration_roles_separate_keeping_solving_and_waiting(graphs):
    def rates(value_logits):
        rows = iteration_role_accuracy(value_logits, graphs, batch_size=len(graphs))
        assert len(rows) == int(graphs.depth.max()) + 2
        return [{role: hits / count for role, (hits, count) in row.items() if count} for row in rows]

    oracle = OracleModel(graphs)  # the next teacher state: every role right at every iteration
    assert all(set(r.values()) == {1.0} for r in rates(lambda x: oracle(x)[VALUE]))
    # Writing every final value at once keeps and solves, but never waits.
    assert all(r.get("keep", 1.0) == r.get("solve", 1.0) == 1.0 and r.get("wait", 0.0) == 0.0 for r in rates(labels_oracle(graphs)))
    # Copying the input keeps and waits, but solves nothing.
    size = graphs.vocab.sizes[VALUE]
    copy = lambda x: torch.nn.functional.one_hot(x[..., VALUE], size).float()  # noqa: E731
    assert all(r.get("keep", 1.0) == r.get("wait", 1.0) == 1.0 and r.get("solve", 0.0) == 0.0 for r in rates(copy))


def test_constant_answer_graphs():
    vocab = CONFIG.vocab()
    ds = generate_dataset(CONFIG, 6, seed=3)
    labels, depth = ds.labels.clone(), ds.depth
    rhs = depth >= 0
    labels[0, :, VALUE] = torch.where(rhs[0], 0, labels[0, :, VALUE])  # all nodes 0
    labels[1, :, VALUE] = torch.where(rhs[1], 3, labels[1, :, VALUE])  # all nodes 3
    values = labels[2, :, VALUE].clone()
    first = int(rhs[2].nonzero()[0])
    labels[2, :, VALUE] = torch.where(rhs[2], 1, values)
    labels[2, first, VALUE] = 2  # one node differs
    trivial, value = constant_answer_graphs(labels[:3], depth[:3])
    assert trivial.tolist() == [True, True, False] and value.tolist() == [0, 3, -1]
    assert vocab.sizes[VALUE] > 3


def test_evaluator_reports_the_floor_and_nontrivial_accuracy(graphs):
    trivial, value = constant_answer_graphs(graphs.labels, graphs.depth)
    counts = torch.bincount(value[trivial], minlength=CONFIG.mod_val)
    assert trivial.any() and not trivial.all(), "the fixture must hold both kinds of graphs"
    result = Evaluator(OracleModel(graphs), EvalSettings(batch_size=7), torch.device("cpu")).evaluate(graphs)
    assert result["constant_answer_floor"] == pytest.approx(float(counts.max()) / len(graphs))
    assert result["fully_solved_nontrivial"] == 1.0
    # An oracle wrong on one node of a non-trivial graph loses exactly that graph among the non-trivial.
    i = int((~trivial).nonzero()[0])
    pos = int((graphs.depth[i] >= 0).nonzero()[-1])
    result = Evaluator(OracleModel(graphs, wrong=[(i, pos)]), EvalSettings(batch_size=7), torch.device("cpu")).evaluate(graphs)
    assert result["fully_solved_nontrivial"] == pytest.approx(1 - 1 / int((~trivial).sum()))
