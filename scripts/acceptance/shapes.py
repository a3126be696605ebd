"""Shapes and repetition counts: the paper's on a GPU, toy ones for ``--dry-run`` (CPU interpreter).

The benchmark suites in ``bench/`` own the paper shapes; they are read from there so that the
acceptance run and the benchmarks always measure the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bench.e2e.test_e2e import FLOOR_MS_H100, shapes as e2e_shapes
from bench.test_fused_ops import SHAPES as FUSED_SHAPES
from bench.test_relpos_attention import SHAPES as ATTENTION_SHAPES


@dataclass(frozen=True)
class Sizes:
    bench_size: str  # the bench suites' name: "paper" or "smoke"
    attention: dict  # correctness and speed: name → (B, H, L, d, window)
    fused: dict  # bench/test_fused_ops shape (tokens, hidden, batch, length, steps)
    e2e: dict  # bench/e2e shape (config, overrides, graphs, lengths, eval_nodes, eval_graphs)
    curve_steps: int = 20  # the seeded loss curve
    compiled_steps: int = 2  # the torch.compile'd step against eager: the second after an optimizer step
    rollout_graphs: int = 64  # closed-loop rollouts compared between backends
    eval_graphs: int = 256  # graphs of the timed n = 128 evaluation
    warmup: int = 3
    reps: int = 20
    step_reps: int = 10
    profile_steps: int = 3
    reference_bytes: float = 24e9  # device memory the chunked fp64 attention reference may use
    floors_ms: dict = field(default_factory=lambda: dict(FLOOR_MS_H100))


def sizes(dry_run: bool) -> Sizes:
    if not dry_run:
        return Sizes("paper", ATTENTION_SHAPES["paper"], FUSED_SHAPES["paper"], e2e_shapes("paper"))
    return Sizes(
        "smoke",
        # Two lengths like L = 256 / 1024: several query/key blocks of the interpreter's tiles,
        # far tiles on both sides of the band, a partial last block.
        {"L40": (2, 1, 40, 24, 8), "L72": (1, 1, 72, 24, 8)},
        FUSED_SHAPES["smoke"],
        e2e_shapes("smoke"),
        curve_steps=3,
        compiled_steps=1,
        rollout_graphs=4,
        eval_graphs=4,
        warmup=0,
        reps=1,
        step_reps=1,
        profile_steps=1,
        reference_bytes=1e9,
    )
