"""Out-of-distribution sweep: "% completely solved" against graph size (docs/method.md §6.1–6.3).

For each size ``n`` the evaluation set is either read from ``sweep.data_dir`` (files named
``testdata_N{n}.pt`` as the authors' generator writes them, plus ``vocab.json``) or generated
with the authors' OOD settings (6 leaves, fan-in 1–3, unbounded depth, the training operations,
modulus and name pool; seeded by ``(sweep.seed, n)``). Results go to ``sweep.json``, ``sweep.csv``
and two plots: accuracy vs graph size (a line marks the training size) and accuracy vs iterations.
"""

from __future__ import annotations

import csv
import json
import os
from typing import Optional

import torch

from .compat import load_upstream_dataset
from .config import RunConfig
from .data import DagConfig, GraphDataset, generate_dataset, ood_config
from .errors import ConfigError
from .evaluate import make_evaluator, percent
from .io import atomic_write_text


def sweep_dataset(cfg: RunConfig, n: int) -> GraphDataset:
    s = cfg.sweep
    if s.data_dir:
        path = os.path.join(s.data_dir, f"testdata_N{n}.pt")
        vocab = os.path.join(s.data_dir, "vocab.json")
        if not os.path.isfile(path):
            raise ConfigError(f"sweep.data_dir has no {os.path.basename(path)} for graph size {n}")
        return load_upstream_dataset(path, vocab)
    base = DagConfig(**cfg.data.train)
    if n > base.num_vars:
        raise ConfigError(
            f"graph size {n} exceeds the model's variable pool ({base.num_vars} names): sweep sizes must be ≤ {base.num_vars}"
        )
    if n <= s.num_leaf_nodes:
        raise ConfigError(f"sweep size {n} must exceed sweep.num_leaf_nodes={s.num_leaf_nodes}")
    # The authors' OOD sets hard-code fan-in 1–3, which is their training range: use the training one.
    config = ood_config(base, n, num_leaf_nodes=s.num_leaf_nodes, min_fan_in=base.min_fan_in, max_fan_in=base.max_fan_in)
    return generate_dataset(config, s.num_graphs, seed=s.seed * 100_003 + n)


def in_distribution_dataset(cfg: RunConfig, num_graphs: int, seed: int = 4242) -> GraphDataset:
    """Fresh graphs from the training distribution itself (same size, depth bound and length)."""
    return generate_dataset(DagConfig(**cfg.data.train), num_graphs, seed=(seed, 1))


def run_sweep(model, cfg: RunConfig, device: torch.device, backend=None, show_progress: bool = True) -> list[dict]:
    evaluator = make_evaluator(model, cfg, device, backend)
    results = []
    bar = None
    if show_progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(cfg.sweep.sizes) * cfg.sweep.num_graphs, desc="sweep", unit="graph", dynamic_ncols=True)
    try:
        for n in cfg.sweep.sizes:
            ds = sweep_dataset(cfg, int(n))
            if bar is not None:
                bar.set_postfix(n=n)
            result = evaluator.evaluate(ds, progress=bar)
            results.append({"num_nodes": int(n), **result})
    finally:
        if bar is not None:
            bar.close()
    return results


def write_sweep(results: list[dict], out_dir: str, train_size: Optional[int]) -> dict[str, str]:
    """Write JSON, CSV and the two PNG plots; returns their paths."""
    os.makedirs(out_dir, exist_ok=True)
    paths = {
        "json": os.path.join(out_dir, "sweep.json"),
        "csv": os.path.join(out_dir, "sweep.csv"),
        "plot_size": os.path.join(out_dir, "sweep_accuracy_vs_size.png"),
        "plot_iters": os.path.join(out_dir, "sweep_accuracy_vs_iterations.png"),
    }
    atomic_write_text(paths["json"], json.dumps({"train_size": train_size, "results": results}, indent=1))
    rows = [
        {
            "num_nodes": r["num_nodes"],
            "num_graphs": r["num_graphs"],
            "fully_solved": r["fully_solved"],
            "value_acc": r["value_acc"],
            "mean_depth": r["graph_depth"]["mean"],
            "max_depth": r["graph_depth"]["max"],
            "iterations_mean": r["iterations"]["mean"] if "iterations" in r else "",
            "iterations_max": r["iterations"]["max"] if "iterations" in r else "",
            "generated_tokens_mean": r["generated_tokens"]["mean"] if "generated_tokens" in r else "",
        }
        for r in results
    ]
    with open(paths["csv"], "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    plot_sweep(results, train_size, paths["plot_size"], paths["plot_iters"])
    return paths


def plot_sweep(results: list[dict], train_size: Optional[int], size_path: str, iters_path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [r["num_nodes"] for r in results]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(sizes, [100 * r["fully_solved"] for r in results], "o-", label="% completely solved")
    ax.plot(sizes, [100 * r["value_acc"] for r in results], "s--", alpha=0.6, label="% node values correct")
    if train_size is not None:
        ax.axvline(train_size, color="gray", ls=":", label=f"training size ({train_size})")
    ax.set(xlabel="graph size n (nodes)", ylabel="accuracy (%)", ylim=(-2, 102), title="OOD generalization")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left")
    fig.tight_layout()
    fig.savefig(size_path, dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    cmap = plt.get_cmap("viridis")
    for i, r in enumerate(results):
        if "per_iteration" not in r:  # a CoT model has no iterations
            continue
        curve = r["per_iteration"]["fully_solved"]
        ax.plot(range(1, len(curve) + 1), [100 * c for c in curve], color=cmap(i / max(1, len(results) - 1)), label=f"n={r['num_nodes']}")
    ax.set(xlabel="iterations", ylabel="% completely solved", ylim=(-2, 102), title="Accuracy vs iterations")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", ncol=2)
    fig.tight_layout()
    fig.savefig(iters_path, dpi=120)
    plt.close(fig)


def steps_per_graph(result: dict) -> float:
    """Mean iterations of a recurrent model's evaluation, or mean generated tokens of a CoT model's."""
    return result["generated_tokens"]["mean"] if "generated_tokens" in result else result["iterations"]["mean"]


def format_table(results: list[dict], train_size: Optional[int]) -> str:
    lines = [f"{'n':>5} {'graphs':>7} {'depth':>11} {'iters':>6} {'solved':>8} {'values':>8}"]
    for r in results:
        mark = "  ← training size" if r["num_nodes"] == train_size else ""
        d = r["graph_depth"]
        lines.append(
            f"{r['num_nodes']:>5} {r['num_graphs']:>7} {d['mean']:>5.1f} (≤{d['max']:>2}) {steps_per_graph(r):>6.1f} "
            f"{percent(r['fully_solved']):>8} {percent(r['value_acc']):>8}{mark}"
        )
    return "\n".join(lines)
