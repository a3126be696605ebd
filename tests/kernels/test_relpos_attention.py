"""The relative-position attention op: the fused kernels against the float64 reference.

On the CPU the kernels run in the Triton interpreter with 16/32-wide tiles (see ``_config``), so the
small shapes below still cover several query and key blocks, far tiles on both sides of the band,
partial blocks, and differently tiled forward / dq / dk-dv kernels.
"""

import math
from statistics import NormalDist

import pytest
import torch
from _stats import binomial_bounds

from fastrecur_kernels.ops import relpos_attention
from fastrecur_kernels.reference import relpos_attention_reference
from fastrecur_kernels.relpos_attention import dropout_keep_mask


@pytest.fixture(autouse=True)
def _poison_every_buffer(poisoned_empty):
    """Every buffer the module allocates starts as NaN (integers: −1), so an unwritten element shows."""


def make_inputs(B, H, L, d, window, device, *, c2p=True, p2c=True, seed=0):
    """Fresh random q, k, v, pos_k, pos_q (float64 on the CPU) and an output gradient."""
    g = torch.Generator().manual_seed(seed)
    q, k, v, do = (torch.randn(B, H, L, d, generator=g, dtype=torch.float64) for _ in range(4))
    pos_k = torch.randn(window, H, d, generator=g, dtype=torch.float64) if c2p else None
    pos_q = torch.randn(window, H, d, generator=g, dtype=torch.float64) if p2c else None
    return [q, k, v, pos_k, pos_q], do


def leaves(tensors, dtype, device):
    return [None if t is None else t.to(device, dtype).requires_grad_() for t in tensors]


def run_both(inputs, do, dtype, device, *, mask=None, **kw):
    """Kernel in ``dtype`` and the float64 oracle on the same (rounded) inputs: outputs and gradients."""
    kernel_in = leaves(inputs, dtype, device)
    out = relpos_attention(*kernel_in, **kw)
    out.backward(do.to(device, dtype))
    oracle_in = [None if t is None else t.detach().double().cpu().requires_grad_() for t in kernel_in]
    kw.pop("seed", None)
    ref = relpos_attention_reference(*oracle_in, dropout_mask=mask, **kw)
    ref.backward(do.to(dtype).double())
    got = [out] + [t.grad for t in kernel_in if t is not None]
    want = [ref] + [t.grad for t in oracle_in if t is not None]
    return got, want, kernel_in


def assert_matches(got, want, atol, rtol):
    names = ["out", "dq", "dk", "dv", "dpos"]
    for i, (g, w) in enumerate(zip(got, want)):
        assert torch.isfinite(g).all(), f"{names[min(i, 4)]}: unwritten (NaN) or non-finite elements"
        torch.testing.assert_close(g.double().cpu(), w, atol=atol, rtol=rtol, msg=lambda m: f"{names[min(i, 4)]}: {m}")


CASES = {  # name: (B, H, L, d, window, shift, causal, c2p, p2c)
    "base": (2, 2, 40, 24, 8, 0, True, True, True),  # L not a multiple of any tile
    "L<W": (1, 2, 10, 8, 16, 0, True, True, True),
    "L>>W": (1, 1, 70, 8, 4, 0, True, True, True),
    "paper-window": (1, 1, 80, 24, 64, 0, True, True, True),
    "shift": (1, 2, 37, 24, 8, 3, True, True, True),
    "bidirectional-shift": (1, 2, 33, 16, 8, 3, False, True, True),
    "bidirectional-W1": (1, 1, 20, 8, 1, 0, False, True, True),
    "d64": (1, 1, 24, 64, 8, 0, True, True, True),
    "c2p-only": (1, 1, 24, 8, 4, 1, True, True, False),
    "p2c-only": (1, 1, 24, 8, 4, 1, True, False, True),
    "content-only": (1, 1, 24, 8, 4, 0, True, False, False),
    "L=1": (1, 2, 1, 8, 4, 0, True, True, True),
}


