"""The recurrent block: factored embedding → pre-LN Transformer with DeBERTa-style relative
attention → six per-factor heads (docs/method.md §2); and the chain-of-thought baseline on the same
encoder (docs/method.md §10).

One forward pass is *one* iteration of the recurrence; the discrete bottleneck that feeds the
decoded tokens back in lives in ``fastrecur.recurrence``.

``ModelConfig`` switches for the paper's comparisons (docs/method.md §10):

* ``architecture`` — ``recurrent`` (the block, applied once per iteration), ``feedforward`` (the
  same modules applied exactly once: no weight sharing across depth, the authors' feedforward
  baseline) or ``cot`` (``CoTTransformer``: one token vocabulary, one head, next-token prediction);
* ``positions`` — ``relative`` (DeBERTa-style, §2.3) or ``rope`` (rotary positions on q and k, as
  the authors' baselines; no position table).

Module and parameter names mirror the authors' model (docs/method.md §7), so their checkpoints map
one-to-one onto ours (``fastrecur.compat``). Initialization is PyTorch's default (docs/method.md §2.5).

The attention computation itself is pluggable (``AttentionFn``; a backend's ``bind`` sets it): the
plain-PyTorch ``relpos_attention_reference`` by default, or a fused kernel with the same signature.
The model imports only the kernel library's torch-only reference module, never a Triton kernel.
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass
from typing import Optional, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from fastrecur_kernels.reference import attention_scale, relpos_attention_reference, scale_by_length

from .errors import ConfigError
from .profiling import nvtx_range

DEFAULT_VOCAB_SIZES = (7, 129, 2, 25, 2, 2)  # SYNTAX, VARIABLE, OPERATION, VALUE, REGRET, MODIFICATION
ARCHITECTURES = ("recurrent", "feedforward", "cot")
POSITIONS = ("relative", "rope")


class AttentionFn(Protocol):
    """``attn(q, k, v, pos_k, pos_q, *, window, shift, causal, dropout_p, length_scale_from) -> o``:
    q, k, v ``[B, H, L, d]``, the projected position tables ``[W, H, d]`` (or None for a switched-off
    term), ``o`` ``[B, H, L, d]``; ``length_scale_from`` > 0: log-length scaling
    (``fastrecur_kernels.reference`` defines the math)."""

    def __call__(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        pos_k: Optional[torch.Tensor],
        pos_q: Optional[torch.Tensor],
        *,
        window: int,
        shift: int,
        causal: bool,
        dropout_p: float,
        length_scale_from: int = 0,
    ) -> torch.Tensor: ...


def is_length_scale_from(value) -> bool:
    """Whether ``value`` is a log-length scaling setting: 0 (off) or an integer L0 >= 2 (ln 1 = 0)."""
    return isinstance(value, int) and not isinstance(value, bool) and (value == 0 or value >= 2)


@dataclass(frozen=True)
class ModelConfig:
    """Hyper-parameters of the recurrent block. Defaults are the paper's model (8,033,447 params)."""

    vocab_sizes: tuple[int, ...] = DEFAULT_VOCAB_SIZES
    hidden_size: int = 384
    num_layers: int = 4
    num_heads: int = 16
    mlp_size: Optional[int] = None  # None → 4 × hidden_size
    relpos_window: int = 64  # W: buckets clamp(j − i, −W+1+s, s)
    relpos_shift: int = 0  # s
    relpos_embed_size: int = 256  # width of the shared relative-position table
    relpos_c2p: bool = True  # q_i · K^r term (authors' relpos_q_k_enabled[0], uses relpos_k_proj)
    relpos_p2c: bool = True  # k_j · Q^r term (authors' relpos_q_k_enabled[1], uses relpos_q_proj)
    pos_layer_norm: bool = True  # LayerNorm on the relative-position table
    causal: bool = True
    attn_dropout: float = 0.1  # on attention probabilities and on the position table
    resid_dropout: float = 0.1  # on the encoder input and on each MLP output
    bias: bool = True  # biases of the attention and relative-position projections
    layer_norm: bool = True
    layer_norm_eps: float = 1e-5
    architecture: str = "recurrent"  # recurrent | feedforward | cot (see the module docstring)
    positions: str = "relative"  # relative (DeBERTa-style) | rope (rotary, the authors' baselines)
    rope_base: float = 10000.0  # rotary angle of channel pair m at position t: t · base^(−2m/d)
    # Log-length attention scaling trained in (not the authors'; 0 = off): query i's logits ×
    # max(1, ln(i+1)/ln L0), so a longer input does not spread the attention of a lookup thinner
    # (docs/learning.md §5). eval.length_scaling can replace L0 at evaluation time.
    length_scaling: int = 0

    def __post_init__(self):
        object.__setattr__(self, "vocab_sizes", tuple(int(v) for v in self.vocab_sizes))
        self.validate()

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def inner_size(self) -> int:
        return self.mlp_size if self.mlp_size is not None else 4 * self.hidden_size

    def validate(self) -> None:
        def fail(key, value, allowed):
            raise ConfigError(f"model.{key}={value!r} is invalid: {allowed}")

        if self.architecture not in ARCHITECTURES:
            fail("architecture", self.architecture, f"allowed values are {', '.join(ARCHITECTURES)}")
        if self.positions not in POSITIONS:
            fail("positions", self.positions, f"allowed values are {', '.join(POSITIONS)}")
        if not self.rope_base > 1:
            fail("rope_base", self.rope_base, "must be > 1")
        sizes_needed = 1 if self.architecture == "cot" else 6
        if len(self.vocab_sizes) != sizes_needed or min(self.vocab_sizes) < 1:
            what = "one positive size (the CoT token vocabulary)" if sizes_needed == 1 else "six positive sizes (one per factor)"
            fail("vocab_sizes", self.vocab_sizes, f"model.architecture={self.architecture!r} needs {what}")
        for key in ("hidden_size", "num_layers", "num_heads", "relpos_window", "relpos_embed_size"):
            if int(getattr(self, key)) < 1:
                fail(key, getattr(self, key), "must be a positive integer")
        if self.hidden_size % self.num_heads:
            fail("num_heads", self.num_heads, f"must divide hidden_size={self.hidden_size}")
        if self.head_dim % 8:
            fail("num_heads", self.num_heads, f"head dim hidden_size/num_heads={self.head_dim} must be a multiple of 8")
        if self.mlp_size is not None and self.mlp_size < 1:
            fail("mlp_size", self.mlp_size, "must be a positive integer or null (4 × hidden_size)")
        if not 0 <= self.relpos_shift < self.relpos_window:
            fail("relpos_shift", self.relpos_shift, f"must be in [0, relpos_window={self.relpos_window})")
        for key in ("attn_dropout", "resid_dropout"):
            if not 0.0 <= getattr(self, key) < 1.0:
                fail(key, getattr(self, key), "must be in [0, 1)")
        if self.layer_norm_eps <= 0:
            fail("layer_norm_eps", self.layer_norm_eps, "must be > 0")
        if not is_length_scale_from(self.length_scaling):
            fail("length_scaling", self.length_scaling, "must be 0 (off) or an integer L0 >= 2")
        if self.length_scaling and self.positions == "rope":
            fail("length_scaling", self.length_scaling, "log-length scaling is implemented for relative positions, not rope")

    def replace(self, **changes) -> "ModelConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["vocab_sizes"] = list(self.vocab_sizes)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown model config key(s) {unknown}; allowed: {sorted(known)}")
        return cls(**d)


