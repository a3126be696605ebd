"""``fastrecur gen-data``: the authors' data_config.yaml in, the authors' files (+ vocab.json, hashes) out."""

from __future__ import annotations

import hashlib
import re

import pytest
import torch
import yaml

from fastrecur.cli import main
from fastrecur.compat import load_upstream_dataset
from fastrecur.commands.options import parse_sizes
from fastrecur.data import Vocab, dataset_spec


def split(**changes):
    """One split in the authors' layout, every key they use included."""
    section = dict(
        data_file_name="train_16node.pt",
        fix_graph=False,
        func_vocab=["ADD", "SUB"],
        max_comp_depth=4,
        max_depth=4,
        max_fan_in_deg=3,
        max_length=128,
        min_fan_in_deg=1,
        mod_val=23,
        num_leaf_nodes=6,
        num_nodes=16,
        num_samples=300,
        shuffle_node_name=True,
        verbose=False,
    )
    section.update(changes)
    return section


def write_config(tmp_path, train=None, val=None, **top):
    data = dict(
        dag_config=train or split(),
        val_dag_config=val
        or split(
            data_file_name="val_24node.pt",
            num_nodes=24,
            max_depth=24,
            max_comp_depth=24,
            max_length=256,
            num_samples=40,
            verbose=True,
        ),
        data_dir="generated",
        tokenizer_file_name="16node_tokenizer.pickle",
    )
    data.update(top)
    path = tmp_path / "data_config.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def hashes(directory):
    return {p.name: p.read_text() for p in sorted(directory.rglob("*.sha256"))}


def test_writes_the_authors_files_with_hashes(tmp_path, capsys):
    config = write_config(tmp_path)
    out = tmp_path / "out"
    assert main(["gen-data", "--config", config, "--out", str(out), "--seed", "3"]) == 0
    written = ("train_16node.pt", "val_24node.pt", "vocab.json")
    assert sorted(p.name for p in out.iterdir()) == sorted([*written, *(f"{name}.sha256" for name in written)])
    for name in written:
        digest, file_name = (out / f"{name}.sha256").read_text().split()
        assert file_name == name and digest == hashlib.sha256((out / name).read_bytes()).hexdigest()
    assert Vocab.from_json(out / "vocab.json") == Vocab(24, ("ADD", "SUB"), 23), "pool = largest num_nodes"
    train = load_upstream_dataset(str(out / "train_16node.pt"), str(out / "vocab.json"))
    val = load_upstream_dataset(str(out / "val_24node.pt"), str(out / "vocab.json"))
    assert train.labels.shape == (300, 128, 6) and val.labels.shape == (40, 256, 6)
    assert train.max_depth <= 4 and train.spec is None
    assert list(torch.load(out / "train_16node.pt")) == ["tokenized_dataset", "dataset_info"]
    assert "x_" in capsys.readouterr().out, "verbose: true prints the first graph"

    again = tmp_path / "again"
    assert main(["gen-data", "--config", config, "--out", str(again), "--seed", "3", "--workers", "2"]) == 0
    assert hashes(again) == hashes(out), "the same seed writes identical files for any worker count"
    other = tmp_path / "other"
    assert main(["gen-data", "--config", config, "--out", str(other), "--seed", "4", "--num-samples", "300"]) == 0
    assert hashes(other)["train_16node.pt.sha256"] != hashes(out)["train_16node.pt.sha256"]


def test_data_dir_beside_the_config_is_the_default_output(tmp_path, monkeypatch):
    config = write_config(tmp_path)
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert main(["gen-data", "--config", config, "--num-samples", "3"]) == 0
    assert torch.load(tmp_path / "generated" / "val_24node.pt")["tokenized_dataset"].shape[0] == 3


