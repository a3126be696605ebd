"""Speed, side by side in one run: every figure a median of timed calls after warm-up (``measure``),
with TFLOP/s or GB/s and the peak memory of the timed calls.

The variants and their inputs are the benchmark suites' (``bench/``), so these figures and the
benchmarks measure the same thing:

* attention (``bench/test_relpos_attention.py``): the fused kernel (without and with dropout),
  plain causal SDPA without position terms (the limit), FlexAttention with the position tables,
  ``torch.compile`` of the reference, the eager reference; forward and forward + backward;
* the fused ops (``bench/test_fused_ops.py``) against their compiled and eager references, with
  each op's bandwidth floor (bytes it must move) as a time at the measured copy bandwidth;
* the training step and the n = 128 evaluation per backend (``bench/e2e``).
"""

from __future__ import annotations

import json
import os
import tempfile

import torch

from .kernels_api import bottleneck_reference, corrupt_teacher_states_reference, factor_loss_reference, gumbel_noise, ops
from .measure import free_memory, rates, time_fn
from .runner import Item, time_left
from .shapes import Sizes

H100_BYTES_PER_S = 3.35e12


def _guarded(fn):
    """Out of memory and pytest.skip (FlexAttention unavailable) become results, not errors."""
    import pytest

    try:
        return fn()
    except torch.cuda.OutOfMemoryError as exc:
        return {"skipped": f"out of memory: {str(exc).splitlines()[0][:200]}"}
    except pytest.skip.Exception as exc:
        return {"skipped": str(exc)[:300]}


def _timing_budget() -> float:
    """Seconds one measurement may spend on timed repetitions (its warm-up is not limited)."""
    return max(1.0, min(20.0, time_left() / 4))


# --------------------------------------------------------------------------------------------------
# Attention
# --------------------------------------------------------------------------------------------------


def attention_speed(shape, variant: str, sizes: Sizes, device) -> dict:
    from bench.test_relpos_attention import DTYPE, causal_flops, forward_fn, make_inputs

    B, H, L, d, window = shape
    passes = {}
    for pass_ in ("fwd", "fwd+bwd"):
        if variant == "flex" and pass_ == "fwd+bwd" and device.type == "cpu":
            passes[pass_] = {"skipped": "FlexAttention has no backward on the CPU"}
            continue

        def measure():
            inputs = make_inputs(B, H, L, d, window, device, requires_grad=pass_ == "fwd+bwd")
            fwd, tensors = forward_fn(variant, inputs, window, device)
            if pass_ == "fwd":
                fn, flops, io_tensors = fwd, causal_flops(B, H, L, d), 4
            else:
                do = inputs[-1]
                fn, flops, io_tensors = (lambda: torch.autograd.grad(fwd(), tensors, do)), 3.5 * causal_flops(B, H, L, d), 12
            timing = time_fn(fn, device, warmup=sizes.warmup, reps=sizes.reps, max_seconds=_timing_budget())
            return rates(timing, flops=flops, bytes_moved=io_tensors * B * H * L * d * DTYPE.itemsize)

        try:
            passes[pass_] = _guarded(measure)
        except Exception as exc:  # FlexAttention is expected to be fragile at d = 24 (as in the bench); the others are not
            if variant != "flex" or "CUDA error" in str(exc):
                raise
            passes[pass_] = {"skipped": f"flex_attention failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"}
        free_memory(device)
    return {"status": "info", "shape": dict(B=B, H=H, L=L, d=d, window=window), "variant": variant, "passes": passes}


ATTENTION_VARIANTS = ["triton", "sdpa", "flex", "compiled", "triton-dropout", "eager"]


def attention_items(sizes: Sizes, device) -> list[Item]:
    from bench.test_relpos_attention import SHAPES

    return [
        Item(f"attention {name} {variant}", lambda s=shape, v=variant: attention_speed(s, v, sizes, device))
        for name, shape in SHAPES[sizes.bench_size].items()
        for variant in ATTENTION_VARIANTS
    ]


