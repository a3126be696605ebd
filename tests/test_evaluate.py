"""The closed-loop evaluator (docs/method.md §6): policies, halting, metrics, sweep outputs."""

import json
import os

import pytest
import torch
from _oracle import OracleModel

from fastrecur.config import EvalSettings
from fastrecur.data import DagConfig, generate_dataset, input_depth
from fastrecur.evaluate import Evaluator
from fastrecur.sweep import format_table, write_sweep

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def graphs():
    cfg = DagConfig(num_nodes=10, num_leaf_nodes=3, max_depth=10, mod_val=7, num_vars=16, max_length=72)
    return generate_dataset(cfg, 24, seed=5)


def evaluate(model, ds, **settings):
    return Evaluator(model, EvalSettings(batch_size=7, **settings), CPU).evaluate(ds)


def test_perfect_model_scores_100_percent(graphs):
    result = evaluate(OracleModel(graphs), graphs)
    assert result["fully_solved"] == 1.0 and result["value_acc"] == 1.0
    assert result["factor_acc"] == [1.0, 1.0, 1.0, 1.0]
    assert all(v == 1.0 for v in result["value_acc_by_depth"].values())
    # depth+2: max depth D of the set, D + 2 iterations, and the last ones leave the state alone
    D = int(graphs.depth.max())
    assert result["iterations"]["budget"] == D + 2 and len(result["per_iteration"]["fully_solved"]) == D + 2
    assert result["per_iteration"]["fully_solved"][-1] == 1.0
    assert all(m == 1.0 for m in result["per_iteration"]["teacher_match"])  # one level per iteration


def test_one_wrong_value_is_one_unsolved_graph(graphs):
    rhs = (graphs.depth[4] >= 0).nonzero().flatten()
    result = evaluate(OracleModel(graphs, wrong=[(4, int(rhs[-1]))]), graphs)
    assert result["fully_solved"] == pytest.approx(23 / 24)
    assert result["value_acc"] == pytest.approx(1 - 1 / int((graphs.depth >= 0).sum()))


def test_per_iteration_accuracy_climbs_with_depth(graphs):
    result = evaluate(OracleModel(graphs), graphs)
    depths = graphs.depth.max(dim=1).values
    for t, solved in enumerate(result["per_iteration"]["fully_solved"]):
        # after t+1 iterations exactly the graphs of depth <= t are solved
        assert solved == pytest.approx(float((depths <= t).float().mean()))


def test_fixed_point_halts_each_sample_at_the_right_iteration(graphs):
    model = OracleModel(graphs)
    ev = Evaluator(model, EvalSettings(policy="fixed-point", max_iters=30, batch_size=24), CPU)
    ev.step = ev._stepper(graphs)
    final, states, used = ev._rollout(graphs, 30)
    depths = graphs.depth.max(dim=1).values
    # depth d: solved by iteration d+1, the iteration d+2 changes nothing and stops it
    assert torch.equal(used, depths + 2)
    assert torch.equal(final[..., :4], graphs.labels[:, : final.shape[1], :4])
    result = ev.evaluate(graphs)
    assert result["fully_solved"] == 1.0
    assert result["iterations"]["mean"] == pytest.approx(float((depths + 2).float().mean()))
    assert result["iterations"]["max"] == int(depths.max()) + 2


def test_fixed_point_saves_compute(graphs):
    calls = []
    model = OracleModel(graphs)
    forward = model.forward
    model.forward = lambda x: calls.append(x.shape[0]) or forward(x)
    Evaluator(model, EvalSettings(policy="fixed-point", max_iters=30, batch_size=24), CPU).evaluate(graphs)
    depths = graphs.depth.max(dim=1).values
    assert sum(calls) == int((depths + 2).sum())  # finished samples left the batch


def test_fixed_policy_runs_exactly_n(graphs):
    result = evaluate(OracleModel(graphs), graphs, policy="fixed", fixed_iters=2)
    depths = graphs.depth.max(dim=1).values
    assert result["iterations"]["max"] == 2
    assert result["fully_solved"] == pytest.approx(float((depths <= 1).float().mean()))


def test_iteration_counts_never_read_labels(graphs):
    budget = evaluate(OracleModel(graphs), graphs)["iterations"]["budget"]
    tampered = graphs[:]
    tampered.info = tampered.info.clone()  # a slice shares storage: leave the module's fixture intact
    tampered.info[..., 0] = 40  # nonsense depths in the label info
    assert int(input_depth(tampered.tokens, tampered.vocab).max()) + 2 == budget


def test_vocabulary_mismatch_is_a_clear_error(graphs):
    from fastrecur.errors import ConfigError
    from fastrecur.model import ModelConfig, RecurrentTransformer

    model = RecurrentTransformer(ModelConfig(vocab_sizes=(7, 129, 2, 25, 2, 2), hidden_size=16, num_heads=2, num_layers=1))
    with pytest.raises(ConfigError, match="vocabulary sizes"):
        evaluate(model, graphs)


