"""Checkpoint compatibility with the authors' code (docs/method.md §7)."""

import contextlib
import os
import subprocess
import sys
import types

import numpy as np
import pytest
import torch
import yaml

from fastrecur.compat import export_upstream_checkpoint, load_upstream_checkpoint, model_config_from_upstream
from fastrecur.compat.checkpoints import load_checkpoint_file
from fastrecur.errors import CheckpointMismatchError, ConfigError, UnsafeFileError
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


# --- real Lightning files: the authors' classes, bound methods, and nothing that runs ----------------


@contextlib.contextmanager
def authors_code():
    """Modules of the authors' code base (and Lightning's) as their training run had them; they are
    gone again after the block, as they are on a machine that loads the checkpoint."""

    class EasyDict(dict):  # the easydict package: keys are attributes too
        def __init__(self, **kw):
            super().__init__(**kw)
            self.__dict__.update(kw)

    class Tokenizer:
        def __init__(self):
            self.vocab = {"SYNTAX": ["VARIABLE", "OPERATION"], "VALUE": [str(v) for v in range(23)]}
            self.value_table = np.arange(25, dtype=np.int64)  # a numpy array, as tokenizers hold
            self.special = {"<PAD>", "<EQ_SEP>"}

        def de_factor_token(self, token):
            raise AssertionError("a method of the authors' tokenizer ran while loading")

    class DAGTeacherModel:
        def __init__(self, tokenizer):
            self.tokenizer = tokenizer
            self.decode = tokenizer.de_factor_token  # a bound method: pickled as getattr(tokenizer, ...)
            self.max_depth = 6

    class AttributeDict(dict):  # lightning.fabric.utilities.data.AttributeDict
        pass

    layout = {
        "Simtransformer.simtransformer.utils": [EasyDict],
        "simtransformer_tokenizer": [Tokenizer],
        "model_interp.teacher": [DAGTeacherModel],
        "lightning_fabric_data": [AttributeDict],
    }
    added = []
    for module_name, classes in layout.items():
        parts = module_name.split(".")
        for i in range(1, len(parts) + 1):
            name = ".".join(parts[:i])
            if name not in sys.modules:
                sys.modules[name] = types.ModuleType(name)
                added.append(name)
        for cls in classes:
            cls.__module__, cls.__qualname__ = module_name, cls.__name__
            setattr(sys.modules[module_name], cls.__name__, cls)
    try:
        yield types.SimpleNamespace(EasyDict=EasyDict, Tokenizer=Tokenizer, DAGTeacherModel=DAGTeacherModel, AttributeDict=AttributeDict)
    finally:
        for name in added:
            del sys.modules[name]


