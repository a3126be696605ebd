"""Record what the recurrent block computes inside one forward pass, without changing its math.

``recording(model)`` is a context manager that, for as long as it is open,

* wraps every layer's attention function (``RelativePositionAttention.attention_fn``, whatever
  backend ``Backend.bind`` put there): the wrapper calls that function unchanged and keeps its
  per-head output ``Σ_j A(i, j) v_j`` (before ``W_o``) and, if asked, the attention probabilities
  ``A`` recomputed from the same ``q``, ``k`` and position tables by the one reference,
  ``fastrecur_kernels.reference.relpos_attention_probs_reference`` (all queries, or only the last).
  Fused kernels never materialize ``A``, hence the recomputation beside them;
* registers one forward pre-hook on the encoder (its input: the embedding, or ``h_t`` in a
  continuous rollout) and one forward hook per block (the residual stream after the block), and
  one forward hook on the encoder that calls the listeners after every complete pass.

Everything is attached once on entry and removed on exit, also when the body raises. Each pass
overwrites the previous pass's tensors, so no ``[B, H, L, L]`` tensor outlives the batch it belongs
to; call :meth:`Recording.clear` to drop the last one early.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Callable, Iterator, Optional

import torch

from fastrecur_kernels.reference import relpos_attention_probs_reference

from ..model import RecurrentTransformer


@dataclass
class LayerRecord:
    """What one layer computed in the latest pass (None until it ran)."""

    probs: Optional[torch.Tensor] = None  # [B, H, L, L] attention probabilities ([B, H, 1, L] with attention="last")
    head_outputs: Optional[torch.Tensor] = None  # [B, H, L, d] Σ_j A(i, j) v_j per head, before W_o
    output: Optional[torch.Tensor] = None  # [B, L, D] residual stream after the block


@dataclass
class Recording:
    layers: list[LayerRecord]
    encoder_input: Optional[torch.Tensor] = None  # [B, L, D] the encoder's input in the latest pass
    passes: int = 0  # complete encoder passes since the recording opened
    listeners: list[Callable[["Recording"], None]] = field(default_factory=list)

    def clear(self) -> None:
        self.encoder_input = None
        for layer in self.layers:
            layer.probs = layer.head_outputs = layer.output = None

    def hidden_states(self) -> list[torch.Tensor]:
        """The residual stream of the latest pass: the encoder input, then the output of every block."""
        return [self.encoder_input] + [layer.output for layer in self.layers]


@contextlib.contextmanager
def recording(model: RecurrentTransformer, *, attention: Optional[str] = "all") -> Iterator[Recording]:
    """Record every layer of ``model`` while the context is open (see the module docstring).

    ``attention``: ``"all"`` keeps the ``[B, H, L, L]`` probabilities, ``"last"`` only the last
    query's ``[B, H, 1, L]``, ``None`` none (head outputs and hidden states are always kept). The
    model must be in eval mode: dropout would make the recorded probabilities differ from the ones used.
    """
    if attention not in ("all", "last", None):
        raise ValueError(f"attention={attention!r}: use 'all', 'last' or None")
    if model.training:
        raise RuntimeError("recording needs model.eval(): dropout would change the attention being recorded")
    blocks = list(model.transformer.blocks.values())
    rec = Recording(layers=[LayerRecord() for _ in blocks])
    originals = [block.attn.attention_fn for block in blocks]
    handles = []

    def keep_input(module, inputs):
        rec.encoder_input = inputs[0].detach()

    def finish_pass(module, inputs, output):
        rec.passes += 1
        for listener in list(rec.listeners):
            listener(rec)

    try:
        for block, original, record in zip(blocks, originals, rec.layers):
            block.attn.attention_fn = _recording_attention(original, record, attention)
            handles.append(block.register_forward_hook(_keep_output(record)))
        handles.append(model.transformer.register_forward_pre_hook(keep_input))
        handles.append(model.transformer.register_forward_hook(finish_pass))
        yield rec
    finally:
        for handle in handles:
            handle.remove()
        for block, original in zip(blocks, originals):
            block.attn.attention_fn = original
        rec.clear()
        rec.listeners.clear()


def _keep_output(record: LayerRecord):
    def hook(module, inputs, output):
        record.output = output.detach()

    return hook


def _recording_attention(original, record: LayerRecord, keep_probs: Optional[str]):
    def attention(q, k, v, pos_k, pos_q, *, window, shift, causal, dropout_p, length_scale_from=0):
        if dropout_p:
            raise RuntimeError("recording needs model.eval(): attention dropout is on")
        out = original(
            q, k, v, pos_k, pos_q, window=window, shift=shift, causal=causal, dropout_p=dropout_p,
            length_scale_from=length_scale_from,
        )  # fmt: skip
        record.head_outputs = out.detach()
        if keep_probs is not None:
            first = q.shape[2] - 1 if keep_probs == "last" else 0
            with torch.no_grad():
                record.probs = relpos_attention_probs_reference(
                    q, k, pos_k, pos_q, window=window, shift=shift, causal=causal, first_query=first,
                    length_scale_from=length_scale_from,
                )  # fmt: skip
        return out

    return attention


def head_contributions(model: RecurrentTransformer, layer: int, head_outputs: torch.Tensor) -> torch.Tensor:
    """Each head's own write to the residual stream: ``o_h W_o[:, h]ᵀ`` (bias excluded).

    ``head_outputs`` ``[..., H, d]`` → ``[..., H, D]``.
    """
    attn = model.transformer.blocks[f"layer_{layer}"].attn
    H, d = attn.num_heads, attn.head_dim
    w_o = attn.o_proj.weight.view(-1, H, d).float()  # [D_out, H, d]
    return torch.einsum("...hd,ehd->...he", head_outputs.float(), w_o)