def _layer_norm(cfg: ModelConfig, size: int) -> nn.Module:
    return nn.LayerNorm(size, eps=cfg.layer_norm_eps) if cfg.layer_norm else nn.Identity()


class FactoredEmbedding(nn.Module):
    """``x = E_SYN[s] + E_VAR[v] + E_OP[o] + E_VAL[a] + E_REG[r] + E_MOD[m]`` (docs/method.md §2.1)."""

    def __init__(self, vocab_sizes: tuple[int, ...], dim: int):
        super().__init__()
        self.vocab_sizes = tuple(vocab_sizes)
        self.embeddings = nn.ModuleList(nn.Embedding(v, dim) for v in vocab_sizes)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if tokens.shape[-1] != len(self.embeddings):
            raise ValueError(f"tokens must end in {len(self.embeddings)} factors, got shape {tuple(tokens.shape)}")
        x = self.embeddings[0](tokens[..., 0])
        for f in range(1, len(self.embeddings)):  # summed in factor order, as the authors do
            x = x + self.embeddings[f](tokens[..., f])
        return x


class RelativePositionTable(nn.Module):
    """The one position table shared by all layers: ``P = LN_pos(R)``, ``R ∈ R^{W×E}``."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.relpos_embeddings = nn.Embedding(cfg.relpos_window, cfg.relpos_embed_size)
        self.layer_norm = (
            nn.LayerNorm(cfg.relpos_embed_size, eps=1e-5) if cfg.pos_layer_norm else nn.Identity()
        )

    def forward(self) -> torch.Tensor:
        return self.layer_norm(self.relpos_embeddings.weight)


def rotate(x: torch.Tensor, offset: int, base: float) -> torch.Tensor:
    """Rotary positions (RoPE): channel pair ``(2m, 2m+1)`` of position ``t = offset + i`` rotated by
    the angle ``t · base^(−2m/d)`` (the authors' baselines, docs/method.md §10.3). ``x`` ``[B, H, L, d]``.
    Angles are computed for the positions at hand, so any length works (no table to outgrow)."""
    L, d = x.shape[-2], x.shape[-1]
    compute = torch.promote_types(x.dtype, torch.float32)
    inv_freq = base ** (-torch.arange(0, d, 2, device=x.device, dtype=compute) / d)  # [d/2]
    angle = torch.arange(offset, offset + L, device=x.device, dtype=compute)[:, None] * inv_freq  # [L, d/2]
    cos, sin = angle.cos(), angle.sin()
    even, odd = x[..., 0::2].to(compute), x[..., 1::2].to(compute)
    return torch.stack((even * cos - odd * sin, even * sin + odd * cos), dim=-1).flatten(-2).to(x.dtype)


class KVCache:
    """Keys and values of every layer for the positions seen so far (incremental decoding).

    Preallocated for ``max_length`` positions; ``length`` is how many are filled. A forward pass of
    ``n`` new positions writes them in every layer, then advances ``length`` by ``n``."""

    def __init__(self, cfg: ModelConfig, batch_size: int, max_length: int, device, dtype):
        shape = (cfg.num_layers, 2, batch_size, cfg.num_heads, max_length, cfg.head_dim)
        self.buffer = torch.empty(shape, device=device, dtype=dtype)
        self.length = 0

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store the new positions' ``k, v`` ``[B, H, n, d]`` of ``layer``; return all keys and values so far."""
        end = self.length + k.shape[2]
        if end > self.buffer.shape[4]:
            raise ValueError(f"KV cache holds {self.buffer.shape[4]} positions, {end} needed")
        self.buffer[layer, 0, :, :, self.length : end] = k
        self.buffer[layer, 1, :, :, self.length : end] = v
        return self.buffer[layer, 0, :, :, :end], self.buffer[layer, 1, :, :, :end]


def cached_attention(
    q, k, v, pos_k, pos_q, *, window: int, shift: int, causal: bool, rope: bool, length_scale_from: int = 0
) -> torch.Tensor:
    """Attention of the last ``Lq`` positions (``q`` ``[B, H, Lq, d]``) to all ``Lk`` keys so far:
    the uncached math (``relpos_attention_reference`` or RoPE's plain scaled dot product) with the
    queries offset by ``Lk − Lq``. Eval only (no dropout)."""
    Lq, Lk, d = q.shape[2], k.shape[2], q.shape[3]
    i = torch.arange(Lk - Lq, Lk, device=q.device)[:, None]  # query positions
    j = torch.arange(Lk, device=q.device)[None, :]
    scores = q @ k.transpose(-1, -2)
    if not rope:
        lo = -window + 1 + shift
        bucket = ((j - i).clamp(lo, shift) - lo).expand(*q.shape[:2], Lq, Lk)  # r(i, j), docs/method.md §2.3
        if pos_k is not None:  # c2p
            scores = scores + torch.gather(torch.einsum("bhid,whd->bhiw", q, pos_k), 3, bucket)
        if pos_q is not None:  # p2c
            scores = scores + torch.gather(torch.einsum("bhjd,whd->bhwj", k, pos_q), 2, bucket)
    scores = scores * attention_scale(d, pos_k, pos_q)  # 1/sqrt(d) under RoPE: no position terms
    scores = scale_by_length(scores, length_scale_from, first_query=Lk - Lq)
    if causal:
        scores = scores.masked_fill(j > i, float("-inf"))
    probs = torch.softmax(scores.to(torch.promote_types(scores.dtype, torch.float32)), dim=-1).to(q.dtype)
    return probs @ v


class RelativePositionAttention(nn.Module):
    """Multi-head causal self-attention with c2p and p2c relative-position terms (docs/method.md §2.3),
    or with rotary positions (``positions: rope``: no position terms, no position parameters)."""

    def __init__(self, cfg: ModelConfig, layer_index: int = 0):
        super().__init__()
        D, E = cfg.hidden_size, cfg.relpos_embed_size
        self.layer_index = layer_index  # its slot in a KVCache
        self.num_heads, self.head_dim = cfg.num_heads, cfg.head_dim
        self.window, self.shift, self.causal = cfg.relpos_window, cfg.relpos_shift, cfg.causal
        self.rope, self.rope_base = cfg.positions == "rope", cfg.rope_base
        self.attn_dropout = cfg.attn_dropout
        self.q_proj = nn.Linear(D, D, bias=cfg.bias)
        self.k_proj = nn.Linear(D, D, bias=cfg.bias)
        self.v_proj = nn.Linear(D, D, bias=cfg.bias)
        self.o_proj = nn.Linear(D, D, bias=cfg.bias)
        # Per-layer projections of the shared table; a disabled term has no parameters (as upstream).
        relative = not self.rope
        self.relpos_k_proj = nn.Linear(E, D, bias=cfg.bias) if relative and cfg.relpos_c2p else None
        self.relpos_q_proj = nn.Linear(E, D, bias=cfg.bias) if relative and cfg.relpos_p2c else None
        self.pos_dropout = nn.Dropout(cfg.attn_dropout)
        self.attention_fn: AttentionFn = relpos_attention_reference
        self.length_scale_from = cfg.length_scaling  # 0 = off; EncoderModel.length_scaling replaces it

    def forward(self, x: torch.Tensor, pos_table: Optional[torch.Tensor], cache: Optional[KVCache] = None) -> torch.Tensor:
        B, L, D = x.shape
        H, d = self.num_heads, self.head_dim

        def heads(t: torch.Tensor) -> torch.Tensor:  # [B, L, D] → [B, H, L, d]
            return t.view(B, L, H, d).transpose(1, 2)

        with nvtx_range("attention"):
            q, k, v = heads(self.q_proj(x)), heads(self.k_proj(x)), heads(self.v_proj(x))
            pos_k = pos_q = None
            if self.rope:
                offset = cache.length if cache is not None else 0
                q, k = rotate(q, offset, self.rope_base), rotate(k, offset, self.rope_base)
            else:
                pos = self.pos_dropout(pos_table)  # each layer drops out the shared table on its own
                pos_k = self.relpos_k_proj(pos).view(self.window, H, d) if self.relpos_k_proj is not None else None
                pos_q = self.relpos_q_proj(pos).view(self.window, H, d) if self.relpos_q_proj is not None else None
            dropout_p = self.attn_dropout if self.training else 0.0
            if cache is not None:
                k, v = cache.update(self.layer_index, k, v)
                o = cached_attention(
                    q, k, v, pos_k, pos_q, window=self.window, shift=self.shift, causal=self.causal, rope=self.rope,
                    length_scale_from=self.length_scale_from,
                )  # fmt: skip
            elif self.rope:
                if self.length_scale_from:
                    raise ValueError("log-length scaling is implemented for relative positions, not RoPE")
                o = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=self.causal)
            else:
                o = self.attention_fn(
                    q,
                    k,
                    v,
                    pos_k,
                    pos_q,
                    window=self.window,
                    shift=self.shift,
                    causal=self.causal,
                    dropout_p=dropout_p,
                    length_scale_from=self.length_scale_from,
                )
            return self.o_proj(o.transpose(1, 2).reshape(B, L, D))


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.fc = nn.Linear(cfg.hidden_size, cfg.inner_size)
        self.proj = nn.Linear(cfg.inner_size, cfg.hidden_size)
        self.dropout = nn.Dropout(cfg.resid_dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with nvtx_range("mlp"):
            return self.dropout(self.proj(F.relu(self.fc(x))))


class Block(nn.Module):
    """Pre-LN block: ``a = h + Attn(LN_1(h))``; ``h = a + MLP(LN_2(a))``."""

    def __init__(self, cfg: ModelConfig, layer_index: int = 0):
        super().__init__()
        self.ln_1 = _layer_norm(cfg, cfg.hidden_size)
        self.attn = RelativePositionAttention(cfg, layer_index)
        self.ln_2 = _layer_norm(cfg, cfg.hidden_size)
        self.mlp = MLP(cfg)

    def forward(self, h: torch.Tensor, pos_table: Optional[torch.Tensor], cache: Optional[KVCache] = None) -> torch.Tensor:
        a = h + self.attn(self.ln_1(h), pos_table, cache)
        return a + self.mlp(self.ln_2(a))


class Encoder(nn.Module):
    """Input dropout → blocks → final LayerNorm (docs/method.md §2.2). Applied once per iteration."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.pos_model = RelativePositionTable(cfg) if cfg.positions == "relative" else None
        self.dropout = nn.Dropout(cfg.resid_dropout)
        self.blocks = nn.ModuleDict({f"layer_{i}": Block(cfg, i) for i in range(cfg.num_layers)})
        self.ln_final = _layer_norm(cfg, cfg.hidden_size)

    def forward(self, x: torch.Tensor, cache: Optional[KVCache] = None) -> torch.Tensor:
        """``x`` ``[B, L, D]``; with a ``cache``, ``x`` holds the positions after those cached."""
        h = self.dropout(x)
        pos_table = self.pos_model() if self.pos_model is not None else None  # LN'd once per pass, shared by every layer
        for block in self.blocks.values():
            h = block(h, pos_table, cache)
        if cache is not None:
            cache.length += x.shape[1]
        return self.ln_final(h)


class EncoderModel(nn.Module):
    """What both models share: an ``Encoder`` at ``transformer`` whose attention can be swapped."""

    config: ModelConfig
    transformer: Encoder

    def set_attention(self, attention_fn: AttentionFn) -> "EncoderModel":
        """Swap the attention implementation of every layer (same weights, same math)."""
        for block in self.transformer.blocks.values():
            block.attn.attention_fn = attention_fn
        return self

    @contextlib.contextmanager
    def length_scaling(self, length_scale_from: int):
        """Within the context, every layer's attention uses log-length scaling from ``length_scale_from``
        (L0; 0 = off) instead of the model's own ``config.length_scaling``: query i's logits ×
        max(1, ln(i+1)/ln L0) (``fastrecur_kernels.reference``). An evaluation setting, not a weight:
        for a model trained without it, L0 ≥ the longest training sequence leaves training-length
        inputs unchanged and only sharpens the attention of longer ones."""
        layers = [block.attn for block in self.transformer.blocks.values()]
        previous = [layer.length_scale_from for layer in layers]
        for layer in layers:
            layer.length_scale_from = int(length_scale_from)
        try:
            yield self
        finally:
            for layer, value in zip(layers, previous):
                layer.length_scale_from = value

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def length_scaling_context(model, length_scale_from: int):
    """The context an evaluator runs ``model`` in: ``model.length_scaling(L0)`` when asked for
    (L0 > 0), else nothing. A model with no attention layers to scale (a test stand-in) refuses L0 > 0."""
    if not length_scale_from:
        return contextlib.nullcontext(model)
    if not isinstance(model, EncoderModel):
        raise ConfigError(f"eval.length_scaling needs a fastrecur model with attention layers, not {type(model).__name__}")
    return model.length_scaling(length_scale_from)


def length_scale_in_effect(model, length_scale_from: int) -> int:
    """The L0 that ``model`` runs with in ``length_scaling_context(model, length_scale_from)``: the
    requested one, else the model's own ``config.length_scaling`` (trained in); 0 = none."""
    return length_scale_from or getattr(getattr(model, "config", None), "length_scaling", 0)


class RecurrentTransformer(EncoderModel):
    """One iteration of the recurrence: factored tokens ``[B, L, 6]`` → six logits ``[B, L, V_f]``."""

    def __init__(self, cfg: ModelConfig = ModelConfig()):
        super().__init__()
        if cfg.architecture == "cot":
            raise ConfigError("model.architecture='cot' is a CoTTransformer, not a RecurrentTransformer: use build_model")
        self.config = cfg
        self.token_embedder = FactoredEmbedding(cfg.vocab_sizes, cfg.hidden_size)
        self.transformer = Encoder(cfg)
        self.output_layers = nn.ModuleList(nn.Linear(cfg.hidden_size, v) for v in cfg.vocab_sizes)

    # The three stages, separately usable (the continuous "nointerm" variant and fused kernels
    # need the hidden state between them).
    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        with nvtx_range("embed"):
            return self.token_embedder(tokens)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.transformer(x)

    def readout(self, z: torch.Tensor) -> list[torch.Tensor]:
        with nvtx_range("readout"):
            return [head(z) for head in self.output_layers]

    def forward(self, tokens: torch.Tensor, *, hidden: bool = False):
        """Six logit tensors; with ``hidden=True`` the final hidden state ``z`` ``[B, L, D]`` instead
        (fused heads read it directly; going through ``forward`` keeps DDP's hooks in the loop)."""
        if tokens.dim() != 3 or tokens.shape[-1] != len(self.config.vocab_sizes):
            raise ValueError(f"tokens must be [B, L, {len(self.config.vocab_sizes)}], got {tuple(tokens.shape)}")
        z = self.encode(self.embed(tokens))
        return z if hidden else self.readout(z)

    # Concatenated views used by fused kernels (a head GEMM over all six factors at once).
    def head_weight(self) -> torch.Tensor:
        return torch.cat([head.weight for head in self.output_layers], dim=0)

    def head_bias(self) -> torch.Tensor:
        return torch.cat([head.bias for head in self.output_layers], dim=0)

    def embedding_weight(self) -> torch.Tensor:
        return torch.cat([emb.weight for emb in self.token_embedder.embeddings], dim=0)


class CoTTransformer(EncoderModel):
    """The chain-of-thought baseline (docs/method.md §10.4): tokens of one vocabulary ``[B, L]`` →
    embedding → the same encoder, applied once → one head → next-token logits ``[B, L, V]``."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        if cfg.architecture != "cot":
            raise ConfigError(f"CoTTransformer needs model.architecture='cot', got {cfg.architecture!r}")
        self.config = cfg
        (vocab_size,) = cfg.vocab_sizes
        self.token_embedder = nn.Embedding(vocab_size, cfg.hidden_size)
        self.transformer = Encoder(cfg)
        self.output_layer = nn.Linear(cfg.hidden_size, vocab_size)

    def forward(self, tokens: torch.Tensor, cache: Optional[KVCache] = None) -> torch.Tensor:
        """Logits ``[B, L, V]``; with a ``cache`` (``new_cache``), ``tokens`` are the positions after
        those it holds, and their keys and values are added to it."""
        if tokens.dim() != 2:
            raise ValueError(f"tokens must be [B, L] token ids, got {tuple(tokens.shape)}")
        return self.output_layer(self.transformer(self.token_embedder(tokens), cache))

    def new_cache(self, batch_size: int, max_length: int) -> KVCache:
        weight = self.output_layer.weight
        return KVCache(self.config, batch_size, max_length, weight.device, weight.dtype)


def build_model(cfg: ModelConfig) -> EncoderModel:
    """The module ``cfg.architecture`` names: ``CoTTransformer`` for ``cot``, else ``RecurrentTransformer``."""
    return CoTTransformer(cfg) if cfg.architecture == "cot" else RecurrentTransformer(cfg)
