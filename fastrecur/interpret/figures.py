"""The figures of ``fastrecur interpret`` (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

import numpy as np

from .heads import AttentionMap
from .linear_probes import TARGETS
from .positions import CATEGORIES, QUERY_KINDS

MAX_TICK_LABELS = 48  # beyond this many positions, token labels on the axes are unreadable


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)


def _annotate(ax, grid: np.ndarray, fmt: str, limit: int = 400) -> None:
    if grid.size > limit:
        return
    for (r, c), v in np.ndenumerate(grid):
        if np.isfinite(v):
            ax.text(c, r, format(v, fmt), ha="center", va="center", fontsize=6, color="white" if v < 0.5 * np.nanmax(grid) else "black")


def slot_heatmaps(values: np.ndarray, slots: list[str], title: str, label: str, path: str) -> None:
    """``values [layers, heads, slots]``: one layer × head panel per slot, on one colour scale."""
    plt = _pyplot()
    layers, heads, _ = values.shape
    width, height = max(2.4, 0.5 * heads), max(1.8, 0.5 * layers)
    fig, axes = plt.subplots(1, len(slots), figsize=(1.5 + width * len(slots), 1.2 + height), squeeze=False, layout="constrained")
    vmax = float(np.nanmax(values)) if np.isfinite(values).any() and np.nanmax(values) > 0 else 1.0
    for s, ax in enumerate(axes[0]):
        image = ax.imshow(values[:, :, s], vmin=0, vmax=vmax, cmap="viridis", aspect="auto")
        _annotate(ax, values[:, :, s], ".2f")
        ax.set_title(f"varied: {slots[s]}", fontsize=9)
        ax.set_xlabel("head")
        if s == 0:
            ax.set_ylabel("layer")
        ax.set_xticks(range(heads))
        ax.set_yticks(range(layers))
    fig.colorbar(image, ax=list(axes[0]), label=label, shrink=0.9)
    fig.suptitle(title, fontsize=9)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def similarity_matrix(similarity: np.ndarray, num_heads: int, path: str) -> None:
    plt = _pyplot()
    n = similarity.shape[0]
    fig, ax = plt.subplots(figsize=(2 + 0.22 * n, 1.5 + 0.22 * n))
    image = ax.imshow(similarity, vmin=0, vmax=1, cmap="magma")
    for boundary in range(num_heads, n, num_heads):  # separate the layers
        ax.axhline(boundary - 0.5, color="white", lw=0.8)
        ax.axvline(boundary - 0.5, color="white", lw=0.8)
    names = [f"L{i // num_heads}H{i % num_heads}" for i in range(n)]
    ax.set_xticks(range(n), names, rotation=90, fontsize=6)
    ax.set_yticks(range(n), names, fontsize=6)
    ax.set_title("cosine similarity of attention at the probe's RHS")
    fig.colorbar(image, ax=ax, shrink=0.8)
    _save(fig, path)


def attention_map(amap: AttentionMap, title: str, path: str) -> None:
    """Every layer (rows) and head (columns); red dots mark each variable query's definition."""
    plt = _pyplot()
    layers, heads, L, _ = amap.probs.shape
    size = 2.2 if L > MAX_TICK_LABELS else max(2.2, 0.16 * L)
    fig, axes = plt.subplots(layers, heads, figsize=(size * heads, size * layers + 0.6), squeeze=False)
    queries = np.nonzero(amap.definition >= 0)[0]
    for (layer, head), ax in np.ndenumerate(axes):
        ax.imshow(amap.probs[layer, head], vmin=0, vmax=1, cmap="Blues")
        ax.scatter(amap.definition[queries], queries, s=10, c="red", marker="o", linewidths=0, zorder=3)
        ax.set_title(f"layer {layer} head {head}", fontsize=7)
        if L <= MAX_TICK_LABELS:
            ax.set_xticks(range(L), amap.tokens, rotation=90, fontsize=5)
            ax.set_yticks(range(L), amap.tokens, fontsize=5)
        else:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(title, fontsize=9)
    _save(fig, path)


