"""The trainer (docs/method.md §4–§5): corruption, losses, padding modes, schedule, checkpoints, resume."""

import functools
import glob
import json
import math
import os
import re

import pytest
import torch
import torch.nn.functional as F
from _stats import binomial_bounds

from fastrecur.backends import ReferenceBackend
from fastrecur.config import RunConfig
from fastrecur.errors import ConfigError
from fastrecur.data import SYN_PAD, SYNTAX, VALUE, DagConfig, generate_dataset, teacher_states
from fastrecur.model import ModelConfig, RecurrentTransformer
from fastrecur.checkpoint import load_checkpoint
from fastrecur.train import Trainer, lr_multiplier
from fastrecur_kernels.reference import corrupt_values_reference, corruption_candidates_reference

# fastrecur's factor layout, as the reference backend passes it
corrupt_values = functools.partial(corrupt_values_reference, value_factor=VALUE)

GRAPHS = dict(num_nodes=8, num_leaf_nodes=3, min_fan_in=1, max_fan_in=3, max_depth=4, func_vocab=["ADD"], mod_val=5, num_vars=8, max_length=64)


def small_config(tmp_path, **train) -> RunConfig:
    vocab_sizes = DagConfig(**GRAPHS).vocab().sizes
    return RunConfig.from_dict(
        {
            "data": {"train": dict(GRAPHS)},
            "model": {"vocab_sizes": list(vocab_sizes), "hidden_size": 16, "num_layers": 1, "num_heads": 2, "relpos_window": 8, "relpos_embed_size": 8},
            "train": {"batch_size": 4, "steps": 8, "log_every": 1, "ckpt_every": 0, "out_dir": str(tmp_path), **train},
        }
    )


@pytest.fixture(scope="module")
def graphs():
    return generate_dataset(DagConfig(**{**GRAPHS, "num_vars": 12}), 16, seed=3)


# --- error correction -------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["last", "previous", "random"])
def test_corruption_candidates_follow_each_strategy(graphs, strategy):
    depth = graphs.depth
    K = int(depth.max()) + 1
    cand = corruption_candidates_reference(depth, K, strategy)
    for k in range(K):
        want = {"last": depth == k, "previous": depth == k - 1, "random": (depth <= k)}[strategy] & (depth >= 0)
        assert torch.equal(cand[k], want)
    inputs, _ = teacher_states(graphs.tokens, graphs.labels, depth, K)
    out, mask = corrupt_values(inputs, depth, strategy=strategy, token_prob=1.0, value_vocab_size=7, generator=torch.Generator().manual_seed(0))
    assert torch.equal(mask, cand)  # token_prob = 1: every candidate, nothing else
    assert torch.equal(out[..., :VALUE], inputs[..., :VALUE]) and torch.equal(out[..., VALUE + 1 :], inputs[..., VALUE + 1 :])
    assert torch.equal(out[..., VALUE][~mask], inputs[..., VALUE][~mask])
    assert out[..., VALUE][mask].min() >= 0 and out[..., VALUE][mask].max() <= 6


def test_corruption_rates_and_replacement_distribution(graphs):
    depth = graphs.depth.repeat(20, 1)
    K = int(depth.max()) + 1
    inputs = torch.zeros(K, *depth.shape, 6, dtype=torch.long)
    _, mask = corrupt_values(inputs, depth, strategy="random", token_prob=0.3, value_vocab_size=7, generator=torch.Generator().manual_seed(1))
    n = int(corruption_candidates_reference(depth, K, "random").sum())
    lo, hi = binomial_bounds(n, 0.3)
    assert lo <= int(mask.sum()) <= hi
    out, mask = corrupt_values(inputs, depth, strategy="random", token_prob=1.0, value_vocab_size=7, generator=torch.Generator().manual_seed(2))
    counts = torch.bincount(out[..., VALUE][mask], minlength=7)
    lo, hi = binomial_bounds(n, 1 / 7)
    assert all(lo <= c <= hi for c in counts.tolist())  # uniform over the whole VALUE vocabulary, N/A and EMPTY included


