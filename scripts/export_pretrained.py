#!/usr/bin/env python
"""Ship a trained run as a named model inside the package (fastrecur/pretrained/).

    python scripts/export_pretrained.py runs/pretrained-cpu --name pretrained-cpu \\
        --command "scripts/train_pretrained.sh" --commit $(git rev-parse --short HEAD) \\
        --sweep runs/pretrained-cpu/sweep/sweep.json [--sweep runs/pretrained-cpu/sweep-fixed-point/sweep.json]

Writes ``<name>.pt`` (the weights and run config, no optimizer state: it evaluates, it does not
resume), ``<name>.json`` (how it was trained: command, commit, data seed, steps, time, and the sweep
it scored) and ``<name>-log.csv`` (the training curve: loss, per-depth VALUE accuracy, validation).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE_DIR = os.path.join(HERE, "..", "fastrecur", "pretrained")
MAX_BYTES = 5 * 2**20
LOG_COLUMNS = ("step", "lr", "loss", "tokens_per_s")
LOG_PREFIXES = ("value_new/", "val/fully_solved", "val/value_acc")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir", help="the training run (checkpoint.pt, metrics.jsonl)")
    p.add_argument("--name", required=True)
    p.add_argument("--command", required=True, help="the command that trained it")
    p.add_argument("--commit", required=True, help="commit of the code that trained it")
    p.add_argument("--sweep", action="append", default=[], help="sweep.json of the exported model (fastrecur sweep); repeat for several policies")
    p.add_argument("--notes", default="")
    args = p.parse_args(argv)

    from fastrecur.checkpoint import load_checkpoint, save_checkpoint

    ckpt = load_checkpoint(os.path.join(args.run_dir, "checkpoint.pt"))
    out_pt = os.path.join(PACKAGE_DIR, f"{args.name}.pt")
    save_checkpoint(
        {k: ckpt[k] for k in ("config", "model", "step", "tokens_seen", "train_time_s") if k in ckpt}, out_pt
    )
    size = os.path.getsize(out_pt)
    if size > MAX_BYTES:
        os.remove(out_pt)
        raise SystemExit(f"{out_pt}: {size / 2**20:.1f} MiB is over the 5 MiB a shipped model may take")

    records = [json.loads(line) for line in open(os.path.join(args.run_dir, "metrics.jsonl")) if line.strip()]
    merged: dict[int, dict] = {}
    for r in records:  # training and validation records of a step share one row
        merged.setdefault(r["step"], {}).update(r)
    columns = sorted({k for r in merged.values() for k in r if k in LOG_COLUMNS or k.startswith(LOG_PREFIXES)},
                     key=lambda k: (k not in LOG_COLUMNS, LOG_COLUMNS.index(k) if k in LOG_COLUMNS else 0, k))
    with open(os.path.join(PACKAGE_DIR, f"{args.name}-log.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for step in sorted(merged):
            writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in merged[step].items() if k in columns})

    cfg = ckpt["config"]
    info = {
        "name": args.name,
        "command": args.command,
        "commit": args.commit,
        "data_seed": cfg["data"].get("seed") if cfg["data"].get("seed") is not None else cfg["train"]["seed"],
        "train_seed": cfg["train"]["seed"],
        "steps": ckpt["step"],
        "train_time_s": round(ckpt.get("train_time_s", 0.0), 1),
        "parameters": sum(t.numel() for t in ckpt["model"].values()),
        "file_bytes": size,
        "notes": args.notes,
        "config": cfg,
    }
    keep = ("num_nodes", "num_graphs", "fully_solved", "fully_solved_nontrivial", "constant_answer_floor", "value_acc",
            "graph_depth", "iterations", "policy", "length_scaling")
    for path in args.sweep:
        with open(path) as f:
            info.setdefault("sweep", []).extend({k: r[k] for k in keep if k in r} for r in json.load(f)["results"])
    with open(os.path.join(PACKAGE_DIR, f"{args.name}.json"), "w") as f:
        json.dump(info, f, indent=1)
    print(f"wrote {out_pt} ({size / 2**20:.2f} MiB) and its .json and -log.csv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