@pytest.mark.parametrize("name", CASES)
def test_matches_oracle_fp32(name, device):
    B, H, L, d, window, shift, causal, c2p, p2c = CASES[name]
    inputs, do = make_inputs(B, H, L, d, window, device, c2p=c2p, p2c=p2c, seed=len(name))
    got, want, _ = run_both(inputs, do, torch.float32, device, window=window, shift=shift, causal=causal)
    assert_matches(got, want, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_matches_oracle_16bit(dtype, device):
    """Error against float64 at most twice that of the oracle itself run in ``dtype`` (plus a floor)."""
    inputs, do = make_inputs(1, 2, 40, 24, 8, device, seed=3)
    got, want, kernel_in = run_both(inputs, do, dtype, device, window=8, shift=1)
    native_in = [None if t is None else t.detach().cpu().requires_grad_() for t in kernel_in]
    native = relpos_attention_reference(*native_in, window=8, shift=1)
    native.backward(do.to(dtype))
    native_results = [native] + [t.grad for t in native_in if t is not None]
    for g, w, n in zip(got, want, native_results):
        assert g.dtype == dtype and torch.isfinite(g).all()
        budget = 2 * (n.double() - w).abs().max().item() + 1e-3
        assert (g.double().cpu() - w).abs().max().item() <= budget


def test_noncontiguous_inputs(device):
    """q, k, v as the model makes them (view + transpose of one [B, L, 3·H·d] projection), strided
    position tables and a strided output gradient."""
    B, H, L, d, window = 2, 2, 24, 16, 8
    g = torch.Generator().manual_seed(7)
    qkv = torch.randn(B, L, 3 * H * d, generator=g).to(device)
    q, k, v = (t.view(B, L, H, d).transpose(1, 2) for t in qkv.split(H * d, dim=-1))
    tables = torch.randn(window, 2 * H * d, generator=g).to(device)
    pos_k, pos_q = (t.view(window, H, d) for t in tables.split(H * d, dim=-1))
    assert not q.is_contiguous() and not pos_k.is_contiguous()
    do = torch.randn(B, L, H, d, generator=g).to(device).transpose(1, 2)
    inputs = [t.detach().requires_grad_() for t in (q, k, v, pos_k, pos_q)]
    out = relpos_attention(*inputs, window=window)
    out.backward(do)
    oracle_in = [t.detach().double().cpu().requires_grad_() for t in inputs]
    ref = relpos_attention_reference(*oracle_in, window=window)
    ref.backward(do.double().cpu())
    assert_matches([out] + [t.grad for t in inputs], [ref] + [t.grad for t in oracle_in], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name", ["base", "L>>W", "bidirectional-shift", "p2c-only"])
def test_length_scaling_matches_oracle(name, device):
    """Log-length scaling: row i's scores × max(1, ln(i+1)/ln L0), in the forward and in all five
    gradients (the dq kernel scales its rows, the dk/dv kernel its columns)."""
    B, H, L, d, window, shift, causal, c2p, p2c = CASES[name]
    inputs, do = make_inputs(B, H, L, d, window, device, c2p=c2p, p2c=p2c, seed=5 + len(name))
    kw = dict(window=window, shift=shift, causal=causal, length_scale_from=6)
    got, want, _ = run_both(inputs, do, torch.float32, device, **kw)
    assert_matches(got, want, atol=1e-4, rtol=1e-4)
    plain = relpos_attention_reference(*inputs, window=window, shift=shift, causal=causal)
    assert (want[0] - plain).abs().max() > 1e-2  # the scaling changes the rows it should


def test_length_scaling_with_dropout_matches_oracle(device):
    inputs, do = make_inputs(1, 2, 40, 16, 8, device, seed=11)
    mask = dropout_keep_mask(1234, 1, 2, 40, 0.25, device=device).cpu()
    kw = dict(window=8, dropout_p=0.25, length_scale_from=5)
    got, want, _ = run_both(inputs, do, torch.float32, device, mask=mask, seed=1234, **kw)
    assert_matches(got, want, atol=1e-4, rtol=1e-4)


def test_length_scaling_refuses_l0_below_2(device):
    inputs, _ = make_inputs(1, 1, 12, 8, 4, device)
    for bad in (1, -3):
        with pytest.raises(ValueError, match="length_scale_from"):
            relpos_attention(*leaves(inputs, torch.float32, device), window=4, length_scale_from=bad)


# --------------------------------------------------------------------------------------------------
# Dropout
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("causal,shift", [(True, 0), (False, 2)])
def test_dropout_exact_given_mask(causal, shift, device):
    """With the kernel's own mask the oracle reproduces output and all five gradients."""
    B, H, L, d, window, p, seed = 1, 2, 40, 24, 8, 0.3, 1234
    inputs, do = make_inputs(B, H, L, d, window, device, seed=11)
    mask = dropout_keep_mask(seed, B, H, L, p, device=device).cpu()
    got, want, _ = run_both(inputs, do, torch.float32, device, mask=mask, window=window, shift=shift,
                            causal=causal, dropout_p=p, seed=seed)  # fmt: skip
    assert_matches(got, want, atol=1e-4, rtol=1e-4)


def test_dropout_seeds_and_determinism(device):
    """Same seed → bitwise-identical output and gradients (the backward has no atomics); another
    seed → another mask; seed=None follows torch.manual_seed."""
    B, H, L, d, window, p = 1, 1, 24, 8, 4, 0.2
    inputs, do = make_inputs(B, H, L, d, window, device, seed=5)

    def run(seed):
        x = leaves(inputs, torch.float32, device)
        out = relpos_attention(*x, window=window, dropout_p=p, seed=seed)
        out.backward(do.to(device, torch.float32))
        return [out.detach()] + [t.grad for t in x]

    first, again = run(42), run(42)
    for a, b in zip(first, again):
        assert torch.equal(a, b)
    assert not torch.equal(run(43)[0], first[0])
    m42, m43 = (dropout_keep_mask(s, B, H, L, p, device=device) for s in (42, 43))
    assert (m42 != m43).float().mean() > 0.1
    torch.manual_seed(0)
    a = run(None)[0]
    torch.manual_seed(0)
    assert torch.equal(run(None)[0], a)


def test_dropout_keep_rate(device):
    """Kept fraction within binomial bounds overall and for each of the four Philox words (key j % 4);
    every (batch, head) gets its own mask."""
    B, H, L, p = 2, 2, 64, 0.25
    keep = dropout_keep_mask(2024, B, H, L, p, device=device).cpu()
    lo, hi = binomial_bounds(keep.numel(), 1 - p)
    assert lo <= keep.sum().item() <= hi
    for lane in range(4):
        part = keep[..., lane::4]
        lo, hi = binomial_bounds(part.numel(), 1 - p)
        assert lo <= part.sum().item() <= hi, f"word {lane}"
    flat = keep.view(B * H, L * L)
    for a in range(B * H):
        for b in range(a + 1, B * H):
            assert (flat[a] != flat[b]).float().mean() > 0.2


def test_dropout_mean_matches_no_dropout(device):
    """With v = I the output row is the probability row, so each dropout output element is
    ``P_ij·Bernoulli(1−p)/(1−p)``: its mean over 2 seeds × 64 identical batch rows (independent masks)
    must approach P within a Bonferroni z-bound; a wrong keep rate or rescaling fails it."""
    reps, H, L, window, p, seeds = 64, 1, 16, 4, 0.3, (7, 8)
    inputs, _ = make_inputs(1, H, L, L, window, device, seed=9)
    q, k, _, pos_k, pos_q = (t.to(device, torch.float32) for t in inputs)
    v = torch.eye(L, device=device).expand(1, H, L, L)
    probs = relpos_attention(q, k, v, pos_k, pos_q, window=window).double()
    many = [t.expand(reps, *t.shape[1:]) for t in (q, k, v)]
    samples = torch.cat([relpos_attention(*many, pos_k, pos_q, window=window, dropout_p=p, seed=s) for s in seeds])
    n = samples.shape[0]
    mean = samples.double().mean(0, keepdim=True)
    live = probs > 1e-6
    z = (mean - probs)[live] / (probs[live] * math.sqrt(p / (1 - p) / n))
    bound = NormalDist().inv_cdf(1 - 1e-4 / (2 * live.sum().item()))
    assert z.abs().max().item() < bound
    assert (samples == 0).double().mean().item() > 0.5 * p  # dropout did happen


# --------------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------------


def test_input_errors(device):
    q = torch.randn(1, 2, 8, 8, device=device)
    table = torch.randn(4, 2, 8, device=device)

    def same_qkv(t):
        return dict(q=t, k=t, v=t)

    bad = [
        (dict(k=torch.randn(1, 2, 7, 8, device=device)), "must all be"),
        (dict(q=torch.randn(2, 8, 8, device=device)), "must all be"),
        (same_qkv(torch.randn(1, 2, 8, 12, device=device)), "multiple of 8"),
        (same_qkv(torch.randn(1, 2, 8, 136, device=device)), "multiple of 8"),
        (dict(pos_k=torch.randn(3, 2, 8, device=device)), "pos_k must be"),
        (dict(shift=4), "shift"),
        (dict(window=0), "window"),
        (dict(dropout_p=1.0), "dropout_p"),
        (dict(v=q.double()), "dtype"),
        (dict(same_qkv(q.double()), pos_k=table.double(), pos_q=table.double()), "dtype"),
        (dict(pos_q=table.to("meta")), "device"),
    ]
    for change, message in bad:
        args = dict(q=q, k=q, v=q, pos_k=table, pos_q=table, window=4, shift=0, dropout_p=0.0)
        args.update(change)
        call = dict(args)
        qkv = [call.pop(name) for name in ("q", "k", "v", "pos_k", "pos_q")]
        with pytest.raises(ValueError, match=message):
            relpos_attention(*qkv, **call)
