"""fastrecur demo: train the demo config from scratch, sweep graph sizes, then sweep the shipped pretrained model.

What a newcomer should see in ~10 CPU minutes (README "Demo"): the pipeline learning the algorithm from
scratch (in-distribution accuracy), generalizing to graphs 2–3× larger and deeper than any it was
trained on (the sweep), and what a much longer run of a model of the same size on harder graphs
reaches (the pretrained model's sweep, then that of the same model fine-tuned with log-length
attention scaling, which recovers its largest size).
"""

from __future__ import annotations

import time

NAME = "demo"
HELP = "train the 'demo' config from scratch (CPU, minutes), sweep graph sizes, then sweep the shipped pretrained model"

# What the demo is meant to show (issue 15): printed as met / not met, never asserted.
IN_DISTRIBUTION_TARGET = 0.99
TWICE_SIZE_TARGET = 0.95


def add_arguments(parser) -> None:
    parser.add_argument("overrides", nargs="*", help="section.key=value overrides of the demo config, e.g. train.seed=1")
    parser.add_argument("--out", default="runs/demo", help="output folder (default runs/demo)")
    parser.add_argument("--threads", type=int, metavar="N", help="CPU threads for torch (default: every core)")
    parser.add_argument("--no-pretrained", action="store_true", help="skip the sweeps of the shipped pretrained models")
    parser.add_argument("--no-progress", action="store_true")


def run(args) -> int:
    import os

    import torch

    from ..config import load_config
    from ..evaluate import make_evaluator, percent
    from ..sweep import format_table, in_distribution_dataset, run_sweep, write_sweep
    from ..train import Trainer

    from ..errors import ConfigError

    start = time.perf_counter()
    if args.threads is not None and args.threads < 1:
        raise ConfigError(f"--threads={args.threads} must be a positive integer")
    threads = args.threads or max(1, os.cpu_count() or 1)
    torch.set_num_threads(threads)
    cfg = load_config("demo", [*args.overrides, f"train.out_dir={args.out}"])
    task = cfg.data.train
    print(
        f"fastrecur demo: training '{cfg.name}' from scratch on {_device_name(cfg)} ({threads} thread{'s' if threads > 1 else ''}): "
        f"{task['num_nodes']}-node ADD graphs mod {task['mod_val']} (depth ≤ {task['max_depth']}), "
        f"{cfg.model.num_layers} layers × {cfg.model.hidden_size} wide, {cfg.train.steps} steps, seed {cfg.train.seed}"
    )
    trainer = Trainer(cfg, show_progress=not args.no_progress)
    fit_start = time.perf_counter()
    trainer.fit()
    train_s = time.perf_counter() - fit_start
    print(
        f"trained {trainer.state.step} steps in {train_s:.0f}s ({trainer.state.step / max(train_s, 1e-9):.1f} steps/s); "
        f"checkpoint {trainer.checkpoint_path}"
    )

    eval_start = time.perf_counter()
    evaluator = make_evaluator(trainer.model, cfg, trainer.device, trainer.backend)
    in_dist = evaluator.evaluate(in_distribution_dataset(cfg, cfg.sweep.num_graphs))
    print(
        f"\nin distribution ({cfg.sweep.num_graphs} fresh graphs drawn as in training): completely solved "
        f"{percent(in_dist['fully_solved'])} (non-trivial graphs {percent(in_dist['fully_solved_nontrivial'])}; "
        f"one constant answer would solve {percent(in_dist['constant_answer_floor'])}), node values {percent(in_dist['value_acc'])}"
    )
    results = run_sweep(trainer.model, cfg, trainer.device, trainer.backend, show_progress=not args.no_progress)
    train_size = task["num_nodes"]
    paths = write_sweep(results, os.path.join(args.out, "sweep"), train_size)
    print(
        f"\nOOD sweep ({cfg.sweep.num_graphs} graphs per size, unbounded depth as in the authors' protocol, "
        f"policy {cfg.eval.policy}); trained on n = {train_size}, depth ≤ {task['max_depth']}:"
    )
    print(format_table(results, train_size))
    print(f"plots: {paths['plot_size']}  {paths['plot_iters']}\nresults: {paths['json']}")
    print(_verdict(in_dist, results, train_size))
    print(f"evaluation and sweep: {time.perf_counter() - eval_start:.0f}s")

    if not args.no_pretrained:
        _sweep_pretrained(trainer.device, show_progress=not args.no_progress)
    print(f"\ntotal time {time.perf_counter() - start:.0f}s")
    return 0


