"""Greedy CoT generation (docs/method.md §10.4): batched with a KV cache against recomputing the
prefix, and against the authors' decoding (one graph at a time, no cache), side by side.

Run:  python -m pytest bench/test_cot_generation.py --benchmark-only

Graphs of n = 32 and n = 64 nodes with the authors' OOD settings (mod 23, 128 names: the 157-token
vocabulary), ``eq-val`` CoT (≈ 375–460 and ≈ 800–900 tokens); every variant generates exactly the
reference CoT of the same graphs with the same random weights (the work does not depend on them).
``--bench-size paper`` uses the authors' CoT model (hidden 512, 8 layers, 16 heads, RoPE); ``smoke``
(default on a CPU) a 64-wide, 2-layer one. pytest-benchmark prints each group's ratios; ``extra_info``
records generated tokens per second.
"""

from __future__ import annotations

import pytest
import torch

from fastrecur.data import DagConfig, generate_dataset, ood_config
from fastrecur.data.cot import CoTVocab, cot_sequences
from fastrecur.generation import greedy_generate
from fastrecur.model import CoTTransformer, ModelConfig

GRAPHS_PER_ROUND = 8
MODELS = {
    "paper": dict(hidden_size=512, num_layers=8, num_heads=16),
    "smoke": dict(hidden_size=64, num_layers=2, num_heads=4),
}


@pytest.fixture(scope="module")
def cot_model(bench_size, bench_device):
    torch.manual_seed(0)
    size = CoTVocab.of(DagConfig().vocab()).size
    cfg = ModelConfig(vocab_sizes=(size,), architecture="cot", positions="rope", attn_dropout=0.0, resid_dropout=0.0, **MODELS[bench_size])
    return CoTTransformer(cfg).to(bench_device).eval()


def one_at_a_time(model, tokens, prompt, lengths):
    """The authors' decoding: each graph alone, the whole prefix recomputed for every token."""
    for b in range(len(tokens)):
        greedy_generate(model, tokens[b : b + 1], prompt[b : b + 1], lengths[b : b + 1], use_cache=False)


@pytest.mark.parametrize("variant", ["batched, KV cache", "batched, no cache", "one at a time, no cache (authors)"])
@pytest.mark.parametrize("num_nodes", [32, 64])
def test_cot_generation(measure, benchmark, bench_device, cot_model, num_nodes, variant):
    graphs = generate_dataset(ood_config(DagConfig(), num_nodes), GRAPHS_PER_ROUND, seed=(7, num_nodes))
    batch = cot_sequences(graphs.labels, graphs.vocab, "eq-val")
    tokens, prompt, lengths = (t.to(bench_device) for t in (batch.tokens, batch.prompt_lengths, batch.lengths))
    run = {
        "batched, KV cache": lambda: greedy_generate(cot_model, tokens, prompt, lengths, use_cache=True),
        "batched, no cache": lambda: greedy_generate(cot_model, tokens, prompt, lengths, use_cache=False),
        "one at a time, no cache (authors)": lambda: one_at_a_time(cot_model, tokens, prompt, lengths),
    }[variant]
    benchmark.group = f"CoT generation n={num_nodes}"
    measure(run, rounds=2, warmup=1)
    generated = int((lengths - prompt).sum())
    benchmark.extra_info.update(graphs=GRAPHS_PER_ROUND, generated_tokens=generated, sequence_length_max=int(lengths.max()))
    benchmark.extra_info["generated_tokens_per_s"] = round(generated / benchmark.stats.stats.median)
