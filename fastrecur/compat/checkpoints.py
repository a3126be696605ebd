"""Read and write the authors' model checkpoints and model-config YAML files.

Their checkpoints are Lightning ``.ckpt`` files: a ``torch.save``d dict whose ``state_dict`` maps
``model.<name>`` (or ``model._orig_mod.<name>`` when the model was ``torch.compile``d) to tensors,
with the parameter names of SPEC Appendix A — the same names as ``fastrecur.model``. The
vocabulary sizes come from a ``vocab.json`` (their tokenizer is a pickle of their own class).
"""

from __future__ import annotations

import os
import pickle
import types
from typing import Any, Optional

import torch
import yaml

from ..errors import CheckpointMismatchError, ConfigError, DataFormatError
from ..data import Vocab
from ..model import ModelConfig, RecurrentTransformer

UPSTREAM_PREFIXES = ("model._orig_mod.", "model.")
FACTOR_NAMES = ("SYNTAX", "VARIABLE", "OPERATION", "VALUE", "REGRET", "MODIFICATION")

# The authors' model_config keys that fastrecur maps, and the ones that do nothing in their
# DeBERTa model (SPEC §2, §11.7) and are accepted and ignored.
_IGNORED_UPSTREAM_KEYS = {"max_seq_len", "input_size", "use_readout_proj", "vocab_sizes", "data_dim", "label_dim", "n_layers"}


def model_config_from_upstream(cfg: dict, vocab_sizes) -> ModelConfig:
    """Translate the authors' ``model_config.yaml`` dict into a ``ModelConfig``."""
    cfg = dict(cfg)

    def require(key, allowed, value):
        if cfg.get(key, value) not in allowed:
            raise ConfigError(
                f"model_config {key}={cfg.get(key)!r} is not supported: fastrecur implements {sorted(allowed, key=str)}"
            )

    require("pos_enc_type", {"DeBERTa"}, "DeBERTa")
    require("attention_type", {"softmax"}, "softmax")
    if not all(cfg.get("q_k_v_o_proj_enabled", [True] * 4)):
        raise ConfigError("model_config q_k_v_o_proj_enabled must be all true: identity projections are not supported")
    c2p, p2c = cfg.get("relpos_q_k_enabled", [True, True])
    if not (c2p or p2c):
        raise ConfigError("model_config relpos_q_k_enabled=[false, false] is invalid: enable at least one term (as upstream)")
    known = {
        "hidden_size", "num_layers", "num_heads", "n_inner", "relpos_win_size", "relpos_shift", "relpos_embed_size",
        "relpos_q_k_enabled", "use_pos_layer_norm", "causal_attn", "attn_pdrop", "resid_pdrop", "use_bias",
        "use_layer_norm", "layer_norm_eps", "pos_enc_type", "attention_type", "q_k_v_o_proj_enabled",
    }  # fmt: skip
    unknown = sorted(set(cfg) - known - _IGNORED_UPSTREAM_KEYS)
    if unknown:
        raise ConfigError(f"unknown key(s) in the authors' model_config: {unknown}")
    return ModelConfig(
        vocab_sizes=tuple(vocab_sizes),
        hidden_size=cfg.get("hidden_size", 384),
        num_layers=cfg.get("num_layers", 4),
        num_heads=cfg.get("num_heads", 16),
        mlp_size=cfg.get("n_inner"),
        relpos_window=cfg.get("relpos_win_size", 64),
        relpos_shift=cfg.get("relpos_shift", 0),
        relpos_embed_size=cfg.get("relpos_embed_size", cfg.get("hidden_size", 384)),
        relpos_c2p=bool(c2p),
        relpos_p2c=bool(p2c),
        pos_layer_norm=cfg.get("use_pos_layer_norm", True),
        causal=cfg.get("causal_attn", True),
        attn_dropout=cfg.get("attn_pdrop", 0.1),
        resid_dropout=cfg.get("resid_pdrop", 0.1),
        bias=cfg.get("use_bias", True),
        layer_norm=cfg.get("use_layer_norm", True),
        layer_norm_eps=cfg.get("layer_norm_eps", 1e-5),
    )


def model_config_to_upstream(cfg: ModelConfig) -> dict:
    """The inverse of ``model_config_from_upstream`` (the keys of the authors' example config)."""
    return {
        "attention_type": "softmax",
        "attn_pdrop": cfg.attn_dropout,
        "causal_attn": cfg.causal,
        "hidden_size": cfg.hidden_size,
        "layer_norm_eps": cfg.layer_norm_eps,
        "n_inner": cfg.inner_size,
        "num_heads": cfg.num_heads,
        "num_layers": cfg.num_layers,
        "pos_enc_type": "DeBERTa",
        "q_k_v_o_proj_enabled": [True, True, True, True],
        "relpos_embed_size": cfg.relpos_embed_size,
        "relpos_q_k_enabled": [cfg.relpos_c2p, cfg.relpos_p2c],
        "relpos_shift": cfg.relpos_shift,
        "relpos_win_size": cfg.relpos_window,
        "resid_pdrop": cfg.resid_dropout,
        "use_bias": cfg.bias,
        "use_layer_norm": cfg.layer_norm,
        "use_pos_layer_norm": cfg.pos_layer_norm,
    }


