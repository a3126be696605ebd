"""``fastrecur gen-data``: the splits of an authors' data_config.yaml, and OOD evaluation sets."""

from __future__ import annotations

import argparse
import hashlib
import os
import time

from tqdm import tqdm

from ..compat import save_upstream_dataset
from ..data import DagConfig, GraphDataset, dataset_spec, generate_dataset, ood_config
from ..data.upstream_config import read_data_config
from ..data.vocab import Vocab
from ..errors import ConfigError
from .options import parse_sizes

NAME = "gen-data"
HELP = "generate graph datasets in the authors' file format: the splits of a data_config.yaml and OOD evaluation sets"

EPILOG = """\
examples:
  fastrecur gen-data --config data_config.yaml --workers 2
  fastrecur gen-data --config data_config.yaml --ood 8:128:8 --ood-only
  fastrecur gen-data --config data_config.yaml --ood 8:128:8,256,512 --num-vars 512

Writes each split's data_file_name and vocab.json into --out (default: the config's data_dir,
relative to the config file), and beside every file <file>.sha256 (`sha256sum -c` format).
The authors' tokenizer pickle (tokenizer_file_name) is replaced by vocab.json.

OOD sets (--ood) follow the authors' evaluation script: 6 leaves, fan-in 1-3, max_depth = n, the
training split's operations and modulus, length max(split lengths) (1024 for the shipped configs)
or more where n needs it; each file testdata_N<n>.pt carries their `spec` statistics. Sizes above
the variable pool (max num_nodes of the config, 128 for the shipped ones) need --num-vars, which
changes the tokenizer and so needs a model trained with the same vocabulary.

Every file has its own seeded stream derived from --seed: the same command writes identical files
for any --workers.
"""

# Per-file stream tags: the seed of a file is (--seed, tag[, n]).
_SPLIT_TAG_START = 1  # dag_config → 1, val_dag_config → 2
_OOD_TAG = 3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG
    add = parser.add_argument
    add("--config", required=True, metavar="PATH", help="the authors' data_config.yaml (dag_config, val_dag_config)")
    add("--out", metavar="DIR", help="output directory (default: the config's data_dir, beside the config file)")
    add("--workers", type=int, default=1, metavar="N", help="generator processes (default 1)")
    add("--seed", type=int, default=0, metavar="S", help="base seed of every file's stream (default 0)")
    add("--num-samples", type=int, metavar="N", help="override num_samples of every split (e.g. for a quick check)")
    add("--num-vars", type=int, metavar="N", help="variable-name pool size (default: the config's largest num_nodes)")
    add("--ood", metavar="SIZES", help="OOD set sizes, comma-separated: START:STOP:STEP (inclusive) or single sizes")
    add("--ood-samples", type=int, default=1024, metavar="N", help="graphs per OOD set (default 1024, as the authors)")
    add("--ood-dir", metavar="DIR", help="where OOD sets go (default: OUT/val_datasets/Tr<train n>Test<val n>/<ops>)")
    add("--ood-only", action="store_true", help="write only the OOD sets, not the config's splits")


def run(args: argparse.Namespace) -> int:
    if args.workers < 1:
        raise ConfigError(f"--workers={args.workers} must be a positive integer")
    if args.seed < 0:
        raise ConfigError(f"--seed={args.seed} must be a non-negative integer")
    config_file = read_data_config(args.config, num_vars=args.num_vars, num_samples=args.num_samples)
    # Like fastrecur's reading of the authors' config folders: data_dir is relative to the config file.
    out = args.out or os.path.join(os.path.dirname(os.path.abspath(args.config)), config_file.data_dir)
    vocab = config_file.vocab
    train = config_file.train.config
    ood_sets = _ood_configs(args, config_file)  # all validated before any long generation starts
    if args.ood_only and not ood_sets:
        raise ConfigError("--ood-only needs --ood SIZES, e.g. --ood 8:128:8")

    if not args.ood_only:
        os.makedirs(out, exist_ok=True)
        _write_vocab(vocab, out)
        for tag, split in enumerate(config_file.splits, start=_SPLIT_TAG_START):
            dataset = _generate(split.config, split.num_samples, (args.seed, tag), args.workers, split.file_name)
            if split.verbose:
                print(vocab.format_sample(dataset.labels[0], dataset.depth[0]))
            _write(dataset, os.path.join(out, split.file_name))
    if ood_sets:
        sizes = f"Tr{train.num_nodes}Test{config_file.splits[-1].config.num_nodes}"  # the authors' folder names
        ood_dir = args.ood_dir or os.path.join(out, "val_datasets", sizes, "_".join(train.func_vocab))
        os.makedirs(ood_dir, exist_ok=True)
        _write_vocab(vocab, ood_dir)
        for n, config in ood_sets:
            name = f"testdata_N{n}.pt"
            dataset = _generate(config, args.ood_samples, (args.seed, _OOD_TAG, n), args.workers, name)
            dataset.spec = dataset_spec(dataset)
            _write(dataset, os.path.join(ood_dir, name))
    return 0


def _ood_configs(args: argparse.Namespace, config_file) -> list[tuple[int, DagConfig]]:
    if not args.ood:
        return []
    if args.ood_samples < 1:
        raise ConfigError(f"--ood-samples={args.ood_samples} must be a positive integer")
    sizes = parse_sizes(args.ood, "--ood")
    pool = config_file.vocab.num_vars
    if max(sizes) > pool:
        raise ConfigError(
            f"--ood size {max(sizes)} exceeds the variable-name pool of {pool}: every node needs its own name; "
            f"pass --num-vars {max(sizes)} (this changes the tokenizer: the model must be trained with it)"
        )
    base_length = max(split.config.max_length for split in config_file.splits)
    configs = []
    for n in sizes:
        try:
            configs.append((n, ood_config(config_file.train.config, n, base_length=base_length)))
        except ConfigError as exc:
            raise ConfigError(f"--ood size {n}: {exc}") from None
    return configs


def _generate(config: DagConfig, num_samples: int, seed: tuple[int, ...], workers: int, name: str) -> GraphDataset:
    start = time.perf_counter()
    with tqdm(total=num_samples, unit="graph", desc=name) as bar:
        dataset = generate_dataset(config, num_samples, seed, workers=workers, progress=bar.update)
    seconds = time.perf_counter() - start
    print(f"{name}: {num_samples} graphs of {config.num_nodes} nodes, length {config.max_length}, "
          f"max depth {dataset.max_depth}, in {seconds:.1f} s ({num_samples / max(seconds, 1e-9):,.0f} graphs/s)")
    return dataset


def _write(dataset: GraphDataset, path: str) -> None:
    save_upstream_dataset(dataset, path)
    digest = _write_sha256(path)
    print(f"wrote {path} (sha256 {digest[:16]}…)")


def _write_vocab(vocab: Vocab, directory: str) -> None:
    path = os.path.join(directory, "vocab.json")
    vocab.to_json(path)
    _write_sha256(path)


def _write_sha256(path: str) -> str:
    """Record the file's content hash beside it as ``<file>.sha256`` (checkable with ``sha256sum -c``)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    with open(f"{path}.sha256", "w") as f:
        f.write(f"{digest.hexdigest()}  {os.path.basename(path)}\n")
    return digest.hexdigest()
