"""The paper's other arms (docs/method.md §10): BPTT through the continuous recurrence and its
truncation, final-state supervision, the feedforward and RoPE baselines, their config switches."""

import pytest
import torch

from fastrecur.backends import ReferenceBackend
from fastrecur.config import RunConfig
from fastrecur.data import DagConfig, generate_dataset, teacher_states
from fastrecur.errors import ConfigError
from fastrecur.evaluate import make_evaluator
from fastrecur.model import ModelConfig, RecurrentTransformer, rotate
from fastrecur.objectives import unrolled_loss
from fastrecur.recurrence import ContinuousRecurrence, rollout_continuous, unroll_continuous
from fastrecur.train import Trainer

GRAPHS = dict(num_nodes=5, num_leaf_nodes=2, min_fan_in=1, max_fan_in=2, max_depth=3, func_vocab=["ADD"], mod_val=3, num_vars=6, max_length=32)
SIZES = list(DagConfig(**GRAPHS).vocab().sizes)
TINY_MODEL = {"vocab_sizes": SIZES, "hidden_size": 8, "num_layers": 1, "num_heads": 1, "relpos_window": 4, "relpos_embed_size": 4, "attn_dropout": 0.0, "resid_dropout": 0.0}
CONTINUOUS = {"latent": "continuous", "corruption": {"enable": False}}


def config(tmp_path, model=None, **train) -> RunConfig:
    return RunConfig.from_dict(
        {
            "data": {"train": dict(GRAPHS)},
            "model": {**TINY_MODEL, **(model or {})},
            "train": {"batch_size": 3, "steps": 2, "log_every": 1, "ckpt_every": 0, "out_dir": str(tmp_path), **train},
            "eval": {"batch_size": 4},
        }
    )


def float64_trainer(tmp_path, **train) -> Trainer:
    trainer = Trainer(config(tmp_path, **train), show_progress=False)
    trainer.model.double()  # in place: the optimizer and the recurrence wrapper hold the same parameters
    return trainer


def first_batch(trainer: Trainer):
    return trainer.prepare(next(trainer.batches()))


def checked_parameters(model: RecurrentTransformer) -> tuple:
    """One input-side, one inside-the-loop and one output-side parameter."""
    return (model.token_embedder.embeddings[3].weight, model.transformer.blocks["layer_0"].attn.q_proj.weight, model.output_layers[3].weight)


# --- BPTT through the continuous recurrence -----------------------------------------------------


def test_bptt_gradients_pass_gradcheck_of_the_unrolled_loop(tmp_path):
    """The trainer's loss for train.latent=continuous is Σ_k CE(heads(h_k), S_{k+1}) with h_k unrolled
    from the input; its autograd gradient must match finite differences of that loss (float64)."""
    trainer = float64_trainer(tmp_path, **CONTINUOUS)
    sb = first_batch(trainer)
    assert sb.num_iters >= 3  # the gradient crosses several iterations
    params = checked_parameters(trainer.model)
    assert torch.autograd.gradcheck(lambda *p: trainer._unrolled(sb)["total"], params, eps=1e-6, atol=1e-5)


def test_truncation_cuts_the_graph_every_T_iterations(tmp_path):
    """With truncation T the gradient is that of the loss in which h_T, h_2T, … are constants (checked
    by finite differences), and finite differences of the true loss disagree with it."""
    T = 1
    trainer = float64_trainer(tmp_path, **CONTINUOUS, bptt_truncation=T)
    sb = first_batch(trainer)
    model, K = trainer.model, sb.num_iters
    _, targets = teacher_states(sb.tokens, sb.labels, sb.depth, K)
    params = checked_parameters(model)
    truncated = torch.autograd.grad(trainer._unrolled(sb)["total"], params)

    with torch.no_grad():  # the cut states, as constants
        h, constants = model.embed(sb.tokens), {}
        for t in range(K):
            constants[t] = h.clone()
            h = model.encode(h)

    def held_constant(*_):
        h, total = model.embed(sb.tokens), 0.0
        for t in range(K):
            if t % T == 0 and t > 0:
                h = constants[t]
            h = model.encode(h)
            total = total + ReferenceBackend().readout_loss(model, h, targets[t], trainer.loss_weights, sb.token_mask).total
        return total

    assert torch.autograd.gradcheck(held_constant, params, eps=1e-6, atol=1e-5)
    expected = torch.autograd.grad(held_constant(), params)
    for got, want in zip(truncated, expected):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    assert not torch.autograd.gradcheck(lambda *p: trainer._unrolled(sb)["total"], params, eps=1e-6, atol=1e-5, raise_exception=False)


