"""fastrecur.interpret: the recorder, graph positions, the attention summary, probes, spectra, the command."""

import json
import math
import os
import re

import numpy as np
import pytest
import torch

from fastrecur import rollout, rollout_continuous
from fastrecur.data import VALUE, DagConfig, generate_dataset
from fastrecur.interpret import (
    CATEGORIES,
    QUERY_KINDS,
    collect_occurrences,
    graph_positions,
    head_shares,
    key_categories,
    probe_batches,
    recording,
    residue_spectrum,
    ridge_probe,
    run_probe_equations,
    top_frequencies,
)
from fastrecur.model import ModelConfig, RecurrentTransformer

GRAPHS = DagConfig(num_nodes=6, num_leaf_nodes=2, min_fan_in=1, max_fan_in=3, max_depth=3, func_vocab=("ADD",), mod_val=5, num_vars=9, max_length=40)


@pytest.fixture(scope="module")
def graphs():
    return generate_dataset(GRAPHS, 24, seed=5)


def random_model(vocab_sizes, **changes) -> RecurrentTransformer:
    torch.manual_seed(0)
    cfg = dict(vocab_sizes=vocab_sizes, hidden_size=32, num_layers=2, num_heads=2, relpos_window=6, relpos_embed_size=8)
    return RecurrentTransformer(ModelConfig(**{**cfg, **changes})).eval()


# --- the recorder ---------------------------------------------------------------------------------


def _hook_count(model) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def test_recording_keeps_the_model_math_and_removes_everything_it_attached(graphs):
    model = random_model(graphs.vocab.sizes)
    originals = [b.attn.attention_fn for b in model.transformer.blocks.values()]
    tokens = graphs.tokens[:4]
    plain = model(tokens)
    with recording(model) as rec:
        assert _hook_count(model) == len(originals) + 2  # one per block, the encoder's pre- and post-hook
        recorded = model(tokens)
        assert rec.layers[1].probs.shape == (4, 2, tokens.shape[1], tokens.shape[1])
        every_query = rec.layers[1].probs
        model(tokens[:1])  # the next pass replaces the previous one's tensors
        assert rec.layers[0].probs.shape[0] == 1 and rec.passes == 2
    with recording(model, attention="last") as rec:
        model(tokens)
        assert rec.layers[0].probs.shape == (4, 2, 1, tokens.shape[1])
        torch.testing.assert_close(rec.layers[1].probs, every_query[:, :, -1:])
    with recording(model, attention=None) as rec:
        model(tokens)
        assert rec.layers[0].probs is None and rec.layers[0].head_outputs.shape == (4, 2, tokens.shape[1], 16)
    for a, b in zip(plain, recorded):
        assert torch.equal(a, b)
    assert _hook_count(model) == 0
    assert [b.attn.attention_fn for b in model.transformer.blocks.values()] == originals
    assert all(r.probs is None and r.output is None for r in rec.layers)

    with pytest.raises(RuntimeError, match="boom"):
        with recording(model):
            raise RuntimeError("boom")
    assert _hook_count(model) == 0
    assert [b.attn.attention_fn for b in model.transformer.blocks.values()] == originals


def test_recording_refuses_a_model_in_training_mode(graphs):
    model = random_model(graphs.vocab.sizes).train()
    with pytest.raises(RuntimeError, match="eval"):
        with recording(model):
            pass
    assert _hook_count(model) == 0


# --- positions from the graph, against a plain reading of the equations -----------------------------


def brute_force_categories(words: list[str]) -> dict:
    """Category of every causal (query, key) pair of one sequence, read off its tokens."""
    equations, start = [], 0
    for i, w in enumerate(words + ["<EQ_SEP>"]):
        if w == "<EQ_SEP>":
            equations.append(list(range(start, i)))
            start = i + 1
    definition, equation_of = {}, {}
    for e, positions in enumerate(equations):
        definition[words[positions[-1]]] = positions[-1]
        for p in positions:
            equation_of[p] = e
    out = {}
    for i, w in enumerate(words):
        if not w.startswith("x_"):
            continue
        eq = equations[equation_of[i]]
        lhs = [p for p in eq[:-2] if words[p].startswith("x_") or words[p].isdigit()]
        operand_definitions = {definition[words[p]] if words[p].startswith("x_") else p for p in lhs}
        for j in range(i + 1):
            if j == i:
                category = "self"
            elif j == definition[w]:
                category = "definition"
            elif words[j] == w:
                category = "same_variable"
            elif j in lhs:
                category = "own_operands"
            elif j in operand_definitions:
                category = "operand_definitions"
            else:
                category = "other"
            out[i, j] = (category, "rhs" if i == eq[-1] else "operand")
    return out