def read_yaml(path: str) -> dict:
    if not os.path.isfile(path):
        raise DataFormatError(f"{path}: file not found")
    try:
        with open(path) as f:
            data = yaml.safe_load(f)
    except yaml.YAMLError as exc:
        raise DataFormatError(f"{path}: not valid YAML ({exc.__class__.__name__}: {str(exc).splitlines()[0]})") from exc
    if not isinstance(data, dict):
        raise DataFormatError(f"{path}: expected a mapping of config keys, got {type(data).__name__}")
    return data


def read_vocab_sizes(vocab_json_path: str) -> tuple[int, ...]:
    """The six factor vocabulary sizes from a ``vocab.json``."""
    if not os.path.isfile(vocab_json_path):
        raise DataFormatError(f"{vocab_json_path}: file not found")
    return Vocab.from_json(vocab_json_path).sizes


class _Stand_In(dict):
    """Replaces classes of the authors' code base (e.g. their EasyDict) while unpickling."""

    def __setstate__(self, state):
        if isinstance(state, dict):
            self.update(state)


class _LenientUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        try:
            return super().find_class(module, name)
        except (ImportError, AttributeError):
            return _Stand_In


_lenient_pickle = types.SimpleNamespace(Unpickler=_LenientUnpickler, load=pickle.load, __name__="lenient_pickle")


def load_checkpoint_file(path: str) -> dict:
    """``torch.load`` a checkpoint on the CPU.

    Plain tensor dicts load with ``weights_only=True``. Lightning checkpoints also pickle the
    authors' hyper-parameter objects, whose classes are not importable here; those are loaded with
    a full unpickler that substitutes a dict for unknown classes — only load files you trust.
    """
    if not os.path.isfile(path):
        raise CheckpointMismatchError(f"{path}: checkpoint file not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        pass  # e.g. pickled hyper-parameter objects, which the safe loader refuses
    try:
        return torch.load(path, map_location="cpu", weights_only=False, pickle_module=_lenient_pickle)
    except Exception as exc:
        raise CheckpointMismatchError(f"{path}: not a torch checkpoint ({type(exc).__name__}: {exc})") from exc


def strip_upstream_prefix(state_dict: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Drop ``model._orig_mod.`` / ``model.`` prefixes; keys without either are kept as they are."""
    out = {}
    for key, value in state_dict.items():
        for prefix in UPSTREAM_PREFIXES:
            if key.startswith(prefix):
                key = key[len(prefix) :]
                break
        out[key] = value
    return out


def load_state_dict_strict(model: RecurrentTransformer, state: dict[str, torch.Tensor], source: str) -> None:
    """Load weights, raising one error that lists every missing, unexpected or misshaped name."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    misshaped = sorted(
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in set(expected) & set(state)
        if tuple(state[k].shape) != tuple(expected[k].shape)
    )
    vocab = []
    for f, name in enumerate(FACTOR_NAMES[: len(model.config.vocab_sizes)]):
        key = f"token_embedder.embeddings.{f}.weight"
        if key in state and state[key].shape[0] != model.config.vocab_sizes[f]:
            vocab.append(f"{name}: checkpoint has {state[key].shape[0]} tokens, vocabulary has {model.config.vocab_sizes[f]}")
    if missing or unexpected or misshaped:
        lines = [f"{source} does not fit the model:"]
        if vocab:
            lines.append("  vocabulary mismatch: " + "; ".join(vocab))
        lines += [f"  missing: {k}" for k in missing]
        lines += [f"  unexpected: {k}" for k in unexpected]
        lines += [f"  wrong shape: {m}" for m in misshaped]
        raise CheckpointMismatchError("\n".join(lines))
    model.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)


def load_upstream_checkpoint(
    ckpt_path: str, model_config_yaml_path: str, vocab_json_path: str
) -> RecurrentTransformer:
    """An authors' checkpoint as a fastrecur model: eval mode, float32, CPU.

    ``model(tokens)`` returns the six per-factor logits ``[B, L, V_f]``, as their model does.
    """
    cfg = model_config_from_upstream(read_yaml(model_config_yaml_path), read_vocab_sizes(vocab_json_path))
    ckpt = load_checkpoint_file(ckpt_path)
    state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        raise CheckpointMismatchError(f"{ckpt_path}: no 'state_dict' in the checkpoint")
    model = RecurrentTransformer(cfg)
    load_state_dict_strict(model, strip_upstream_prefix(state), ckpt_path)
    return model.float().eval()


def export_upstream_checkpoint(
    model: RecurrentTransformer, path: str, *, prefix: str = "model._orig_mod.", extra: Optional[dict] = None
) -> None:
    """Write ``model`` as an authors'-style checkpoint (``state_dict`` with ``prefix`` on every name).

    The default prefix is the compiled-model one, which is what the authors' ``load_ckpt`` strips;
    ``hyper_parameters.model_config`` holds the config in their key names. Written atomically.
    """
    if prefix not in UPSTREAM_PREFIXES:
        raise ValueError(f"prefix must be one of {UPSTREAM_PREFIXES}, got {prefix!r}")
    state = {prefix + k: v.detach().cpu().float().clone() for k, v in model.state_dict().items()}
    payload = {"state_dict": state, "hyper_parameters": {"model_config": model_config_to_upstream(model.config)}}
    payload.update(extra or {})
    from ..io import atomic_torch_save

    atomic_torch_save(payload, path)
