"""The ``triton`` backend agrees with the ``reference`` backend on the same weights and inputs.

On a CPU the kernels run in Triton's interpreter (tiny shapes); on a GPU the same tests run compiled.
"""

import pytest
import torch

from fastrecur.backends import ReferenceBackend, resolve_backend
from fastrecur.config import RunConfig
from fastrecur.data import DagConfig, generate_dataset, teacher_states
from fastrecur.model import ModelConfig, RecurrentTransformer
from fastrecur.train import Trainer

# Small on purpose: on a CPU every kernel runs in Triton's (slow) interpreter.
GRAPHS = dict(num_nodes=6, num_leaf_nodes=2, max_depth=3, func_vocab=["ADD", "MUL"], mod_val=5, num_vars=8, max_length=48)
WEIGHTS = (1.0, 1.0, 1.0, 1.0, 0.0, 0.0)


@pytest.fixture(scope="module")
def triton_backend():
    return resolve_backend("triton", torch.device("cuda" if torch.cuda.is_available() else "cpu"))


@pytest.fixture(scope="module")
def graphs():
    ds = generate_dataset(DagConfig(**GRAPHS), 4, seed=11)
    keep = int(ds.lengths.max())  # trailing pads cost interpreter time and change nothing (causal)
    return type(ds)(ds.labels[:, :keep], ds.info[:, :keep], ds.vocab)


def make_model(graphs, device, **changes):
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_sizes=graphs.vocab.sizes, hidden_size=32, num_layers=1, num_heads=2, relpos_window=8,
                      relpos_embed_size=16, attn_dropout=0.0, resid_dropout=0.0, **changes)  # fmt: skip
    return RecurrentTransformer(cfg).to(device).eval()


def test_logits_agree(graphs, triton_backend, device):
    model = make_model(graphs, device)
    tokens = graphs.tokens.to(device)
    want = ReferenceBackend().bind(model)(tokens)
    got = triton_backend.bind(model)(tokens)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("length_scaling", [0, 8], ids=["authors", "log-length-scaled"])
