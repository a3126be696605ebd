"""Attention with DeBERTa-style relative positions (issue #5): the fused kernel against its baselines.

Run:  python -m pytest bench/test_relpos_attention.py --benchmark-only [--bench-size paper|smoke]

``paper``: bf16, H = 16 heads of d = 24, window 64, causal, at the training shape (B·K = 224
sequences of L = 256) and at L = 1024 (same B); ``smoke``: a tiny shape so that the suite runs on
the CPU interpreter (its timings mean nothing). q, k, v are laid out like the model makes them
(view + transpose of [B, L, H, d]). Variants of one (shape, pass) share a group:

* ``triton`` — ``fastrecur_kernels.ops.relpos_attention`` (and ``triton-dropout``: the same with p = 0.1, the
  training setting, to show the cost of the in-kernel RNG);
* ``eager`` — ``relpos_attention_reference``, every [B, H, L, L] score materialised;
* ``compiled`` — ``torch.compile`` of that reference;
* ``flex`` — FlexAttention (compiled) with the c2p/p2c tables computed outside and gathered in
  ``score_mod``, causal block mask (its construction is not timed);
* ``sdpa`` — plain causal ``scaled_dot_product_attention`` without position terms: the limit.

A variant that cannot run (out of memory, FlexAttention missing or failing at d = 24, no backward
on the CPU) is skipped with the reason. ``extra_info``: ``tflops`` counts the QK and PV products
over the causal triangle only (4·B·H·d·L(L+1)/2 forward, ×3.5 forward + backward), the same for
every variant, so it reads as speed; ``gbps`` counts the unavoidable HBM traffic (q, k, v, o
forward; plus dO, O and dq, dk, dv backward); ``peak_mem_gib`` is measured on CUDA.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from fastrecur_kernels.ops import relpos_attention
from fastrecur_kernels.reference import relpos_attention_reference

HEADS, HEAD_DIM, DTYPE = 16, 24, torch.bfloat16
SHAPES = {  # name: (B, H, L, d, window)
    "paper": {"L256": (224, HEADS, 256, HEAD_DIM, 64), "L1024": (224, HEADS, 1024, HEAD_DIM, 64)},
    "smoke": {"tiny": (1, 2, 32, HEAD_DIM, 8)},
}
VARIANTS = ["triton", "triton-dropout", "eager", "compiled", "flex", "sdpa"]
PASSES = ["fwd", "fwd+bwd"]


def pytest_generate_tests(metafunc):
    # One test per shape of the chosen size (the default mirrors bench/conftest.py's bench_size).
    if "shape_name" in metafunc.fixturenames:
        size = metafunc.config.getoption("--bench-size") or ("paper" if torch.cuda.is_available() else "smoke")
        metafunc.parametrize("shape_name", list(SHAPES[size]))


def make_inputs(B, H, L, d, window, device, requires_grad):
    g = torch.Generator().manual_seed(0)

    def model_layout(*shape):  # [B, L, H, d] storage seen as [B, H, L, d], like the model's views
        return torch.randn(*shape, generator=g).to(device, DTYPE).transpose(1, 2).requires_grad_(requires_grad)

    q, k, v = (model_layout(B, L, H, d) for _ in range(3))
    pos_k, pos_q = (
        torch.randn(window, H, d, generator=g).to(device, DTYPE).requires_grad_(requires_grad) for _ in range(2)
    )
    do = torch.randn(B, L, H, d, generator=g).to(device, DTYPE).transpose(1, 2)
    return q, k, v, pos_k, pos_q, do


def flex_variant(q, window, device):
    """FlexAttention with c2p/p2c gathered from precomputed [B, H, L, W] tables."""
    try:
        from torch.nn.attention.flex_attention import create_block_mask, flex_attention
    except ImportError as exc:
        pytest.skip(f"flex_attention unavailable: {exc}")
    B, H, L, d = q.shape
    block_mask = create_block_mask(lambda b, h, i, j: i >= j, None, None, L, L, device=device)
    scale = 1.0 / math.sqrt(3 * d)

    def attention(q, k, v, pos_k, pos_q):
        c2p = torch.einsum("bhid,whd->bhiw", q, pos_k)
        p2c = torch.einsum("bhjd,whd->bhjw", k, pos_q)

        def score_mod(score, b, h, i, j):
            r = (j - i).clamp(-window + 1, 0) + window - 1
            return score + (c2p[b, h, i, r] + p2c[b, h, j, r]).float() * scale

        return flex_attention(q, k, v, score_mod=score_mod, block_mask=block_mask, scale=scale)

    return torch.compile(attention)


def forward_fn(variant, inputs, window, device):
    q, k, v, pos_k, pos_q, _ = inputs
    if variant == "sdpa":
        return lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True), (q, k, v)
    tensors = (q, k, v, pos_k, pos_q)
    if variant in ("triton", "triton-dropout"):
        p = 0.1 if variant == "triton-dropout" else 0.0
        seeds = iter(range(10**9))
        return lambda: relpos_attention(*tensors, window=window, dropout_p=p, seed=next(seeds)), tensors
    if variant == "flex":
        attention = flex_variant(q, window, device)
    elif variant == "compiled":
        attention = torch.compile(lambda *t: relpos_attention_reference(*t, window=window))
    else:
        attention = lambda *t: relpos_attention_reference(*t, window=window)  # noqa: E731
    return lambda: attention(*tensors), tensors


def causal_flops(B, H, L, d):
    return 4.0 * B * H * d * L * (L + 1) / 2


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("pass_", PASSES)
def test_relpos_attention(measure, benchmark, bench_size, bench_device, shape_name, pass_, variant):
    B, H, L, d, window = SHAPES[bench_size][shape_name]
    benchmark.group = f"relpos attention {shape_name} {pass_}"
    benchmark.extra_info.update(variant=variant, B=B, H=H, L=L, d=d, window=window, dtype=str(DTYPE))
    if variant == "flex" and pass_ == "fwd+bwd" and bench_device.type == "cpu":
        pytest.skip("FlexAttention has no backward on the CPU")
    inputs = make_inputs(B, H, L, d, window, bench_device, requires_grad=pass_ == "fwd+bwd")
    fwd, tensors = forward_fn(variant, inputs, window, bench_device)
    do = inputs[-1]
    if pass_ == "fwd":
        flops, io_tensors = causal_flops(B, H, L, d), 4

        def fn():
            return fwd()

    else:
        flops, io_tensors = 3.5 * causal_flops(B, H, L, d), 12

        def fn():
            return torch.autograd.grad(fwd(), tensors, do)

    small = bench_size == "smoke"
    try:
        measure(fn, flops=flops, bytes_moved=io_tensors * B * H * L * d * DTYPE.itemsize,
                rounds=2 if small else 20, warmup=1 if small else 3)  # fmt: skip
    except torch.cuda.OutOfMemoryError as exc:
        torch.cuda.empty_cache()
        pytest.skip(f"{variant} out of memory at {shape_name}: {str(exc).splitlines()[0]}")
    except Exception as exc:  # FlexAttention is expected to be fragile at d = 24; the others are not
        if variant != "flex":
            raise
        pytest.skip(f"flex_attention failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
