"""The chain-of-thought baseline (docs/method.md §10.4): the authors' CoT serialization of the same
graphs, the model with its KV cache, greedy generation, the CoT metrics and training."""

import numpy as np
import pytest
import torch
from torch import nn

from fastrecur.config import EvalSettings, RunConfig
from fastrecur.data import DagConfig, Vocab, generate_dataset
from fastrecur.data.cot import CLASS_VALUE, COT, PAD, CoTVocab, cot_required_length, cot_sequences
from fastrecur.data.graphs import sample_graphs
from fastrecur.data.serialize import serialize
from fastrecur.evaluate_cot import CoTEvaluator
from fastrecur.generation import greedy_generate
from fastrecur.model import CoTTransformer, ModelConfig
from fastrecur.train import Trainer

# The worked example of docs/method.md §1.6 (p = 7, ADD and SUB, 16 names), solved.
EXAMPLE = (
    "2 = x_11:2 <EQ_SEP> 4 = x_8:4 <EQ_SEP> 5 = x_9:5 <EQ_SEP> x_8 = x_6:4 <EQ_SEP> x_9 SUB x_8 SUB x_11 = x_13:6 <EQ_SEP> "
    "x_8 ADD x_11 SUB x_9 = x_3:1 <EQ_SEP> x_6 SUB x_9 SUB x_11 = x_5:4 <EQ_SEP> x_11 ADD x_9 SUB x_13 = x_0:1 <EQ_SEP> x_5 SUB x_3 = x_4:3"
)
PROMPT = (
    "2 = x_11 <EQ_SEP> 4 = x_8 <EQ_SEP> 5 = x_9 <EQ_SEP> x_8 = x_6 <EQ_SEP> x_9 SUB x_8 SUB x_11 = x_13 <EQ_SEP> "
    "x_8 ADD x_11 SUB x_9 = x_3 <EQ_SEP> x_6 SUB x_9 SUB x_11 = x_5 <EQ_SEP> x_11 ADD x_9 SUB x_13 = x_0 <EQ_SEP> x_5 SUB x_3 = x_4 <COT>"
)
EXPECTED = {
    "eq-val": "x_11 = 2 <EQ_SEP> x_8 = 4 <EQ_SEP> x_9 = 5 <EQ_SEP> x_6 = x_8 = 4 <EQ_SEP> x_13 = x_9 SUB x_8 SUB x_11 = 6 <EQ_SEP> "
    "x_3 = x_8 ADD x_11 SUB x_9 = 1 <EQ_SEP> x_5 = x_6 SUB x_9 SUB x_11 = 4 <EQ_SEP> x_0 = x_11 ADD x_9 SUB x_13 = 1 <EQ_SEP> "
    "x_4 = x_5 SUB x_3 = 3",
    "val": "x_11 = 2 <EQ_SEP> x_8 = 4 <EQ_SEP> x_9 = 5 <EQ_SEP> x_6 = 4 <EQ_SEP> x_13 = 6 <EQ_SEP> x_3 = 1 <EQ_SEP> x_5 = 4 <EQ_SEP> "
    "x_0 = 1 <EQ_SEP> x_4 = 3",
}
GRAPHS = DagConfig(num_nodes=7, num_leaf_nodes=2, min_fan_in=1, max_fan_in=3, max_depth=4, func_vocab=("ADD", "MUL"), mod_val=5, num_vars=10, max_length=64)


@pytest.mark.parametrize("cot_type", ["eq-val", "val"])
def test_the_worked_example_serializes_as_written_by_hand(cot_type):
    vocab = Vocab(16, ("ADD", "SUB"), 7)
    labels = torch.cat([vocab.encode(EXAMPLE), vocab.encode("<PAD> <PAD>")]).unsqueeze(0)
    batch = cot_sequences(labels, vocab, cot_type)
    words = CoTVocab.of(vocab).decode(batch.tokens[0])
    assert " ".join(words) == f"{PROMPT} {EXPECTED[cot_type]}"
    assert int(batch.prompt_lengths[0]) == len(PROMPT.split()) and int(batch.lengths[0]) == len(words)
    assert [words[i] for i in batch.answers[0].nonzero().flatten().tolist()] == ["2", "4", "5", "4", "6", "1", "4", "1", "3"]