def test_targets_are_never_corrupted(graphs):
    K = int(graphs.depth.max()) + 1
    tb = ReferenceBackend().teacher_batch(
        graphs.tokens, graphs.labels, graphs.depth, K, corrupt=True, strategy="random", token_prob=1.0, value_vocab_size=7, generator=torch.Generator()
    )
    _, clean_targets = teacher_states(graphs.tokens, graphs.labels, graphs.depth, K)
    assert torch.equal(tb.targets, clean_targets) and tb.corrupted.any()


# --- losses and padding -----------------------------------------------------------------------


def tiny_model(vocab_sizes, seed=0):
    torch.manual_seed(seed)
    return RecurrentTransformer(ModelConfig(vocab_sizes=vocab_sizes, hidden_size=16, num_layers=1, num_heads=2, relpos_window=8, relpos_embed_size=8)).eval()


def test_faithful_loss_is_the_authors_mean_over_every_position(graphs):
    model = tiny_model(graphs.vocab.sizes)
    inputs, targets = (t.flatten(0, 1) for t in teacher_states(graphs.tokens, graphs.labels, graphs.depth, 3))
    weights = (1.0, 1.0, 1.0, 1.0, 0.0, 0.0)
    out = ReferenceBackend().loss(model, inputs, targets, weights, None)
    logits = model(inputs)
    want = sum(F.cross_entropy(logits[f].flatten(0, 1), targets[..., f].flatten()) for f in range(4))
    torch.testing.assert_close(out.total, want)
    assert out.correct.shape == inputs.shape


def test_trim_loss_averages_real_tokens_only(graphs):
    model = tiny_model(graphs.vocab.sizes)
    inputs, targets = (t.flatten(0, 1) for t in teacher_states(graphs.tokens, graphs.labels, graphs.depth, 2))
    mask = inputs[..., SYNTAX] != SYN_PAD
    weights = (1.0, 0.5, 0.0, 2.0, 0.0, 0.0)
    out = ReferenceBackend().loss(model, inputs, targets, weights, mask)
    logits = model(inputs)
    want = sum(w * F.cross_entropy(logits[f][mask], targets[..., f][mask]) for f, w in enumerate(weights))
    torch.testing.assert_close(out.total, torch.as_tensor(want))


def test_trimming_trailing_pads_leaves_real_outputs_unchanged(graphs):
    model = tiny_model(graphs.vocab.sizes)
    keep = int(graphs.lengths.max())
    full = model(graphs.tokens)
    trimmed = model(graphs.tokens[:, :keep])
    for a, b in zip(full, trimmed):
        torch.testing.assert_close(a[:, :keep], b, rtol=1e-5, atol=1e-5)


# --- schedule ---------------------------------------------------------------------------------


def test_cosine_schedule_really_steps(tmp_path):
    cfg = small_config(tmp_path, schedule="cosine", warmup_steps=2, steps=6, lr=0.01, min_lr=0.001)
    trainer = Trainer(cfg, show_progress=False)
    trainer.fit()
    lrs = [r["lr"] for r in trainer.state.history]
    want = [0.01 * lr_multiplier(s, cfg.train) for s in range(1, 7)]
    assert lrs == pytest.approx(want)
    assert lrs[1] == pytest.approx(0.01) and lrs[-1] == pytest.approx(0.001)