@pytest.mark.parametrize("truncation", [None, 1, 2])
def test_the_embedding_learns_only_from_the_first_window(tmp_path, truncation):
    """Only the losses of iterations 1 … T reach the embedding: other targets change nothing there."""
    trainer = float64_trainer(tmp_path, **CONTINUOUS)
    sb = first_batch(trainer)
    K = sb.num_iters
    _, targets = teacher_states(sb.tokens, sb.labels, sb.depth, K)
    module, embedding = ContinuousRecurrence(trainer.model), trainer.model.token_embedder.embeddings[3].weight

    def embedding_grad(targets):
        out = unrolled_loss(module, ReferenceBackend(), trainer.model, sb.tokens, targets, K,
                            truncation=truncation, weights=trainer.loss_weights, token_mask=sb.token_mask)  # fmt: skip
        return torch.autograd.grad(out["total"], embedding)[0]

    base = embedding_grad(targets)
    window = truncation or K
    for k in range(K):
        changed = targets.clone()
        changed[k, ..., 3] = (changed[k, ..., 3] + 1) % 3  # another VALUE target at iteration k + 1
        moved = not torch.equal(embedding_grad(changed), base)
        assert moved == (k < window), f"iteration {k + 1}, truncation {truncation}"


# --- final-state supervision ----------------------------------------------------------------------


def step_gradients(trainer, sb):
    out = trainer._unrolled(sb)
    grads = torch.autograd.grad(out["total"], list(trainer.model.parameters()), allow_unused=True)
    return out["total"].detach(), grads


def test_final_state_loss_ignores_intermediate_targets(tmp_path):
    """The intermediate targets S_1 … S_{K−1} come from the node depths; moving the depths changes
    the per-iteration loss but not the final-state one, which only the solved sequence changes."""
    for supervision, should_move in (("final_state", False), ("per_iteration", True)):
        trainer = float64_trainer(tmp_path, **CONTINUOUS, supervision=supervision, iterations=3)
        sb = first_batch(trainer)
        loss, grads = step_gradients(trainer, sb)
        shifted = sb.depth.clone()
        shifted[shifted >= 0] = (shifted[shifted >= 0] + 1) % 3  # other nodes solved at each iteration
        sb_shifted = type(sb)(**{**sb.__dict__, "depth": shifted})
        loss2, grads2 = step_gradients(trainer, sb_shifted)
        same = torch.equal(loss, loss2) and all(torch.equal(a, b) for a, b in zip(grads, grads2) if a is not None)
        assert same != should_move, supervision
    labels = sb.labels.clone()
    rhs = sb.depth >= 0
    labels[..., 3][rhs] = (labels[..., 3][rhs] + 1) % 3
    trainer = float64_trainer(tmp_path, **CONTINUOUS, supervision="final_state", iterations=3)
    loss_a, _ = step_gradients(trainer, first_batch(trainer))
    loss_b, _ = step_gradients(trainer, type(sb)(**{**first_batch(trainer).__dict__, "labels": labels}))
    assert not torch.equal(loss_a, loss_b)  # the final state does count


def test_final_state_runs_the_fixed_count_whatever_the_depth(tmp_path):
    trainer = float64_trainer(tmp_path, **CONTINUOUS, supervision="final_state", iterations=5)
    sb = first_batch(trainer)
    assert sb.num_iters == 5
    out = trainer._unrolled(sb)
    assert out["correct"].shape[0] == 1  # one supervised state
    hidden = unroll_continuous(trainer.model, sb.tokens, 5)

    def loss_at(h):
        return ReferenceBackend().readout_loss(trainer.model, h, sb.labels, trainer.loss_weights, sb.token_mask).total

    torch.testing.assert_close(out["total"], loss_at(hidden[-1]), rtol=0, atol=0)  # the heads read after the last iteration
    assert not torch.equal(out["total"], loss_at(hidden[0]))


# --- every arm trains and evaluates ---------------------------------------------------------------

ARM_SWITCHES = {
    "no-bottleneck": ({}, CONTINUOUS),
    "no-bottleneck-truncated": ({}, {**CONTINUOUS, "bptt_truncation": 1}),
    "no-algorithmic-supervision": ({}, {**CONTINUOUS, "supervision": "final_state", "iterations": 3}),
    "feedforward": ({"architecture": "feedforward", "num_layers": 2, "positions": "rope"}, {**CONTINUOUS, "supervision": "final_state"}),
    "e2e-recurrent-rope": ({"positions": "rope"}, {**CONTINUOUS, "supervision": "final_state", "iterations": 2}),
}


