"""The reference model (docs/method.md §2–§3): structure, math, recurrence, sampling."""

import math

import pytest
import torch
import torch.nn.functional as F
from _stats import chi2_statistic, chi2_upper_quantile

from fastrecur_kernels.reference import relpos_attention_reference
from fastrecur.errors import ConfigError
from fastrecur.model import ModelConfig, RecurrentTransformer
from fastrecur.recurrence import decode, reset_dead_factors, rollout, rollout_continuous

TINY = dict(vocab_sizes=(7, 17, 3, 9, 2, 2), hidden_size=32, num_layers=2, num_heads=2, relpos_window=4, relpos_embed_size=12)


def random_tokens(cfg: ModelConfig, B: int, L: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.stack([torch.randint(0, v, (B, L), generator=g) for v in cfg.vocab_sizes], dim=-1)


def test_default_parameter_count():
    assert RecurrentTransformer(ModelConfig()).num_parameters() == 8_033_447


def test_parameter_names_follow_the_authors_layout():
    names = set(RecurrentTransformer(ModelConfig()).state_dict())
    for name in (
        "token_embedder.embeddings.5.weight",
        "transformer.pos_model.relpos_embeddings.weight",
        "transformer.pos_model.layer_norm.bias",
        "transformer.blocks.layer_3.attn.relpos_q_proj.weight",
        "transformer.blocks.layer_0.mlp.proj.bias",
        "transformer.ln_final.weight",
        "output_layers.3.bias",
    ):
        assert name in names


def functional_forward(sd: dict, cfg: ModelConfig, tokens: torch.Tensor) -> list[torch.Tensor]:
    """docs/method.md §2 written directly against the raw state dict (no fastrecur modules), eval mode."""
    D, H, W, s = cfg.hidden_size, cfg.num_heads, cfg.relpos_window, cfg.relpos_shift
    d = D // H

    def lin(x, name):
        return x @ sd[name + ".weight"].T + sd[name + ".bias"]

    def ln(x, name):
        return F.layer_norm(x, (x.shape[-1],), sd[name + ".weight"], sd[name + ".bias"], eps=1e-5)

    h = sum(sd[f"token_embedder.embeddings.{f}.weight"][tokens[..., f]] for f in range(6))
    P = ln(sd["transformer.pos_model.relpos_embeddings.weight"], "transformer.pos_model.layer_norm")
    B, L, _ = h.shape
    i = torch.arange(L)[:, None]
    j = torch.arange(L)[None, :]
    r = (j - i).clamp(-W + 1 + s, s) + W - 1 - s
    for layer in range(cfg.num_layers):
        p = f"transformer.blocks.layer_{layer}"
        u = ln(h, p + ".ln_1")
        q, k, v = (lin(u, f"{p}.attn.{n}_proj").view(B, L, H, d) for n in "qkv")
        Kr = lin(P, p + ".attn.relpos_k_proj").view(W, H, d)
        Qr = lin(P, p + ".attn.relpos_q_proj").view(W, H, d)
        c2c = torch.einsum("bihd,bjhd->bhij", q, k)
        c2p = torch.einsum("bihd,ijhd->bhij", q, Kr[r])
        p2c = torch.einsum("bjhd,ijhd->bhij", k, Qr[r])
        S = (c2c + c2p + p2c) / math.sqrt(3 * d)
        S = S.masked_fill(j > i, -math.inf)
        o = torch.einsum("bhij,bjhd->bihd", S.softmax(-1), v).reshape(B, L, D)
        a = h + lin(o, p + ".attn.o_proj")
        h = a + lin(torch.relu(lin(ln(a, p + ".ln_2"), p + ".mlp.fc")), p + ".mlp.proj")
    z = ln(h, "transformer.ln_final")
    return [lin(z, f"output_layers.{f}") for f in range(6)]


@pytest.mark.parametrize("shift", [0, 2])
def test_model_matches_functional_spec(shift):
    torch.manual_seed(0)
    cfg = ModelConfig(**TINY, relpos_shift=shift)
    model = RecurrentTransformer(cfg).double().eval()
    tokens = random_tokens(cfg, B=3, L=11, seed=1)  # L > W: far-field buckets are exercised
    got = model(tokens)
    want = functional_forward(model.state_dict(), cfg, tokens)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-10, atol=1e-10)


def test_default_initialization_is_pytorch_default():
    torch.manual_seed(0)
    model = RecurrentTransformer(ModelConfig())
    emb = model.token_embedder.embeddings[1].weight
    assert abs(emb.std().item() - 1.0) < 0.05  # N(0, 1)
    w = model.transformer.blocks["layer_0"].mlp.fc.weight  # U(−1/√384, 1/√384)
    bound = 1 / math.sqrt(384)
    assert w.abs().max().item() <= bound and w.abs().max().item() > 0.95 * bound
    ln = model.transformer.ln_final
    assert torch.all(ln.weight == 1) and torch.all(ln.bias == 0)