def test_extra_iterations_supervise_the_solved_state_as_a_fixed_point(tmp_path):
    """``train.extra_iterations=1``: one more teacher iteration per batch, whose input and target are
    both the solved state — also for the deepest graph, which D + 1 iterations never show solved."""
    base = Trainer(small_config(tmp_path / "a"), show_progress=False)
    extra = Trainer(small_config(tmp_path / "b", extra_iterations=1), show_progress=False)
    batch = next(base.batches())
    sb, sx = base.prepare(batch), extra.prepare(batch)
    deepest = int(batch.depth.max())
    assert sb.num_iters == deepest + 1 and sx.num_iters == deepest + 2
    tb = extra.backend.teacher_batch(sx.tokens, sx.labels, sx.depth, sx.num_iters, corrupt=False, strategy="last",
                                     token_prob=0.0, value_vocab_size=extra.vocab.sizes[VALUE], generator=None)
    solved = tb.targets[deepest]  # S_{D+1}: every slot solved
    assert torch.equal(tb.inputs[-1], solved) and torch.equal(tb.targets[-1], solved)
    assert not torch.equal(tb.inputs[deepest], solved)  # what D + 1 iterations end on: not yet solved
    with pytest.raises(ConfigError, match="extra_iterations"):
        small_config(tmp_path / "c", extra_iterations=-1).validate()


# --- checkpoints and resume -------------------------------------------------------------------


def losses(history):
    return [(r["step"], r["loss"]) for r in history if "loss" in r]


def test_resumed_run_equals_uninterrupted_run(tmp_path):
    common = dict(steps=8, schedule="cosine", warmup_steps=3, corruption={"enable": True, "step_prob": 0.5, "token_prob": 0.5})
    model_dropout = {"attn_dropout": 0.1, "resid_dropout": 0.1}

    def config(out, **train):
        cfg = small_config(out, **{**common, **train})
        cfg.model = cfg.model.replace(**model_dropout)
        return cfg

    straight = Trainer(config(tmp_path / "a"), show_progress=False)
    straight.fit()

    first = Trainer(config(tmp_path / "b", steps=3), show_progress=False)
    first.fit()
    resumed = Trainer(config(tmp_path / "b"), resume=first.checkpoint_path, show_progress=False)
    resumed.fit()

    assert losses(first.state.history) + losses(resumed.state.history) == losses(straight.state.history)
    for a, b in zip(straight.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)


def test_init_from_starts_from_the_weights_only(tmp_path):
    """train.init_from (fine-tuning): step 0 holds the source's weights, under a model setting that
    holds no weights (log-length scaling); the step count and optimizer start fresh; a checkpoint of
    another shape and a missing file are refused by name."""
    source = Trainer(small_config(tmp_path / "source", steps=3), show_progress=False)
    source.fit()
    cfg = small_config(tmp_path / "tuned", steps=2, init_from=source.checkpoint_path)
    cfg.model = cfg.model.replace(length_scaling=4)
    tuned = Trainer(cfg, show_progress=False)
    assert tuned.state.step == 0 and not tuned.optimizer.state
    for a, b in zip(source.model.state_dict().values(), tuned.model.state_dict().values()):
        assert torch.equal(a, b)
    tuned.fit()
    assert tuned.state.step == 2 and load_checkpoint(tuned.checkpoint_path)["config"]["model"]["length_scaling"] == 4
    wider = small_config(tmp_path / "wider", init_from=source.checkpoint_path)
    wider.model = wider.model.replace(hidden_size=2 * wider.model.hidden_size)
    with pytest.raises(ConfigError, match="init_from.*do not fit"):
        Trainer(wider, show_progress=False)
    with pytest.raises(Exception, match="not found"):
        Trainer(small_config(tmp_path / "missing", init_from=str(tmp_path / "nothing.pt")), show_progress=False)


def test_checkpoint_survives_an_interrupted_save(tmp_path, monkeypatch):
    trainer = Trainer(small_config(tmp_path, steps=2), show_progress=False)
    trainer.fit()
    path = trainer.checkpoint_path
    before = load_checkpoint(path)

    def crash_midway(obj, f, *args, **kwargs):
        f.write(b"partial bytes of a checkpoint")
        raise KeyboardInterrupt  # e.g. Ctrl-C during the write

    monkeypatch.setattr(torch, "save", crash_midway)
    trainer.state.step = 99
    with pytest.raises(KeyboardInterrupt):
        trainer.save_checkpoint()
    monkeypatch.undo()
    after = load_checkpoint(path)
    assert after["step"] == before["step"] == 2
    assert not glob.glob(os.path.join(tmp_path, ".*.tmp"))  # no debris left behind