def lightning_checkpoint(model, path, **hyper_parameters):
    """What Lightning's trainer writes (``save_hyperparameters()`` keeps the module's init arguments)."""
    with authors_code() as authors:
        tokenizer = authors.Tokenizer()
        hparams = authors.AttributeDict(
            model_config=authors.EasyDict(hidden_size=64, num_layers=2, relpos_q_k_enabled=[True, True]),
            train_config=authors.EasyDict(lr=1e-3, recorrection_args=authors.EasyDict(enable=True, corruption_prob=0.05)),
            teacher_model=authors.DAGTeacherModel(tokenizer),
            tokenizer=tokenizer,
            **hyper_parameters,
        )
        state = {"model._orig_mod." + k: v for k, v in model.state_dict().items()}
        torch.save(
            {
                "epoch": 99,
                "global_step": 156_300,
                "pytorch-lightning_version": "2.4.0",
                "state_dict": state,
                "loops": {"fit_loop": {"state_dict": {}, "epoch_progress": {"total": {"ready": 100, "completed": 99}}}},
                "callbacks": {"ModelCheckpoint{'monitor': 'total_loss/val'}": {"best_model_score": torch.tensor(0.25), "best_model_path": "x.ckpt"}},
                "optimizer_states": [{"state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.zeros(3)}}, "param_groups": [{"lr": 1e-3, "params": [0]}]}],
                "lr_schedulers": [],
                "hparams_name": "kwargs",
                "hyper_parameters": hparams,
            },
            path,
        )


def test_lightning_checkpoint_with_bound_methods_of_classes_that_do_not_exist_here(tmp_path, config_files):
    model = make_model()
    path = str(tmp_path / "last.ckpt")
    lightning_checkpoint(model, path)
    names = set(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    assert {"builtins.getattr", "model_interp.teacher.DAGTeacherModel", "simtransformer_tokenizer.Tokenizer"} <= names
    with pytest.raises(ModuleNotFoundError):  # their classes cannot be imported here
        torch.load(path, weights_only=False)

    loaded = load_upstream_checkpoint(path, *config_files)
    tokens = tokens_for(model)
    for a, b in zip(model(tokens), loaded(tokens)):
        assert torch.equal(a, b)

    hparams = load_checkpoint_file(path)["hyper_parameters"]
    assert hparams["model_config"]["hidden_size"] == 64  # read as data, by an inert placeholder
    assert hparams["train_config"]["recorrection_args"]["corruption_prob"] == 0.05
    teacher = hparams["teacher_model"]
    assert teacher.max_depth == 6 and teacher.decode == {} and not callable(teacher.decode)  # the bound method: inert
    assert np.array_equal(hparams["tokenizer"].value_table, np.arange(25))  # numpy arrays load as themselves


def test_fastrecur_eval_sends_an_authors_checkpoint_to_compat(tmp_path, capsys):
    from fastrecur.cli import main

    path = str(tmp_path / "last.ckpt")
    lightning_checkpoint(make_model(), path)
    assert main(["eval", path]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "load_upstream_checkpoint" in err and path in err


class Payload:
    """Unpickling this object runs ``call(*args)`` (what a malicious checkpoint does)."""

    def __init__(self, call, *args):
        self.call, self.args = call, args

    def __reduce__(self):
        return self.call, self.args


@pytest.mark.parametrize("kind", ["os.system", "subprocess.call", "builtins.exec", "builtins.eval"])
def test_lightning_checkpoint_that_would_run_code_is_refused(tmp_path, config_files, kind):
    marker = tmp_path / "payload_ran"
    payload = {
        "os.system": Payload(os.system, f"touch {marker}"),
        "subprocess.call": Payload(subprocess.call, ["touch", str(marker)]),
        "builtins.exec": Payload(exec, f"open({str(marker)!r}, 'w').close()"),
        "builtins.eval": Payload(eval, f"open({str(marker)!r}, 'w').close()"),
    }[kind]
    path = str(tmp_path / "evil.ckpt")
    lightning_checkpoint(make_model(), path, callback=payload)
    with pytest.raises(ModuleNotFoundError):  # the authors' classes come first: a full unpickler fails there …
        torch.load(path, weights_only=False)
    with pytest.raises(UnsafeFileError) as err:
        load_upstream_checkpoint(path, *config_files)
    message = str(err.value)
    assert "\n" not in message and path in message and (kind if kind != "os.system" else "posix.system") in message
    assert not marker.exists()


def test_a_payload_behind_an_importable_third_party_function_stays_inert(tmp_path, config_files):
    """Globals outside the standard library are never imported or called, even when importable."""
    marker = tmp_path / "payload_ran"
    tool = types.ModuleType("third_party_tool")

    def run(command):
        os.system(command)

    run.__module__, run.__qualname__ = tool.__name__, "run"
    tool.run = run
    sys.modules[tool.__name__] = tool
    try:
        path = str(tmp_path / "evil.ckpt")
        lightning_checkpoint(make_model(), path, callback=Payload(run, f"touch {marker}"))
        with authors_code():
            torch.load(path, weights_only=False)  # the payload is real …
        assert marker.exists()
        marker.unlink()
        model = load_upstream_checkpoint(path, *config_files)  # … and here it is a placeholder
    finally:
        del sys.modules[tool.__name__]
    assert not marker.exists() and not model.training


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


def test_a_length_scaled_model_has_no_upstream_config():
    from fastrecur.compat.configs import model_config_to_upstream

    cfg = model_config_from_upstream(UPSTREAM_MODEL_CONFIG, (7, 129, 2, 25, 2, 2))
    assert model_config_to_upstream(cfg)["relpos_win_size"] == cfg.relpos_window
    with pytest.raises(ConfigError, match="length_scaling"):
        model_config_to_upstream(cfg.replace(length_scaling=16))


def test_relpos_flags_map_to_the_right_terms():
    cfg = model_config_from_upstream(dict(UPSTREAM_MODEL_CONFIG, relpos_q_k_enabled=[True, False]), (7, 129, 2, 25, 2, 2))
    assert cfg.relpos_c2p and not cfg.relpos_p2c
    names = set(RecurrentTransformer(cfg).state_dict())
    assert "transformer.blocks.layer_0.attn.relpos_k_proj.weight" in names
    assert "transformer.blocks.layer_0.attn.relpos_q_proj.weight" not in names