def test_key_categories_match_a_reading_of_the_equations(graphs):
    pos = graph_positions(graphs.labels, graphs.info)
    categories = key_categories(pos)
    for g in range(len(graphs)):
        length = int(graphs.lengths[g])
        expected = brute_force_categories(graphs.vocab.decode(graphs.labels[g, :length]))
        assert len(expected) > 10
        for (i, j), (category, kind) in expected.items():
            assert CATEGORIES[int(categories[g, i, j])] == category, (g, i, j)
            assert bool(pos.is_rhs[g, i]) == (kind == "rhs")
        rhs = pos.is_rhs[g]
        assert torch.equal(pos.value[g][rhs], graphs.labels[g, :, VALUE][rhs])
        assert torch.equal(pos.depth[g][rhs], graphs.info[g, :, 0][rhs])


# --- the attention summary on a hand-built model -------------------------------------------------


def definition_finder(vocab_sizes, scale: float = 30.0) -> RecurrentTransformer:
    """One layer, two heads, no LayerNorm. Head 0 scores key j for query i as
    ``scale² · ([same variable] + [j holds a value])``: on the solved state a variable's definition
    (its RHS, the only occurrence holding a value) beats every other key by ``scale²``. Head 1
    scores every key 0, so it attends uniformly."""
    num_vars = vocab_sizes[1] - 1
    cfg = ModelConfig(
        vocab_sizes=vocab_sizes, hidden_size=32, num_layers=1, num_heads=2, relpos_window=4, relpos_embed_size=8,
        layer_norm=False, attn_dropout=0.0, resid_dropout=0.0,
    )  # fmt: skip
    assert num_vars < 12
    model = RecurrentTransformer(cfg)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        has_value = 12
        model.token_embedder.embeddings[1].weight[:num_vars, :num_vars] = torch.eye(num_vars)
        model.token_embedder.embeddings[VALUE].weight[: vocab_sizes[VALUE] - 2, has_value] = 1.0
        attn = model.transformer.blocks["layer_0"].attn
        for c in range(num_vars):
            attn.q_proj.weight[c, c] = attn.k_proj.weight[c, c] = scale
        attn.q_proj.bias[has_value] = scale
        attn.k_proj.weight[has_value, has_value] = scale
    return model.eval()


def test_head_summary_attributes_definition_heads_and_uniform_heads(graphs):
    model = definition_finder(graphs.vocab.sizes)
    shares = head_shares(model, graphs, state="solved", batch_size=7)  # [1, 2, kinds, categories]
    definition, itself = CATEGORIES.index("definition"), CATEGORIES.index("self")
    rhs, operand = QUERY_KINDS.index("rhs"), QUERY_KINDS.index("operand")
    assert shares.shape == (1, 2, len(QUERY_KINDS), len(CATEGORIES))
    assert shares[0, 0, operand, definition] > 0.999, shares[0, 0]
    assert shares[0, 0, rhs, itself] > 0.999, shares[0, 0]  # an RHS is its own variable's definition

    expected = np.zeros((len(QUERY_KINDS), len(CATEGORIES)))
    queries = np.zeros(len(QUERY_KINDS))
    for g in range(len(graphs)):
        pairs = brute_force_categories(graphs.vocab.decode(graphs.labels[g, : int(graphs.lengths[g])]))
        for (i, j), (category, kind) in pairs.items():  # a uniform head gives each causal key 1 / (i + 1)
            expected[QUERY_KINDS.index(kind), CATEGORIES.index(category)] += 1.0 / (i + 1)
            queries[QUERY_KINDS.index(kind)] += j == 0
    expected /= queries[:, None]
    np.testing.assert_allclose(shares[0, 1], expected, atol=1e-5)
    assert expected[operand, definition] < 0.5  # the uniform head is not mistaken for a definition finder