def test_checkpoint_holds_everything_needed(tmp_path):
    trainer = Trainer(small_config(tmp_path, steps=2), show_progress=False)
    trainer.fit()
    ckpt = load_checkpoint(trainer.checkpoint_path)
    assert {"model", "optimizer", "scheduler", "rng", "step", "config"} <= set(ckpt)
    assert set(ckpt["rng"]) >= {"torch", "corruption", "numpy", "python"}
    assert RunConfig.from_dict(ckpt["config"]).train.steps == 2


def test_periodic_checkpoints_record_the_training_time_so_far(tmp_path, monkeypatch):
    # A long run is usually killed, not interrupted: its last periodic checkpoint must still say how
    # long it trained, and a resumed run must add to that time, not start it again from zero.
    saved = []
    trainer = Trainer(small_config(tmp_path, steps=4, ckpt_every=2), show_progress=False)
    monkeypatch.setattr(trainer, "save_checkpoint", lambda **kw: saved.append((trainer.state.step, trainer.state.train_time_s)))
    trainer.fit()
    (step_2, time_2), (step_4, time_4) = saved[0], saved[1]
    assert (step_2, step_4) == (2, 4) and 0 < time_2 < time_4
    monkeypatch.undo()
    trainer.save_checkpoint()
    resumed = Trainer(small_config(tmp_path, steps=6), resume=trainer.checkpoint_path, show_progress=False)
    assert resumed.state.train_time_s == pytest.approx(trainer.state.train_time_s)
    resumed.fit()
    assert resumed.state.train_time_s > trainer.state.train_time_s


def test_not_a_checkpoint(tmp_path):
    from fastrecur.errors import FastrecurError

    bad = tmp_path / "x.pt"
    torch.save({"state_dict": {}}, bad)
    with pytest.raises(FastrecurError, match="not a fastrecur training checkpoint"):
        load_checkpoint(str(bad))
    with pytest.raises(FastrecurError, match="not found"):
        load_checkpoint(str(tmp_path / "missing.pt"))


# --- learning ---------------------------------------------------------------------------------


def learning_config(tmp_path, graphs: dict, model: dict, train: dict) -> RunConfig:
    """A learning test's run: ADD graphs mod 3 of depth ≤ 2, no dropout, 4 heads, cosine AdamW with
    clipping 0.3, 32 graphs per step, no checkpoints; ``graphs``/``model``/``train`` add the rest."""
    return RunConfig.from_dict(
        {
            "data": {"train": {"min_fan_in": 1, "max_depth": 2, "func_vocab": ["ADD"], "mod_val": 3, **graphs}},
            "model": {"num_heads": 4, "attn_dropout": 0.0, "resid_dropout": 0.0, **model},
            "train": {"batch_size": 32, "schedule": "cosine", "min_lr": 0.0003, "grad_clip": 0.3, "log_every": 100,
                      "length_multiple": 8, "ckpt_every": 0, "out_dir": str(tmp_path), **train},
        }
    )  # fmt: skip


@pytest.mark.slow
def test_tiny_model_learns_a_tiny_task(tmp_path):
    """4-node ADD graphs mod 3: a 3-layer model solves most graphs completely within ~600 steps."""
    from fastrecur.evaluate import Evaluator
    from fastrecur.sweep import in_distribution_dataset

    cfg = learning_config(
        tmp_path,
        graphs=dict(num_nodes=4, num_leaf_nodes=2, max_fan_in=2, num_vars=4, max_length=24),
        model=dict(vocab_sizes=[7, 5, 2, 5, 2, 2], hidden_size=32, num_layers=3, relpos_window=16, relpos_embed_size=16),
        train=dict(steps=600, lr=0.01, warmup_steps=50),
    )
    trainer = Trainer(cfg, show_progress=False)
    graphs = in_distribution_dataset(cfg, 512)
    evaluator = Evaluator(trainer.model, cfg.eval, torch.device("cpu"))
    before = evaluator.evaluate(graphs)["fully_solved"]
    trainer.fit()
    after = evaluator.evaluate(graphs)
    assert before < 0.05
    assert after["fully_solved"] > 0.7 and after["value_acc"] > 0.9, after


