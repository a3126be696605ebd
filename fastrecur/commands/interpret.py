"""fastrecur interpret CKPT --out DIR [--upstream-config YAML --vocab JSON] [--data FILE | --nodes N]"""

from __future__ import annotations

import glob
import os

from .options import add_backend_options

NAME = "interpret"
HELP = "mechanistic analysis of a checkpoint: probe equations, where heads look, linear probes, value spectra"


def add_arguments(parser) -> None:
    parser.add_argument(
        "checkpoint",
        help="fastrecur checkpoint (checkpoint.pt); an authors' .ckpt with --upstream-config; or a directory "
        "holding an authors' .ckpt, model_config.yaml and vocab.json (data_config.yaml, train_config.yaml optional)",
    )
    parser.add_argument("--out", metavar="DIR", required=True, help="where report.md, report.json and the figures go")
    parser.add_argument("--upstream-config", metavar="YAML", help="the authors' model_config.yaml (their checkpoint)")
    parser.add_argument("--vocab", metavar="JSON", help="vocab.json for an authors' checkpoint or for --data (default: beside it)")
    parser.add_argument("--data", metavar="FILE", help="graphs from a dataset file (.pt, ours or the authors'); default: generated")
    parser.add_argument("--nodes", type=int, help="generate OOD-protocol graphs of this size (default: the training distribution)")
    parser.add_argument("--num-graphs", type=int, default=256, help="graphs for the attention summary and linear probes (256)")
    parser.add_argument("--probe-graphs", type=int, default=16, help="graphs for the controlled probe equations (16)")
    parser.add_argument("--maps", type=int, default=3, help="graphs whose attention maps are drawn (3)")
    parser.add_argument("--arity", type=int, help="operands of a probe equation (default: the graphs' largest fan-in)")
    parser.add_argument("--iters", type=int, help="rollout iterations for the linear probes (default: max depth + 2)")
    parser.add_argument("--continuous", action="store_true", help="probe a continuous (nointerm) rollout: h_{t+1} = Encoder(h_t)")
    parser.add_argument("--max-occurrences", type=int, default=4000, help="variable occurrences sampled for the linear probes")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    add_backend_options(parser)
    parser.add_argument("--no-progress", action="store_true")


def run(args) -> int:
    import time

    from ..backends import resolve_backend, resolve_device
    from ..interpret import InterpretSettings, interpret

    started = time.perf_counter()
    device = resolve_device(args.device)
    model, graphs, source, continuous_default = load_model_and_graphs(args)
    model = model.to(device).eval()
    resolve_backend(args.backend, device).bind(model)  # the recorder wraps whatever attention this binds
    dataset = graphs()
    settings = InterpretSettings(
        num_graphs=args.num_graphs,
        probe_graphs=args.probe_graphs,
        map_graphs=args.maps,
        arity=args.arity or max(1, dataset.info.shape[-1] // 2),  # info holds 2 · max fan-in channels
        num_iters=args.iters,
        continuous=args.continuous or continuous_default,
        batch_size=args.batch_size,
        max_occurrences=args.max_occurrences,
        seed=args.seed,
        show_progress=not args.no_progress,
    )
    report = interpret(model, dataset, args.out, settings, source)
    accuracy = ", ".join(f"{s} {100 * a:.1f}%" for s, a in zip(report["probe_equations"]["slots"], report["probe_equations"]["value_accuracy"]))
    print(f"probe-equation VALUE accuracy: {accuracy}")
    print(f"report: {os.path.join(args.out, 'report.md')}  ({time.perf_counter() - started:.0f} s)")
    return 0


def load_model_and_graphs(args):
    """``(model, make_graphs, source, continuous)`` for a fastrecur or an authors' checkpoint."""
    from ..errors import ConfigError

    path = args.checkpoint
    if not os.path.exists(path):
        raise ConfigError(f"{path}: checkpoint not found")
    if os.path.isdir(path) or args.upstream_config:
        return _load_upstream(args)
    if args.vocab and not args.data:
        raise ConfigError("--vocab is for an authors' checkpoint (with --upstream-config) or for --data")
    from ..checkpoint import model_from_checkpoint
    from ..data import DagConfig

    model, cfg = model_from_checkpoint(path)
    base = DagConfig(**cfg.data.train)
    return model, lambda: _graphs(args, base), {"kind": "fastrecur", "path": path}, False


def _load_upstream(args):
    from ..compat import load_upstream_checkpoint
    from ..data import DagConfig, Vocab
    from ..errors import ConfigError

    path = args.checkpoint
    folder = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(args.upstream_config))
    if os.path.isdir(path):
        found = sorted(glob.glob(os.path.join(path, "*.ckpt")))
        last = os.path.join(path, "last.ckpt")
        if not found:
            raise ConfigError(f"{path}: no .ckpt file in this directory")
        if last not in found and len(found) > 1:
            raise ConfigError(f"{path}: several .ckpt files and no last.ckpt; pass the checkpoint file with --upstream-config")
        path = last if last in found else found[0]
    config = args.upstream_config or os.path.join(folder, "model_config.yaml")
    vocab_path = args.vocab or _first_file([os.path.join(folder, "vocab.json"), os.path.join(os.path.dirname(os.path.abspath(path)), "vocab.json")])
    if not os.path.isfile(config):
        raise ConfigError(f"{config}: the authors' model_config.yaml is needed (--upstream-config)")
    if vocab_path is None:
        raise ConfigError(f"no vocab.json beside {config}: pass --vocab")
    model = load_upstream_checkpoint(path, config, vocab_path)
    vocab = Vocab.from_json(vocab_path)
    data_config = os.path.join(folder, "data_config.yaml")
    if os.path.isfile(data_config):
        from ..compat.configs import data_from_upstream

        base = DagConfig(**data_from_upstream(data_config)["train"])
    else:  # the authors' training graphs (DagConfig's defaults), written with this vocabulary
        base = DagConfig(num_vars=vocab.num_vars, func_vocab=vocab.ops, mod_val=vocab.mod_val, num_nodes=min(32, vocab.num_vars))
    source = {"kind": "authors", "path": path, "model_config": config, "vocab": vocab_path}
    return model, lambda: _graphs(args, base, vocab_path), source, _trained_without_bottleneck(folder)


def _first_file(paths):
    return next((p for p in paths if os.path.isfile(p)), None)


def _trained_without_bottleneck(folder: str) -> bool:
    """The authors' train_config.yaml says ``nointerm: true``: the model was trained as a continuous recurrence."""
    train_config = os.path.join(folder, "train_config.yaml")
    if not os.path.isfile(train_config):
        return False
    from ..yaml_loading import read_yaml_mapping

    return bool(read_yaml_mapping(train_config).get("nointerm", False))


def _graphs(args, base, vocab_path=None):
    """The graphs to analyse: ``--data``, or generated from ``base`` (at ``--nodes`` nodes if given)."""
    from ..compat import load_upstream_dataset
    from ..data import generate_dataset, ood_config

    if args.data:
        vocab = args.vocab or vocab_path or os.path.join(os.path.dirname(os.path.abspath(args.data)), "vocab.json")
        return load_upstream_dataset(args.data, vocab)
    config = base
    if args.nodes:
        config = ood_config(
            base, args.nodes, base_length=base.max_length, num_leaf_nodes=base.num_leaf_nodes,
            min_fan_in=base.min_fan_in, max_fan_in=base.max_fan_in,
        )  # fmt: skip
    return generate_dataset(config, args.num_graphs, seed=(args.seed, 14))
