#!/usr/bin/env python
"""Sharpen every attention logit of a trained model by a constant factor τ at test time and sweep.

The probe behind docs/learning.md §5: if a model loses whole graphs at sizes far beyond training
because its attention flattens over many more keys, multiplying the logits by τ > 1 should win them
back, and too large a τ should lose them again. (``--length-scaling`` of ``fastrecur sweep`` is the
principled form: a per-query factor that is exactly 1 at training lengths.)

    python scripts/attention_temperature.py pretrained-cpu --taus 1,1.15,1.3,1.5,1.8 --sizes 64 --num-graphs 256
"""

from __future__ import annotations

import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def sharpened(attention, tau: float):
    """``attention`` with every score × τ: q and Q^r scaled by τ scale all three terms q·k, q·K^r, k·Q^r."""

    def attn(q, k, v, pos_k, pos_q, **kw):
        return attention(q * tau, k, v, pos_k, None if pos_q is None else pos_q * tau, **kw)

    return attn


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint", help="checkpoint.pt or a shipped model's name")
    p.add_argument("--taus", default="1,1.15,1.3,1.5,1.8")
    p.add_argument("--sizes", default="64")
    p.add_argument("--num-graphs", type=int, default=256)
    p.add_argument("--threads", type=int)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    from fastrecur.checkpoint import model_from_checkpoint
    from fastrecur.evaluate import make_evaluator, percent
    from fastrecur.sweep import sweep_dataset

    model, cfg = model_from_checkpoint(args.checkpoint)
    cfg.sweep.num_graphs = args.num_graphs
    taus = [float(t) for t in args.taus.split(",")]
    print(f"{'n':>4} {'tau':>5} {'solved':>8} {'non-trivial':>12} {'values':>8}")
    for n in (int(s) for s in args.sizes.split(",")):
        graphs = sweep_dataset(cfg, n)
        for tau in taus:
            evaluator = make_evaluator(model, cfg, torch.device("cpu"))  # binds the reference attention
            model.set_attention(sharpened(next(iter(model.transformer.blocks.values())).attn.attention_fn, tau))
            r = evaluator.evaluate(graphs)
            print(f"{n:>4} {tau:>5.2f} {percent(r['fully_solved']):>8} {percent(r['fully_solved_nontrivial']):>12} {percent(r['value_acc']):>8}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
