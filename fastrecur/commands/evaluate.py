"""fastrecur eval CKPT [--data FILE --vocab VOCAB | --nodes N] [--policy ...]"""

from __future__ import annotations

import json

from .options import add_backend_options, add_length_scaling_option, add_nvtx_option, enable_nvtx_if_asked, length_scaling_from

NAME = "eval"
HELP = "closed-loop evaluation of a checkpoint on one dataset"


def add_arguments(parser) -> None:
    add_nvtx_option(parser)
    parser.add_argument("checkpoint", help="fastrecur checkpoint (checkpoint.pt) or a shipped model (pretrained-cpu)")
    parser.add_argument("--data", metavar="FILE", help="evaluation set (.pt, ours or the authors'); default: generated graphs")
    parser.add_argument("--vocab", metavar="JSON", help="vocab.json for --data (default: beside it)")
    parser.add_argument("--nodes", type=int, help="generate OOD-protocol graphs of this size (default: graphs from the training distribution)")
    parser.add_argument("--num-graphs", type=int, default=1024)
    parser.add_argument("--policy", choices=["depth+2", "fixed", "fixed-point"], help="iteration policy")
    parser.add_argument("--iters", type=int, help="iterations for --policy fixed, or the cap for fixed-point")
    parser.add_argument("--batch-size", type=int)
    add_length_scaling_option(parser)
    add_backend_options(parser)
    parser.add_argument("--out", metavar="JSON", help="write the full result here")


def run(args) -> int:
    enable_nvtx_if_asked(args)
    import os

    from ..backends import resolve_backend, resolve_device
    from ..checkpoint import model_from_checkpoint
    from ..compat import load_upstream_dataset
    from ..evaluate import make_evaluator, percent
    from ..io import atomic_write_text
    from ..sweep import in_distribution_dataset, sweep_dataset

    device = resolve_device(args.device)
    model, cfg = model_from_checkpoint(args.checkpoint, device)
    settings = _eval_settings(cfg, args)
    if args.data:
        vocab = args.vocab or os.path.join(os.path.dirname(os.path.abspath(args.data)), "vocab.json")
        dataset = load_upstream_dataset(args.data, vocab)
    elif args.nodes:
        cfg.sweep.num_graphs = args.num_graphs
        dataset = sweep_dataset(cfg, args.nodes)
    else:
        dataset = in_distribution_dataset(cfg, args.num_graphs)
    backend = resolve_backend(args.backend, device)
    result = make_evaluator(model, cfg, device, backend, settings).evaluate(dataset)
    steps = result.get("iterations") or result["generated_tokens"]
    print(
        f"{result['num_graphs']} graphs, depth ≤ {result['graph_depth']['max']}, policy {result['policy']}"
        f"{', length scaling from ' + str(result['length_scaling']) if result.get('length_scaling') else ''}: "
        f"completely solved {percent(result['fully_solved'])}, node values {percent(result['value_acc'])}, "
        f"{'iterations' if 'iterations' in result else 'generated tokens'} {steps['mean']:.1f} (max {steps['max']})"
    )
    if args.out:
        atomic_write_text(args.out, json.dumps(result, indent=1))
    return 0


def _eval_settings(cfg, args):
    import dataclasses

    base = cfg.eval
    changes = {}
    if args.length_scaling is not None:
        changes["length_scaling"] = length_scaling_from(args.length_scaling, cfg)
    if args.policy:
        changes["policy"] = args.policy
    if args.iters:
        changes["fixed_iters" if (args.policy or base.policy) == "fixed" else "max_iters"] = args.iters
    if args.batch_size:
        changes["batch_size"] = args.batch_size
    settings = dataclasses.replace(base, **changes)
    settings.validate()
    return settings
