#!/usr/bin/env python
"""Summarise learning-study runs (``scripts/study.py`` outputs) as a Markdown table and a plot.

    python scripts/study_report.py runs/study --md docs/study_runs.md --plot docs/figures/study_curves.png

For every run folder holding ``study.jsonl``: the first step at which closed-loop in-distribution
"% completely solved" reached 95 % and 99 % (on the run's held-out set), the last evaluation's
in-distribution and OOD accuracies (all graphs, and without the graphs a constant answer solves),
and the teacher-forced accuracy of copy and k-ary nodes whose operand definitions lie beyond the
relative-position window (what the name lookup must find).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re


def load_runs(root: str) -> dict[str, list[dict]]:
    runs = {}
    for name in sorted(os.listdir(root)):
        path = os.path.join(root, name, "study.jsonl")
        if os.path.isfile(path):
            with open(path) as f:
                records = [json.loads(line) for line in f if line.strip()]
            # A resumed run may repeat an evaluation: keep the last record of each step.
            by_step = {r["step"]: r for r in records}
            runs[name] = [by_step[s] for s in sorted(by_step)]
    return runs


def first_step(records: list[dict], key: str, threshold: float):
    for r in records:
        if r.get(key, 0.0) >= threshold:
            return r["step"]
    return None


def fmt(x, pct=True):
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{100 * x:.1f}" if pct else str(x)


def ood_sets(record: dict) -> list[str]:
    """The OOD evaluation sets of a record (``n8``, ``n12``, …), smallest graph size first."""
    return sorted({k.split("/")[0] for k in record if re.match(r"n\d+/solved$", k)}, key=lambda s: int(s[1:]))


def table(runs: dict[str, list[dict]]) -> str:
    lines = []
    for name, recs in runs.items():
        last = recs[-1]
        ood = ood_sets(last)
        ood_cells = " ".join(f"{k}: {fmt(last[f'{k}/solved'])} ({fmt(last.get(f'{k}/solved_nontrivial'))})" for k in ood)
        twice = f"{ood[0]}/solved" if ood else None
        lines.append(
            f"| {name} | {last['step']} | {fmt(first_step(recs, 'in/solved', 0.95), False)} | "
            f"{fmt(first_step(recs, 'in/solved', 0.99), False)} | "
            f"{fmt(first_step(recs, twice, 0.95) if twice else None, False)} | {fmt(last['in/solved'])} "
            f"({fmt(last.get('in/solved_nontrivial'))}) | {ood_cells} | "
            f"{fmt(last.get('in/tf/copy_far'))} / {fmt(last.get('in/tf/kary_far'))} | {last.get('train_s', '–')} |"
        )
    head = (
        "| run | steps | first step in-dist ≥ 95 % | first step in-dist ≥ 99 % | first step smallest OOD ≥ 95 % | "
        "last: in-dist solved (non-trivial) | last: OOD solved (non-trivial) | teacher-forced far copy / far k-ary | train s |\n"
        "|---|---:|---:|---:|---:|---:|---|---:|---:|"
    )
    return head + "\n" + "\n".join(lines)


def plot(runs: dict[str, list[dict]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    colors = plt.get_cmap("tab10").colors
    for i, (name, recs) in enumerate(runs.items()):
        steps = [r["step"] for r in recs]
        style = dict(color=colors[i % len(colors)], ls=("-", "--", ":")[i // len(colors) % 3], lw=1)
        axes[0].plot(steps, [r["in/solved"] for r in recs], label=name, **style)
        ood = ood_sets(recs[-1])
        if ood:
            axes[1].plot(steps, [r.get(f"{ood[0]}/solved", float("nan")) for r in recs], **style)
    axes[0].set_title("in distribution: fraction completely solved")
    axes[1].set_title("smallest OOD size (2× the training size): fraction completely solved")
    for ax in axes:
        ax.set_xlabel("training step")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=6, ncol=2)
    fig.tight_layout()
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fig.savefig(path, dpi=110)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    p.add_argument("root")
    p.add_argument("--md", default=None)
    p.add_argument("--plot", default=None)
    p.add_argument("--only", default=None, help="regex on run names")
    args = p.parse_args(argv)
    runs = load_runs(args.root)
    if args.only:
        runs = {k: v for k, v in runs.items() if re.search(args.only, k)}
    text = table(runs)
    print(text)
    if args.md:
        with open(args.md, "w") as f:
            f.write(text + "\n")
    if args.plot:
        plot(runs, args.plot)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
