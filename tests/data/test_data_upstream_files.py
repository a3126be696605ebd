"""The authors' dataset files: their fixtures load, check out against docs/method.md §1 and save back unchanged."""

from __future__ import annotations

import os

import pytest
import torch
from _data_reference import build_graph, longest_path_depths, parse_sample

from fastrecur.compat import load_upstream_dataset, save_upstream_dataset
from fastrecur.data import DagConfig, Vocab, dataset_spec, generate_dataset, input_depth
from fastrecur.errors import DataFormatError

FILES = ["train_data.pt", "val_data.pt"]


def fixture(directory: str, name: str):
    return load_upstream_dataset(os.path.join(directory, name), os.path.join(directory, "vocab.json"))


@pytest.mark.parametrize("name", FILES)
def test_fixtures_check_out(upstream_fixture_dir, name):
    ds = fixture(upstream_fixture_dir, name)
    nodes, length = {"train_data.pt": (32, 256), "val_data.pt": (128, 1024)}[name]
    assert ds.tokens.shape == (len(ds), length, 6) and ds.tokens.dtype == torch.int64
    for i in range(len(ds)):
        equations = parse_sample(ds.labels[i].tolist(), ds.info[i].tolist(), 128, ("ADD",), 23)
        assert len(equations) == nodes and sum(e.const is not None for e in equations) == 6
        assert all(1 <= len(e.operands) <= 3 for e in equations if e.const is None)
        depth = longest_path_depths(build_graph(equations))
        assert [int(ds.depth[i, e.rhs_pos]) for e in equations] == [depth[e.rhs_name] for e in equations]
        # docs/method.md §1.2 in the authors' own output: by depth, then by the latest parent's position.
        rank = {e.rhs_name: r for r, e in enumerate(equations)}
        keys = [(depth[e.rhs_name], max((rank[u] for u, _ in e.operands), default=-1)) for e in equations]
        assert keys == sorted(keys)
    assert torch.equal(input_depth(ds.tokens, ds.vocab), ds.depth)
    assert (ds.tokens[..., 3][ds.tokens[..., 0] == 0] == 24).all()


@pytest.mark.parametrize("name", FILES)
def test_fixtures_save_back_identically(upstream_fixture_dir, name, tmp_path):
    source = os.path.join(upstream_fixture_dir, name)
    ds = fixture(upstream_fixture_dir, name)
    target = tmp_path / name
    save_upstream_dataset(ds, target)
    original, written = torch.load(source), torch.load(target)
    assert list(written) == list(original) == ["tokenized_dataset", "dataset_info"]
    for key in original:
        a, b = original[key], written[key]
        assert a.dtype == b.dtype and a.shape == b.shape and a.stride() == b.stride()
        assert a.numpy().tobytes() == b.numpy().tobytes()
    # The file is what torch.save writes for the authors' dict (same archive name, same records).
    direct = tmp_path / "direct"
    direct.mkdir()
    torch.save(original, direct / name)
    assert target.read_bytes() == (direct / name).read_bytes()


def test_evaluation_set_round_trip_with_spec(tmp_path, upstream_fixture_dir):
    ds = generate_dataset(DagConfig(num_nodes=40, max_depth=40, max_length=1024), 20, seed=2)
    subset = ds[3:13]  # a view into the larger tensors: saved on its own
    subset.spec = dataset_spec(subset)
    path = tmp_path / "testdata_N40.pt"
    save_upstream_dataset(subset, path)
    raw = torch.load(path)
    assert list(raw) == ["tokenized_dataset", "dataset_info", "spec"] and raw["spec"] == subset.spec
    assert raw["tokenized_dataset"].shape == (10, 1024, 6)
    assert os.path.getsize(path) < 2 * 10 * 1024 * 6 * 8 + 4096, "only the saved samples are written"
    back = load_upstream_dataset(str(path), os.path.join(upstream_fixture_dir, "vocab.json"))
    assert torch.equal(back.labels, ds.labels[3:13]) and torch.equal(back.info, ds.info[3:13])
    assert back.spec == subset.spec


def test_malformed_and_mismatched_files(upstream_fixture_dir, tmp_path):
    vocab_json = os.path.join(upstream_fixture_dir, "vocab.json")
    good = torch.load(os.path.join(upstream_fixture_dir, "train_data.pt"))
    labels, info = good["tokenized_dataset"], good["dataset_info"]
    bigger = labels.clone()
    bigger[0, 2, 1] = 200
    shifted = info.clone()
    shifted[..., 0] = info[..., 0].roll(1, dims=1)
    payloads = {
        "missing key": ({"tokenized_dataset": labels}, "expected a dict"),
        "wrong dtype": ({"tokenized_dataset": labels.int(), "dataset_info": info}, "int64"),
        "wrong factors": ({"tokenized_dataset": labels[..., :4], "dataset_info": info}, "factors"),
        "info shape": ({"tokenized_dataset": labels, "dataset_info": info[:5]}, "dataset_info"),
        "bad spec": ({"tokenized_dataset": labels, "dataset_info": info, "spec": {"x": 1}}, "spec"),
        "other vocabulary": ({"tokenized_dataset": bigger, "dataset_info": info}, "VARIABLE holds indices 0…200"),
        "info of other labels": ({"tokenized_dataset": labels, "dataset_info": shifted}, "do not belong together"),
    }
    cases = {"missing file": (str(tmp_path / "nope.pt"), "cannot read")}
    (tmp_path / "junk.pt").write_text("junk")
    cases["not a torch file"] = (str(tmp_path / "junk.pt"), "cannot read")
    for index, (name, (payload, match)) in enumerate(payloads.items()):
        torch.save(payload, tmp_path / f"case{index}.pt")
        cases[name] = (str(tmp_path / f"case{index}.pt"), match)
    for name, (path, match) in cases.items():
        with pytest.raises(DataFormatError, match=match) as err:
            load_upstream_dataset(path, vocab_json)
        assert "\n" not in str(err.value), name
    other_vocab = tmp_path / "vocab.json"
    Vocab(64, ("ADD",), 23).to_json(other_vocab)
    with pytest.raises(DataFormatError, match="does not match"):
        load_upstream_dataset(os.path.join(upstream_fixture_dir, "train_data.pt"), str(other_vocab))