def test_the_vocabulary_is_the_authors():
    cot_vocab = CoTVocab.of(Vocab(128, ("ADD",), 23))
    tokens = cot_vocab.tokens()
    assert cot_vocab.size == 157 and tokens[:5] == ("<PAD>", "<UNK>", "=", "<EQ_SEP>", "<COT>")
    assert tokens[5] == "0" and tokens[27] == "22" and tokens[28] == "ADD" and tokens[29] == "x_0" and tokens[-1] == "x_127"


def cot_text_from_graph(block, g: int, config: DagConfig, cot_type: str) -> str:
    """The CoT of graph ``g`` written from the graph itself (names, parents, operations, values)."""
    name = lambda node: f"x_{block.name[g, node]}"  # noqa: E731
    prompt, steps = [], []
    for node in block.order[g]:
        k = int(block.fan_in[g, node])
        value = str(block.value[g, node])
        if k == 0:
            prompt.append(f"{value} = {name(node)}")
            steps.append(f"{name(node)} = {value}")
            continue
        lhs = [name(block.parents[g, node, 0])]
        for j in range(1, k):
            lhs += [config.func_vocab[block.ops[g, node, j]], name(block.parents[g, node, j])]
        prompt.append(f"{' '.join(lhs)} = {name(node)}")
        steps.append(f"{name(node)} = {' '.join(lhs)} = {value}" if cot_type == "eq-val" else f"{name(node)} = {value}")
    return " <EQ_SEP> ".join(prompt) + " <COT> " + " <EQ_SEP> ".join(steps)


@pytest.mark.parametrize("cot_type", ["eq-val", "val"])
def test_generated_graphs_serialize_to_their_own_cot(cot_type):
    """Same equations, order and names as the factored sequence, values from the graph."""
    block = sample_graphs(GRAPHS, np.random.default_rng(7), 40)
    labels, _ = serialize(block, GRAPHS, GRAPHS.vocab())
    batch = cot_sequences(torch.from_numpy(labels), GRAPHS.vocab(), cot_type)
    cot_vocab = CoTVocab.of(GRAPHS.vocab())
    for g in range(40):
        length = int(batch.lengths[g])
        assert " ".join(cot_vocab.decode(batch.tokens[g, :length])) == cot_text_from_graph(block, g, GRAPHS, cot_type)
        assert (batch.tokens[g, length:] == PAD).all()


@pytest.mark.parametrize("cot_type", ["eq-val", "val"])
def test_the_required_length_is_the_longest_possible(cot_type):
    widest = GRAPHS.replace(min_fan_in=3)  # every node at its largest fan-in: the worst case, exactly
    graphs = generate_dataset(widest, 8, seed=3)
    lengths = cot_sequences(graphs.labels, graphs.vocab, cot_type).lengths
    assert (lengths == cot_required_length(widest, cot_type)).all()
    assert cot_sequences(generate_dataset(GRAPHS, 64, seed=4).labels, GRAPHS.vocab(), cot_type).lengths.max() <= cot_required_length(GRAPHS, cot_type)


# --- the model, its KV cache and greedy generation ----------------------------------------------


def cot_model(positions: str, seed: int = 0) -> CoTTransformer:
    torch.manual_seed(seed)
    size = CoTVocab.of(GRAPHS.vocab()).size
    cfg = ModelConfig(vocab_sizes=(size,), architecture="cot", positions=positions, hidden_size=16, num_layers=2, num_heads=2, relpos_window=6, relpos_embed_size=8)
    return CoTTransformer(cfg).eval()


@pytest.fixture(scope="module")
def cot_batch():
    return cot_sequences(generate_dataset(GRAPHS, 6, seed=5).labels, GRAPHS.vocab(), "eq-val")