@pytest.mark.slow
def test_name_lookup_forms_beyond_the_position_window(tmp_path):
    """The skill behind generalization (docs/learning.md): with a relative-position window of 5, every
    operand's definition lies beyond the window, so a model can only solve copy graphs (each node
    ``x = y``; 4 leaves, 12 names) by finding the definition by name. The demo's model and optimizer
    learn that lookup within 800 steps: from chance to ≥ 95 % of held-out graphs completely solved,
    with ≥ 98 % teacher-forced accuracy on copy nodes (measured: 100 % and 100 % at seed 0)."""
    from fastrecur.data import VALUE
    from fastrecur.diagnostics import node_skill_accuracy
    from fastrecur.evaluate import Evaluator
    from fastrecur.sweep import in_distribution_dataset

    torch.manual_seed(0)
    cfg = learning_config(
        tmp_path,
        graphs=dict(num_nodes=6, num_leaf_nodes=4, max_fan_in=1, num_vars=12, max_length=40),
        model=dict(vocab_sizes=[7, 13, 2, 5, 2, 2], hidden_size=64, num_layers=4, relpos_window=5, relpos_embed_size=32),
        train=dict(steps=800, lr=0.003, warmup_steps=100),
    )
    trainer = Trainer(cfg, show_progress=False)
    graphs = in_distribution_dataset(cfg, 256)
    evaluator = Evaluator(trainer.model, cfg.eval, torch.device("cpu"))
    before = evaluator.evaluate(graphs)["fully_solved_nontrivial"]
    trainer.fit()
    trainer.model.eval()
    after = evaluator.evaluate(graphs)
    skills = node_skill_accuracy(lambda x: trainer.model(x)[VALUE], graphs, cfg.model.relpos_window)
    assert before < 0.2, before
    assert skills["copy_far"] >= 0.98, skills
    assert after["fully_solved"] >= 0.95, after


def test_training_from_the_authors_file(tmp_path, upstream_fixture_dir):
    """data.source=files reads their .pt (vocabulary from the vocab.json beside it), epochs reshuffled."""
    path = os.path.join(upstream_fixture_dir, "train_data.pt")
    cfg = small_config(tmp_path, steps=3, batch_size=16)
    cfg.data.source, cfg.data.train_file = "files", path
    cfg.model = cfg.model.replace(vocab_sizes=(7, 129, 2, 25, 2, 2), relpos_window=64)
    trainer = Trainer(cfg.validate(), show_progress=False)
    state = trainer.fit()
    assert state.step == 3 and all(math.isfinite(r["loss"]) for r in state.history)
    # two steps per epoch over 32 graphs: steps 0 and 2 start epochs 0 and 1 with different orders
    from fastrecur.batches import training_batches

    batches = training_batches(cfg.data, 16, seed=0)
    e0a, e0b, e1a = next(batches), next(batches), next(batches)
    seen = {tuple(x.flatten().tolist()) for x in torch.cat([e0a.labels, e0b.labels])}
    assert len(seen) == 32  # one epoch covers the file once
    assert not torch.equal(e1a.labels, e0a.labels)


# --- divergence -------------------------------------------------------------------------------


