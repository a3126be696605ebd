"""Run every analysis on one model and write ``report.md``, ``report.json`` and the figures."""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from typing import Optional

import numpy as np

from ..data import GraphDataset
from ..errors import ConfigError
from ..io import atomic_write_text
from ..model import RecurrentTransformer
from . import figures
from .fourier import value_spectra
from .heads import STATES, attention_maps, head_shares
from .linear_probes import TARGETS, collect_occurrences, probe_latents
from .positions import CATEGORIES, CATEGORY_HELP, QUERY_KINDS
from .probe_equations import run_probe_equations


@dataclass
class InterpretSettings:
    num_graphs: int = 256  # graphs for the attention summary and the linear probes
    probe_graphs: int = 16  # graphs for the controlled probe equations (one batch per graph and slot)
    map_graphs: int = 3  # graphs whose attention maps are drawn
    arity: int = 2  # operands of a probe equation
    num_iters: Optional[int] = None  # rollout length for the linear probes (default: max depth + 2)
    continuous: bool = False  # probe a continuous ("nointerm") rollout instead of the discrete one
    batch_size: int = 32
    max_occurrences: int = 4000  # variable occurrences sampled for the linear probes
    seed: int = 0
    show_progress: bool = True

    def validate(self) -> "InterpretSettings":
        for key in ("num_graphs", "probe_graphs", "arity", "batch_size", "max_occurrences"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{key}={getattr(self, key)} must be a positive integer")
        if self.map_graphs < 0:
            raise ConfigError(f"map_graphs={self.map_graphs} must be >= 0")
        if self.num_iters is not None and self.num_iters < 1:
            raise ConfigError(f"iterations={self.num_iters} must be a positive integer")
        return self


def _bar(settings: InterpretSettings, total: int, desc: str, unit: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=not settings.show_progress, dynamic_ncols=True, leave=False)


def interpret(
    model: RecurrentTransformer, dataset: GraphDataset, out_dir: str, settings: InterpretSettings, source: dict
) -> dict:
    """All analyses of ``model`` on ``dataset``; returns the report (also written to ``out_dir``)."""
    settings.validate()
    if tuple(dataset.vocab.sizes) != tuple(model.config.vocab_sizes):
        raise ConfigError(f"the graphs' vocabulary sizes {dataset.vocab.sizes} differ from the model's {model.config.vocab_sizes}")
    os.makedirs(out_dir, exist_ok=True)
    model.eval()
    dataset = dataset[: settings.num_graphs]
    cfg = model.config
    timings: dict[str, float] = {}
    report: dict = {
        "source": source,
        "model": {**cfg.to_dict(), "parameters": model.num_parameters()},
        "data": {"graphs": len(dataset), "max_depth": dataset.max_depth, "mean_length": float(dataset.lengths.float().mean())},
        "settings": asdict(settings),
        "figures": {},
    }

    start = time.perf_counter()
    slots_total = settings.probe_graphs * (settings.arity + 1)
    with _bar(settings, slots_total, "probe equations", "batch") as bar:
        probes = run_probe_equations(model, dataset, arity=settings.arity, num_graphs=settings.probe_graphs, seed=settings.seed, progress=bar)
    report["probe_equations"] = probes
    ratio, entropy = np.array(probes["variance_ratio"]), np.array(probes["entropy"])
    figures.slot_heatmaps(ratio, probes["slots"], "head's residual contribution: variance across the batch / mean squared norm", "variance ratio", _path(out_dir, report, "probe_variance_ratio"))
    figures.slot_heatmaps(entropy, probes["slots"], "attention entropy at the probe's RHS (nats)", "entropy (nats)", _path(out_dir, report, "probe_entropy"))
    figures.similarity_matrix(np.array(probes["similarity"]), cfg.num_heads, _path(out_dir, report, "probe_similarity"))
    timings["probe_equations"] = time.perf_counter() - start

    start = time.perf_counter()
    report["head_shares"] = {"categories": list(CATEGORIES), "query_kinds": list(QUERY_KINDS)}
    for state in STATES:
        with _bar(settings, len(dataset), f"attention ({state})", "graph") as bar:
            shares = head_shares(model, dataset, state=state, batch_size=settings.batch_size, progress=bar)
        report["head_shares"][state] = shares.tolist()
        figures.head_share_table(shares, f"share of attention per head ({state} state)", _path(out_dir, report, f"head_shares_{state}"))
    for i in range(min(settings.map_graphs, len(dataset))):
        (amap,) = attention_maps(model, dataset, [i])  # one graph's [layers, H, L, L] at a time: drawn, then dropped
        figures.attention_map(amap, f"graph {i} (input state); red dots: definition of each variable query", _path(out_dir, report, f"attention_graph{i}"))
    timings["head_attention"] = time.perf_counter() - start

    start = time.perf_counter()
    num_iters = settings.num_iters or dataset.max_depth + 2
    with _bar(settings, len(dataset), "linear probes: rollout", "graph") as bar:
        occurrences = collect_occurrences(
            model, dataset, num_iters=num_iters, continuous=settings.continuous, batch_size=settings.batch_size,
            max_occurrences=settings.max_occurrences, seed=settings.seed, progress=bar,
        )  # fmt: skip
    latents = probe_latents(occurrences, mod_val=dataset.vocab.mod_val, seed=settings.seed)
    report["linear_probes"] = {"iterations": num_iters, "continuous": settings.continuous, **latents}
    figures.probe_curves(latents, settings.continuous, _path(out_dir, report, "linear_probes"))
    timings["linear_probes"] = time.perf_counter() - start

    report["fourier"] = value_spectra(model)
    figures.spectra(report["fourier"], _path(out_dir, report, "value_spectrum"))
    report["timings_s"] = {k: round(v, 2) for k, v in timings.items()}

    atomic_write_text(os.path.join(out_dir, "report.json"), json.dumps(_finite(report), indent=1))
    atomic_write_text(os.path.join(out_dir, "report.md"), render_markdown(report))
    return report


def _path(out_dir: str, report: dict, name: str) -> str:
    report["figures"][name] = f"{name}.png"
    return os.path.join(out_dir, f"{name}.png")


def _finite(value):
    """NaN/inf → None, so report.json is strict JSON."""
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _pct(x: Optional[float]) -> str:
    return "–" if x is None or not np.isfinite(x) else f"{100 * x:.1f}%"


def render_markdown(report: dict) -> str:
    m, d, probes = report["model"], report["data"], report["probe_equations"]
    lines = [
        "# Interpretability report",
        "",
        f"Model: {m['num_layers']} layers, {m['num_heads']} heads of {m['hidden_size'] // m['num_heads']}, hidden {m['hidden_size']}, "
        f"{m['parameters']:,} parameters ({report['source'].get('kind', '?')} checkpoint `{report['source'].get('path', '?')}`).",
        f"Graphs: {d['graphs']} (max depth {d['max_depth']}, mean length {d['mean_length']:.1f} tokens).",
        "",
        "## 1. Controlled probe equations",
        "",
        f"Each batch appends `<EQ_SEP> var_0 {probes['operation']} … = rhs` to a solved graph and varies one slot; "
        "the numbers are measured at the probe's RHS.",
        "",
        "| varied slot | batches | probes | VALUE accuracy at the probe's RHS |",
        "|---|---:|---:|---:|",
    ]
    for s, slot in enumerate(probes["slots"]):
        lines.append(f"| {slot} | {probes['batches'][s]} | {probes['probes'][s]} | {_pct(probes['value_accuracy'][s])} |")
    lines += [
        "",
        "![variance ratio](probe_variance_ratio.png)",
        "",
        "How to read: a cell is how much one head's write to the residual stream changes when only the named slot "
        "changes (variance across the batch / mean squared norm, 0 = ignores that slot); a head that looks up an "
        "operand lights up in that operand's panel only.",
        "",
        "![entropy](probe_entropy.png)",
        "",
        "How to read: low entropy means the head puts its attention at the probe's RHS on few positions (a lookup), "
        "high entropy (up to log of the sequence length) means it spreads it.",
        "",
        "![similarity](probe_similarity.png)",
        "",
        "How to read: bright off-diagonal blocks are heads (across all layers) that attend to the same positions "
        "from the probe's RHS, i.e. heads doing the same job.",
        "",
        "| layer | head | " + " | ".join(f"ratio {s}" for s in probes["slots"]) + " | " + " | ".join(f"entropy {s}" for s in probes["slots"]) + " |",
        "|---|---|" + "---:|" * (2 * len(probes["slots"])),
    ]
    ratio, entropy = probes["variance_ratio"], probes["entropy"]
    for layer, (ratio_row, entropy_row) in enumerate(zip(ratio, entropy)):
        for head, (r, e) in enumerate(zip(ratio_row, entropy_row)):
            lines.append(f"| {layer} | {head} | " + " | ".join(f"{v:.3f}" for v in r) + " | " + " | ".join(f"{v:.2f}" for v in e) + " |")

    shares = report["head_shares"]
    lines += ["", "## 2. Where heads look", "", "Categories (positions computed from the graph; a key counts for the first that applies):", ""]
    lines += [f"* `{c}` — {CATEGORY_HELP[c]}" for c in CATEGORIES]
    for state in STATES:
        lines += [
            "",
            f"![head shares, {state}](head_shares_{state}.png)",
            "",
            f"How to read: each row is one head, each column a category; a cell is the mean share of that head's attention "
            f"from variable queries that lands in the category, with the model reading the {state} state "
            f"({'every value hidden' if state == 'input' else 'every node value written at its RHS'}).",
            "",
            f"Heads with more than half their attention in one category ({state} state): " + _dominant_heads(np.array(shares[state])),
        ]
    maps = sorted(name for name in report["figures"] if name.startswith("attention_graph"))
    for name in maps:
        lines += ["", f"![{name}]({name}.png)"]
    if maps:
        lines += [
            "",
            "How to read: row = query position, column = key position, darker = more attention, per layer (rows of panels) "
            "and head (columns); the red dot in a variable's row marks where that variable is defined, so a head "
            "that looks up definitions puts its dark cells on the red dots.",
        ]

    probes_latent = report["linear_probes"]
    lines += [
        "",
        "## 3. Linear probes of the latent state",
        "",
        f"{'Continuous' if probes_latent['continuous'] else 'Discrete'} rollout of {probes_latent['iterations']} iterations; "
        f"occurrences sampled: {probes_latent['num_occurrences']}; ridge probes fitted on 75% of the graphs, scored on the rest. "
        "Targets: the value and the depth of the node named at the occurrence, and whether that node is solved yet "
        "(its RHS holds the right value in the state the iteration reads; nothing is solved at iteration 1).",
        "",
        "![linear probes](linear_probes.png)",
        "",
        "How to read: each line is the held-out accuracy of a linear read-out of one layer's residual stream at each "
        "iteration (layer 0 = the block's input); the dashed line is the majority-class rate and the dotted line a "
        "probe trained on shuffled labels, so only accuracy well above both means the information is linearly present.",
        "",
        "Best layer's held-out accuracy at each iteration (chance in brackets):",
        "",
        "| target | occurrences | " + " | ".join(f"iteration {t + 1}" for t in range(probes_latent["iterations"])) + " |",
        "|---|---|" + "---:|" * probes_latent["iterations"],
    ]
    for target in TARGETS:
        for kind, table in probes_latent.get(target, {}).items():
            cells = []
            for accuracy, chance in zip(table["accuracy"], table["chance"]):
                best = int(np.argmax(accuracy))
                cells.append(f"{_pct(accuracy[best])} ({_pct(chance[best])})")
            lines.append(f"| {target} | {kind} | " + " | ".join(cells) + " |")

    lines += [
        "",
        "## 4. Frequency analysis of values",
        "",
        "![value spectrum](value_spectrum.png)",
        "",
        "How to read: the bars split the residue-dependent part of the VALUE embedding (left) and of the VALUE head's "
        "readout directions (right) over frequencies k (k and p−k together); a few tall bars mean values are encoded "
        "as a few rotations over the residues, flat bars mean no modular structure.",
        "",
        "| table | top frequencies (share of non-constant power) | constant part |",
        "|---|---|---:|",
    ]
    for name, spectrum in report["fourier"].items():
        top = ", ".join(f"k={t['frequency']} ({_pct(t['fraction'])})" for t in spectrum["top"])
        lines.append(f"| {name} | {top} | {_pct(spectrum['constant_fraction'])} |")
    if any(len(spectrum["frequencies"]) == 1 for spectrum in report["fourier"].values()):
        lines += ["", "With a modulus below 4 there is only one non-constant frequency, so the spectrum cannot tell anything apart."]
    lines += ["", f"Time per part (s): {report['timings_s']}. All numbers are in `report.json`.", ""]
    return "\n".join(lines)


def _dominant_heads(shares: np.ndarray) -> str:
    found = []
    for layer in range(shares.shape[0]):
        for head in range(shares.shape[1]):
            for kind, kind_name in enumerate(QUERY_KINDS):
                row = shares[layer, head, kind]
                if np.isfinite(row).all() and row.max() > 0.5:
                    found.append(f"L{layer}H{head} {kind_name}→{CATEGORIES[int(row.argmax())]} ({row.max():.0%})")
    return ", ".join(found) if found else "none."