@pytest.mark.parametrize("positions", ["rope", "relative"])
def test_cached_forward_equals_the_full_forward(positions, cot_batch):
    model = cot_model(positions)
    tokens = cot_batch.tokens
    full = model(tokens)
    cache = model.new_cache(tokens.shape[0], tokens.shape[1])
    pieces = [model(tokens[:, a:b], cache) for a, b in ((0, 9), (9, 10), (10, 30), (30, tokens.shape[1]))]
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, rtol=1e-5, atol=1e-5)


def test_cached_forward_equals_the_full_forward_under_length_scaling(cot_batch):
    """The KV-cache path applies log-length scaling at each query's absolute position, as the full pass."""
    model = cot_model("relative")
    tokens = cot_batch.tokens
    with model.length_scaling(8):
        full = model(tokens)
        cache = model.new_cache(tokens.shape[0], tokens.shape[1])
        pieces = [model(tokens[:, a:b], cache) for a, b in ((0, 9), (9, 10), (10, 30), (30, tokens.shape[1]))]
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, rtol=1e-5, atol=1e-5)
    assert (full - model(tokens)).abs().max() > 1e-4  # and it did scale


@pytest.mark.parametrize("positions", ["rope", "relative"])
def test_cached_greedy_generation_equals_uncached_token_for_token(positions, cot_batch):
    model = cot_model(positions)
    args = (cot_batch.tokens, cot_batch.prompt_lengths, cot_batch.lengths)
    assert len(set(cot_batch.prompt_lengths.tolist())) > 1  # prompts of different lengths in one batch
    cached = greedy_generate(model, *args, use_cache=True)
    uncached = greedy_generate(model, *args, use_cache=False)
    assert torch.equal(cached, uncached)
    for b in range(len(cached)):  # and each row is what it would be alone (the authors' decoding)
        alone = greedy_generate(model, *(a[b : b + 1] for a in args), use_cache=False)
        assert torch.equal(alone[0], cached[b, : alone.shape[1]])


