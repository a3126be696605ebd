"""End-to-end: one training step and one OOD evaluation, per backend, side by side.

    python -m pytest bench/e2e --benchmark-only [--bench-size paper|smoke] [--benchmark-json e2e.json]

Variants (same weights and data): ``triton`` (fused kernels), ``triton-compiled`` (the same under
``torch.compile``), ``reference`` (plain PyTorch, eager) and ``reference-compiled`` (``torch.compile``
of the reference model).

* ``train_L256`` / ``train_L1024``: the paper model, 32 graphs × 7 iterations = 224 sequences at the
  full padded length (faithful padding, so the shape is exactly ``[224, L]``); bf16 autocast on CUDA.
  ``extra_info`` holds tokens/s, peak memory and the time as a multiple of the H100 floor of
  docs/performance.md §2 (4.1 ms at L = 256, 19.3 ms at L = 1024).
* ``eval_n128``: closed-loop ``depth+2`` evaluation of 1,024 graphs of 128 nodes.

``smoke`` (the default without a GPU) shrinks everything to seconds so the suite can be checked on
a CPU (the triton variant then runs in Triton's interpreter: its timings mean nothing).
"""

from __future__ import annotations

import pytest
import torch

from fastrecur.config import RunConfig, load_config
from fastrecur.data import DagConfig, generate_dataset
from fastrecur.evaluate import Evaluator
from fastrecur.train import Trainer

FLOOR_MS_H100 = {256: 4.1, 1024: 19.3}  # docs/performance.md §2 (roofline, perfect overlap)
VARIANTS = {
    "triton": dict(backend="triton", compile=False),
    "triton-compiled": dict(backend="triton", compile=True),
    "reference": dict(backend="reference", compile=False),
    "reference-compiled": dict(backend="reference", compile=True),
}


def shapes(size: str) -> dict:
    if size == "paper":
        return dict(config="paper", overrides=[], graphs=32, lengths=[256, 1024], eval_nodes=128, eval_graphs=1024)
    # As small as still covers several attention tiles: the triton variants run in the interpreter.
    smoke_model = ["model.hidden_size=32", "model.num_layers=1", "model.num_heads=2", "model.relpos_window=8", "model.relpos_embed_size=16"]
    return dict(config="paper", overrides=smoke_model, graphs=1, lengths=[32], eval_nodes=5, eval_graphs=2)


def trainer_for(size: str, variant: str, length: int, tmp_path, overrides=()) -> tuple[Trainer, object]:
    """A trainer for ``variant`` and its first batch, prepared (``overrides``: extra ``key=value``s)."""
    s = shapes(size)
    cfg = load_config(s["config"], [*s["overrides"], *overrides])
    base = DagConfig(**cfg.data.train)
    # Graphs whose maximum depth is 6 (→ 7 iterations) and that fill about the given length.
    nodes = base.num_nodes if length <= 256 else 128
    graphs = base.replace(num_nodes=nodes, max_depth=6, max_length=length) if size == "paper" else base.replace(
        num_nodes=4, num_leaf_nodes=2, max_depth=2, max_length=length
    )
    train = dict(cfg.to_dict()["train"], batch_size=s["graphs"], padding="faithful", out_dir=str(tmp_path), **VARIANTS[variant])
    raw = dict(cfg.to_dict(), train=train)
    raw["data"]["train"] = {**raw["data"]["train"], **{k: getattr(graphs, k) for k in ("num_nodes", "num_leaf_nodes", "max_depth", "max_length")}}
    trainer = Trainer(RunConfig.from_dict(raw), show_progress=False)
    batch = next(trainer.batches())
    return trainer, trainer.prepare(batch)


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("length_index", [0, 1])
def test_train_step(measure, benchmark, bench_size, variant, length_index, tmp_path):
    lengths = shapes(bench_size)["lengths"]
    if length_index >= len(lengths):
        pytest.skip("only one length at this bench size")
    length = lengths[length_index]
    benchmark.group = f"train_L{length}"
    trainer, sb = trainer_for(bench_size, variant, length, tmp_path)
    sequences = sb.num_iters * sb.tokens.shape[0]
    try:
        measure(lambda: trainer.train_step(sb), rounds=10 if bench_size == "paper" else 2, warmup=3 if bench_size == "paper" else 1)
    except torch.cuda.OutOfMemoryError:
        pytest.skip(f"{variant} runs out of GPU memory at L={length}")
    info = benchmark.extra_info
    info.update(variant=variant, sequences=sequences, length=sb.tokens.shape[1])
    info["tokens_per_s"] = sequences * sb.tokens.shape[1] / (info["median_ms"] / 1e3)
    if bench_size == "paper" and length in FLOOR_MS_H100:
        info["x_floor_h100"] = info["median_ms"] / FLOOR_MS_H100[length]


def eval_dataset(size: str, trainer: Trainer, num_graphs: int):
    """``num_graphs`` out-of-distribution graphs of ``eval_nodes`` nodes in the trainer's vocabulary."""
    from fastrecur.data import ood_config

    s = shapes(size)
    config = ood_config(DagConfig(**trainer.cfg.data.train), s["eval_nodes"], num_leaf_nodes=6 if size == "paper" else 2)
    return generate_dataset(config, num_graphs, seed=5)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_eval_ood(measure, benchmark, bench_size, bench_device, variant, tmp_path):
    s = shapes(bench_size)
    benchmark.group = f"eval_n{s['eval_nodes']}"
    trainer, _ = trainer_for(bench_size, variant, s["lengths"][0], tmp_path)
    model = trainer.model.eval()
    if VARIANTS[variant]["compile"]:
        model = torch.compile(model)
    dataset = eval_dataset(bench_size, trainer, s["eval_graphs"])
    evaluator = Evaluator(model, trainer.cfg.eval, bench_device, trainer.backend)
    measure(lambda: evaluator.evaluate(dataset), rounds=3 if bench_size == "paper" else 1, warmup=1)
    benchmark.extra_info.update(variant=variant, graphs=len(dataset), nodes=s["eval_nodes"])