def test_gradcheck_one_step_float64():
    torch.manual_seed(0)
    cfg = ModelConfig(**{**TINY, "hidden_size": 16, "num_heads": 2, "num_layers": 1}, attn_dropout=0.0, resid_dropout=0.0)
    model = RecurrentTransformer(cfg).double()
    x = torch.randn(1, 6, 16, dtype=torch.float64, requires_grad=True)
    table = model.transformer.pos_model.relpos_embeddings.weight
    wq = model.transformer.blocks["layer_0"].attn.q_proj.weight

    def step(x, table, wq):
        params = {"pos_model.relpos_embeddings.weight": table, "blocks.layer_0.attn.q_proj.weight": wq}
        z = torch.func.functional_call(model.transformer, params, (x,), strict=False)
        return torch.cat(model.readout(z), dim=-1)

    assert torch.autograd.gradcheck(step, (x, table.detach().clone().requires_grad_(), wq.detach().clone().requires_grad_()))


def test_attention_backend_is_swappable():
    cfg = ModelConfig(**TINY)
    model = RecurrentTransformer(cfg).eval()
    tokens = random_tokens(cfg, 2, 9, seed=3)
    before = model(tokens)
    calls = []

    def spy(*args, **kw):
        calls.append(kw)
        return relpos_attention_reference(*args, **kw)

    after = model.set_attention(spy)(tokens)
    assert len(calls) == cfg.num_layers and calls[0]["window"] == cfg.relpos_window and calls[0]["dropout_p"] == 0.0
    for b, a in zip(before, after):
        torch.testing.assert_close(a, b)


def test_length_scaling_changes_only_positions_from_L0_and_is_restored():
    """Log-length scaling (evaluation): under causal attention, positions before L0 see no change in
    any layer; later ones do; the context restores the faithful model; RoPE refuses it."""
    cfg = ModelConfig(**TINY)
    model = RecurrentTransformer(cfg).eval()
    tokens = random_tokens(cfg, 2, 12, seed=5)
    with torch.no_grad():
        before = torch.cat(model(tokens), dim=-1)
        with model.length_scaling(12):  # ln(i+1)/ln 12 ≤ 1 for every i < 12: identity
            torch.testing.assert_close(torch.cat(model(tokens), dim=-1), before)
        with model.length_scaling(4):
            scaled = torch.cat(model(tokens), dim=-1)
        after = torch.cat(model(tokens), dim=-1)
    torch.testing.assert_close(scaled[:, :4], before[:, :4])
    assert (scaled[:, 4:] - before[:, 4:]).abs().max() > 1e-4
    torch.testing.assert_close(after, before)
    rope = RecurrentTransformer(ModelConfig(**TINY, positions="rope")).eval()
    with pytest.raises(ValueError, match="RoPE"), torch.no_grad(), rope.length_scaling(4):
        rope(tokens)


def test_trained_in_length_scaling_is_the_same_math_and_differentiable():
    """model.length_scaling = L0 is the evaluation context's scaling made part of the model: the same
    logits as the plain model under ``length_scaling(L0)``, gradients through it, and a context with
    another L0 replaces it while it lasts."""
    cfg = ModelConfig(**TINY)
    plain = RecurrentTransformer(cfg).eval()
    scaled = RecurrentTransformer(cfg.replace(length_scaling=4)).eval()
    scaled.load_state_dict(plain.state_dict())
    tokens = random_tokens(cfg, 2, 12, seed=6)
    with torch.no_grad():
        with plain.length_scaling(4):
            want = torch.cat(plain(tokens), dim=-1)
        torch.testing.assert_close(torch.cat(scaled(tokens), dim=-1), want)
        with scaled.length_scaling(12):  # an evaluation L0 replaces the model's own: here identity
            torch.testing.assert_close(torch.cat(scaled(tokens), dim=-1), torch.cat(plain(tokens), dim=-1))
        torch.testing.assert_close(torch.cat(scaled(tokens), dim=-1), want)  # and is undone after
    scaled.train()
    sum(logits.square().mean() for logits in scaled(tokens)).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in scaled.parameters() if p.requires_grad)


@pytest.mark.parametrize("bad", [1, -2, 2.5, True])
def test_length_scaling_config_is_validated(bad):
    with pytest.raises(ConfigError, match="length_scaling"):
        ModelConfig(**TINY, length_scaling=bad)
    with pytest.raises(ConfigError, match="rope"):
        ModelConfig(**TINY, length_scaling=8, positions="rope")


def test_dropout_only_in_training():
    cfg = ModelConfig(**TINY)
    model = RecurrentTransformer(cfg)
    tokens = random_tokens(cfg, 2, 9, seed=4)
    model.eval()
    assert torch.equal(model(tokens)[3], model(tokens)[3])
    model.train()
    assert not torch.equal(model(tokens)[3], model(tokens)[3])


