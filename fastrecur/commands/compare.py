"""fastrecur compare CONFIG [--arms all] --out DIR [--steps N | --time-limit S] [section.key=value ...]"""

from __future__ import annotations

import argparse

from .options import parse_sizes

NAME = "compare"
HELP = "train every arm of the paper's comparison on the same data and budget, sweep each, write one table and plot"

EPILOG = """\
arms (docs/method.md §10):
  full                        the method (discrete bottleneck, per-iteration supervision, error correction)
  no-error-correction         the method without error correction
  no-bottleneck               continuous latent recurrence, per-iteration supervision, BPTT ("nointerm")
  no-algorithmic-supervision  continuous, final-state loss, fixed iterations; evaluated fixed and input-adaptive
  no-adaptive-recurrence      the full method's model at the training maximum of iterations (no training)
  feedforward                 one pass, no weight sharing across depth (compare.feedforward_layers)
  e2e-recurrent               weight-tied, fixed repeats, final-state loss
  cot-eq-val, cot-val         chain-of-thought Transformer on the authors' CoT serialization

examples:
  fastrecur compare tiny-compare --out runs/compare
  fastrecur compare paper --arms full,no-bottleneck,cot-eq-val --time-limit 3600 --out runs/paper-compare

Every arm trains on the same data stream (same seed) for the same budget; the baseline arms use
compare.baseline_positions (rope, as the authors' baselines, or relative). Rerunning with the same
--out resumes interrupted arms and skips finished arms and sweeps.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG
    parser.add_argument("config", help="embedded config (tiny-compare, tiny, paper), a YAML file, or a directory with the authors' *_config.yaml")
    parser.add_argument("overrides", nargs="*", help="section.key=value overrides of the base config")
    parser.add_argument("--arms", help="comma-separated arm names, or all (default: the config's compare.arms)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (one subfolder per arm)")
    parser.add_argument("--steps", type=int, help="training budget in optimizer steps, every arm (train.steps)")
    parser.add_argument("--time-limit", type=float, metavar="S", help="training budget in seconds of training, every arm (train.time_limit_s)")
    parser.add_argument("--sizes", help="sweep graph sizes, e.g. 4:12:2 (default: the config's sweep.sizes)")
    parser.add_argument("--num-graphs", type=int, help="graphs per size (default: the config's sweep.num_graphs)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, metavar="N", help="CPU threads for torch (1 is fastest for tiny models on a busy machine)")
    parser.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    from ..backends import resolve_device
    from ..compare import run_compare, timed, write_compare
    from ..config import load_config
    from ..errors import ConfigError

    overrides = list(args.overrides)
    if args.arms:
        overrides.append(f"compare.arms=[{args.arms}]")
    if args.steps is not None:
        overrides.append(f"train.steps={args.steps}")
    if args.time_limit is not None:
        if args.time_limit <= 0:
            raise ConfigError(f"--time-limit={args.time_limit} must be a positive number of seconds")
        overrides.append(f"train.time_limit_s={args.time_limit}")
    if args.sizes:
        overrides.append(f"sweep.sizes={parse_sizes(args.sizes, '--sizes')}")
    if args.num_graphs is not None:
        overrides.append(f"sweep.num_graphs={args.num_graphs}")
    base = load_config(args.config, overrides)
    device = resolve_device(args.device)
    if args.threads is not None:
        if args.threads < 1:
            raise ConfigError(f"--threads={args.threads} must be a positive integer")
        import torch

        torch.set_num_threads(args.threads)
    results, wall_s, cpu_s = timed(lambda: run_compare(base, args.out, device, show_progress=not args.no_progress))
    paths = write_compare(results, base, args.out, wall_s, cpu_s)
    with open(paths["md"]) as f:
        print(f.read())
    print(f"table: {paths['md']}\ncsv:   {paths['csv']}\nplot:  {paths['plot']}")
    return 0