@pytest.mark.parametrize("arm", list(ARM_SWITCHES))
def test_arm_trains_and_evaluates(tmp_path, arm):
    model, train = ARM_SWITCHES[arm]
    cfg = config(tmp_path, model=model, **train)
    trainer = Trainer(cfg, show_progress=False)
    state = trainer.fit()
    assert state.step == 2 and all(torch.isfinite(torch.tensor(r["loss"])) for r in state.history if "loss" in r)
    graphs = generate_dataset(DagConfig(**{**GRAPHS, "max_depth": 4, "num_nodes": 6}), 5, seed=1)
    result = make_evaluator(trainer.model, cfg, trainer.device).evaluate(graphs)
    assert 0.0 <= result["value_acc"] <= 1.0
    assert result["iterations"]["mean"] == (1 if arm == "feedforward" else graphs.max_depth + 2)


def test_continuous_evaluation_feeds_back_the_hidden_state(tmp_path):
    """The evaluator's continuous rollout is ``rollout_continuous`` (its final decoded state)."""
    cfg = config(tmp_path, **CONTINUOUS)
    model = RecurrentTransformer(cfg.model).eval()
    graphs = generate_dataset(DagConfig(**GRAPHS), 4, seed=2)
    ev = make_evaluator(model, cfg, torch.device("cpu"), settings=cfg.eval.__class__(policy="fixed", fixed_iters=3, batch_size=4))
    ev.step = ev._stepper(graphs)
    final, _, _ = ev._rollout(graphs, 3)
    L = int(graphs.lengths.max())
    expected = rollout_continuous(model, graphs.tokens[:, :L], 3)
    assert torch.equal(final[..., :4], expected[..., :4])


# --- rotary positions ---------------------------------------------------------------------------


def test_rotary_positions_rotate_channel_pairs_and_keep_only_offsets():
    x = torch.randn(1, 1, 5, 8, dtype=torch.float64)
    y = rotate(x, 0, 10000.0)
    t, m = 3, 1  # position 3, channel pair (2, 3): angle 3 · 10000^(−2/8)
    angle = torch.tensor(t * 10000.0 ** (-2 * m / 8), dtype=torch.float64)
    a, b = x[0, 0, t, 2], x[0, 0, t, 3]
    torch.testing.assert_close(y[0, 0, t, 2:4], torch.stack([a * angle.cos() - b * angle.sin(), a * angle.sin() + b * angle.cos()]))
    q, k = torch.randn(2, 1, 1, 6, 8, dtype=torch.float64)
    scores = rotate(q, 0, 10000.0) @ rotate(k, 0, 10000.0).transpose(-1, -2)
    shifted = rotate(q, 7, 10000.0) @ rotate(k, 7, 10000.0).transpose(-1, -2)
    torch.testing.assert_close(scores, shifted)  # the same relative offsets: the same scores


def test_rope_model_has_no_relative_position_parameters():
    names = set(RecurrentTransformer(ModelConfig(**{**TINY_MODEL, "positions": "rope"})).state_dict())
    assert not any("relpos" in n or "pos_model" in n for n in names)


# --- the switches and their one-line errors ------------------------------------------------------


@pytest.mark.parametrize(
    "model,train,message",
    [
        ({}, {"latent": "continuous"}, "train.corruption.enable=true"),
        ({}, {"supervision": "final_state", "corruption": {"enable": False}}, "needs train.latent=continuous"),
        ({}, {"bptt_truncation": 2, "corruption": {"enable": False}}, "train.bptt_truncation needs train.latent=continuous"),
        ({}, {**CONTINUOUS, "iterations": 0}, "train.iterations=0 is invalid"),
        ({}, {"latent": "sideways"}, "train.latent='sideways' is invalid"),
        ({"architecture": "feedforward"}, CONTINUOUS, "set train.latent=continuous and train.supervision=final_state"),
        ({"architecture": "cot", "vocab_sizes": [20]}, {**CONTINUOUS, "latent": "discrete", "iterations": 3}, "train.iterations does not apply"),
        ({"architecture": "cot"}, {"corruption": {"enable": False}}, "needs one positive size"),
        ({"positions": "absolute"}, {}, "model.positions='absolute' is invalid"),
    ],
)
def test_bad_switches_are_one_line_errors(tmp_path, model, train, message):
    with pytest.raises(ConfigError, match=message) as info:
        config(tmp_path, model=model, **train)
    assert "\n" not in str(info.value)