# --------------------------------------------------------------------------------------------------
# The fused ops
# --------------------------------------------------------------------------------------------------


def measured_bandwidth(workdir: str) -> float | None:
    """Bytes per second of a device-to-device copy, measured by the environment section."""
    path = os.path.join(workdir, "ceilings.json")
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f).get("copy_bytes_per_s")
    return None


def fused_op_speed(op: str, variant: str, sizes: Sizes, device, workdir: str) -> dict:
    from bench.test_fused_ops import (
        RESET_FACTORS, VALUE_FACTOR, VALUE_VOCAB, VOCAB, WEIGHTS, bottleneck_floor_bytes, loss_floor_bytes, make_heads,
        make_loss_batch, make_teacher_batch, teacher_floor_bytes,
    )  # fmt: skip

    def maybe_compiled(fn):
        return torch.compile(fn) if variant == "compiled" else fn

    if op in ("bottleneck argmax", "bottleneck gumbel"):
        z, weight, bias, emb = make_heads(sizes.fused, device)
        sample = op.endswith("gumbel")
        floor = bottleneck_floor_bytes(z, weight, emb)
        if variant == "triton":
            seeds = iter(range(10**9))
            fn = lambda: ops.bottleneck(z, weight, bias, emb, VOCAB, reset_factors=RESET_FACTORS,  # noqa: E731
                                        tau=1.0 if sample else 0.0, seed=next(seeds))  # fmt: skip
        else:

            def eager(z, weight, bias, emb):
                noise = gumbel_noise((z.shape[0], sum(VOCAB)), device=z.device) if sample else None
                return bottleneck_reference(z, weight, bias, emb, VOCAB, reset_factors=RESET_FACTORS, noise=noise)

            ref = maybe_compiled(eager)
            fn = lambda: ref(z, weight, bias, emb)  # noqa: E731
    elif op == "factor loss fwd+bwd":
        logits, targets = make_loss_batch(sizes.fused, device)
        x = logits.clone().requires_grad_()
        loss_fn = ops.factor_loss if variant == "triton" else maybe_compiled(factor_loss_reference)
        floor = loss_floor_bytes(logits, targets)

        def fn():
            x.grad = None
            out = loss_fn(x, targets, VOCAB, WEIGHTS)
            out.total.backward()
            return out

    elif op == "teacher states + corruption":
        inputs, labels, depth = make_teacher_batch(sizes.fused, device)
        steps = sizes.fused["steps"]
        kw = dict(value_vocab_size=VALUE_VOCAB, token_prob=0.5, strategy="last", value_factor=VALUE_FACTOR)
        floor = teacher_floor_bytes(depth, steps)
        if variant == "triton":
            seeds = iter(range(10**9))
            fn = lambda: ops.corrupt_teacher_states(inputs, labels, depth, steps, seed=next(seeds), **kw)  # noqa: E731
        else:
            ref = maybe_compiled(corrupt_teacher_states_reference)
            fn = lambda: ref(inputs, labels, depth, steps, **kw)  # noqa: E731
    else:
        raise ValueError(f"unknown op {op!r}")

    def measure():
        return rates(time_fn(fn, device, warmup=sizes.warmup, reps=sizes.reps, max_seconds=_timing_budget()), bytes_moved=floor)

    result = _guarded(measure)
    bandwidth = measured_bandwidth(workdir)
    result.update(floor_bytes=floor, floor_us_h100=floor / H100_BYTES_PER_S * 1e6)
    if bandwidth:
        result["floor_us_measured"] = floor / bandwidth * 1e6
    return {"status": "info", "op": op, "variant": variant, **result}


FUSED_OPS = ["bottleneck argmax", "bottleneck gumbel", "factor loss fwd+bwd", "teacher states + corruption"]


def fused_items(sizes: Sizes, device, workdir: str) -> list[Item]:
    return [
        Item(f"{op} {variant}", lambda o=op, v=variant: fused_op_speed(o, v, sizes, device, workdir))
        for op in FUSED_OPS
        for variant in ("triton", "compiled", "eager")
    ]


