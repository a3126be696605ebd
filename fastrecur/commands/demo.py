"""fastrecur demo: train the tiny config on this machine, then sweep graph sizes."""

from __future__ import annotations

import time

NAME = "demo"
HELP = "train the 'tiny' config (CPU, a few minutes) and run an OOD sweep"


def add_arguments(parser) -> None:
    parser.add_argument("overrides", nargs="*", help="section.key=value overrides of the tiny config")
    parser.add_argument("--out", default="runs/demo", help="output folder (default runs/demo)")
    parser.add_argument("--no-progress", action="store_true")


def run(args) -> int:
    import os

    import torch

    from ..config import load_config
    from ..evaluate import make_evaluator, percent
    from ..sweep import format_table, in_distribution_dataset, run_sweep, write_sweep
    from ..train import Trainer

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    cfg = load_config("tiny", [*args.overrides, f"train.out_dir={args.out}"])
    print(
        f"fastrecur demo: training '{cfg.name}' ({cfg.data.train['num_nodes']}-node graphs mod {cfg.data.train['mod_val']}, "
        f"{cfg.model.num_layers} layers × {cfg.model.hidden_size} wide) for {cfg.train.steps} steps on {_device_name(cfg)}"
    )
    start = time.perf_counter()
    trainer = Trainer(cfg, show_progress=not args.no_progress)
    trainer.fit()
    train_s = time.perf_counter() - start
    print(f"trained {trainer.state.step} steps in {train_s:.0f}s; checkpoint {trainer.checkpoint_path}")

    evaluator = make_evaluator(trainer.model, cfg, trainer.device, trainer.backend)
    in_dist = evaluator.evaluate(in_distribution_dataset(cfg, cfg.sweep.num_graphs))
    print(
        f"in distribution ({cfg.sweep.num_graphs} fresh training-like graphs, depth ≤ {cfg.data.train['max_depth']}): "
        f"completely solved {percent(in_dist['fully_solved'])}, node values {percent(in_dist['value_acc'])}"
    )
    results = run_sweep(trainer.model, cfg, trainer.device, trainer.backend, show_progress=not args.no_progress)
    train_size = cfg.data.train["num_nodes"]
    paths = write_sweep(results, os.path.join(args.out, "sweep"), train_size)
    print(
        f"\nOOD sweep ({cfg.sweep.num_graphs} graphs per size, unbounded depth as in the authors' protocol, "
        f"policy {cfg.eval.policy}); trained on n = {train_size}, depth ≤ {cfg.data.train['max_depth']}:"
    )
    print(format_table(results, train_size))
    print(f"\nplot: {paths['plot_size']}\n      {paths['plot_iters']}\nresults: {paths['json']}")
    print(f"total time {time.perf_counter() - start:.0f}s")
    return 0


def _device_name(cfg) -> str:
    from ..backends import resolve_device

    return str(resolve_device(cfg.train.device))
