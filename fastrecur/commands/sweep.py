"""fastrecur sweep CKPT [--sizes 8:128:8] [--num-graphs N] [--data-dir DIR] [--out DIR]"""

from __future__ import annotations

NAME = "sweep"
HELP = "OOD sweep: accuracy against graph size, written as JSON, CSV and plots"


def parse_sizes(text: str) -> list[int]:
    """'8:128:8' (start:stop:step, inclusive) or '8,16,32'."""
    from ..errors import ConfigError

    try:
        if ":" in text:
            start, stop, step = (int(x) for x in text.split(":"))
            return list(range(start, stop + 1, step))
        return [int(x) for x in text.split(",")]
    except ValueError as exc:
        raise ConfigError(f"--sizes {text!r} is invalid: use start:stop:step (e.g. 8:128:8) or a list (8,16,32)") from exc


def add_arguments(parser) -> None:
    parser.add_argument("--nvtx", action="store_true", help="emit NVTX ranges (for Nsight Systems)")
    parser.add_argument("checkpoint", help="fastrecur checkpoint (checkpoint.pt)")
    parser.add_argument("--sizes", help="graph sizes, start:stop:step or a comma list (default: the config's)")
    parser.add_argument("--num-graphs", type=int, help="graphs per size (default 1,024)")
    parser.add_argument("--data-dir", help="read testdata_N{n}.pt + vocab.json from here instead of generating")
    parser.add_argument("--policy", choices=["depth+2", "fixed", "fixed-point"])
    parser.add_argument("--backend", choices=["auto", "reference", "triton"], default="auto")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", metavar="DIR", help="output folder (default: beside the checkpoint)")
    parser.add_argument("--no-progress", action="store_true")


def run(args) -> int:
    if args.nvtx:
        from ..profiling import enable_nvtx

        enable_nvtx()
    import os

    from ..backends import resolve_backend
    from ..sweep import format_table, run_sweep, write_sweep
    from ..train import model_from_checkpoint, resolve_device

    device = resolve_device(args.device)
    model, cfg = model_from_checkpoint(args.checkpoint, device)
    if args.sizes:
        cfg.sweep.sizes = parse_sizes(args.sizes)
    if args.num_graphs:
        cfg.sweep.num_graphs = args.num_graphs
    if args.data_dir:
        cfg.sweep.data_dir = args.data_dir
    if args.policy:
        cfg.eval.policy = args.policy
    cfg.validate()
    backend = resolve_backend(args.backend, device)
    model.set_attention(backend.attention)
    results = run_sweep(model, cfg, device, backend, show_progress=not args.no_progress)
    train_size = cfg.data.train.get("num_nodes")
    out_dir = args.out or os.path.join(os.path.dirname(os.path.abspath(args.checkpoint)), "sweep")
    paths = write_sweep(results, out_dir, train_size)
    print(format_table(results, train_size))
    print(f"results: {paths['json']}  {paths['csv']}\nplots:   {paths['plot_size']}  {paths['plot_iters']}")
    return 0