def diverging_run(tmp_path, **train) -> list[str]:
    """CLI arguments of a run whose learning rate makes the loss NaN within a few steps."""
    settings = dict(lr=1000000.0, grad_clip="null", steps=40, time_limit_s="null", batch_size=4, **train)
    model = dict(hidden_size=16, num_layers=1, num_heads=2, relpos_embed_size=8)
    overrides = [f"train.{k}={v}" for k, v in settings.items()] + [f"model.{k}={v}" for k, v in model.items()]
    return ["train", "tiny", *overrides, "--out", str(tmp_path), "--no-progress"]


def test_a_diverging_run_stops_before_saving_nan_weights(tmp_path, capsys):
    from fastrecur.cli import main

    assert main(diverging_run(tmp_path, ckpt_every=1, log_every=5)) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    match = re.match(r"fastrecur train: error: training diverged: at step (\d+) the loss\b.* NaN or infinite", err)
    assert match, err
    assert str(tmp_path / "checkpoint.pt") in err and "left as it was" in err
    ckpt = load_checkpoint(str(tmp_path / "checkpoint.pt"))  # the last good checkpoint
    assert 0 < ckpt["step"] < int(match.group(1))
    assert all(torch.isfinite(w).all() for w in ckpt["model"].values())


def test_divergence_is_caught_when_the_metrics_are_logged(tmp_path, capsys):
    """Without a save in between, the logged step that brings the losses to the host stops the run."""
    from fastrecur.cli import main

    assert main(diverging_run(tmp_path, ckpt_every=1000, log_every=1)) == 2
    first_bad = int(re.search(r"at step (\d+)", capsys.readouterr().err).group(1))
    logged = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
    assert logged[-1]["step"] == first_bad and logged[-1]["loss"] is None  # NaN is written as null
    assert all(math.isfinite(r["loss"]) for r in logged[:-1])
    assert not os.path.exists(tmp_path / "checkpoint.pt")  # nothing was ever good enough to save


def test_demo_sweeps_both_shipped_models(tmp_path, capsys):
    from fastrecur.commands.demo import _sweep_pretrained

    _sweep_pretrained(torch.device("cpu"), show_progress=False, num_graphs=4, sizes=[8, 16], out_root=str(tmp_path))
    out = capsys.readouterr().out
    assert "shipped model 'pretrained-cpu' (trained 40000 steps on the CPU, the authors' model" in out
    assert "shipped model 'pretrained-cpu-scaled' (fine-tuned 3000 steps" in out and "L0 = 16 tokens trained in" in out
    authors = json.load(open(tmp_path / "pretrained-cpu" / "sweep" / "sweep.json"))["results"]
    scaled = json.load(open(tmp_path / "pretrained-cpu-scaled" / "sweep" / "sweep.json"))["results"]
    assert [r["num_nodes"] for r in authors] == [r["num_nodes"] for r in scaled] == [8, 16]
    assert authors[0]["length_scaling"] == 0 and scaled[0]["length_scaling"] == 16
    assert out.count("sweep: ") == 2  # each shipped model's sweep time


def test_demo_command_prints_the_table_floors_and_verdict(tmp_path, capsys):
    """The demo end to end at smoke size: training, the in-distribution line, the sweep table with
    the non-trivial and floor columns, the verdict line, and --threads checked."""
    from fastrecur.cli import main

    args = ["demo", "--out", str(tmp_path), "--no-progress", "--no-pretrained", "--threads", "1",
            "train.steps=12", "train.log_every=4", "sweep.sizes=[6,12]", "sweep.num_graphs=16"]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "trained 12 steps" in out and "in distribution (16 fresh graphs" in out
    assert "non-trivial" in out and "floor" in out and "generalization: in distribution ≥ 99 %:" in out
    assert "n = 12 ≥ 95 %: NOT met" in out  # twice the demo's 6-node training graphs, after 12 steps
    assert "evaluation and sweep: " in out and "total time " in out
    assert (tmp_path / "sweep" / "sweep.json").is_file()
    assert main(["demo", "--out", str(tmp_path / "x"), "--threads", "0"]) != 0