class CountingModel(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model, self.calls = model, 0

    def forward(self, tokens, cache=None):
        self.calls += 1
        return self.model(tokens, cache)

    def new_cache(self, *args):
        return self.model.new_cache(*args)


@pytest.mark.parametrize("use_cache", [True, False])
def test_generation_halts_at_the_reference_length_and_reads_only_prompts(use_cache, cot_batch):
    model = CountingModel(cot_model("rope"))
    prompt, lengths = cot_batch.prompt_lengths, cot_batch.lengths
    out = greedy_generate(model, cot_batch.tokens, prompt, lengths, use_cache=use_cache)
    assert out.shape[1] == int(lengths.max())
    positions = torch.arange(out.shape[1])
    assert (out[positions >= lengths[:, None]] == PAD).all() and (out[positions < lengths[:, None]] != PAD).all()
    assert model.calls == int(lengths.max()) - int(prompt.min())  # one pass per generated position (the first with the cache: the shortest prompt)
    scrambled = torch.where(positions < prompt[:, None], cot_batch.tokens[:, : out.shape[1]], 7)  # the reference CoT replaced
    assert torch.equal(greedy_generate(model, scrambled, prompt, lengths, use_cache=use_cache), out)
    assert torch.equal(out[positions < prompt[:, None]], cot_batch.tokens[:, : out.shape[1]][positions < prompt[:, None]])


# --- the CoT evaluator ----------------------------------------------------------------------------


class OracleCoT(nn.Module):
    """Predicts the reference next token of whichever graph a prefix belongs to (no cache)."""

    def __init__(self, batch, size, wrong=None):
        super().__init__()
        self.config = ModelConfig(vocab_sizes=(size,), architecture="cot", hidden_size=8, num_heads=1, num_layers=1)
        self.size, self.references = size, {}
        for b in range(len(batch.tokens)):
            reference = batch.tokens[b].clone()
            if wrong is not None and wrong[0] == b:
                offset, p = CoTVocab.of(GRAPHS.vocab()).value_offset, GRAPHS.mod_val
                reference[wrong[1]] = (reference[wrong[1]] - offset + 1) % p + offset  # another value token
            self.references[tuple(batch.tokens[b, : int(batch.prompt_lengths[b])].tolist())] = reference

    def forward(self, tokens, cache=None):
        logits = torch.zeros(*tokens.shape, self.size)
        for b in range(tokens.shape[0]):
            cot = int((tokens[b] == COT).nonzero()[0]) if (tokens[b] == COT).any() else None
            reference = self.references[tuple(tokens[b, : cot + 1].tolist())] if cot is not None else None
            for i in range(tokens.shape[1]):
                nxt = reference[i + 1] if reference is not None and i + 1 < len(reference) else PAD
                logits[b, i, nxt] = 10.0
        return logits


def test_a_perfect_model_scores_100_percent_and_one_wrong_value_one_graph():
    graphs = generate_dataset(GRAPHS, 6, seed=9)
    batch = cot_sequences(graphs.labels, graphs.vocab, "eq-val")
    size = CoTVocab.of(graphs.vocab).size
    settings = EvalSettings(batch_size=4)
    perfect = CoTEvaluator(OracleCoT(batch, size), "eq-val", settings, torch.device("cpu"), use_cache=False).evaluate(graphs)
    assert perfect["fully_solved"] == 1.0 and perfect["value_acc"] == 1.0 and perfect["token_acc"] == 1.0
    assert set(perfect["token_acc_by_class"]) == {"syntax", "variable", "value", "operation"}
    assert perfect["generated_tokens"]["mean"] == float((batch.lengths - batch.prompt_lengths).double().mean())
    last_answer = int(batch.answers[2].nonzero()[-1])
    wrong = CoTEvaluator(OracleCoT(batch, size, wrong=(2, last_answer)), "eq-val", settings, torch.device("cpu"), use_cache=False).evaluate(graphs)
    assert wrong["fully_solved"] == pytest.approx(5 / 6)
    assert wrong["value_acc"] == pytest.approx(1 - 1 / int(batch.answers.sum()))
    in_cot = (torch.arange(batch.tokens.shape[1]) >= batch.prompt_lengths[:, None]) & (batch.tokens != PAD)
    values = int((CoTVocab.of(graphs.vocab).token_class(batch.tokens) == CLASS_VALUE)[in_cot].sum())
    assert wrong["token_acc_by_class"]["value"] == pytest.approx(1 - 1 / values)
    assert wrong["token_acc_by_class"]["variable"] == 1.0


# --- training ------------------------------------------------------------------------------------


def cot_config(tmp_path, **train) -> RunConfig:
    size = CoTVocab.of(GRAPHS.vocab()).size
    return RunConfig.from_dict(
        {
            "data": {"train": {**GRAPHS.__dict__, "func_vocab": list(GRAPHS.func_vocab)}},
            "model": {"architecture": "cot", "positions": "rope", "vocab_sizes": [size], "hidden_size": 16, "num_layers": 1, "num_heads": 2},
            "train": {"batch_size": 4, "steps": 2, "log_every": 1, "ckpt_every": 0, "out_dir": str(tmp_path), "corruption": {"enable": False}, **train},
        }
    )


@pytest.mark.parametrize("padding", ["trim", "faithful"])
def test_the_loss_counts_the_tokens_after_cot(tmp_path, padding):
    trainer = Trainer(cot_config(tmp_path, padding=padding), show_progress=False)
    batch = next(trainer.batches())
    sb = trainer.prepare(batch)
    reference = cot_sequences(batch.labels, batch.vocab, "eq-val")
    positions = torch.arange(sb.token_mask.shape[1])
    first = positions >= reference.prompt_lengths[:, None] - 1  # input position of <COT> predicts the first CoT token
    last = positions < reference.lengths[:, None] - 1 if padding == "trim" else torch.ones_like(first)
    assert torch.equal(sb.token_mask, first & last)
    if padding == "faithful":
        assert sb.tokens.shape[1] == cot_required_length(GRAPHS, "eq-val")
    state = trainer.fit()
    assert state.step == 2 and "acc/token" in state.history[-1]
