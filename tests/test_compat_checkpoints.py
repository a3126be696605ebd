"""Checkpoint compatibility with the authors' code (SPEC Appendix A)."""

import os
import sys
import types

import pytest
import torch
import yaml

from fastrecur.compat.checkpoints import (
    export_upstream_checkpoint,
    load_upstream_checkpoint,
    model_config_from_upstream,
)
from fastrecur.errors import CheckpointMismatchError, ConfigError
from fastrecur.model import RecurrentTransformer

# The authors' example model config (our_method/model_config.yaml), made smaller to keep tests fast.
UPSTREAM_MODEL_CONFIG = {
    "attention_type": "softmax",
    "attn_pdrop": 0.1,
    "causal_attn": True,
    "hidden_size": 64,
    "input_size": 256,
    "layer_norm_eps": 1e-05,
    "max_seq_len": 1024,
    "num_heads": 8,
    "num_layers": 2,
    "pos_enc_type": "DeBERTa",
    "q_k_v_o_proj_enabled": [True, True, True, True],
    "relpos_embed_size": 32,
    "relpos_q_k_enabled": [True, True],
    "relpos_shift": 0,
    "relpos_win_size": 16,
    "resid_pdrop": 0.1,
    "use_bias": True,
    "use_layer_norm": True,
    "use_pos_layer_norm": True,
    "use_readout_proj": True,
}


@pytest.fixture
def config_files(tmp_path, upstream_fixture_dir):
    cfg_path = tmp_path / "model_config.yaml"
    cfg_path.write_text(yaml.safe_dump(UPSTREAM_MODEL_CONFIG))
    return str(cfg_path), os.path.join(upstream_fixture_dir, "vocab.json")


def make_model(seed=0):
    torch.manual_seed(seed)
    cfg = model_config_from_upstream(UPSTREAM_MODEL_CONFIG, (7, 129, 2, 25, 2, 2))
    return RecurrentTransformer(cfg).eval()


def tokens_for(model, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.stack([torch.randint(0, v, (2, 40), generator=g) for v in model.config.vocab_sizes], -1)


def test_default_upstream_config_is_the_paper_model():
    full = dict(UPSTREAM_MODEL_CONFIG, hidden_size=384, num_heads=16, num_layers=4, relpos_embed_size=256, relpos_win_size=64)
    assert RecurrentTransformer(model_config_from_upstream(full, (7, 129, 2, 25, 2, 2))).num_parameters() == 8_033_447


@pytest.mark.parametrize("prefix", ["model._orig_mod.", "model."])
def test_export_then_load_gives_identical_logits(tmp_path, config_files, prefix):
    model = make_model()
    path = str(tmp_path / "last.ckpt")
    export_upstream_checkpoint(model, path, prefix=prefix)
    keys = torch.load(path, weights_only=True)["state_dict"].keys()
    assert all(k.startswith(prefix) for k in keys)
    loaded = load_upstream_checkpoint(path, *config_files)
    assert not loaded.training and next(loaded.parameters()).dtype == torch.float32
    tokens = tokens_for(model)
    for a, b in zip(model(tokens), loaded(tokens)):
        assert torch.equal(a, b)


def test_lightning_checkpoint_with_authors_classes_loads(tmp_path, config_files):
    """A Lightning file pickles the authors' EasyDict, which cannot be imported here."""
    model = make_model()
    fake = types.ModuleType("Simtransformer.simtransformer.utils")

    class EasyDict(dict):
        pass

    EasyDict.__module__, EasyDict.__qualname__ = fake.__name__, "EasyDict"
    fake.EasyDict = EasyDict
    parents = {"Simtransformer": types.ModuleType("Simtransformer"), "Simtransformer.simtransformer": types.ModuleType("x")}
    sys.modules.update(parents, **{fake.__name__: fake})
    try:
        ckpt = {
            "state_dict": {"model._orig_mod." + k: v for k, v in model.state_dict().items()},
            "hyper_parameters": {"model_config": EasyDict(hidden_size=64)},
            "epoch": 99,
        }
        path = str(tmp_path / "lightning.ckpt")
        torch.save(ckpt, path)
    finally:
        for name in [*parents, fake.__name__]:
            del sys.modules[name]
    loaded = load_upstream_checkpoint(path, *config_files)
    tokens = tokens_for(model)
    assert torch.equal(model(tokens)[3], loaded(tokens)[3])


def test_mismatched_checkpoint_lists_every_problem(tmp_path, config_files):
    model = make_model()
    state = {"model." + k: v for k, v in model.state_dict().items()}
    del state["model.transformer.ln_final.bias"]
    state["model.transformer.extra.weight"] = torch.zeros(3)
    state["model.token_embedder.embeddings.3.weight"] = torch.zeros(27, 64)  # a mod-25 value vocabulary
    path = str(tmp_path / "bad.ckpt")
    torch.save({"state_dict": state}, path)
    with pytest.raises(CheckpointMismatchError) as err:
        load_upstream_checkpoint(path, *config_files)
    msg = str(err.value)
    assert "missing: transformer.ln_final.bias" in msg
    assert "unexpected: transformer.extra.weight" in msg
    assert "wrong shape: token_embedder.embeddings.3.weight: checkpoint (27, 64) vs model (25, 64)" in msg
    assert "vocabulary mismatch: VALUE: checkpoint has 27 tokens, vocabulary has 25" in msg


def test_missing_and_garbage_files(tmp_path, config_files):
    with pytest.raises(CheckpointMismatchError, match="not found"):
        load_upstream_checkpoint(str(tmp_path / "nope.ckpt"), *config_files)
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"definitely not a checkpoint")
    with pytest.raises(CheckpointMismatchError, match="not a torch checkpoint"):
        load_upstream_checkpoint(str(junk), *config_files)


@pytest.mark.parametrize(
    "change,match",
    [({"pos_enc_type": "RoPE"}, "pos_enc_type"), ({"relpos_q_k_enabled": [False, False]}, "relpos_q_k_enabled"), ({"bogus": 1}, "bogus")],
)
def test_unsupported_upstream_configs(change, match):
    with pytest.raises(ConfigError, match=match):
        model_config_from_upstream(dict(UPSTREAM_MODEL_CONFIG, **change), (7, 129, 2, 25, 2, 2))


def test_relpos_flags_map_to_the_right_terms():
    cfg = model_config_from_upstream(dict(UPSTREAM_MODEL_CONFIG, relpos_q_k_enabled=[True, False]), (7, 129, 2, 25, 2, 2))
    assert cfg.relpos_c2p and not cfg.relpos_p2c
    names = set(RecurrentTransformer(cfg).state_dict())
    assert "transformer.blocks.layer_0.attn.relpos_k_proj.weight" in names
    assert "transformer.blocks.layer_0.attn.relpos_q_proj.weight" not in names
