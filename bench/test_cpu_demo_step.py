"""The demo's training step on the CPU: what makes it cheaper (docs/learning.md §4).

    python -m pytest bench/test_cpu_demo_step.py --benchmark-only --benchmark-group-by=group

Every variant trains the embedded ``demo`` config on the same fixed batches of its own task (past the
curriculum); they share one group, so pytest-benchmark prints them side by side with ratios. Run it on
an idle machine: the figures are wall-clock medians. The ``torch.compile`` variant compiles during its
warm-up steps; past the curriculum the batches have one shape (16 graphs x 5 iterations x 32 tokens).
"""

from __future__ import annotations

import contextlib

import pytest
import torch

from fastrecur.config import load_config
from fastrecur.train import Trainer

STEPS_PER_ROUND = 10


@contextlib.contextmanager
def threads(n: int):
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def demo_trainer(tmp_path, *overrides, optimizer: str = "default") -> Trainer:
    cfg = load_config("demo", [f"train.out_dir={tmp_path}", *overrides])
    trainer = Trainer(cfg, show_progress=False)
    if optimizer != "default":
        kind = {"foreach": dict(foreach=True), "loop": dict(foreach=False)}[optimizer]
        t = cfg.train
        trainer.optimizer = torch.optim.AdamW(
            trainer.model.parameters(), lr=t.lr, betas=tuple(t.betas), eps=t.eps, weight_decay=t.weight_decay, **kind
        )
    return trainer


# (threads, config overrides, optimizer, per-tensor gradient clipping)
VARIANTS = {
    "2 threads, fused AdamW, foreach clipping (the trainer)": (2, (), "default", False),
    "2 threads, per-tensor AdamW and clipping (before issue 15)": (2, (), "loop", True),
    "2 threads, foreach AdamW": (2, (), "foreach", False),
    "1 thread (the trainer)": (1, (), "default", False),
    "2 threads, no gradient clipping": (2, ("train.grad_clip=null",), "default", False),
    "2 threads, torch.compile (train.compile=true)": (2, ("train.compile=true",), "default", False),
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_demo_step(benchmark, tmp_path, monkeypatch, variant):
    num_threads, overrides, optimizer, per_tensor_clipping = VARIANTS[variant]
    if per_tensor_clipping:  # what the trainer did before: torch's default on CPU tensors
        clip = torch.nn.utils.clip_grad_norm_
        monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", lambda params, max_norm, foreach=None: clip(params, max_norm, foreach=False))
    benchmark.group = "cpu demo training step (10 steps)"
    with threads(num_threads):
        trainer = demo_trainer(tmp_path, *overrides, optimizer=optimizer)
        trainer.state.step = 2000  # past the curriculum: the task's own batches
        stream = trainer.batches()
        batches = [trainer.prepare(next(stream)) for _ in range(STEPS_PER_ROUND)]
        for sb in batches:  # warm-up (compiled: the compilation)
            trainer.train_step(sb)

        def ten_steps():
            for sb in batches:
                out = trainer.train_step(sb)
            return float(out["loss"])

        loss = benchmark.pedantic(ten_steps, rounds=5, iterations=1, warmup_rounds=1)
    benchmark.extra_info["steps_per_s"] = STEPS_PER_ROUND / benchmark.stats.stats.median
    assert loss == loss  # finite