def test_disabled_position_terms_drop_their_parameters():
    full = RecurrentTransformer(ModelConfig(**TINY))
    c2p_only = RecurrentTransformer(ModelConfig(**TINY, relpos_p2c=False))
    per_layer = 12 * 32 + 32  # relpos_q_proj: E=12 → D=32, with bias
    assert full.num_parameters() - c2p_only.num_parameters() == TINY["num_layers"] * per_layer


@pytest.mark.parametrize(
    "changes,match",
    [
        (dict(num_heads=5), "num_heads"),
        (dict(hidden_size=36, num_heads=3), "multiple of 8"),
        (dict(relpos_shift=64), "relpos_shift"),
        (dict(attn_dropout=1.0), "attn_dropout"),
        (dict(vocab_sizes=(7, 129)), "vocab_sizes"),
    ],
)
def test_config_errors(changes, match):
    with pytest.raises(ConfigError, match=match):
        ModelConfig(**changes)


def test_wrong_token_shape_is_a_clear_error():
    model = RecurrentTransformer(ModelConfig(**TINY))
    with pytest.raises(ValueError, match=r"tokens must be \[B, L, 6\]"):
        model(torch.zeros(2, 5, 4, dtype=torch.long))


# --- recurrence -------------------------------------------------------------------------------


def test_rollout_argmax_feedback_resets_and_loop_count():
    torch.manual_seed(0)
    cfg = ModelConfig(**TINY)
    model = RecurrentTransformer(cfg).eval()
    with torch.no_grad():  # make the untrained REGRET/MODIFICATION heads prefer TRUE everywhere
        for f in (4, 5):
            model.output_layers[f].bias.copy_(torch.tensor([-100.0, 100.0]))
    tokens = random_tokens(cfg, 3, 10, seed=5)
    tokens[..., 4:] = 0
    states = rollout(model, tokens, num_loops=4, return_all=True)
    assert len(states) == 5 and torch.equal(states[0], tokens)
    for t in range(4):
        logits = model(states[t])
        want = torch.stack([lg.argmax(-1) for lg in logits], dim=-1)
        assert torch.all(want[..., 4:] == 1)  # the raw argmax says TRUE ...
        want[..., 4:] = 0  # ... and the rollout resets it to FALSE
        assert torch.equal(states[t + 1], want)
    assert torch.equal(rollout(model, tokens, num_loops=4), states[-1])
    assert torch.equal(rollout(model, tokens, num_loops=0), tokens)
    no_reset = rollout(model, tokens, num_loops=1, reset=False)
    assert torch.all(no_reset[..., 4:] == 1)


def test_reset_dead_factors_does_not_modify_input():
    t = torch.ones(2, 3, 6, dtype=torch.long)
    r = reset_dead_factors(t)
    assert torch.all(t == 1) and torch.all(r[..., 4:] == 0) and torch.all(r[..., :4] == 1)


def test_continuous_rollout_feeds_hidden_state():
    torch.manual_seed(0)
    cfg = ModelConfig(**TINY)
    model = RecurrentTransformer(cfg).eval()
    tokens = random_tokens(cfg, 2, 8, seed=6)
    states = rollout_continuous(model, tokens, num_loops=3, return_all=True)
    assert len(states) == 4
    h = model.embed(tokens)
    for _ in range(3):
        h = model.encode(h)
    want = torch.stack([lg.argmax(-1) for lg in model.readout(h)], dim=-1)
    assert torch.equal(states[-1], want)


@pytest.mark.parametrize("temperature", [0.3, 1.0, 5.0])
def test_gumbel_samples_follow_softmax_whatever_the_temperature(temperature):
    g = torch.Generator().manual_seed(1234)
    logits = torch.randn(9, generator=g) * 1.5
    n = 40_000
    batch = [logits.expand(n, 9)]
    samples = decode(batch, temperature=temperature, generator=g)[:, 0]
    counts = torch.bincount(samples, minlength=9).tolist()
    stat, df = chi2_statistic(counts, torch.softmax(logits, -1).tolist())
    assert stat < chi2_upper_quantile(df, alpha=1e-3), (stat, df)
    # the test can fail: tempered probabilities are rejected
    wrong, _ = chi2_statistic(counts, torch.softmax(logits / 3.0, -1).tolist())
    assert wrong > chi2_upper_quantile(df, alpha=1e-3)


def test_decode_argmax_and_errors():
    logits = [torch.tensor([[0.1, 2.0, -1.0]]), torch.tensor([[3.0, 3.0]])]
    assert decode(logits).tolist() == [[1, 0]]  # ties → first index, like torch.argmax
    with pytest.raises(ValueError):
        decode(logits, temperature=-1.0)
