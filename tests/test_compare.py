"""``fastrecur compare`` at smoke size: every arm trains and is swept, the table, CSV and plot are
written; reruns resume interrupted arms and skip finished ones; budgets in steps or time."""

import csv
import json
import os

import pytest
import torch

from fastrecur.cli import main
from fastrecur.compare import ARMS, run_compare, select_arms
from fastrecur.config import load_config
from fastrecur.errors import ConfigError
from fastrecur.train import Trainer

SMOKE = [
    "model.hidden_size=16", "model.num_layers=1", "model.num_heads=2", "model.relpos_embed_size=8",
    "train.batch_size=4", "train.log_every=1", "train.warmup_steps=1", "eval.batch_size=8",
]  # fmt: skip
CPU = torch.device("cpu")


def smoke_config(*extra):
    return load_config("tiny-compare", [*SMOKE, "train.steps=2", "sweep.sizes=[4, 5]", "sweep.num_graphs=6", *extra])


def compare_argv(out: str, steps: int) -> list[str]:
    return ["compare", "tiny-compare", *SMOKE, "--arms", "all", "--out", out, "--steps", str(steps), "--sizes", "4,5", "--num-graphs", "6", "--no-progress"]


def test_compare_trains_every_arm_and_writes_table_csv_and_plot(tmp_path, capsys):
    out = str(tmp_path / "cmp")
    argv = compare_argv(out, steps=2)
    assert main(argv) == 0
    table = open(os.path.join(out, "compare.md")).read()
    for name in ARMS:
        assert f"| {name} |" in table
    assert "| no-algorithmic-supervision | fixed 3 |" in table and "| no-algorithmic-supervision | depth+2, input-adaptive |" in table
    assert "n=4 (train)" in table and "% completely solved" in table and "node-value accuracy" in table
    with open(os.path.join(out, "compare.csv")) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * (len(ARMS) + 1)  # every evaluation at both sizes
    cot = [r for r in rows if r["arm"].startswith("cot")]
    assert all(float(r["generated_tokens_mean"]) > 0 and r["iterations_mean"] == "" for r in cot)
    assert {r["iterations_mean"] for r in rows if r["arm"] == "feedforward"} == {"1.0"}
    assert {r["parameters"] for r in rows if r["arm"] == "no-adaptive-recurrence"} == {r["parameters"] for r in rows if r["arm"] == "full"}
    assert os.path.getsize(os.path.join(out, "compare_accuracy_vs_size.png")) > 10_000
    assert not os.path.exists(os.path.join(out, "no-adaptive-recurrence", "checkpoint.pt"))  # evaluated on full's model

    # A second run trains nothing and sweeps nothing.
    stamps = {p: os.path.getmtime(p) for p in _files(out, ("checkpoint.pt", "done.json")) + _files(out, ("eval_",))}
    capsys.readouterr()
    assert main(argv) == 0
    assert "already trained" in capsys.readouterr().out
    assert stamps == {p: os.path.getmtime(p) for p in stamps}

    # Another training config in the same folder is refused, not overwritten.
    assert main(compare_argv(out, steps=3)) == 2
    assert "train.steps" in capsys.readouterr().err


def _files(root, marks):
    return sorted(os.path.join(d, f) for d, _, files in os.walk(root) for f in files if any(f.startswith(m) for m in marks))


def test_an_interrupted_arm_resumes(tmp_path, monkeypatch):
    cfg = smoke_config("compare.arms=[full]")
    real_step, calls = Trainer.train_step, []

    def interrupted_at_the_second_step(self, sb):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_step(self, sb)

    monkeypatch.setattr(Trainer, "train_step", interrupted_at_the_second_step)
    with pytest.raises(KeyboardInterrupt):
        run_compare(cfg, str(tmp_path), CPU, show_progress=False, log=lambda m: None)
    assert not os.path.exists(tmp_path / "full" / "done.json")
    monkeypatch.setattr(Trainer, "train_step", real_step)
    lines = []
    results = run_compare(cfg, str(tmp_path), CPU, show_progress=False, log=lines.append)
    assert any("resuming at step 1" in line for line in lines)
    assert json.loads((tmp_path / "full" / "done.json").read_text())["step"] == 2 == results[0].steps


def test_the_budget_can_be_wall_time(tmp_path):
    cfg = smoke_config("compare.arms=[no-error-correction]", "train.steps=1000", "train.time_limit_s=0.001")
    (result,) = run_compare(cfg, str(tmp_path), CPU, show_progress=False, log=lambda m: None)
    assert result.steps == 1  # stopped by the time limit, not the step count


def test_arm_selection():
    assert [a.name for a in select_arms(["no-adaptive-recurrence"])] == ["full", "no-adaptive-recurrence"]
    with pytest.raises(ConfigError, match="unknown arm"):
        select_arms(["full", "sideways"])