def test_head_summary_splits_batches_of_long_sequences_alike(graphs, monkeypatch):
    import fastrecur.interpret.heads as heads

    model = random_model(graphs.vocab.sizes)
    whole = head_shares(model, graphs[:6], batch_size=6)
    seen = []
    monkeypatch.setattr(heads, "PROBABILITY_BUDGET", 1)  # one graph per batch
    real_add = heads.HeadShares.add
    monkeypatch.setattr(heads.HeadShares, "add", lambda self, probs, *a: seen.append(probs[0].shape[0]) or real_add(self, probs, *a))
    np.testing.assert_allclose(head_shares(model, graphs[:6], batch_size=6), whole, atol=1e-6)
    assert seen == [1] * 6


def test_head_summary_of_the_input_state_misses_definitions_without_values(graphs):
    """Sanity of the hand-built model: in the input state no RHS holds a value, so head 0 can no
    longer tell the definition from other occurrences of the same name."""
    model = definition_finder(graphs.vocab.sizes)
    shares = head_shares(model, graphs, state="input")
    assert shares[0, 0, QUERY_KINDS.index("operand"), CATEGORIES.index("definition")] < 0.9


# --- probe equations -----------------------------------------------------------------------------


def test_probe_batches_vary_one_slot_and_carry_true_values(graphs):
    vocab = graphs.vocab
    seen = set()
    for batch in probe_batches(graphs, arity=3, num_graphs=3, seed=1):
        seen.add(batch.slot)
        length = int(graphs.lengths[batch.graph])
        assert torch.equal(batch.tokens[:, :length], graphs.labels[batch.graph, :length].expand(len(batch.tokens), -1, -1))
        values = {}
        for word in vocab.decode(graphs.labels[batch.graph, :length], with_values=True):
            if ":" in word:
                name, value = word.split(":")
                values[name] = int(value)
        probes = [vocab.decode(row[length:]) for row in batch.tokens]
        for words, target in zip(probes, batch.target.tolist()):
            assert words[0] == "<EQ_SEP>" and words[-2] == "=" and words[1:-2:2] == [w for w in words[1:-2:2] if w.startswith("x_")]
            operands = words[1:-2:2]
            assert len(operands) == 3 and set(words[2:-2:2]) == {"ADD"}
            assert target == sum(values[o] for o in operands) % vocab.mod_val
            if batch.slot == "rhs":
                assert words[-1] not in values
        columns = list(zip(*[w[1:-2:2] + [w[-1]] for w in probes]))  # slot → its fillers across the batch
        varied = [s for s, column in zip(("var_0", "var_1", "var_2", "rhs"), columns) if len(set(column)) > 1]
        assert varied == [batch.slot]
    assert seen == {"var_0", "var_1", "var_2", "rhs"}


def test_probe_measurements_are_bounded_and_see_the_varied_slot(graphs):
    model = random_model(graphs.vocab.sizes, num_layers=1)
    out = run_probe_equations(model, graphs, arity=2, num_graphs=4)
    ratio, entropy = np.array(out["variance_ratio"]), np.array(out["entropy"])
    assert ratio.shape == entropy.shape == (1, 2, 3)
    assert ((ratio >= 0) & (ratio <= 1)).all() and (ratio > 0).all()
    assert ((entropy > 0) & (entropy <= math.log(GRAPHS.max_length + 8))).all()
    sim = np.array(out["similarity"])
    np.testing.assert_allclose(np.diag(sim), 1.0, atol=1e-6)
    assert all(0 <= a <= 1 for a in out["value_accuracy"]) and out["probes"][0] > 0


# --- linear probes -------------------------------------------------------------------------------


