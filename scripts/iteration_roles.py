#!/usr/bin/env python
"""Where a closed loop breaks: teacher-forced accuracy per iteration, split by the iteration's role.

From teacher state ``S_k`` one iteration must *keep* the values of depth ``< k`` it is given, *solve*
the nodes of depth ``k`` and leave deeper ones EMPTY (*wait*) (``fastrecur.diagnostics.
iteration_role_accuracy``). Printed for held-out graphs drawn as in training and at larger sizes
(the authors' OOD protocol: unbounded depth), so the iteration at which a role first fails beyond
the training depth is visible (docs/learning.md §2). Then the same accuracy at each set's inner
nodes by kind (copy: one operand, k-ary: two or more) and by the distance back to the farthest
operand's definition, which tells a one-name lookup from a two-name one (docs/learning.md §3).

    python scripts/iteration_roles.py runs/demo/checkpoint.pt --sizes 8,12 --num-graphs 128
"""

from __future__ import annotations

import argparse
import sys


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint", help="fastrecur checkpoint or shipped model name")
    p.add_argument("--sizes", default="", help="comma-separated OOD graph sizes (default: the config's sweep sizes)")
    p.add_argument("--num-graphs", type=int, default=128)
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)

    import torch

    from fastrecur.checkpoint import model_from_checkpoint
    from fastrecur.data import VALUE, DagConfig, generate_dataset, ood_config
    from fastrecur.data.schedule import training_schedule
    from fastrecur.diagnostics import DISTANCE_BIN_NAMES, ROLES, iteration_role_accuracy, node_skill_accuracy

    if args.threads:
        torch.set_num_threads(args.threads)
    model, cfg = model_from_checkpoint(args.checkpoint)
    base = DagConfig(**cfg.data.train)
    stages = training_schedule(cfg.data.train, cfg.data.mix, cfg.data.curriculum)
    deepest = max(c.max_depth for stage in stages for c in stage.configs)  # curriculum and mix included
    sizes = [int(s) for s in args.sizes.split(",") if s] or [n for n in cfg.sweep.sizes if n != base.num_nodes]
    sets = {f"in distribution (n = {base.num_nodes})": generate_dataset(base, args.num_graphs, seed=(777, 1))}
    for n in sizes:
        config = ood_config(base, n, base_length=0, num_leaf_nodes=cfg.sweep.num_leaf_nodes, min_fan_in=base.min_fan_in, max_fan_in=base.max_fan_in)
        sets[f"n = {n}"] = generate_dataset(config, args.num_graphs, seed=(778, n))

    def value_logits(x):
        return model(x)[VALUE]

    for name, ds in sets.items():
        print(f"{name}: {len(ds)} graphs; training graphs have depth ≤ {deepest}")
        print("   k  " + "  ".join(f"{role:>15}" for role in ROLES))
        for k, row in enumerate(iteration_role_accuracy(value_logits, ds)):
            cells = [f"{100 * h / c:6.1f}% ({c:5d})" if c else f"{'–':>15}" for h, c in (row[r] for r in ROLES)]
            print(f"  {k:2d}  " + "  ".join(cells))
    for name, ds in sets.items():
        skills = node_skill_accuracy(value_logits, ds, cfg.model.relpos_window)
        shown = [b for b in DISTANCE_BIN_NAMES if b in skills]
        print(f"{name}: solve accuracy by node kind and distance to the farthest operand definition")
        print("  kind    all    " + "  ".join(f"{b[5:].replace('_', '–'):>8}" for b in shown))
        for kind in ("copy", "kary"):
            cells = [f"{100 * skills[f'{kind}_{b}']:7.1f}%" if f"{kind}_{b}" in skills else f"{'–':>8}" for b in shown]
            total = f"{100 * skills[kind]:5.1f}%" if kind in skills else "    –"
            print(f"  {kind:<6} {total}  " + "  ".join(cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
