"""The three fused ops around attention (issue #6) against their eager reference and torch.compile.

Run:  python -m pytest bench/test_fused_ops.py --benchmark-only [--bench-size paper|smoke]

``paper`` is one training step of the authors' fast path: T = 224 × 256 = 57,344 tokens
(32 graphs × 7 iterations × L = 256), D = 384, bf16 activations, vocabularies 7/129/2/25/2/2;
``smoke`` uses tiny shapes so the suite runs on the CPU interpreter (its timings mean nothing).

Each op's variants share a group, so pytest-benchmark prints them side by side with ratios.
``bytes_moved`` is each op's bandwidth floor — the bytes it must read and write at least, counted
below — so ``extra_info["gbps"]`` reads against HBM bandwidth (3.35 TB/s on an H100 SXM) and
``extra_info["floor_us_h100"]`` is that floor's time.
"""

from __future__ import annotations

import pytest
import torch

from fastrecur_kernels.ops import bottleneck, corrupt_teacher_states, factor_loss
from fastrecur_kernels.reference import (
    bottleneck_reference,
    corrupt_teacher_states_reference,
    factor_loss_reference,
    gumbel_noise,
)

VOCAB = (7, 129, 2, 25, 2, 2)
RESET_FACTORS = (4, 5)  # REGRET, MODIFICATION
VALUE_FACTOR = 3
WEIGHTS = (1.0, 1.0, 1.0, 1.0, 0.0, 0.0)
VALUE_VOCAB = 25
H100_BYTES_PER_S = 3.35e12
SHAPES = {
    # tokens, hidden, (graphs, length, iterations) for the teacher states
    "paper": dict(tokens=224 * 256, hidden=384, batch=32, length=256, steps=7),
    "smoke": dict(tokens=128, hidden=32, batch=2, length=32, steps=3),
}
VARIANTS = ["triton", "eager", "compiled"]


@pytest.fixture(scope="module")
def shape(bench_size):
    return SHAPES[bench_size]


@pytest.fixture
def run(measure, benchmark, bench_size):
    """``run(group, variant, fn, bytes_moved)``: time ``fn`` in ``group`` with its floor recorded."""

    def go(group, variant, fn, bytes_moved):
        benchmark.group = group
        benchmark.extra_info.update(variant=variant, floor_bytes=bytes_moved)
        benchmark.extra_info["floor_us_h100"] = bytes_moved / H100_BYTES_PER_S * 1e6
        small = bench_size == "smoke"
        measure(fn, bytes_moved=bytes_moved, rounds=3 if small else 20, warmup=1 if small else 3)

    return go


def _maybe_compiled(fn, variant):
    return torch.compile(fn) if variant == "compiled" else fn


# ---- bottleneck: heads → argmax / Gumbel-max → re-embedding (inference path) ------------------------


def make_heads(shape: dict, device) -> tuple:
    """z [T, D] bf16 and the concatenated head weight, bias and embedding table."""
    g = torch.Generator().manual_seed(0)
    n, d, v = shape["tokens"], shape["hidden"], sum(VOCAB)
    z = torch.randn(n, d, generator=g).to(device, torch.bfloat16)
    weight = (torch.randn(v, d, generator=g) / d**0.5).to(device, torch.bfloat16)
    bias = torch.randn(v, generator=g).to(device) * 0.1
    emb = torch.randn(v, d, generator=g).to(device, torch.bfloat16)
    return z, weight, bias, emb


@pytest.fixture(scope="module")
def heads(shape, bench_device):
    return make_heads(shape, bench_device)


