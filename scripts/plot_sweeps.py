#!/usr/bin/env python
"""Overlay the OOD sweeps of several runs: "% completely solved" against graph size.

    python scripts/plot_sweeps.py runs/a/sweep/sweep.json runs/b/sweep/sweep.json -o compare.png
    python scripts/plot_sweeps.py runs/*/sweep/sweep.json --labels a,b --metric value_acc
"""

import argparse
import json
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweeps", nargs="+", help="sweep.json files written by `fastrecur sweep` or the demo")
    parser.add_argument("--labels", help="comma-separated legend labels (default: the run folders)")
    parser.add_argument("--metric", default="fully_solved", choices=["fully_solved", "value_acc"])
    parser.add_argument("-o", "--out", default="sweeps.png")
    args = parser.parse_args()
    labels = args.labels.split(",") if args.labels else [os.path.basename(os.path.dirname(os.path.dirname(os.path.abspath(p)))) for p in args.sweeps]
    if len(labels) != len(args.sweeps):
        parser.error(f"{len(labels)} labels for {len(args.sweeps)} sweeps")

    fig, ax = plt.subplots(figsize=(6.5, 4))
    train_sizes = set()
    for path, label in zip(args.sweeps, labels):
        with open(path) as f:
            data = json.load(f)
        results = data["results"]
        ax.plot([r["num_nodes"] for r in results], [100 * r[args.metric] for r in results], "o-", label=label)
        if data.get("train_size") is not None:
            train_sizes.add(data["train_size"])
    for n in sorted(train_sizes):
        ax.axvline(n, color="gray", ls=":", lw=1)
    ax.set(xlabel="graph size n (nodes)", ylabel=f"{args.metric.replace('_', ' ')} (%)", ylim=(-2, 102))
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    print(args.out)


if __name__ == "__main__":
    main()
