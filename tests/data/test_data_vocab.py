"""The factored tokenizer: docs/method.md §1.5 index layout, vocab.json both ways, encode/decode, printing."""

from __future__ import annotations

import json
import os

import pytest
import torch

from fastrecur.data import FACTORS, DagConfig, Vocab, generate_dataset
from fastrecur.data.vocab import SYN_EQ, SYN_EQ_SEP, SYN_OPERATION, SYN_PAD, SYN_UNK, SYN_VALUE, SYN_VARIABLE
from fastrecur.errors import ConfigError, DataFormatError


def test_layout_matches_the_spec():
    vocab = Vocab(128, ["ADD"], 23)
    assert vocab.sizes == (7, 129, 2, 25, 2, 2)
    assert (SYN_VARIABLE, SYN_OPERATION, SYN_VALUE, SYN_PAD, SYN_UNK, SYN_EQ, SYN_EQ_SEP) == tuple(range(7))
    assert (vocab.var_na, vocab.op_na, vocab.value_na, vocab.value_empty) == (128, 1, 23, 24)
    assert vocab.pad_token == (3, 128, 1, 23, 0, 0)
    three = Vocab(16, ("MUL", "ADD", "SUB"), 7)
    assert three.sizes == (7, 17, 4, 9, 2, 2) and three.encode("SUB").tolist() == [[1, 16, 2, 7, 0, 0]]
    assert FACTORS == ("SYNTAX", "VARIABLE", "OPERATION", "VALUE", "REGRET", "MODIFICATION")


def test_vocab_json_is_the_authors_file_byte_for_byte(upstream_fixture_dir, tmp_path):
    source = os.path.join(upstream_fixture_dir, "vocab.json")
    vocab = Vocab.from_json(source)
    assert vocab == Vocab(128, ("ADD",), 23)
    vocab.to_json(tmp_path / "vocab.json")
    assert (tmp_path / "vocab.json").read_bytes() == open(source, "rb").read()
    other = Vocab(40, ("SUB", "MUL"), 11)
    other.to_json(tmp_path / "other.json")
    assert Vocab.from_json(tmp_path / "other.json") == other


def test_encode_examples():
    vocab = Vocab(16, ("ADD", "SUB"), 7)
    got = vocab.encode("4 = x_8 <EQ_SEP> x_9 SUB x_8 = x_13:6 <PAD>").tolist()
    assert got == [
        [2, 16, 2, 4, 0, 0],
        [5, 16, 2, 7, 0, 0],
        [0, 8, 2, 8, 0, 0],
        [6, 16, 2, 7, 0, 0],
        [0, 9, 2, 8, 0, 0],
        [1, 16, 1, 7, 0, 0],
        [0, 8, 2, 8, 0, 0],
        [5, 16, 2, 7, 0, 0],
        [0, 13, 2, 6, 0, 0],
        [3, 16, 2, 7, 0, 0],
    ]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_round_trips_on_generated_sequences(seed):
    cfg = DagConfig(
        num_nodes=20, num_leaf_nodes=4, max_depth=20, func_vocab=("SUB", "MUL", "ADD"), mod_val=13, num_vars=30,
        max_length=200,
    )
    ds = generate_dataset(cfg, 16, seed)
    vocab = ds.vocab
    for i in range(16):
        text = vocab.decode(ds.tokens[i])
        assert torch.equal(vocab.encode(text), ds.tokens[i])
        assert vocab.decode(vocab.encode(" ".join(text))) == text
        assert torch.equal(vocab.encode(vocab.decode(ds.labels[i], with_values=True)), ds.labels[i])


def test_format_sample_lists_equations_with_values():
    vocab = Vocab(16, ("ADD", "SUB"), 7)
    labels = vocab.encode("2 = x_11:2 <EQ_SEP> x_11 SUB x_11 = x_3:0 <PAD> <PAD>")
    lines = vocab.format_sample(labels, depth=torch.tensor([-1, -1, 0, -1, -1, -1, -1, -1, 1, -1, -1])).splitlines()
    assert len(lines) == 2
    assert lines[0].split() == ["2", "=", "x_11", "x_11", "=", "2", "(depth", "0)"]
    assert lines[1].split()[-5:] == ["x_3", "=", "0", "(depth", "1)"]
    hidden = vocab.format_sample(vocab.encode("2 = x_11"))
    assert hidden.split()[-1] == "?", "an EMPTY value prints as ?"


@pytest.mark.parametrize(
    "args,match",
    [((0, ["ADD"], 23), "num_vars"), ((8, ["DIV"], 23), "unknown operation"), ((8, [], 23), "empty"),
     ((8, ["ADD", "ADD"], 23), "repeats"), ((8, ["ADD"], 1), "mod_val")],
)
def test_bad_vocab_settings(args, match):
    with pytest.raises(ConfigError, match=match):
        Vocab(*args)


@pytest.mark.parametrize("token", ["x_16", "23", "7:", "x_3:7", "DIV", "x_-1", "x_1:²"])
def test_unknown_tokens(token):
    with pytest.raises(DataFormatError, match="token"):
        Vocab(16, ("ADD",), 7).encode([token])


@pytest.mark.parametrize(
    "edit,match",
    [
        (lambda d: d.pop("value"), "missing keys"),
        (lambda d: d["value"].update({"3": "three"}), "layout"),
        (lambda d: d.update(vocab_sizes=[7, 129, 2, 26, 2, 2]), "vocab_sizes"),
        (lambda d: d["operation"].update({"0": "DIV"}), "unknown operation"),
        (lambda d: d["variable"].pop("128"), "N/A"),
        (lambda d: d.update(mod_val=24), "layout"),
    ],
)
def test_malformed_vocab_json(edit, match, tmp_path):
    data = Vocab(128, ("ADD",), 23).to_dict()
    edit(data)
    path = tmp_path / "vocab.json"
    path.write_text(json.dumps(data))
    with pytest.raises(DataFormatError, match=match):
        Vocab.from_json(path)


def test_unreadable_vocab_json(tmp_path):
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(DataFormatError, match="cannot read vocabulary"):
        Vocab.from_json(tmp_path / "bad.json")
    with pytest.raises(DataFormatError, match="cannot read vocabulary"):
        Vocab.from_json(tmp_path / "missing.json")
