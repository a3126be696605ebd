"""The authors' configuration files, translated into fastrecur's.

* ``model_config.yaml`` ⇄ ``ModelConfig`` (``model_config_from_upstream`` / ``model_config_to_upstream``);
* a folder holding their ``model_config.yaml``, ``train_config.yaml`` and ``data_config.yaml`` → the
  raw dict of a fastrecur run config (``from_upstream_dir``; ``fastrecur.config.load_config`` takes
  such folders). Their data files are used when present, else graphs come from the seeded stream.

Their keys that change nothing in their model are accepted and ignored; a setting fastrecur does
not implement is refused with one line naming it. ``nointerm: true`` (their model without the
discrete bottleneck) becomes ``train.latent: continuous``.
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Optional

from ..data.upstream_config import read_data_config
from ..errors import ConfigError
from ..model import ModelConfig
from ..yaml_loading import read_yaml_mapping

# The authors' model_config keys that fastrecur maps, and the ones that do nothing in their
# DeBERTa model (docs/method.md §2, §8) and are accepted and ignored.
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
    if cfg.architecture != "recurrent" or cfg.positions != "relative":
        raise ConfigError(
            f"only the recurrent model with relative positions has the authors' checkpoint format, not "
            f"architecture={cfg.architecture!r} with positions={cfg.positions!r}"
        )
    if cfg.length_scaling:
        raise ConfigError(
            f"model.length_scaling={cfg.length_scaling} (log-length attention scaling) has no counterpart in the "
            "authors' model: its checkpoint would not compute what this model computes"
        )
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


# --- a folder of the authors' config files ---------------------------------------------------------


def from_upstream_dir(folder: str) -> dict:
    """Translate the authors' ``model_config.yaml`` / ``train_config.yaml`` / ``data_config.yaml``."""
    paths = {name: os.path.join(folder, f"{name}_config.yaml") for name in ("model", "train", "data")}
    missing = [p for p in paths.values() if not os.path.isfile(p)]
    if missing:
        raise ConfigError(f"{folder}: the authors' config layout needs {', '.join(os.path.basename(p) for p in missing)}")
    model_raw, train_raw = read_yaml_mapping(paths["model"]), read_yaml_mapping(paths["train"])
    data = data_from_upstream(paths["data"])
    vocab_sizes = data.pop("_vocab_sizes")
    model = model_config_from_upstream(model_raw, vocab_sizes).to_dict()
    train = train_from_upstream(train_raw, num_train_samples=data.pop("_num_train_samples"), max_depth=data["train"]["max_depth"])
    return {"name": os.path.basename(os.path.abspath(folder)), "data": data, "model": model, "train": train}


def data_from_upstream(path: str) -> dict:
    """The ``data`` section for an authors' ``data_config.yaml``: their files if present, else the stream."""
    parsed = read_data_config(path)
    splits = {split.key: split for split in parsed.splits}
    train = splits["dag_config"]
    out = {"source": "stream", "train": _dag_dict(train.config), "_num_train_samples": train.num_samples}
    out["_vocab_sizes"] = parsed.vocab.sizes
    val = splits.get("val_dag_config")
    if val is not None:
        out["val"] = _dag_dict(val.config)
        out["val_samples"] = val.num_samples
    data_dir = os.path.join(os.path.dirname(os.path.abspath(path)), parsed.data_dir)
    train_file = os.path.join(data_dir, train.file_name)
    if os.path.isfile(train_file):
        out.update(source="files", train_file=train_file)
        if val is not None and os.path.isfile(os.path.join(data_dir, val.file_name)):
            out["val_file"] = os.path.join(data_dir, val.file_name)
    return out


def _dag_dict(config) -> dict:
    d = dataclasses.asdict(config)
    d["func_vocab"] = list(d["func_vocab"])
    return d


def train_from_upstream(t: dict, num_train_samples: int, max_depth: Optional[int] = None) -> dict:
    nointerm = bool(t.get("nointerm", False))
    if not nointerm and not t.get("use_fast_batch_forward", True):
        raise ConfigError("train_config use_fast_batch_forward=false (the sequential path) is not implemented by fastrecur")
    optimizer = t.get("optimizer", "AdamW")
    if optimizer != "AdamW":
        raise ConfigError(f"train_config optimizer={optimizer!r} is not supported: fastrecur trains with AdamW")
    opt = t.get("AdamW_optimizer_config", {})
    batch_size = int(t.get("batch_size", 32))
    steps_per_epoch = math.ceil(num_train_samples / batch_size)
    rec = t.get("recorrection_args", {}) or {}
    out = {
        "batch_size": batch_size,
        "steps": int(t.get("max_epochs", 100)) * steps_per_epoch,
        "lr": float(opt.get("lr", t.get("learning_rate", 1e-3))),
        "betas": list(opt.get("betas", [0.9, 0.999])),
        "eps": float(opt.get("eps", 1e-8)),
        "weight_decay": float(opt.get("weight_decay", 0.01)),
        "compile": bool(t.get("compile", False)),
        "corruption": {
            "enable": bool(rec.get("enable", False)) and not nointerm,  # their nointerm path never corrupts
            "step_prob": float(rec.get("corruption_prob", 0.05)),
            "token_prob": float(rec.get("tokenwise_corruption_prob", 0.5)),
            "strategy": rec.get("corruption_strategy", "last"),
        },
        "padding": "faithful",
    }
    scheduler = t.get("lr_scheduler", "none") or "none"
    if scheduler == "cosine":
        c = t.get("cosine_scheduler_config", {})
        out.update(schedule="cosine", warmup_steps=int(c.get("warmup_steps", 0)), min_lr=float(c.get("min_lr", 1e-5)))
    elif scheduler not in ("none", None):
        raise ConfigError(f"train_config lr_scheduler={scheduler!r} is not supported: none or cosine")
    if t.get("seed") is not None:
        out["seed"] = int(t["seed"])
    if nointerm:  # no discrete bottleneck: BPTT through min(D + 1, max_train_loop) iterations (docs/method.md §10.1)
        loop = int(t.get("max_train_loop", 8))
        if max_depth is not None and loop < max_depth + 1:
            raise ConfigError(
                f"train_config max_train_loop={loop} caps nointerm training below max_depth + 1 = {max_depth + 1} iterations, "
                "which fastrecur does not implement: raise max_train_loop"
            )
        out["latent"] = "continuous"
    return out
