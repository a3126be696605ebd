"""Closed-loop evaluation (docs/method.md §6): roll the model out from the input and score the final state.

The state fed back is the decoded tokens (``latent='discrete'``, the method) or the hidden state
(``latent='continuous'``: ``h_{t+1} = Encoder(h_t)``, the heads' decoded tokens only scored,
docs/method.md §3.2); a ``feedforward`` model runs exactly once, whatever the policy. Chain-of-thought
models are evaluated by ``fastrecur.evaluate_cot`` (``make_evaluator`` picks the evaluator a run needs).

Iteration policies — the count always comes from the *input* tokens, never from labels:

* ``depth+2`` (the authors'): every sample runs ``D + extra_iters`` iterations, ``D`` the largest
  graph depth in the evaluated set (``extra_iters = 2`` gives their ``max_depth + 2``);
* ``fixed``: ``fixed_iters`` iterations;
* ``fixed-point``: each sample stops as soon as an iteration leaves its decoded state unchanged
  (argmax decoding is deterministic, so the state could never change again), capped at
  ``max_iters``. Finished samples leave the batch, so their compute is saved.

Metrics (factors 0–3 only, pad positions count as correct, docs/method.md §6.3):

* ``fully_solved`` — the headline "% completely solved": the final state equals the solved label
  at every position;
* ``factor_acc`` — per-factor accuracy over the real (non-pad) positions, so that it does not depend
  on how the set is batched (each batch keeps the columns up to its longest graph);
* ``value_acc`` / ``value_acc_by_depth`` — VALUE accuracy over the RHS slots (the node values), overall
  and per node depth;
* ``per_iteration`` — after each iteration t: ``fully_solved``, ``value_acc``, and
  ``teacher_match`` (state equals the teacher state ``S_{t+1}``);
* ``iterations`` — iterations used per sample (mean, max).
"""

from __future__ import annotations

import math
import os
from functools import lru_cache
from typing import Optional

import torch

from .backends import Backend, ReferenceBackend
from .compat import load_upstream_dataset
from .config import EvalSettings, RunConfig
from .cudagraphs import BucketedGraphStep
from .diagnostics import constant_answer_graphs
from .data import SCORED_FACTORS, SYN_PAD, SYNTAX, VALUE, DagConfig, GraphDataset, Vocab, generate_dataset, input_depth, teacher_states
from .errors import ConfigError
from .evaluate_cot import CoTEvaluator
from .host_memory import MMAP_THRESHOLD
from .model import RecurrentTransformer, length_scale_in_effect, length_scaling_context
from .profiling import nvtx_range
from .recurrence import decode, reset_dead_factors

NUM_SCORED_FACTORS = len(SCORED_FACTORS)  # factors 0 … 3


def iteration_budget(settings: EvalSettings, max_input_depth: int) -> int:
    """Iterations to run (policies depth+2 and fixed) or the cap (fixed-point)."""
    if settings.policy == "depth+2":
        return max_input_depth + settings.extra_iters
    if settings.policy == "fixed":
        return settings.fixed_iters
    return settings.max_iters


# One score tensor of a CPU evaluation at most: larger blocks glibc maps afresh at every allocation.
MAX_SCORE_BYTES = MMAP_THRESHOLD


def make_evaluator(model, cfg: RunConfig, device: torch.device, backend: Optional[Backend] = None, settings: Optional[EvalSettings] = None):
    """The evaluator of a run of config ``cfg`` (``settings`` default to ``cfg.eval``)."""
    settings = settings or cfg.eval
    if cfg.model.architecture == "cot":
        return CoTEvaluator(model, cfg.data.cot_type, settings, device, backend)
    return Evaluator(model, settings, device, backend, latent=cfg.train.latent)


