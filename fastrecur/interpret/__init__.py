"""Mechanistic analysis of a trained recurrent block (``fastrecur interpret``).

* ``recorder`` — record attention probabilities (recomputed by the kernels' one reference), per-head
  outputs and the residual stream of every layer without changing the model's math (a context
  manager that removes everything it attached);
* ``positions`` — where definitions, operands and occurrences are, computed from the graph;
* ``probe_equations`` — controlled probe equations: which heads react to which slot;
* ``heads`` — where heads look: attention shares by graph-defined category, attention maps;
* ``linear_probes`` — ridge probes of the latent state per iteration and layer;
* ``fourier`` — the spectrum of value tables over the residues;
* ``report`` — runs them all and writes ``report.md``, ``report.json`` and the figures.
"""

from .fourier import residue_spectrum, top_frequencies, value_spectra
from .heads import attention_maps, head_shares
from .linear_probes import collect_occurrences, probe_latents, ridge_probe
from .positions import CATEGORIES, QUERY_KINDS, graph_positions, key_categories
from .probe_equations import probe_batches, run_probe_equations
from .recorder import head_contributions, recording
from .report import InterpretSettings, interpret

__all__ = [
    "CATEGORIES",
    "QUERY_KINDS",
    "InterpretSettings",
    "attention_maps",
    "collect_occurrences",
    "graph_positions",
    "head_contributions",
    "head_shares",
    "interpret",
    "key_categories",
    "probe_batches",
    "probe_latents",
    "recording",
    "residue_spectrum",
    "ridge_probe",
    "run_probe_equations",
    "top_frequencies",
    "value_spectra",
]