def test_results_name_the_length_scaling_in_effect(graphs):
    """A model trained with log-length scaling runs with its own L0 unless the evaluation names another;
    the result records the one in effect (0: none)."""
    from fastrecur.model import ModelConfig, RecurrentTransformer

    cfg = ModelConfig(vocab_sizes=tuple(graphs.vocab.sizes), hidden_size=16, num_heads=2, num_layers=1, relpos_window=8, relpos_embed_size=8)
    assert evaluate(RecurrentTransformer(cfg), graphs)["length_scaling"] == 0
    assert evaluate(RecurrentTransformer(cfg), graphs, length_scaling=40)["length_scaling"] == 40
    trained_in = RecurrentTransformer(cfg.replace(length_scaling=8))
    assert evaluate(trained_in, graphs)["length_scaling"] == 8
    assert evaluate(trained_in, graphs, length_scaling=40)["length_scaling"] == 40


def test_sweep_outputs(tmp_path, graphs):
    result = {"num_nodes": 10, **evaluate(OracleModel(graphs), graphs)}
    paths = write_sweep([result, {**result, "num_nodes": 12}], str(tmp_path), train_size=10)
    for p in paths.values():
        assert os.path.getsize(p) > 0
    assert json.load(open(paths["json"]))["results"][0]["fully_solved"] == 1.0
    assert open(paths["csv"]).readline().startswith("num_nodes,num_graphs,fully_solved")
    assert "← training size" in format_table([result], 10)


def test_bucketed_steps_pad_without_changing_real_outputs(graphs):
    """The CUDA-graph stepper's bucketing and padding, run eagerly (capture needs a GPU)."""
    from fastrecur.backends import ReferenceBackend
    from fastrecur.cudagraphs import BucketedGraphStep
    from fastrecur.model import ModelConfig, RecurrentTransformer

    torch.manual_seed(0)
    model = RecurrentTransformer(ModelConfig(vocab_sizes=graphs.vocab.sizes, hidden_size=16, num_heads=2, num_layers=1, relpos_window=8, relpos_embed_size=8)).eval()
    plain = lambda x: ReferenceBackend().decode_step(model, x)  # noqa: E731
    bucketed = BucketedGraphStep(plain, graphs.vocab.pad_token, width_multiple=32, capture=False)
    assert bucketed.bucket(5, 33) == (8, 64) and bucketed.bucket(9, 64) == (16, 64)
    for rows, width in [(5, 40), (3, 61), (7, 40)]:
        x = graphs.tokens[:rows, :width]
        assert torch.equal(bucketed(x), plain(x))
    assert set(bucketed.graphs) == {(8, 64)}  # one bucket served all three shapes


def test_authors_validation_file_scores_100_percent_with_a_perfect_model(upstream_fixture_dir):
    from fastrecur.compat import load_upstream_dataset

    ds = load_upstream_dataset(os.path.join(upstream_fixture_dir, "val_data.pt"), os.path.join(upstream_fixture_dir, "vocab.json"))
    result = Evaluator(OracleModel(ds), EvalSettings(batch_size=4), CPU).evaluate(ds)
    assert result["num_graphs"] == 8 and result["fully_solved"] == 1.0
    assert result["iterations"]["budget"] == int(ds.depth.max()) + 2  # depth read from the inputs


def test_cpu_batches_keep_score_tensors_small_without_changing_results(graphs, monkeypatch):
    """On the CPU the evaluator splits eval.batch_size so that one [B, H, L, L] float32 score tensor
    stays within MAX_SCORE_BYTES (fastrecur/host_memory.py); graphs are independent, so a random
    model scores exactly the same however the set is split."""
    import fastrecur.evaluate as evaluate_module
    from fastrecur.model import ModelConfig, RecurrentTransformer

    torch.manual_seed(0)
    model = RecurrentTransformer(ModelConfig(vocab_sizes=graphs.vocab.sizes, hidden_size=32, num_heads=4, num_layers=2))
    L = int(graphs.lengths.max())
    whole = Evaluator(model, EvalSettings(batch_size=24), CPU)
    assert whole._rows_per_batch(L) == 24  # 24 × 4 × 72² × 4 bytes is far below 32 MiB
    before = whole.evaluate(graphs)
    monkeypatch.setattr(evaluate_module, "MAX_SCORE_BYTES", 5 * 4 * 4 * L * L)  # room for 5 graphs
    split = Evaluator(model, EvalSettings(batch_size=24), CPU)
    assert split._rows_per_batch(L) == 5 and split._rows_per_batch(4 * L) == 1
    calls = []
    forward = model.forward
    model.forward = lambda x, **kw: calls.append(x.shape[0]) or forward(x, **kw)
    after = split.evaluate(graphs)
    assert max(calls) == 5
    assert 0.0 < before["value_acc"] < 1.0  # a random model: the comparison below can fail
    assert after == before


def test_freed_host_memory_is_kept_on_linux():
    import platform
    import sys

    from fastrecur.host_memory import keep_freed_host_memory

    applied = keep_freed_host_memory()
    if sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc":
        assert applied is True
    assert keep_freed_host_memory() is applied  # idempotent