class Evaluator:
    """Evaluates ``model`` with ``backend`` (default: reference), which it binds to the model."""

    def __init__(
        self,
        model: RecurrentTransformer,
        settings: EvalSettings,
        device: torch.device,
        backend: Optional[Backend] = None,
        latent: str = "discrete",
    ):
        if latent not in ("discrete", "continuous"):
            raise ConfigError(f"latent={latent!r} is invalid: discrete or continuous")
        self.model = model
        self.settings = settings
        self.device = device
        self.latent = latent
        self.feedforward = model.config.architecture == "feedforward"
        self.backend = backend or ReferenceBackend()
        self.backend.bind(model)

    @torch.no_grad()
    def evaluate(self, dataset: GraphDataset, progress=None) -> dict:
        if tuple(dataset.vocab.sizes) != tuple(self.model.config.vocab_sizes):
            raise ConfigError(
                f"the data's vocabulary sizes {list(dataset.vocab.sizes)} do not match the model's "
                f"{list(self.model.config.vocab_sizes)} (variable pool, operations and modulus must be those it was trained with)"
            )
        was_training = self.model.training
        self.model.eval()
        try:
            with length_scaling_context(self.model, self.settings.length_scaling):
                return self._evaluate(dataset, progress)
        finally:
            self.model.train(was_training)

    def _stepper(self, ds: GraphDataset):
        """One closed-loop iteration ``state → next state`` (CUDA-graph replayed when asked); for a
        continuous latent ``hidden → (next hidden, its decoded tokens)``."""
        if self.latent == "continuous":

            def continuous_step(h):
                h = self.model.encode(h)
                return h, reset_dead_factors(decode(self.model.readout(h)))

            return continuous_step

        def step(state):
            return self.backend.decode_step(self.model, state)

        if self.settings.cuda_graphs and self.device.type == "cuda":
            return BucketedGraphStep(step, ds.vocab.pad_token)
        return step

    def _evaluate(self, ds: GraphDataset, progress) -> dict:
        self.step = self._stepper(ds)
        depth_from_input = input_depth(ds.tokens, ds.vocab)
        sample_depth = depth_from_input.max(dim=1).values  # [N]
        budget = 1 if self.feedforward else iteration_budget(self.settings, int(sample_depth.max()))
        acc = _Accumulator(budget, ds.vocab.sizes[VALUE])
        rows = self._rows_per_batch(int(ds.lengths.max()))
        for start in range(0, len(ds), rows):
            batch = ds[start : start + rows]
            final, per_iter_states, used = self._rollout(batch, budget)
            acc.add(batch, final, per_iter_states, used)
            if progress is not None:
                progress.update(len(batch))
        result = acc.result()
        result["policy"] = "feedforward" if self.feedforward else self.settings.policy
        result["length_scaling"] = length_scale_in_effect(self.model, self.settings.length_scaling)
        result["graph_depth"] = {
            "min": int(sample_depth.min()),
            "mean": float(sample_depth.float().mean()),
            "max": int(sample_depth.max()),
        }
        return result

    def _rows_per_batch(self, length: int) -> int:
        """``eval.batch_size``, but on the CPU no more graphs than keep one ``[B, H, L, L]`` float32
        score tensor within ``MAX_SCORE_BYTES``: larger ones are mapped and faulted in afresh at every
        allocation (fastrecur/host_memory.py). Graphs are independent, so results do not change."""
        rows = self.settings.batch_size
        if self.device.type == "cpu":
            per_graph = 4 * self.model.config.num_heads * length * length
            rows = max(1, min(rows, MAX_SCORE_BYTES // per_graph))
        return rows

    def _rollout(self, batch: GraphDataset, budget: int):
        """Run one batch; returns the final states, the state after each iteration, iterations used."""
        real_len = int(batch.lengths.max())
        state = batch.tokens[:, :real_len].to(self.device)
        lengths = batch.lengths.to(self.device)
        B = state.shape[0]
        used = torch.full((B,), budget, dtype=torch.int64, device=self.device)
        halting = self.settings.policy == "fixed-point" and not self.feedforward
        active = torch.arange(B, device=self.device)  # rows of `state` still iterating
        states = []
        current = state.clone()  # full batch, frozen rows keep their last state
        hidden = self.model.embed(state) if self.latent == "continuous" else None  # what a continuous latent feeds back
        for t in range(1, budget + 1):
            if active.numel() == 0:
                states.append(current.clone())
                continue
            # Trailing pads of the longest active sample can go: attention is causal.
            width = int(lengths[active].max())
            x = current[active, :width]
            with nvtx_range("iteration"):
                if hidden is None:
                    nxt = self.step(x)
                else:
                    h, nxt = self.step(hidden[active, :width])
                    hidden[active, :width] = h
            if halting:
                unchanged = (nxt == x).flatten(1).all(dim=1)
                used[active[unchanged]] = t
                current[active, :width] = nxt
                active = active[~unchanged]
            else:
                current[active, :width] = nxt
            states.append(current.clone())
        return current, states, used


class _Accumulator:
    """Sums over batches; ``result()`` turns them into the metrics of the module docstring."""

    def __init__(self, budget: int, value_vocab_size: int):
        self.budget = budget
        self.n = 0
        self.fully = 0.0
        self.factor_correct = torch.zeros(NUM_SCORED_FACTORS, dtype=torch.float64)
        self.positions = 0
        self.value_correct = 0.0
        self.value_count = 0.0
        self.depth_correct: dict[int, float] = {}
        self.depth_count: dict[int, float] = {}
        self.iter_fully = torch.zeros(budget, dtype=torch.float64)
        self.iter_value = torch.zeros(budget, dtype=torch.float64)
        self.iter_teacher = torch.zeros(budget, dtype=torch.float64)
        self.used = []
        self.nontrivial = 0
        self.nontrivial_solved = 0
        self.constant_counts = torch.zeros(value_vocab_size, dtype=torch.int64)

    def add(self, batch: GraphDataset, final: torch.Tensor, states: list[torch.Tensor], used: torch.Tensor) -> None:
        L = final.shape[1]
        labels = batch.labels[:, :L].to(final.device)
        depth = batch.depth[:, :L].to(final.device)  # from labels: used only for scoring
        pad = labels[..., SYNTAX] == SYN_PAD
        rhs = depth >= 0
        B = final.shape[0]
        self.n += B
        self.positions += int((~pad).sum())

        def scored(state, target):
            """bool [B, L, 4]: factors 0–3 correct, pads counted correct."""
            return (state[..., :NUM_SCORED_FACTORS] == target[..., :NUM_SCORED_FACTORS]) | pad.unsqueeze(-1)

        ok = scored(final, labels)
        solved = ok.flatten(1).all(dim=1)
        self.fully += solved.sum().item()
        trivial, constant = constant_answer_graphs(labels, depth)
        self.nontrivial += (~trivial).sum().item()
        self.nontrivial_solved += (solved & ~trivial).sum().item()
        self.constant_counts += torch.bincount(constant[trivial].cpu(), minlength=len(self.constant_counts))[: len(self.constant_counts)]
        self.factor_correct += (ok & ~pad.unsqueeze(-1)).sum(dim=(0, 1)).double().cpu()
        value_ok = final[..., VALUE] == labels[..., VALUE]
        self.value_correct += (value_ok & rhs).sum().item()
        self.value_count += rhs.sum().item()
        for d in depth[rhs].unique().tolist():
            at = depth == d
            self.depth_correct[d] = self.depth_correct.get(d, 0.0) + (value_ok & at).sum().item()
            self.depth_count[d] = self.depth_count.get(d, 0.0) + at.sum().item()

        tokens = batch.tokens[:, :L].to(final.device)
        _, teacher = teacher_states(tokens, labels, depth, len(states))  # teacher[t] = S_{t+1}
        for t, state in enumerate(states):
            self.iter_fully[t] += scored(state, labels).flatten(1).all(dim=1).sum().item()
            self.iter_value[t] += ((state[..., VALUE] == labels[..., VALUE]) & rhs).sum().item()
            self.iter_teacher[t] += scored(state, teacher[t]).flatten(1).all(dim=1).sum().item()
        self.used.append(used.cpu())

    def result(self) -> dict:
        used = torch.cat(self.used).double()
        value_den = max(self.value_count, 1.0)
        return {
            "num_graphs": self.n,
            "fully_solved": self.fully / self.n,
            # Graphs whose nodes all share one value are solved by a constant answer: the floor is
            # the best single constant's share, and "nontrivial" scores the other graphs alone.
            "constant_answer_floor": float(self.constant_counts.max()) / self.n,
            "fully_solved_nontrivial": self.nontrivial_solved / self.nontrivial if self.nontrivial else float("nan"),
            "factor_acc": (self.factor_correct / self.positions).tolist(),
            "value_acc": self.value_correct / value_den,
            "value_acc_by_depth": {int(d): self.depth_correct[d] / self.depth_count[d] for d in sorted(self.depth_count)},
            "per_iteration": {
                "fully_solved": (self.iter_fully / self.n).tolist(),
                "value_acc": (self.iter_value / value_den).tolist(),
                "teacher_match": (self.iter_teacher / self.n).tolist(),
            },
            "iterations": {"mean": float(used.mean()), "max": int(used.max()), "budget": self.budget},
        }


def validation_dataset(cfg: RunConfig, vocab: Vocab) -> Optional[GraphDataset]:
    """The in-training validation set: ``data.val_file`` or ``data.val_samples`` graphs from ``data.val``."""
    if cfg.data.val_file:
        vocab_file = cfg.data.vocab_file or os.path.join(os.path.dirname(os.path.abspath(cfg.data.val_file)), "vocab.json")
        return load_upstream_dataset(cfg.data.val_file, vocab_file)
    if not cfg.data.val:
        return None
    return _cached_generate(DagConfig(**cfg.data.val), cfg.data.val_samples, cfg.train.seed + 99_991)


@lru_cache(maxsize=2)  # the validation set of the current run (and one more), not every set ever made
def _cached_generate(config: DagConfig, num_samples: int, seed: int) -> GraphDataset:
    return generate_dataset(config, num_samples, seed)


def percent(x: float) -> str:
    return "nan" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}%"