def test_probe_reads_a_linearly_present_feature_and_not_shuffled_labels():
    g = torch.Generator().manual_seed(0)
    n, dim, classes = 3000, 24, 5
    y = torch.randint(0, classes, (n,), generator=g)
    directions = torch.randn(classes, dim, generator=g)
    x = directions[y] + 0.3 * torch.randn(n, dim, generator=g) + 5 * torch.randn(1, dim, generator=g)
    train = torch.arange(n) < 2000
    score = ridge_probe(x, y, train, classes, generator=g)
    assert score.accuracy >= 0.99
    chance = 1 / classes
    bound = chance + 4 * math.sqrt(chance * (1 - chance) / 1000)  # 4 sigma above chance on 1000 test points
    assert score.shuffled < bound and abs(score.chance - chance) < 0.06
    noise = ridge_probe(torch.randn(n, dim, generator=g), y, train, classes, generator=g)
    assert noise.accuracy < bound  # no feature, no accuracy


@pytest.mark.parametrize("continuous", [False, True])
def test_latent_states_are_the_rollout_hidden_states(graphs, continuous):
    model = random_model(graphs.vocab.sizes)
    occ = collect_occurrences(model, graphs, num_iters=3, continuous=continuous, batch_size=5, max_occurrences=60, seed=2)
    assert occ.features.shape == (3, 3, 60, 32)
    tokens = graphs.tokens
    rows, cols = occ.graph, occ.position
    assert graphs.labels[rows, cols, 0].eq(0).all()  # variable occurrences (SYNTAX = VARIABLE)
    h0 = model.embed(tokens)
    torch.testing.assert_close(occ.features[0, 0], h0[rows, cols])
    states = (rollout_continuous if continuous else rollout)(model, tokens, 2, return_all=True)
    second_input = model.encode(h0) if continuous else model.embed(states[1])
    torch.testing.assert_close(occ.features[1, 0], second_input.detach()[rows, cols], rtol=1e-4, atol=1e-4)
    # Continuous: the next iteration reads the final LayerNorm of the last block's output (layer 2).
    fed_back = torch.allclose(model.transformer.ln_final(occ.features[1, 2]), occ.features[2, 0], atol=1e-4)
    assert fed_back == continuous
    # "solved yet": the definition's VALUE in the state each iteration reads is the true value.
    assert not occ.solved[0].any()  # the input hides every value
    definition = graph_positions(graphs.labels, graphs.info).definition[rows, cols]
    expected = states[1][rows, definition, VALUE] == graphs.labels[rows, definition, VALUE]
    assert torch.equal(occ.solved[1], expected) and 0 < int(expected.sum()) < len(expected)


# --- Fourier -------------------------------------------------------------------------------------


@pytest.mark.parametrize("p,frequency", [(23, 5), (23, 11), (10, 5), (7, 1)])
def test_fourier_recovers_the_frequency_of_a_synthetic_embedding(p, frequency):
    g = torch.Generator().manual_seed(p)
    u, w, c = (torch.randn(16, generator=g) for _ in range(3))
    a = torch.arange(p, dtype=torch.float64).unsqueeze(1)
    angle = 2 * math.pi * frequency * a / p
    table = torch.cos(angle) * u + torch.sin(angle) * w + c + 0.05 * torch.randn(p, 16, generator=g, dtype=torch.float64)
    spectrum = residue_spectrum(table)
    top = top_frequencies(spectrum, 2)
    assert top[0]["frequency"] == frequency and top[0]["fraction"] > 0.9
    assert 0.1 < spectrum["constant_fraction"] < 0.9
    flat = residue_spectrum(torch.randn(p, 64, generator=g, dtype=torch.float64))
    if p > 7:
        assert max(flat["fraction"]) < 0.5  # random tables spread their power


# --- the command, end to end ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    """A tiny model trained for a few steps by the Trainer, and its checkpoint."""
    from fastrecur.config import RunConfig
    from fastrecur.train import Trainer

    out = tmp_path_factory.mktemp("tiny")
    graphs = {"num_nodes": 4, "num_leaf_nodes": 2, "min_fan_in": 1, "max_fan_in": 2, "max_depth": 2,
              "func_vocab": ["ADD"], "mod_val": 3, "num_vars": 8, "max_length": 24}  # fmt: skip
    cfg = RunConfig.from_dict(
        {
            "data": {"train": graphs},
            "model": {"vocab_sizes": list(DagConfig(**graphs).vocab().sizes), "hidden_size": 16, "num_layers": 2, "num_heads": 2,
                      "relpos_window": 8, "relpos_embed_size": 8, "attn_dropout": 0.0, "resid_dropout": 0.0},  # fmt: skip
            "train": {"batch_size": 16, "steps": 20, "lr": 0.01, "log_every": 10, "ckpt_every": 0, "out_dir": str(out)},
        }
    )
    trainer = Trainer(cfg, show_progress=False)
    trainer.fit()
    return trainer.checkpoint_path, cfg