def test_ood_sets_with_spec(tmp_path):
    config = write_config(tmp_path)
    out = tmp_path / "out"
    flags = ["--ood", "8:16:8,20", "--ood-samples", "6", "--ood-only"]
    assert main(["gen-data", "--config", config, "--out", str(out), *flags]) == 0
    ood_dir = out / "val_datasets" / "Tr16Test24" / "ADD_SUB"
    assert sorted(p.name for p in ood_dir.glob("*.pt")) == ["testdata_N16.pt", "testdata_N20.pt", "testdata_N8.pt"]
    assert not (out / "train_16node.pt").exists()
    for n in (8, 16, 20):
        raw = torch.load(ood_dir / f"testdata_N{n}.pt")
        assert list(raw) == ["tokenized_dataset", "dataset_info", "spec"]
        ds = load_upstream_dataset(str(ood_dir / f"testdata_N{n}.pt"), str(ood_dir / "vocab.json"))
        assert ds.labels.shape == (6, 256, 6), "OOD length = max(split lengths)"
        assert ds.spec == dataset_spec(ds)
        assert int((ds.depth >= 0).sum(1).min()) == n


def test_ood_beyond_the_pool(tmp_path):
    config = write_config(tmp_path)
    out = tmp_path / "out"
    flags = ["--ood", "256,512", "--num-vars", "512", "--ood-samples", "2", "--ood-only"]
    assert main(["gen-data", "--config", config, "--out", str(out), *flags]) == 0
    ood_dir = out / "val_datasets" / "Tr16Test24" / "ADD_SUB"
    for n, length in ((256, 2048), (512, 4096)):
        ds = load_upstream_dataset(str(ood_dir / f"testdata_N{n}.pt"), str(ood_dir / "vocab.json"))
        assert ds.labels.shape == (2, length, 6) and ds.spec["orig_seq_len"] == length
        assert int((ds.depth >= 0).sum(1).min()) == n


BAD = {
    "fix_graph": (dict(train=split(fix_graph=True)), [], "fix_graph: true is not supported"),
    "unknown key": (dict(train=split(max_fanin=3)), [], r"unknown key\(s\) \['max_fanin'\]"),
    "missing key": (dict(train={k: v for k, v in split().items() if k != "mod_val"}), [], r"missing \['mod_val'\]"),
    "leaves": (dict(train=split(num_leaf_nodes=16)), [], "num_leaf_nodes=16 must be smaller than num_nodes=16"),
    "length": (dict(train=split(max_length=100)), [], "needs 103 tokens; raise max_length to at least 103"),
    "operation": (dict(train=split(func_vocab=["ADD", "DIV"])), [], r"unknown operation\(s\) \['DIV'\]"),
    "modulus": (dict(train=split(mod_val=1), val=split(mod_val=1)), [], "mod_val=1"),
    "pool": (dict(), ["--num-vars", "20"], "num_vars=20 is smaller than num_nodes=24"),
    "split mismatch": (dict(val=split(func_vocab=["ADD"])), [], "share one tokenizer"),
    "ood pool": (dict(), ["--ood", "8,32"], "--ood size 32 exceeds the variable-name pool of 24.*--num-vars 32"),
    "ood syntax": (dict(), ["--ood", "8:x"], "expected sizes like 8:128:8"),
    "ood only": (dict(), ["--ood-only"], "--ood-only needs --ood"),
    "workers": (dict(), ["--workers", "0"], "--workers=0 must be a positive integer"),
    "seed": (dict(), ["--seed", "-1"], "--seed=-1"),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_input_is_one_line_and_exit_2(case, tmp_path, capsys):
    config_changes, flags, match = BAD[case]
    config = write_config(tmp_path, **config_changes)
    assert main(["gen-data", "--config", config, "--out", str(tmp_path / "out"), "--num-samples", "2", *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("fastrecur gen-data: error: ")
    assert re.search(match, err[0]), err[0]


@pytest.mark.parametrize("text", ["not: [valid", "- a list", ""])
def test_unusable_config_files(text, tmp_path, capsys):
    path = tmp_path / "data_config.yaml"
    path.write_text(text)
    assert main(["gen-data", "--config", str(path)]) == 2
    assert main(["gen-data", "--config", str(tmp_path / "missing.yaml")]) == 2
    assert all(line.startswith("fastrecur gen-data: error: ") for line in capsys.readouterr().err.strip().splitlines())


def test_parse_sizes():
    assert parse_sizes("8:128:8", "--ood") == list(range(8, 129, 8))
    assert parse_sizes("8:24:8,256,512,16", "--ood") == [8, 16, 24, 256, 512]
