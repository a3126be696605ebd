"""fastrecur sweep CKPT [--sizes 8:128:8] [--num-graphs N] [--data-dir DIR] [--out DIR]"""

from __future__ import annotations

from .options import (
    add_backend_options,
    add_length_scaling_option,
    add_nvtx_option,
    enable_nvtx_if_asked,
    length_scaling_from,
    parse_sizes,
)

NAME = "sweep"
HELP = "OOD sweep: accuracy against graph size, written as JSON, CSV and plots"


def add_arguments(parser) -> None:
    add_nvtx_option(parser)
    parser.add_argument("checkpoint", help="fastrecur checkpoint (checkpoint.pt) or a shipped model (pretrained-cpu)")
    parser.add_argument("--sizes", help="graph sizes: START:STOP:STEP ranges and single sizes, comma-separated, e.g. 8:128:8,256 (default: the config's)")
    parser.add_argument("--num-graphs", type=int, help="graphs per size (default 1,024)")
    parser.add_argument("--data-dir", help="read testdata_N{n}.pt + vocab.json from here instead of generating")
    parser.add_argument("--policy", choices=["depth+2", "fixed", "fixed-point"])
    add_length_scaling_option(parser)
    add_backend_options(parser)
    parser.add_argument("--out", metavar="DIR", help="output folder (default: beside the checkpoint; runs/NAME/sweep for a shipped model)")
    parser.add_argument("--no-progress", action="store_true")


def run(args) -> int:
    enable_nvtx_if_asked(args)
    import os

    from ..backends import resolve_backend, resolve_device
    from ..checkpoint import PRETRAINED, model_from_checkpoint
    from ..sweep import format_table, run_sweep, write_sweep

    device = resolve_device(args.device)
    model, cfg = model_from_checkpoint(args.checkpoint, device)
    if args.sizes:
        cfg.sweep.sizes = parse_sizes(args.sizes, "--sizes")
    if args.num_graphs:
        cfg.sweep.num_graphs = args.num_graphs
    if args.data_dir:
        cfg.sweep.data_dir = args.data_dir
    if args.policy:
        cfg.eval.policy = args.policy
    if args.length_scaling is not None:
        cfg.eval.length_scaling = length_scaling_from(args.length_scaling, cfg)
    cfg.validate()
    backend = resolve_backend(args.backend, device)
    results = run_sweep(model, cfg, device, backend, show_progress=not args.no_progress)
    train_size = cfg.data.train.get("num_nodes")
    if args.out:
        out_dir = args.out
    elif args.checkpoint in PRETRAINED and not os.path.isfile(args.checkpoint):  # not inside the installed package
        out_dir = os.path.join("runs", args.checkpoint, "sweep")
    else:
        out_dir = os.path.join(os.path.dirname(os.path.abspath(args.checkpoint)), "sweep")
    paths = write_sweep(results, out_dir, train_size)
    in_effect = results[0]["length_scaling"] if results else 0  # the model's own L0 unless eval names one
    if in_effect:
        trained_in = "" if cfg.eval.length_scaling else ", trained in"
        print(f"log-length attention scaling from L0 = {in_effect} tokens{trained_in} (not in the authors' model)")
    print(format_table(results, train_size))
    print(f"results: {paths['json']}  {paths['csv']}\nplots:   {paths['plot_size']}  {paths['plot_iters']}")
    return 0
