"""Correctness on the device: every kernel compiled at the real shapes, and the two backends end to end.

Kernels (through their public custom ops) against the plain-PyTorch references beside them, on
fresh random inputs, outputs poisoned before the kernels write them:

* attention at each shape, fp32 and bf16 (and bf16 with dropout, given the kernel's own mask):
  output and all five gradients against the reference in float64, run over the batch in chunks
  that fit the device (the position-table gradients are summed over the chunks). fp32 must land
  within 1e-4 (relative L2); bf16 within twice the error of the reference run natively in bf16,
  plus 1e-3 — no worse than PyTorch itself in that dtype;
* the bottleneck, the six-factor loss and the teacher states + corruption at the paper's step.

End to end (``e2e_items``): the triton backend against the reference backend on one batch (loss and
every parameter's gradient, fp32, no dropout), a seeded loss curve, closed-loop rollouts on
out-of-distribution graphs, one ``torch.compile``d step and CUDA-graph replayed evaluation.
"""

from __future__ import annotations

import tempfile

import torch

from .kernels_api import (
    bottleneck_reference, corruption_candidates_reference, dropout_keep_mask, factor_loss_reference, ops,
    relpos_attention_reference, teacher_states_reference,
)  # fmt: skip
from .measure import check, free_memory, poisoned_allocations, rel_err, verdict
from .runner import Item
from .shapes import Sizes

VOCAB = (7, 129, 2, 25, 2, 2)
WEIGHTS = (1.0, 1.0, 1.0, 1.0, 0.0, 0.0)
RESET_FACTORS = (4, 5)  # REGRET, MODIFICATION
VALUE_FACTOR = 3
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
FP32_TOL = 1e-4


# --------------------------------------------------------------------------------------------------
# Attention
# --------------------------------------------------------------------------------------------------


def _attention_inputs(B, H, L, d, W, dtype, device, seed):
    g = torch.Generator(device=device).manual_seed(seed)

    def randn(*shape):
        return torch.randn(*shape, generator=g, device=device, dtype=torch.float32).to(dtype)

    # q, k, v, dO laid out as the model makes them: [B, L, H, d] storage seen as [B, H, L, d].
    q, k, v, do = (randn(B, L, H, d).transpose(1, 2) for _ in range(4))
    return [q, k, v, randn(W, H, d), randn(W, H, d)], do


def _chunked_reference(inputs, do, window, dropout_p, mask, dtype, chunk, length_scale_from=0):
    """``relpos_attention_reference`` in ``dtype`` over batch chunks: output and the five gradients."""
    q, k, v, pos_k, pos_q = (t.detach().to(dtype) for t in inputs)
    tables = [pos_k.requires_grad_(), pos_q.requires_grad_()]
    outs, dqs, dks, dvs = [], [], [], []
    table_grads = [torch.zeros_like(t, dtype=torch.promote_types(dtype, torch.float32)) for t in tables]
    for b in range(0, q.shape[0], chunk):
        part = [t[b : b + chunk].requires_grad_() for t in (q, k, v)]
        m = mask[b : b + chunk] if mask is not None else None
        o = relpos_attention_reference(*part, *tables, window=window, dropout_p=dropout_p, dropout_mask=m,
                                       length_scale_from=length_scale_from)  # fmt: skip
        grads = torch.autograd.grad(o, [*part, *tables], do[b : b + chunk].to(dtype))
        outs.append(o.detach())
        for acc, g in zip((dqs, dks, dvs), grads[:3]):
            acc.append(g)
        for acc, g in zip(table_grads, grads[3:]):
            acc += g
        del o, grads
    return [torch.cat(outs), torch.cat(dqs), torch.cat(dks), torch.cat(dvs), *table_grads]