def test_loss_and_gradients_agree(graphs, triton_backend, device, length_scaling):
    K = int(graphs.depth.max()) + 1
    inputs, targets = (t.flatten(0, 1).to(device) for t in teacher_states(graphs.tokens, graphs.labels, graphs.depth, K))
    mask = inputs[..., 0] != 3

    def run(backend, token_mask):
        model = make_model(graphs, device, length_scaling=length_scaling)
        backend.bind(model).train()
        out = backend.loss(model, inputs, targets, WEIGHTS, token_mask)
        out.total.backward()
        return out, {n: p.grad for n, p in model.named_parameters()}

    for token_mask in (None, mask):
        ref, ref_grads = run(ReferenceBackend(), token_mask)
        fast, fast_grads = run(triton_backend, token_mask)
        torch.testing.assert_close(fast.total, ref.total, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(fast.per_factor, ref.per_factor, rtol=1e-4, atol=1e-5)
        assert (fast.correct != ref.correct).float().mean() < 1e-3  # near-ties only
        for name in ref_grads:
            torch.testing.assert_close(fast_grads[name], ref_grads[name], rtol=1e-3, atol=1e-5, msg=lambda m: f"{name}: {m}")


@pytest.mark.parametrize("strategy", ["last", "previous", "random"])
def test_teacher_batches_agree(graphs, triton_backend, device, strategy):
    args = (graphs.tokens.to(device), graphs.labels.to(device), graphs.depth.to(device), 4)
    kw = dict(strategy=strategy, token_prob=1.0, value_vocab_size=graphs.vocab.sizes[3], generator=torch.Generator().manual_seed(0))
    clean_ref = ReferenceBackend().teacher_batch(*args, corrupt=False, **kw)
    clean = triton_backend.teacher_batch(*args, corrupt=False, **kw)
    assert torch.equal(clean.inputs, clean_ref.inputs) and torch.equal(clean.targets, clean_ref.targets)
    assert clean.corrupted is None
    noisy_ref = ReferenceBackend().teacher_batch(*args, corrupt=True, **kw)
    noisy = triton_backend.teacher_batch(*args, corrupt=True, **kw)
    assert torch.equal(noisy.corrupted, noisy_ref.corrupted)  # token_prob = 1: exactly the candidates
    assert torch.equal(noisy.targets, clean.targets)


def test_decode_steps_agree(graphs, triton_backend, device):
    model = make_model(graphs, device)
    state = graphs.tokens.to(device)
    want = ReferenceBackend().decode_step(ReferenceBackend().bind(model), state)
    got = triton_backend.decode_step(triton_backend.bind(model), state)
    assert (got != want).float().mean() < 1e-3
    assert torch.all(got[..., 4:] == 0)


def test_short_seeded_runs_have_the_same_loss_curve(tmp_path, device):
    def run(backend):
        cfg = RunConfig.from_dict(
            {
                "data": {"train": dict(GRAPHS)},
                "model": {"vocab_sizes": list(DagConfig(**GRAPHS).vocab().sizes), "hidden_size": 16, "num_layers": 1, "num_heads": 2,
                          "relpos_window": 8, "relpos_embed_size": 8, "attn_dropout": 0.0, "resid_dropout": 0.0},
                "train": {"batch_size": 2, "steps": 4, "log_every": 1, "ckpt_every": 0, "backend": backend, "device": device.type,
                          "length_multiple": 8, "corruption": {"enable": False}, "out_dir": str(tmp_path / backend)},
            }
        )  # fmt: skip
        trainer = Trainer(cfg, show_progress=False)
        trainer.fit()
        return [r["loss"] for r in trainer.state.history]

    ref, fast = run("reference"), run("triton")
    assert len(ref) == 4 and ref[-1] < ref[0]
    assert ref == pytest.approx(fast, rel=1e-4)


def test_compiled_step_has_no_graph_breaks(graphs, triton_backend, device):
    """The custom ops let torch.compile capture the whole forward + loss in one graph."""
    model = triton_backend.bind(make_model(graphs, device)).train()
    K = 3
    inputs, targets = (t.flatten(0, 1).to(device) for t in teacher_states(graphs.tokens, graphs.labels, graphs.depth, K))

    def step(inputs, targets):
        return triton_backend.loss(model, inputs, targets, WEIGHTS, None).total

    eager = step(inputs, targets)
    eager.backward()
    eager_grad = model.transformer.blocks["layer_0"].attn.q_proj.weight.grad.clone()
    model.zero_grad()
    compiled = torch.compile(step, fullgraph=True, backend="aot_eager")(inputs, targets)
    compiled.backward()
    torch.testing.assert_close(compiled, eager)
    torch.testing.assert_close(model.transformer.blocks["layer_0"].attn.q_proj.weight.grad, eager_grad)


def test_the_unrolled_continuous_loss_agrees(graphs, triton_backend, device):
    """The continuous arms' BPTT loss through the triton backend's fused heads + loss (rotary
    positions: the attention kernel is checked above, and is slow in the interpreter)."""
    from fastrecur.objectives import unrolled_loss
    from fastrecur.recurrence import ContinuousRecurrence

    K = int(graphs.depth.max()) + 1
    tokens = graphs.tokens.to(device)
    _, targets = teacher_states(tokens, graphs.labels.to(device), graphs.depth.to(device), K)
    mask = tokens[..., 0] != 3

    def run(backend):
        model = make_model(graphs, device, positions="rope")
        backend.bind(model).train()
        out = unrolled_loss(ContinuousRecurrence(model), backend, model, tokens, targets, K, truncation=2, weights=WEIGHTS, token_mask=mask)
        out["total"].backward()
        return out, {n: p.grad for n, p in model.named_parameters()}

    (got, got_grads), (want, want_grads) = run(triton_backend), run(ReferenceBackend())
    torch.testing.assert_close(got["total"], want["total"], rtol=1e-4, atol=1e-4)
    assert torch.equal(got["correct"], want["correct"])
    for name, g in want_grads.items():
        torch.testing.assert_close(got_grads[name], g, rtol=1e-3, atol=1e-4, msg=name)
