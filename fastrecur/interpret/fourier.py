"""Which frequencies over the residues ``0 … p−1`` carry the modular structure of values.

For a table ``E ∈ R^{p×D}`` indexed by residue ``a`` (the VALUE embedding rows ``0 … p−1``, or the
VALUE head's readout directions), the discrete Fourier transform along the residue axis,
``F_k = Σ_a E_a e^{−2πi·k·a/p}``, gives the power ``‖F_k‖²`` of frequency ``k``. ``k`` and ``p − k``
carry the same real pattern (a cosine/sine pair), so they are counted together as frequency
``k = 1 … ⌊p/2⌋``; ``k = 0`` is the part shared by every residue (the mean row). A table built from
one frequency puts all of its non-constant power there; a table with no modular structure spreads it.
"""

from __future__ import annotations

import torch

from ..data import VALUE
from ..model import RecurrentTransformer


def residue_spectrum(table: torch.Tensor) -> dict:
    """Power per frequency of a ``[p, D]`` table: ``fraction[k−1]`` = share of the non-constant power at
    frequency ``k`` (k = 1 … ⌊p/2⌋), ``constant_fraction`` = share of all power in the mean row."""
    if table.dim() != 2 or table.shape[0] < 2:
        raise ValueError(f"expected a [p, D] table with p >= 2 residues, got {tuple(table.shape)}")
    p = table.shape[0]
    power = torch.fft.fft(table.detach().double().cpu(), dim=0).abs().pow(2).sum(-1)  # [p]
    folded = [float(power[k] + (power[p - k] if p - k != k else 0.0)) for k in range(1, p // 2 + 1)]
    varying = sum(folded)
    total = float(power.sum())
    return {
        "frequencies": list(range(1, p // 2 + 1)),
        "fraction": [f / varying if varying > 0 else 0.0 for f in folded],
        "constant_fraction": float(power[0]) / total if total > 0 else 0.0,
    }


def top_frequencies(spectrum: dict, count: int = 3) -> list[dict]:
    ranked = sorted(zip(spectrum["frequencies"], spectrum["fraction"]), key=lambda kf: -kf[1])
    return [{"frequency": k, "fraction": f} for k, f in ranked[:count]]


def value_tables(model: RecurrentTransformer) -> dict[str, torch.Tensor]:
    """The residue rows of the VALUE embedding and of the VALUE head (its readout directions)."""
    p = model.config.vocab_sizes[VALUE] - 2  # the VALUE vocabulary is 0 … p−1, N/A, EMPTY
    return {
        "embedding": model.token_embedder.embeddings[VALUE].weight[:p],
        "readout": model.output_layers[VALUE].weight[:p],
    }


def value_spectra(model: RecurrentTransformer, count: int = 3) -> dict:
    out = {}
    for name, table in value_tables(model).items():
        spectrum = residue_spectrum(table)
        out[name] = {**spectrum, "top": top_frequencies(spectrum, count)}
    return out
