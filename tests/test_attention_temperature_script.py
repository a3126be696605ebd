"""scripts/attention_temperature.py on the shipped model: τ = 1 is the plain evaluation, and a τ far
from 1 breaks a model that solves the plain one (so the factor does reach every attention layer)."""

import importlib.util
import os

import torch

from fastrecur.checkpoint import model_from_checkpoint
from fastrecur.config import EvalSettings
from fastrecur.evaluate import Evaluator, percent
from fastrecur.sweep import sweep_dataset

SCRIPT = os.path.join(os.path.dirname(__file__), "..", "scripts", "attention_temperature.py")


def test_tau_one_is_the_plain_evaluation_and_a_large_tau_changes_it(capsys):
    spec = importlib.util.spec_from_file_location("attention_temperature", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.main(["pretrained-cpu", "--taus", "1,3", "--sizes", "16", "--num-graphs", "16"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()[1:]]
    model, cfg = model_from_checkpoint("pretrained-cpu")
    cfg.sweep.num_graphs = 16
    plain = Evaluator(model, EvalSettings(), torch.device("cpu")).evaluate(sweep_dataset(cfg, 16))
    assert [r[:2] for r in rows] == [["16", "1.00"], ["16", "3.00"]]
    assert rows[0][2] == percent(plain["fully_solved"]) and rows[1][2] != rows[0][2]
