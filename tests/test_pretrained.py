"""The shipped model (fastrecur/pretrained/): it loads by name, matches its record, and still solves
its own task — so a re-export that ships the wrong file, or weights that do not go with their config,
fails here."""

import json
import os

import pytest
import torch

from fastrecur.checkpoint import PRETRAINED, load_checkpoint, model_from_checkpoint, pretrained_path
from fastrecur.config import EvalSettings
from fastrecur.data import DagConfig, generate_dataset
from fastrecur.evaluate import Evaluator

MAX_BYTES = 5 * 2**20


@pytest.mark.parametrize("name", PRETRAINED)
def test_shipped_model_matches_its_record(name):
    path = pretrained_path(name)
    with open(os.path.splitext(path)[0] + ".json") as f:
        record = json.load(f)
    ckpt = load_checkpoint(name)
    assert os.path.getsize(path) == record["file_bytes"] <= MAX_BYTES
    assert ckpt["step"] == record["steps"] and ckpt["config"] == record["config"]
    assert "optimizer" not in ckpt  # it evaluates; it does not resume
    assert sum(t.numel() for t in ckpt["model"].values()) == record["parameters"]
    assert os.path.isfile(os.path.splitext(path)[0] + "-log.csv")


@pytest.mark.parametrize("name", PRETRAINED)
def test_shipped_model_solves_its_training_distribution(name):
    torch.manual_seed(0)
    model, cfg = model_from_checkpoint(name)
    with open(os.path.splitext(pretrained_path(name))[0] + ".json") as f:
        recorded = [r for r in json.load(f)["sweep"] if r["num_nodes"] == cfg.data.train["num_nodes"]]
    graphs = generate_dataset(DagConfig(**cfg.data.train), 64, seed=(20261202, 1))
    result = Evaluator(model, EvalSettings(policy="depth+2", batch_size=64), torch.device("cpu")).evaluate(graphs)
    # Its record says ≥ 99 % at the training size; 64 fresh graphs must not fall far below that.
    assert recorded and min(r["fully_solved"] for r in recorded) >= 0.99
    assert result["fully_solved"] >= 0.95