def attention_check(shape, dtype_name: str, dropout_p: float, sizes: Sizes, device, length_scale_from: int = 0) -> dict:
    """Output and the five gradients of the fused attention against float64 (with log-length scaling
    from ``length_scale_from`` when > 0)."""
    B, H, L, d, W = shape
    dtype = DTYPES[dtype_name]
    inputs, do = _attention_inputs(B, H, L, d, W, dtype, device, seed=L + 7 * d + int(dropout_p * 100) + length_scale_from)
    leaves = [t.detach().requires_grad_() for t in inputs]
    seed = 1234 if dropout_p > 0 else None
    with poisoned_allocations():
        o = ops.relpos_attention(*leaves, window=W, dropout_p=dropout_p, seed=seed, length_scale_from=length_scale_from)
        grads = torch.autograd.grad(o, leaves, do)
    got = [o.detach(), *grads]
    del o, grads
    mask = dropout_keep_mask(seed, B, H, L, dropout_p, device=device) if dropout_p > 0 else None
    per_sequence = H * L * L * 8 * 12  # the reference's [L, L] tensors per sequence in fp64, with autograd
    chunk = max(1, min(B, int(sizes.reference_bytes // per_sequence)))
    want = _chunked_reference(inputs, do, W, dropout_p, mask, torch.float64, chunk, length_scale_from)
    native = _chunked_reference(inputs, do, W, dropout_p, mask, dtype, chunk, length_scale_from) if dtype != torch.float32 else None
    checks = []
    for i, name in enumerate(["out", "dq", "dk", "dv", "dpos_k", "dpos_q"]):
        if native is None:
            checks.append(check(name, got[i], want[i], FP32_TOL))
        else:
            native_err = rel_err(native[i], want[i])
            checks.append(check(name, got[i], want[i], 2 * native_err + 1e-3, native_rel_err=native_err))
    del got, want, native, mask
    free_memory(device)
    return verdict(checks, shape=dict(B=B, H=H, L=L, d=d, window=W), dtype=dtype_name, dropout_p=dropout_p,
                   length_scale_from=length_scale_from, reference_chunk=chunk)  # fmt: skip


# --------------------------------------------------------------------------------------------------
# The three fused ops around attention
# --------------------------------------------------------------------------------------------------


def _fused_inputs(sizes: Sizes, device, seed):
    g = torch.Generator(device=device).manual_seed(seed)
    return g, sizes.fused["tokens"], sizes.fused["hidden"], sum(VOCAB)


def bottleneck_check(dtype_name: str, sizes: Sizes, device) -> dict:
    dtype = DTYPES[dtype_name]
    g, n, d, v = _fused_inputs(sizes, device, seed=3)
    z = torch.randn(n, d, generator=g, device=device).to(dtype)
    weight = (torch.randn(v, d, generator=g, device=device) / d**0.5).to(dtype)
    bias = torch.randn(v, generator=g, device=device) * 0.1
    emb = torch.randn(v, d, generator=g, device=device).to(dtype)
    with poisoned_allocations():
        tokens, x = ops.bottleneck(z, weight, bias, emb, VOCAB, tau=0.0, reset_factors=RESET_FACTORS)
        sampled = ops.bottleneck(z, weight, bias, emb, VOCAB, tau=1.0, seed=99, reset_factors=RESET_FACTORS)[0]
        again = ops.bottleneck(z, weight, bias, emb, VOCAB, tau=1.0, seed=99, reset_factors=RESET_FACTORS)[0]
    ref_tokens, _ = bottleneck_reference(z.double(), weight.double(), bias.double(), emb.double(), VOCAB, reset_factors=RESET_FACTORS)
    mismatch = (tokens != ref_tokens).any(-1).double().mean().item()
    # The re-embedding of the kernel's own tokens (a near-tie decided differently is not an error here).
    starts = torch.tensor([0, *torch.tensor(VOCAB).cumsum(0)[:-1].tolist()], device=device)
    want_x = emb.double()[tokens + starts].sum(-2)
    changed = (sampled != tokens).any(-1).double().mean().item()
    checks = [
        {"check": "argmax tokens vs fp64 (fraction of tokens differing)", "value": mismatch, "tol": 1e-3, "ok": mismatch <= 1e-3},
        check("re-embedding", x, want_x, FP32_TOL if dtype == torch.float32 else 1e-2),
        {"check": "Gumbel sampling: same seed, same tokens", "ok": bool(torch.equal(sampled, again))},
        {"check": "Gumbel sampling differs from argmax somewhere", "value": changed, "ok": 0.0 < changed},
    ]
    return verdict(checks, tokens=n, hidden=d, dtype=dtype_name)


def factor_loss_check(dtype_name: str, sizes: Sizes, device) -> dict:
    dtype = DTYPES[dtype_name]
    g, n, _, v = _fused_inputs(sizes, device, seed=4)
    logits = (torch.randn(n, v, generator=g, device=device) * 3).to(dtype).requires_grad_()
    targets = torch.stack([torch.randint(0, size, (n,), generator=g, device=device) for size in VOCAB], -1)
    mask = torch.rand(n, generator=g, device=device) < 0.9
    with poisoned_allocations():
        out = ops.factor_loss(logits, targets, VOCAB, WEIGHTS, mask)
        (grad,) = torch.autograd.grad(out.total, logits)
    ref_logits = logits.detach().double().requires_grad_()
    ref = factor_loss_reference(ref_logits, targets, VOCAB, WEIGHTS, mask)
    (ref_grad,) = torch.autograd.grad(ref.total, ref_logits)
    wrong = int((out.correct != ref.correct).sum())
    checks = [
        check("total", out.total, ref.total, 1e-5),
        check("per factor", out.per_factor, ref.per_factor, 1e-5),
        check("dlogits", grad, ref_grad, 1e-5 if dtype == torch.float32 else 1e-2),
        {"check": "argmax == target, per token and factor (differences)", "value": wrong, "ok": wrong == 0},
    ]
    return verdict(checks, tokens=n, dtype=dtype_name)


def corrupt_check(sizes: Sizes, device) -> dict:
    from bench.test_fused_ops import VALUE_VOCAB, make_teacher_batch
    from _stats import binomial_bounds  # tests/_stats.py

    inputs, labels, depth = make_teacher_batch(sizes.fused, device)
    steps = sizes.fused["steps"]
    kw = dict(value_vocab_size=VALUE_VOCAB, strategy="last", value_factor=VALUE_FACTOR, seed=7)
    with poisoned_allocations():
        clean_in, clean_tg, clean_mask = ops.corrupt_teacher_states(inputs, labels, depth, steps, token_prob=0.0, **kw)
        noisy_in, noisy_tg, noisy_mask = ops.corrupt_teacher_states(inputs, labels, depth, steps, token_prob=0.5, **kw)
    ref_in, ref_tg = teacher_states_reference(inputs, labels, depth, steps, value_factor=VALUE_FACTOR)
    candidates = corruption_candidates_reference(depth, steps, "last")
    n = int(candidates.sum())
    low, high = binomial_bounds(n, 0.5)
    hit = int(noisy_mask.sum())
    outside = noisy_in[..., VALUE_FACTOR] != clean_in[..., VALUE_FACTOR]
    checks = [
        {"check": "clean inputs == S_0 … S_(K−1)", "ok": bool(torch.equal(clean_in, ref_in))},
        {"check": "targets == S_1 … S_K (clean and noisy)", "ok": bool(torch.equal(clean_tg, ref_tg) and torch.equal(noisy_tg, clean_tg))},
        {"check": "no corruption at token_prob 0", "ok": not bool(clean_mask.any())},
        {"check": "corrupted slots are candidates", "ok": not bool((noisy_mask & ~candidates).any())},
        {"check": "corrupted candidates ~ Binomial(n, 0.5)", "value": hit, "tol": [low, high], "ok": low <= hit <= high},
        {"check": "only corrupted VALUE slots change", "ok": not bool((outside & ~noisy_mask).any())
         and torch.equal(noisy_in[..., :VALUE_FACTOR], clean_in[..., :VALUE_FACTOR])},
        {"check": "noise values lie in the VALUE vocabulary",
         "ok": bool(((noisy_in[..., VALUE_FACTOR] >= 0) & (noisy_in[..., VALUE_FACTOR] < VALUE_VOCAB)).all())},
    ]  # fmt: skip
    return verdict(checks, candidates=n, steps=steps)


def kernel_items(sizes: Sizes, device) -> list[Item]:
    items = []
    for name, shape in sizes.attention.items():
        for dtype in DTYPES:
            items.append(Item(f"attention {name} {dtype}", lambda s=shape, t=dtype: attention_check(s, t, 0.0, sizes, device)))
    first = next(iter(sizes.attention.values()))
    items.append(Item(f"attention {next(iter(sizes.attention))} bf16 dropout 0.1",
                      lambda: attention_check(first, "bf16", 0.1, sizes, device)))  # fmt: skip
    length_scale_from = max(2, first[2] // 4)  # L0 = L/4: three quarters of the rows are scaled
    for dtype in DTYPES:
        items.append(Item(f"attention {next(iter(sizes.attention))} {dtype} length scaling from {length_scale_from}",
                          lambda t=dtype: attention_check(first, t, 0.0, sizes, device, length_scale_from)))  # fmt: skip
    for dtype in DTYPES:
        items.append(Item(f"bottleneck {dtype}", lambda t=dtype: bottleneck_check(t, sizes, device)))
        items.append(Item(f"factor loss {dtype}", lambda t=dtype: factor_loss_check(t, sizes, device)))
    items.append(Item("teacher states + corruption", lambda: corrupt_check(sizes, device)))
    return items


# --------------------------------------------------------------------------------------------------
# End to end: triton backend vs reference backend
# --------------------------------------------------------------------------------------------------

# Deterministic and comparable: fp32, no dropout (the backends draw different random numbers).
EXACT = ["train.precision=fp32", "model.attn_dropout=0.0", "model.resid_dropout=0.0", "train.corruption.enable=false"]


def _trainer(sizes: Sizes, backend: str, overrides=()):
    from bench.e2e.test_e2e import trainer_for

    length = sizes.e2e["lengths"][0]
    return trainer_for(sizes.bench_size, backend, length, tempfile.mkdtemp(prefix="acceptance-"), [*EXACT, *overrides])


def loss_and_gradients(sizes: Sizes) -> dict:
    results = {}
    for backend in ("reference", "triton"):
        trainer, sb = _trainer(sizes, backend)
        inputs, targets = teacher_states_reference(sb.tokens, sb.labels, sb.depth, sb.num_iters, value_factor=VALUE_FACTOR)
        inputs, targets = inputs.flatten(0, 1), targets.flatten(0, 1)
        trainer.model.train()
        out = trainer.backend.loss(trainer.model, inputs, targets, trainer.loss_weights, None)
        out.total.backward()
        results[backend] = (out, {n: p.grad.detach().clone() for n, p in trainer.model.named_parameters() if p.grad is not None})
        del trainer
    (ref, ref_grads), (fast, fast_grads) = results["reference"], results["triton"]
    # Per parameter: ‖Δ‖ ≤ 1e-3·‖g‖ + 1e-5·sqrt(n) (an absolute rms floor of 1e-5 per element, as
    # tests/test_fast_path.py): some gradients are zero in exact arithmetic (a bias added to every
    # position-table row shifts each score row by a constant, which the softmax ignores).
    excess = {n: (g - fast_grads[n]).double().norm().item() / (1e-3 * g.double().norm().item() + 1e-5 * g.numel() ** 0.5)
              for n, g in ref_grads.items()}  # fmt: skip
    worst = max(excess, key=excess.get)
    flat = lambda grads: torch.cat([grads[n].flatten() for n in sorted(ref_grads)])  # noqa: E731
    differing = (fast.correct != ref.correct).double().mean().item()
    checks = [
        check("loss", fast.total, ref.total, 1e-4),
        check("per-factor losses", fast.per_factor, ref.per_factor, 1e-4),
        check(f"all {len(ref_grads)} parameters' gradients as one vector", flat(fast_grads), flat(ref_grads), 1e-4),
        {"check": f"each parameter's gradient: error / allowed, worst ({worst})", "value": excess[worst], "tol": 1.0,
         "ok": excess[worst] <= 1.0 and set(fast_grads) == set(ref_grads)},
        {"check": "argmax == target agrees (fraction differing, near-ties only)", "value": differing, "tol": 1e-3, "ok": differing <= 1e-3},
    ]  # fmt: skip
    return verdict(checks, loss=ref.total.item())


def loss_curve(sizes: Sizes) -> dict:
    curves = {}
    for backend in ("reference", "triton"):
        trainer, _ = _trainer(sizes, backend)
        batches = trainer.batches()
        losses = []
        for _ in range(sizes.curve_steps):
            losses.append(trainer.train_step(trainer.prepare(next(batches)))["loss"])
        curves[backend] = [float(x) for x in losses]
        del trainer
    ref, fast = curves["reference"], curves["triton"]
    worst = max(abs(a - b) / abs(a) for a, b in zip(ref, fast))
    checks = [
        {"check": f"{len(ref)}-step curves agree (max relative difference)", "value": worst, "tol": 1e-3, "ok": worst <= 1e-3},
        {"check": "the loss decreases", "ok": ref[-1] < ref[0] and fast[-1] < fast[0]},
    ]
    return verdict(checks, curves=curves)


def rollouts(sizes: Sizes, device) -> dict:
    from bench.e2e.test_e2e import eval_dataset

    from fastrecur.backends import ReferenceBackend, resolve_backend
    from fastrecur.evaluate import Evaluator

    trainer, _ = _trainer(sizes, "reference")
    model = trainer.model.eval()
    dataset = eval_dataset(sizes.bench_size, trainer, sizes.rollout_graphs)
    triton = resolve_backend("triton", device)
    state = dataset.tokens[:, : int(dataset.lengths.max())].to(device)
    first = {}
    metrics = {}
    for backend in (ReferenceBackend(), triton):
        backend.bind(model)
        first[backend.name] = backend.decode_step(model, state)
        metrics[backend.name] = Evaluator(model, trainer.cfg.eval, device, backend).evaluate(dataset)
    differing = (first["triton"] != first["reference"]).any(-1).double().mean().item()
    keys = ("fully_solved", "value_acc")
    gap = max(abs(metrics["triton"][k] - metrics["reference"][k]) for k in keys)
    checks = [
        {"check": "first iteration's decoded tokens (fraction of positions differing)", "value": differing, "tol": 1e-3, "ok": differing <= 1e-3},
        {"check": "rollout metrics (largest difference of fully_solved, value_acc)", "value": gap, "tol": 1e-2, "ok": gap <= 1e-2},
    ]  # fmt: skip
    summary = {b: {k: metrics[b][k] for k in (*keys, "iterations")} for b in metrics}
    return verdict(checks, graphs=len(dataset), nodes=sizes.e2e["eval_nodes"], metrics=summary)


def compiled_step(sizes: Sizes) -> dict:
    losses = {}
    for compile_ in (False, True):
        trainer, sb = _trainer(sizes, "triton", [f"train.compile={str(compile_).lower()}"])
        losses[compile_] = [float(trainer.train_step(sb)["loss"]) for _ in range(sizes.compiled_steps)]
    checks = [
        {"check": f"compiled step {i + 1} loss == eager" + (" (after an optimizer step)" if i else ""),
         "value": [compiled, eager], "tol": 1e-4 * (10 if i else 1),
         "ok": abs(compiled - eager) <= 1e-4 * (10 if i else 1) * abs(eager)}
        for i, (compiled, eager) in enumerate(zip(losses[True], losses[False]))
    ]  # fmt: skip
    return verdict(checks)


def cuda_graph_eval(sizes: Sizes, device) -> dict:
    from bench.e2e.test_e2e import eval_dataset

    from fastrecur.cudagraphs import BucketedGraphStep
    from fastrecur.evaluate import Evaluator

    trainer, _ = _trainer(sizes, "triton")
    model = trainer.model.eval()
    dataset = eval_dataset(sizes.bench_size, trainer, sizes.rollout_graphs)
    state = dataset.tokens[:, : int(dataset.lengths.max())].to(device)
    step = lambda x: trainer.backend.decode_step(model, x)  # noqa: E731
    capture = device.type == "cuda"
    bucketed = BucketedGraphStep(step, dataset.vocab.pad_token, capture=capture)
    # Padding to a bucket changes the GEMM shapes, so a near-tie may decode differently: a fraction.
    differing = (bucketed(state) != step(state)).any(-1).double().mean().item()
    checks = [{"check": f"one bucketed step ({'CUDA graph replay' if capture else 'eager, no GPU'}) vs plain step "
               "(fraction of positions differing)", "value": differing, "tol": 1e-3, "ok": differing <= 1e-3}]  # fmt: skip
    note = ""
    if capture:
        plain = Evaluator(model, trainer.cfg.eval, device, trainer.backend).evaluate(dataset)
        settings = type(trainer.cfg.eval)(**{**trainer.cfg.eval.__dict__, "cuda_graphs": True})
        graphs = Evaluator(model, settings, device, trainer.backend).evaluate(dataset)
        gap = max(abs(plain[k] - graphs[k]) for k in ("fully_solved", "value_acc"))
        checks.append({"check": "evaluation with CUDA graphs vs without (largest difference of fully_solved, value_acc)",
                       "value": gap, "tol": 1e-2, "ok": gap <= 1e-2})  # fmt: skip
    else:
        note = "no GPU: graph capture not exercised, only the bucketing and padding around it"
    return verdict(checks, note=note)


def e2e_items(sizes: Sizes, device) -> list[Item]:
    return [
        Item("loss and gradients, triton vs reference", lambda: loss_and_gradients(sizes)),
        Item(f"{sizes.curve_steps}-step seeded loss curve, triton vs reference", lambda: loss_curve(sizes)),
        Item(f"closed-loop rollouts at n = {sizes.e2e['eval_nodes']}, triton vs reference", lambda: rollouts(sizes, device)),
        Item("CUDA-graph evaluation (triton)", lambda: cuda_graph_eval(sizes, device)),
        Item("torch.compile training step (triton)", lambda: compiled_step(sizes)),  # last: compiling takes long
    ]