# --------------------------------------------------------------------------------------------------
# Training step and evaluation, per backend
# --------------------------------------------------------------------------------------------------


def train_step_speed(variant: str, length: int, sizes: Sizes, device) -> dict:
    from bench.e2e.test_e2e import trainer_for

    def measure():
        trainer, sb = trainer_for(sizes.bench_size, variant, length, tempfile.mkdtemp(prefix="acceptance-"))
        timing = time_fn(lambda: trainer.train_step(sb), device, warmup=sizes.warmup, reps=sizes.step_reps,
                         max_seconds=_timing_budget())  # fmt: skip
        sequences = sb.num_iters * sb.tokens.shape[0]
        timing.update(sequences=sequences, length=sb.tokens.shape[1],
                      tokens_per_s=sequences * sb.tokens.shape[1] / (timing["median_ms"] / 1e3))  # fmt: skip
        floor = sizes.floors_ms.get(length)
        if floor:
            timing.update(floor_ms=floor, x_floor=timing["median_ms"] / floor)
        if length in STEP_WORK_PER_TOKEN and not sizes.bench_size == "smoke":
            flops, bytes_moved = (w * sequences * sb.tokens.shape[1] for w in STEP_WORK_PER_TOKEN[length])
            timing = rates(timing, flops=flops, bytes_moved=bytes_moved)
        return timing

    return {"status": "info", "variant": variant, "length": length, **_guarded(measure)}


TRAIN_VARIANTS = ["triton", "reference", "triton-compiled", "reference-compiled"]
# docs/performance.md §1–2: a step's model FLOPs and ideal HBM bytes per token (its counts for 65,536
# tokens at L = 256 and 262,144 at L = 1024), for the TFLOP/s and GB/s of the measured steps.
STEP_WORK_PER_TOKEN = {256: (3.07e12 / 65_536, 13.3e9 / 65_536), 1024: (14.4e12 / 262_144, 53.4e9 / 262_144)}


def train_items(sizes: Sizes, device) -> list[Item]:
    return [
        Item(f"train step L{length} {variant}", lambda v=variant, n=length: train_step_speed(v, n, sizes, device))
        for length in sizes.e2e["lengths"]
        for variant in TRAIN_VARIANTS
    ]


def eval_speed(variant: str, sizes: Sizes, device) -> dict:
    from bench.e2e.test_e2e import eval_dataset, trainer_for

    from fastrecur.evaluate import Evaluator

    backend, graphs = variant.split("+")[0], variant.endswith("+cuda-graphs")
    if graphs and device.type != "cuda":
        return {"status": "skipped", "variant": variant, "note": "CUDA graphs need a GPU"}

    def measure():
        trainer, _ = trainer_for(sizes.bench_size, backend, sizes.e2e["lengths"][0], tempfile.mkdtemp(prefix="acceptance-"))
        model = trainer.model.eval()
        dataset = eval_dataset(sizes.bench_size, trainer, sizes.eval_graphs)
        settings = type(trainer.cfg.eval)(**{**trainer.cfg.eval.__dict__, "cuda_graphs": graphs})
        evaluator = Evaluator(model, settings, device, trainer.backend)
        result = {}

        def run():
            result.update(evaluator.evaluate(dataset))

        timing = time_fn(run, device, warmup=min(1, sizes.warmup), reps=3 if sizes.reps > 1 else 1, max_seconds=_timing_budget())
        timing.update(graphs=len(dataset), nodes=sizes.e2e["eval_nodes"], fully_solved=result["fully_solved"],
                      iterations=result["iterations"], graphs_per_s=len(dataset) / (timing["median_ms"] / 1e3))  # fmt: skip
        return timing

    return {"status": "info", "variant": variant, **_guarded(measure)}


EVAL_VARIANTS = ["triton", "triton+cuda-graphs", "reference"]


def eval_items(sizes: Sizes, device) -> list[Item]:
    return [Item(f"evaluation n={sizes.e2e['eval_nodes']} {v}", lambda v=v: eval_speed(v, sizes, device)) for v in EVAL_VARIANTS]