def head_share_table(shares: np.ndarray, title: str, path: str) -> None:
    """``shares [layers, heads, kinds, categories]``: one (layer·head) × category panel per query kind."""
    plt = _pyplot()
    layers, heads = shares.shape[:2]
    rows = [f"L{layer}H{head}" for layer in range(layers) for head in range(heads)]
    fig, axes = plt.subplots(1, len(QUERY_KINDS), figsize=(9, 1.2 + 0.25 * len(rows)), squeeze=False)
    for kind, ax in enumerate(axes[0]):
        grid = shares[:, :, kind].reshape(len(rows), len(CATEGORIES))
        ax.imshow(grid, vmin=0, vmax=1, cmap="viridis", aspect="auto")
        _annotate(ax, grid, ".0%", limit=10_000)
        ax.set_xticks(range(len(CATEGORIES)), [c.replace("_", "\n") for c in CATEGORIES], fontsize=7)
        ax.set_yticks(range(len(rows)), rows, fontsize=6)
        ax.set_title(f"{QUERY_KINDS[kind]} queries", fontsize=9)
    fig.suptitle(title, fontsize=9)
    _save(fig, path)


def probe_curves(probes: dict, continuous: bool, path: str) -> None:
    """Held-out accuracy against iteration; one line per layer, chance dashed, shuffled-label control dotted."""
    plt = _pyplot()
    fig, axes = plt.subplots(len(TARGETS), len(QUERY_KINDS), figsize=(9, 2.6 * len(TARGETS)), squeeze=False, sharex=True)
    for (r, target), (c, kind) in ((x, y) for x in enumerate(TARGETS) for y in enumerate(QUERY_KINDS)):
        ax = axes[r, c]
        table = probes.get(target, {}).get(kind)
        if table is None:
            ax.set_axis_off()
            continue
        accuracy = np.array(table["accuracy"])  # [iterations, layers]
        iterations = np.arange(1, accuracy.shape[0] + 1)
        cmap = plt.get_cmap("viridis")
        for layer in range(accuracy.shape[1]):
            name = "input" if layer == 0 else f"after layer {layer - 1}"
            ax.plot(iterations, 100 * accuracy[:, layer], "o-", ms=3, color=cmap(layer / max(1, accuracy.shape[1] - 1)), label=name)
        ax.plot(iterations, 100 * np.array(table["chance"])[:, 0], "k--", lw=1, label="chance")
        ax.plot(iterations, 100 * np.array(table["shuffled"]).max(1), "k:", lw=1, label="shuffled labels (best layer)")
        ax.set(title=f"{target} at {kind} occurrences", ylim=(-2, 102), ylabel="held-out accuracy (%)")
        ax.set_xticks(iterations)
        ax.grid(alpha=0.3)
        if r == len(TARGETS) - 1:
            ax.set_xlabel("iteration")
    handles, labels = next((ax.get_legend_handles_labels() for ax in axes.flat if ax.lines), ([], []))
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=7)
    fig.suptitle(f"linear probes of the latent state ({'continuous' if continuous else 'discrete'} rollout)", fontsize=10)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def spectra(spectra: dict, path: str) -> None:
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(spectra), figsize=(4.5 * len(spectra), 3.2), squeeze=False)
    for ax, (name, spectrum) in zip(axes[0], spectra.items()):
        ax.bar(spectrum["frequencies"], 100 * np.array(spectrum["fraction"]))
        ax.set(
            title=f"VALUE {name} (constant part {100 * spectrum['constant_fraction']:.0f}%)",
            xlabel="frequency k over residues", ylabel="% of non-constant power", ylim=(0, 100),
        )  # fmt: skip
        ax.set_xticks(spectrum["frequencies"])
    _save(fig, path)