def _figures_of(report_md: str) -> list[str]:
    return re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report_md)


def test_interpret_command_end_to_end(tmp_path, tiny_checkpoint):
    """A trained fastrecur checkpoint and the same weights as an authors' checkpoint give the same report."""
    from fastrecur.cli import main
    from fastrecur.compat import export_upstream_checkpoint, save_upstream_dataset
    from fastrecur.checkpoint import model_from_checkpoint
    from fastrecur.compat.configs import model_config_to_upstream

    import yaml

    ckpt, cfg = tiny_checkpoint
    data = generate_dataset(DagConfig(**cfg.data.train), 24, seed=9)
    save_upstream_dataset(data, tmp_path / "graphs.pt")
    data.vocab.to_json(tmp_path / "vocab.json")
    common = ["--data", str(tmp_path / "graphs.pt"), "--num-graphs", "24", "--probe-graphs", "2", "--maps", "1", "--no-progress"]
    assert main(["interpret", ckpt, "--out", str(tmp_path / "ours"), *common]) == 0

    report_md = (tmp_path / "ours" / "report.md").read_text()
    report = json.loads((tmp_path / "ours" / "report.json").read_text())
    linked = _figures_of(report_md)
    assert sorted(linked) == sorted(report["figures"].values()) and len(linked) == 8
    for name in linked:
        assert (tmp_path / "ours" / name).stat().st_size > 1000
    assert report["probe_equations"]["slots"] == ["var_0", "var_1", "rhs"]  # arity = the graphs' fan-in
    assert np.array(report["head_shares"]["input"]).shape == (2, 2, 2, 6)
    assert len(report["linear_probes"]["value"]["rhs"]["accuracy"]) == report["linear_probes"]["iterations"] == 4
    assert report["fourier"]["embedding"]["frequencies"] == [1]

    authors = tmp_path / "authors"
    authors.mkdir()
    model, _ = model_from_checkpoint(ckpt)
    export_upstream_checkpoint(model, str(authors / "last.ckpt"))
    (authors / "model_config.yaml").write_text(yaml.safe_dump(model_config_to_upstream(model.config)))
    data.vocab.to_json(authors / "vocab.json")
    assert main(["interpret", str(authors), "--out", str(tmp_path / "theirs"), *common]) == 0
    theirs = json.loads((tmp_path / "theirs" / "report.json").read_text())
    assert theirs["source"]["kind"] == "authors"
    for key in ("probe_equations", "head_shares", "linear_probes", "fourier"):
        assert theirs[key] == pytest.approx(report[key], rel=1e-4, abs=1e-6) if not isinstance(report[key], dict) else _close(theirs[key], report[key])


def _close(a, b) -> bool:
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        return all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list):
        assert len(a) == len(b)
        return all(_close(x, y) for x, y in zip(a, b))
    if isinstance(a, float):
        assert a == pytest.approx(b, rel=1e-4, abs=1e-6)
        return True
    assert a == b
    return True


def test_interpret_continuous_flag_and_bad_input(tmp_path, tiny_checkpoint, capsys):
    from fastrecur.cli import main

    ckpt, _ = tiny_checkpoint
    args = ["--num-graphs", "16", "--probe-graphs", "1", "--maps", "0", "--continuous", "--iters", "2", "--no-progress"]
    assert main(["interpret", ckpt, "--out", str(tmp_path / "c"), *args]) == 0
    report = json.loads((tmp_path / "c" / "report.json").read_text())
    assert report["linear_probes"]["continuous"] is True and report["linear_probes"]["iterations"] == 2
    assert main(["interpret", str(tmp_path / "missing.pt"), "--out", str(tmp_path / "x")]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
    assert main(["interpret", str(tmp_path), "--out", str(tmp_path / "x")]) == 2  # a directory without .ckpt
    assert "no .ckpt" in capsys.readouterr().err