def _verdict(in_dist: dict, results: list[dict], train_size: int) -> str:
    """Whether this run shows what the demo exists for (README "Demo"); a line, not an assertion."""
    twice = [r for r in results if r["num_nodes"] == 2 * train_size]
    checks = [(f"in distribution ≥ {100 * IN_DISTRIBUTION_TARGET:.0f} %", in_dist["fully_solved"] >= IN_DISTRIBUTION_TARGET)]
    if twice:
        checks.append((f"n = {2 * train_size} ≥ {100 * TWICE_SIZE_TARGET:.0f} %", twice[0]["fully_solved"] >= TWICE_SIZE_TARGET))
    return "generalization: " + ", ".join(f"{name}: {'met' if ok else 'NOT met'}" for name, ok in checks)


def _sweep_pretrained(device, show_progress: bool, num_graphs: int = 128, sizes=None, out_root: str = "runs") -> None:
    """Sweep the shipped models (seconds of CPU each): what a much longer CPU run reaches as the authors
    define the model, and the same weights fine-tuned with log-length attention scaling trained in."""
    from ..checkpoint import PRETRAINED

    authors, scaled = PRETRAINED
    _sweep_shipped(authors, device, show_progress, num_graphs, sizes, out_root)
    # What limits it at 8×: attention diluted over several times more keys than in training
    # (docs/learning.md §5); the fine-tuned model scales each query's logits by ln(i+1)/ln L0.
    _sweep_shipped(scaled, device, show_progress, num_graphs, sizes, out_root)


def _sweep_shipped(name: str, device, show_progress: bool, num_graphs: int, sizes, out_root: str) -> None:
    import json
    import os

    from ..checkpoint import model_from_checkpoint, pretrained_path
    from ..sweep import format_table, run_sweep, write_sweep

    path = pretrained_path(name)
    if not os.path.isfile(path):
        print(f"\n(no shipped model '{name}' in this installation: {path} is missing)")
        return
    model, cfg = model_from_checkpoint(path, device)
    cfg.sweep.num_graphs = num_graphs  # 128: seconds per size on 2 cores (n = 64 is the slowest)
    cfg.sweep.sizes = sizes or cfg.sweep.sizes
    info_path = os.path.splitext(path)[0] + ".json"
    steps = json.load(open(info_path))["steps"] if os.path.isfile(info_path) else "?"
    task = cfg.data.train
    if cfg.model.length_scaling:
        what = (f"fine-tuned {steps} steps from 'pretrained-cpu' with log-length attention scaling from "
                f"L0 = {cfg.model.length_scaling} tokens trained in, not in the authors' model")  # fmt: skip
    else:
        what = f"trained {steps} steps on the CPU, the authors' model"
    print(
        f"\nshipped model '{name}' ({what}; {task['num_nodes']}-node graphs mod {task['mod_val']}, "
        f"depth ≤ {task['max_depth']}; docs/learning.md §5), {cfg.sweep.num_graphs} graphs per size:"
    )
    start = time.perf_counter()
    results = run_sweep(model, cfg, device, show_progress=show_progress)
    write_sweep(results, os.path.join(out_root, name, "sweep"), task["num_nodes"])
    print(format_table(results, task["num_nodes"]))
    print(f"sweep: {time.perf_counter() - start:.0f}s")


def _device_name(cfg) -> str:
    from ..backends import resolve_device

    return str(resolve_device(cfg.train.device))
