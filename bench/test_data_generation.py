"""Graph generation throughput (graphs/s), the issue's speed target.

Run:  python -m pytest bench/test_data_generation.py --benchmark-only

The generator always runs on the CPU, so ``--bench-size`` does not apply: the shapes are the
paper's (n = 32 training graphs at L = 256, n = 128 evaluation graphs at L = 1024). The authors'
generator makes ≈340 graphs/s at n = 32 and ≈50 graphs/s at n = 128 on one core; the target is
≥10× that with one worker. ``extra_info`` records graphs/s and the speed-up over those figures.
"""

from __future__ import annotations

import pytest

from fastrecur.data import DagConfig, GraphStream, generate_dataset

AUTHORS_GRAPHS_PER_S = {32: 340.0, 128: 50.0}
SETTINGS = {
    32: (DagConfig(num_nodes=32, max_depth=6, max_length=256), 8192),  # training set
    128: (DagConfig(num_nodes=128, max_depth=128, max_length=1024), 2048),  # OOD / validation size
}


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("num_nodes", [32, 128])
def test_generate_dataset(benchmark, num_nodes, workers):
    config, count = SETTINGS[num_nodes]
    benchmark.group = f"generate n={num_nodes}"
    generate_dataset(config, 256, seed=0, workers=workers)  # warm-up: imports, allocator
    seeds = iter(range(1, 1000))
    benchmark.pedantic(lambda: generate_dataset(config, count, next(seeds), workers=workers), rounds=3, iterations=1)
    rate = count / benchmark.stats.stats.median
    benchmark.extra_info.update(graphs=count, workers=workers, graphs_per_s=round(rate))
    benchmark.extra_info["speedup_vs_authors"] = round(rate / AUTHORS_GRAPHS_PER_S[num_nodes], 1)


def test_training_stream(benchmark):
    """Batches of 32 training graphs as a training loop draws them (one block generated per 8 batches)."""
    config, _ = SETTINGS[32]
    stream = GraphStream(config, seed=0, batch_size=32)
    benchmark.group = "stream"

    def draw_64_batches():
        for _ in range(64):
            next(stream)

    benchmark.pedantic(draw_64_batches, rounds=5, iterations=1)
    benchmark.extra_info["graphs_per_s"] = round(64 * 32 / benchmark.stats.stats.median)
