"""fastrecur train CONFIG [--resume CKPT] [section.key=value ...]"""

from __future__ import annotations

import json

from ..config import EMBEDDED_CONFIGS
from .options import add_nvtx_option, enable_nvtx_if_asked

NAME = "train"
HELP = "train a model with algorithmic supervision and error correction"


def add_arguments(parser) -> None:
    add_nvtx_option(parser)
    parser.add_argument("config", help=f"embedded config ({', '.join(EMBEDDED_CONFIGS)}), a YAML file, or a directory with the authors' *_config.yaml")
    parser.add_argument("overrides", nargs="*", help="section.key=value overrides, e.g. train.steps=200 model.hidden_size=64")
    parser.add_argument("--resume", metavar="CKPT", help="continue from a fastrecur checkpoint (out_dir/checkpoint.pt)")
    parser.add_argument("--out", metavar="DIR", help="output folder (overrides train.out_dir)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args) -> int:
    enable_nvtx_if_asked(args)
    from ..config import load_config
    from ..distributed import distributed_context
    from ..train import Trainer

    overrides = list(args.overrides) + ([f"train.out_dir={args.out}"] if args.out else [])
    cfg = load_config(args.config, overrides)
    with distributed_context(cfg.train) as dist:
        trainer = Trainer(cfg, resume=args.resume, show_progress=not args.no_progress, dist=dist)
        state = trainer.fit()
        if trainer.is_main:
            last = next((r for r in reversed(state.history) if "loss" in r), {})
            print(
                json.dumps(
                    {"step": state.step, "loss": last.get("loss"), "checkpoint": trainer.checkpoint_path, "train_time_s": round(state.train_time_s, 1)}
                )
            )
    return 0
