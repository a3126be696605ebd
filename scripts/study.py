#!/usr/bin/env python
"""One run of the learning study (docs/learning.md): train a config and, every ``--eval-every`` steps,

* closed-loop "% completely solved" (policy depth+2) on held-out graphs drawn as in training and at
  the ``--ood`` sizes (the authors' OOD protocol: unbounded depth), beside the constant-answer floor
  and without the graphs a constant answer solves (``nontrivial``);
* teacher-forced VALUE accuracy by what each node needs (``fastrecur.diagnostics``): which skill —
  local copy, name lookup, modular fold — a run has acquired, and when.

Records go to ``OUT/study.jsonl``, one line per evaluation. Rerunning the same command continues from
``OUT/checkpoint.pt``; a finished run (``OUT/done``) is left alone. ``--ema D`` also scores an
exponential moving average of the weights (decay D), kept in ``OUT/ema.pt``.

    python scripts/study.py --config tiny --out runs/study/w5_s0 --seed 0 --steps 6000 \\
        --ood 8,12 model.relpos_window=5

``scripts/study_report.py`` turns a folder of runs into the tables and plots of docs/learning.md.
"""

from __future__ import annotations

import argparse
import copy
import fcntl
import json
import math
import os
import sys
import time

import torch


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="tiny", help="embedded config name or YAML file (default tiny)")
    p.add_argument("--out", required=True, help="run folder")
    p.add_argument("--seed", type=int, default=0, help="train.seed (model init, data stream, noise)")
    p.add_argument("--steps", type=int, default=6000, help="train.steps (also the cosine schedule's length)")
    p.add_argument("--eval-every", type=int, default=250)
    p.add_argument("--eval-graphs", type=int, default=256, help="graphs per evaluation set")
    p.add_argument("--ood", default="", help="comma-separated OOD graph sizes, e.g. 8,12")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1: several runs share the cores)")
    p.add_argument("--stop-at", type=float, default=None, help="stop once in-distribution solved ≥ this twice in a row")
    p.add_argument("--ema", type=float, default=None, help="also score an EMA of the weights with this decay")
    p.add_argument("overrides", nargs="*", help="section.key=value overrides of the config")
    return p.parse_args(argv)


def evaluation_sets(cfg, n_graphs: int, ood_sizes: list[int]) -> dict:
    from fastrecur.data import DagConfig, generate_dataset, ood_config

    base = DagConfig(**cfg.data.train)
    sets = {"in": generate_dataset(base, n_graphs, seed=(777, 1))}
    for n in ood_sizes:
        config = ood_config(base, n, num_leaf_nodes=cfg.sweep.num_leaf_nodes, min_fan_in=base.min_fan_in, max_fan_in=base.max_fan_in)
        sets[f"n{n}"] = generate_dataset(config, n_graphs, seed=(778, n))
    return sets


def score(model, sets: dict, cfg, prefix: str = "") -> dict:
    """Closed-loop and teacher-forced metrics of ``model`` on every set, as flat ``prefix<set>/<metric>`` keys."""
    from fastrecur.config import EvalSettings
    from fastrecur.data import VALUE
    from fastrecur.diagnostics import node_skill_accuracy
    from fastrecur.evaluate import Evaluator

    evaluator = Evaluator(model, EvalSettings(policy="depth+2", batch_size=256), torch.device("cpu"))
    record = {}
    for name, ds in sets.items():
        result = evaluator.evaluate(ds)
        key = prefix + name
        record[f"{key}/solved"] = result["fully_solved"]
        record[f"{key}/solved_nontrivial"] = result["fully_solved_nontrivial"]
        record[f"{key}/floor"] = result["constant_answer_floor"]
        record[f"{key}/value_acc"] = result["value_acc"]
        model.eval()
        skills = node_skill_accuracy(lambda x: model(x)[VALUE], ds, cfg.model.relpos_window)
        record.update({f"{key}/tf/{k}": round(v, 4) for k, v in skills.items()})
    model.train()
    return record


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    from fastrecur.config import load_config
    from fastrecur.train import Trainer

    os.makedirs(args.out, exist_ok=True)
    if os.path.isfile(os.path.join(args.out, "done")):
        print(f"{args.out} is finished (remove its 'done' file to continue it)")
        return 0
    lock = open(os.path.join(args.out, "lock"), "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        print(f"{args.out} is being trained by another process")
        return 0

    overrides = [*args.overrides, f"train.seed={args.seed}", f"train.steps={args.steps}", f"train.out_dir={args.out}"]
    cfg = load_config(args.config, [*overrides, "train.time_limit_s=null", "train.eval_every=0"])
    checkpoint = os.path.join(args.out, "checkpoint.pt")
    trainer = Trainer(cfg, resume=checkpoint if os.path.isfile(checkpoint) else None, show_progress=False)
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump({"argv": sys.argv, "config": cfg.to_dict()}, f, indent=1)
    sets = evaluation_sets(cfg, args.eval_graphs, [int(s) for s in args.ood.split(",") if s])

    model, ema, ema_path = trainer.model, None, os.path.join(args.out, "ema.pt")
    if args.ema is not None:
        ema = copy.deepcopy(model).eval()
        if os.path.isfile(ema_path):
            ema.load_state_dict(torch.load(ema_path, weights_only=True))

    batches = trainer.batches()
    started, train_s0, eval_s, hits = time.perf_counter(), trainer.state.train_time_s, 0.0, 0
    while trainer.state.step < cfg.train.steps:
        out = trainer.train_step(trainer.prepare(next(batches)))
        trainer.state.step += 1
        step = trainer.state.step
        if ema is not None:
            with torch.no_grad():
                for e, p in zip(ema.parameters(), model.parameters()):
                    e.lerp_(p, 1.0 - args.ema)
        if step % args.eval_every and step != cfg.train.steps:
            continue
        loss = float(out["loss"])
        if not math.isfinite(loss):
            print(f"{args.out}: loss is {loss} at step {step}; stopping", file=sys.stderr)
            return 1
        trainer.state.train_time_s = train_s0 + time.perf_counter() - started - eval_s
        tick = time.perf_counter()
        record = {"step": step, "train_s": round(trainer.state.train_time_s, 1), "loss": loss}
        record.update(score(model, sets, cfg))
        if ema is not None:
            record.update(score(ema, sets, cfg, prefix="ema/"))
            torch.save(ema.state_dict(), ema_path)
        eval_s += time.perf_counter() - tick
        with open(os.path.join(args.out, "study.jsonl"), "a") as f:
            f.write(json.dumps(record) + "\n")
        print(json.dumps({k: v for k, v in record.items() if k.endswith("/solved") or k in ("step", "train_s")}), flush=True)
        trainer.save_checkpoint()
        if args.stop_at is not None:
            hits = hits + 1 if record["in/solved"] >= args.stop_at else 0
            if hits >= 2:
                break
    with open(os.path.join(args.out, "done"), "w") as f:
        f.write(f"{trainer.state.step}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