def bottleneck_floor_bytes(z, weight, emb):
    """Read z, write the next embedding (emb dtype) and six int64 tokens per token; read the
    head weights and the embedding table once."""
    n, d = z.shape
    per_token = d * z.element_size() + d * emb.element_size() + len(VOCAB) * 8
    return n * per_token + weight.numel() * weight.element_size() + emb.numel() * emb.element_size()


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("sample", [False, True], ids=["argmax", "gumbel"])
def test_bottleneck(run, heads, variant, sample):
    z, weight, bias, emb = heads
    if variant == "triton":
        seeds = iter(range(10**6))

        def fn():
            return bottleneck(z, weight, bias, emb, VOCAB, reset_factors=RESET_FACTORS, tau=1.0 if sample else 0.0, seed=next(seeds))

    else:

        def eager(z, weight, bias, emb):
            noise = gumbel_noise((z.shape[0], sum(VOCAB)), device=z.device) if sample else None
            return bottleneck_reference(z, weight, bias, emb, VOCAB, reset_factors=RESET_FACTORS, noise=noise)

        ref = _maybe_compiled(eager, variant)

        def fn():
            return ref(z, weight, bias, emb)

    run(f"bottleneck {'gumbel' if sample else 'argmax'}", variant, fn, bottleneck_floor_bytes(z, weight, emb))


# ---- factor loss: six cross-entropies, forward + backward --------------------------------------------


def make_loss_batch(shape: dict, device) -> tuple:
    """bf16 logits [T, ΣV] and int64 targets [T, 6]."""
    g = torch.Generator().manual_seed(1)
    n = shape["tokens"]
    logits = (torch.randn(n, sum(VOCAB), generator=g) * 3).to(device, torch.bfloat16)
    targets = torch.stack([torch.randint(0, v, (n,), generator=g) for v in VOCAB], dim=-1).to(device)
    return logits, targets


def loss_floor_bytes(logits, targets) -> int:
    """Read the logits and targets, write dlogits and the per-token correctness."""
    n, v = logits.shape
    return n * (2 * v * logits.element_size() + targets.shape[1] * (targets.element_size() + 1))


@pytest.fixture(scope="module")
def loss_batch(shape, bench_device):
    return make_loss_batch(shape, bench_device)


@pytest.mark.parametrize("variant", VARIANTS)
def test_factor_loss_fwd_bwd(run, loss_batch, variant):
    logits, targets = loss_batch
    x = logits.clone().requires_grad_()
    loss_fn = factor_loss if variant == "triton" else _maybe_compiled(factor_loss_reference, variant)

    def fn():
        x.grad = None
        out = loss_fn(x, targets, VOCAB, WEIGHTS)
        out.total.backward()
        return out

    run("factor_loss fwd+bwd", variant, fn, loss_floor_bytes(logits, targets))


# ---- teacher states + corruption ---------------------------------------------------------------------


def make_teacher_batch(shape: dict, device) -> tuple:
    """int64 inputs and labels [B, L, 6] and node depths [B, L] (−1 off the right-hand sides)."""
    g = torch.Generator().manual_seed(2)
    b, length = shape["batch"], shape["length"]
    labels = torch.randint(0, 23, (b, length, 6), generator=g)
    depth = torch.where(torch.rand(b, length, generator=g) < 0.35, torch.randint(0, 6, (b, length), generator=g), -1)
    inputs = labels.clone()
    inputs[..., 3] = torch.where(depth >= 0, 24, labels[..., 3])
    return inputs.to(device), labels.to(device), depth.to(device)


def teacher_floor_bytes(depth, steps: int) -> int:
    """Read input, labels (int64 [B, L, 6]) and depth; write K inputs and targets and the K masks."""
    positions = depth.numel()
    return positions * (2 * 6 * 8 + depth.element_size()) + steps * positions * (2 * 6 * 8 + 1)


@pytest.fixture(scope="module")
def teacher_batch(shape, bench_device):
    return make_teacher_batch(shape, bench_device)


@pytest.mark.parametrize("variant", VARIANTS)
def test_corrupt_teacher_states(run, teacher_batch, shape, variant):
    inputs, labels, depth = teacher_batch
    steps = shape["steps"]
    kwargs = dict(value_vocab_size=VALUE_VOCAB, token_prob=0.5, strategy="last", value_factor=VALUE_FACTOR)
    if variant == "triton":
        seeds = iter(range(10**6))

        def fn():
            return corrupt_teacher_states(inputs, labels, depth, steps, seed=next(seeds), **kwargs)

    else:
        ref = _maybe_compiled(corrupt_teacher_states_reference, variant)

        def fn():
            return ref(inputs, labels, depth, steps, **kwargs)

    run("corrupt teacher states", variant, fn, teacher_floor_bytes(depth, steps))
