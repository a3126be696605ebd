"""Training with algorithmic supervision and error correction (docs/method.md §4–§5).

One step, for a batch of B graphs of maximum depth D:

1. teacher states: inputs ``S_0 … S_D`` and targets ``S_1 … S_{D+1}`` (``K = D + 1`` iterations);
2. on a corrupted step (probability ``corruption.step_prob``), noise in the inputs' VALUE slots;
3. one forward pass over all ``K·B`` sequences (no gradient flows between iterations);
4. ``Σ_f w_f · mean CE_f``, one backward pass, one AdamW step.

Padding: ``trim`` (default) drops trailing all-pad columns (to a multiple of ``length_multiple``) and
averages over real tokens; ``faithful`` runs the full padded length with pads in the mean, exactly
the authors' step. Trimming cannot change the outputs at real positions: attention is causal and pads
come last (docs/method.md §2.2).

Checkpoints hold model, optimizer, scheduler, RNG states, step and config (``fastrecur.checkpoint``);
they are written atomically, and ``--resume`` continues a run so that its losses equal those of an
uninterrupted run.

The paper's other arms (docs/method.md §10) replace steps 1–3 (``fastrecur.objectives``): with
``train.latent: continuous`` one forward pass unrolls the continuous recurrence from ``S_0`` and one
backward goes through it (BPTT, optionally truncated), supervised per iteration or on the final
state only; ``model.architecture: cot`` trains next-token prediction on the CoT serialization of the
same graphs. The method's step is untouched by these switches.

A loss or gradient that becomes NaN or infinite stops the run (``TrainingDiverged``: one line with
the step and the losses concerned) without overwriting the last checkpoint. Finiteness is recorded
on the device every step and read on the host only when the metrics are logged and before every
save, so a step never waits for the GPU because of it.
"""

from __future__ import annotations

import math
import os
import random
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator, Optional

import numpy as np
import torch

from .backends import resolve_backend, resolve_device
from .batches import training_batches, training_max_depth, training_vocab
from .checkpoint import CHECKPOINT_NAME, global_rng_state, load_checkpoint, restore_global_rng_state, save_checkpoint
from .config import RunConfig
from .data import FACTORS, SYN_PAD, SYNTAX, VALUE, DagConfig, GraphDataset, teacher_states
from .data.cot import CoTVocab, cot_required_length, cot_sequences
from .diagnostics import node_skill_accuracy
from .errors import ConfigError, TrainingDiverged
from .model import build_model
from .objectives import next_token_loss, unrolled_loss
from .profiling import nvtx_range
from .recurrence import ContinuousRecurrence
from .runlog import RunLogger
from .train_metrics import NextTokenMetrics, TrainMetrics


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def lr_multiplier(step: int, cfg) -> float:
    """Linear warmup then cosine decay to ``min_lr`` (``schedule: cosine``); constant otherwise."""
    if cfg.schedule == "none":
        return 1.0
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps))
    floor = cfg.min_lr / cfg.lr
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


@dataclass
class StepBatch:
    """One training batch on the device, trimmed, with its iteration count."""

    tokens: torch.Tensor
    labels: torch.Tensor
    depth: torch.Tensor
    token_mask: Optional[torch.Tensor]  # bool [B, L] real tokens (trim mode) or None (faithful)
    num_iters: int
    normalizer: Optional[float] = None  # loss denominator per iteration-token (data-parallel only)


@dataclass
class TrainState:
    step: int = 0
    tokens_seen: int = 0
    train_time_s: float = 0.0
    history: list = field(default_factory=list)  # logged records of this process


class Trainer:
    """Builds everything a run needs from a ``RunConfig``; ``fit()`` trains."""

    def __init__(self, cfg: RunConfig, *, resume: Optional[str] = None, show_progress: bool = True, dist=None):
        self.cfg = cfg
        self.tcfg = cfg.train
        self.dist = dist  # fastrecur.distributed.DistContext or None
        self.is_main = dist is None or dist.rank == 0
        self.show_progress = show_progress and self.is_main
        self.device = dist.device if dist is not None else resolve_device(self.tcfg.device)
        seed_everything(self.tcfg.seed + (dist.rank if dist is not None else 0))

        self.vocab = training_vocab(cfg.data)
        self.cot = cfg.model.architecture == "cot"
        expected = (CoTVocab.of(self.vocab).size,) if self.cot else tuple(self.vocab.sizes)
        if tuple(cfg.model.vocab_sizes) != expected:
            raise ConfigError(
                f"model.vocab_sizes={list(cfg.model.vocab_sizes)} does not match the data's vocabulary "
                f"{list(expected)} (num_vars, ops and mod_val decide it): set model.vocab_sizes to it"
            )
        self.cot_length = self._cot_length() if self.cot else None
        self.model = build_model(cfg.model).to(self.device)
        self.backend = resolve_backend(self.tcfg.backend, self.device)
        self.backend.bind(self.model)
        # What one step computes (docs/method.md §4.2, §10): the method's teacher-forced pass, the
        # unrolled continuous recurrence, or next-token prediction.
        self.unrolled = self.tcfg.latent == "continuous"
        self.forward_loss = self._next_token if self.cot else self._unrolled if self.unrolled else self._teacher_forced
        self.train_model = self._wrap(ContinuousRecurrence(self.model) if self.unrolled else self.model)

        self.optimizer = torch.optim.AdamW(
            self.model.parameters(),
            lr=self.tcfg.lr,
            betas=tuple(self.tcfg.betas),
            eps=self.tcfg.eps,
            weight_decay=self.tcfg.weight_decay,
            # Fused: one kernel for all parameters. On the CPU the default per-tensor loop costs ~5
            # small tensor copies per parameter and step, a tenth of the tiny demo's step (docs/learning.md).
            fused=self.device.type in ("cuda", "cpu"),
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda s: lr_multiplier(s, self.tcfg))
        # Corruption draws come from their own CPU generators: reproducible on any device and
        # independent of dropout's RNG. The per-step coin is shared by all ranks (a global step is
        # corrupted or not as a whole); the noise differs per rank.
        self.rank = dist.rank if dist is not None else 0
        self.step_coin_rng = torch.Generator().manual_seed(self.tcfg.seed * 7919 + 17)
        self.corruption_rng = torch.Generator().manual_seed(self.tcfg.seed * 7919 + 31 + 1_000_003 * self.rank)
        self.loss_weights = tuple(float(w) for w in self.tcfg.loss_weights)
        self.watch = NonFiniteWatch(self.device, () if self.cot else FACTORS)
        self.state = TrainState()
        self.out_dir = self.tcfg.out_dir
        if resume:
            self.load_checkpoint(resume)
        elif self.tcfg.init_from:
            self.init_weights(self.tcfg.init_from)
        self.autocast = self._autocast_context()

    # --- setup helpers ----------------------------------------------------------------------

    def _cot_length(self) -> Optional[int]:
        """CoT sequences' padded length: the longest the training graphs can produce (``faithful``,
        the authors' fixed length), or None: each batch's longest (``trim``)."""
        if self.tcfg.padding != "faithful":
            return None
        if self.cfg.data.source != "stream":
            raise ConfigError("train.padding='faithful' with model.architecture='cot' needs data.source=stream (the graph settings fix the length)")
        return cot_required_length(DagConfig(**self.cfg.data.train), self.cfg.data.cot_type)

    def _wrap(self, model: torch.nn.Module):
        module = model
        if self.tcfg.compile:
            module = torch.compile(module, mode=self.tcfg.compile_mode)
        if self.dist is not None and self.dist.world_size > 1:
            module = self.dist.wrap(module)
        return module

    def _autocast_context(self):
        precision = self.tcfg.precision
        if precision == "auto":
            precision = "bf16" if self.device.type == "cuda" else "fp32"
        if precision == "bf16":
            if self.device.type == "cuda":
                torch.backends.cuda.matmul.allow_tf32 = True
                torch.backends.cudnn.allow_tf32 = True
            return lambda: torch.autocast(self.device.type, dtype=torch.bfloat16)
        return lambda: torch.autocast(self.device.type, enabled=False)

    def batches(self) -> Iterator[GraphDataset]:
        rank, world = (self.dist.rank, self.dist.world_size) if self.dist is not None else (0, 1)
        seed = self.cfg.data.seed if self.cfg.data.seed is not None else self.tcfg.seed
        return training_batches(self.cfg.data, self.tcfg.batch_size, seed, self.state.step, rank, world)

    # --- one step ---------------------------------------------------------------------------

    def prepare(self, batch: GraphDataset) -> StepBatch:
        """Trim (on the host, so no device sync), count iterations, move to the device.

        With several processes, every rank must run the same number of iterations on the same
        length, and divide its loss by the global token count / world size: then DDP's gradient
        average equals the gradient of one process that saw the whole global batch.
        """
        if self.cot:
            return self._prepare_cot(batch)
        tokens, labels, depth = batch.tokens, batch.labels, batch.depth
        num_iters, real_len = self._num_iters(depth), int(batch.lengths.max())
        if self.dist is not None:
            num_iters, real_len = self.dist.all_max(num_iters, real_len)
        token_mask, normalizer = None, None
        if self.tcfg.padding == "trim":
            keep = min(tokens.shape[1], math.ceil(real_len / self.tcfg.length_multiple) * self.tcfg.length_multiple)
            tokens, labels, depth = tokens[:, :keep], labels[:, :keep], depth[:, :keep]
            token_mask = tokens[..., SYNTAX] != SYN_PAD
            if self.dist is not None:
                (global_count,) = self.dist.all_sum(int(token_mask.sum()))
                normalizer = global_count * num_iters / self.dist.world_size
        to = self._to_device
        return StepBatch(to(tokens), to(labels), to(depth), to(token_mask), num_iters, normalizer)

    def _to_device(self, t: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
        return t.to(self.device, non_blocking=True) if t is not None else None

    def _num_iters(self, depth: torch.Tensor) -> int:
        """``D + 1 + train.extra_iterations`` for the deepest graph of the batch, or ``train.iterations``;
        1 for feedforward."""
        if self.cfg.model.architecture == "feedforward":
            return 1
        return self.tcfg.iterations or int(depth.max()) + 1 + self.tcfg.extra_iterations

    def _prepare_cot(self, batch: GraphDataset) -> StepBatch:
        """The CoT sequences of the batch's graphs (docs/method.md §10.4): trimmed to the longest
        (``trim``) or at the longest these graphs can be (``faithful``, the authors' fixed length);
        the loss counts the next tokens from ``<COT>`` on — real ones (``trim``) or all, pads
        included (``faithful``, as the authors)."""
        cb = cot_sequences(batch.labels, batch.vocab, self.cfg.data.cot_type, self.cot_length)
        tokens, real_len = cb.tokens, int(cb.lengths.max())
        if self.dist is not None:
            (real_len,) = self.dist.all_max(real_len)
        if self.tcfg.padding == "trim":  # pads to a multiple of length_multiple: few distinct shapes
            keep = math.ceil(real_len / self.tcfg.length_multiple) * self.tcfg.length_multiple
            tokens = torch.nn.functional.pad(tokens[:, :keep], (0, keep - min(keep, tokens.shape[1])))
        positions = torch.arange(tokens.shape[1] - 1)
        counted = positions >= (cb.prompt_lengths[:, None] - 1)  # input position i predicts token i + 1
        if self.tcfg.padding == "trim":
            counted &= positions < (cb.lengths[:, None] - 1)
        normalizer = None
        if self.dist is not None:
            (global_count,) = self.dist.all_sum(int(counted.sum()))
            normalizer = global_count / self.dist.world_size
        # CoT batches: tokens [B, L] ids, token_mask [B, L − 1] the next tokens the loss counts.
        return StepBatch(self._to_device(tokens), None, None, self._to_device(counted), 1, normalizer)

    def train_step(self, sb: StepBatch) -> dict:
        """One optimizer step; returns device tensors (no host sync)."""
        with nvtx_range("step"):
            out = self.forward_loss(sb)
            with nvtx_range("backward"):
                self.optimizer.zero_grad(set_to_none=True)
                out["total"].backward()
            with nvtx_range("optimizer"):
                grad_norm = None
                if self.tcfg.grad_clip is not None:
                    grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.tcfg.grad_clip, foreach=True)
                self.optimizer.step()
                self.scheduler.step()
        out["loss"] = out.pop("total").detach()
        out["grad_norm"] = grad_norm
        return out

    def _teacher_forced(self, sb: StepBatch) -> dict:
        """The method's step (docs/method.md §4.2): teacher states, corruption, one forward pass."""
        c = self.tcfg.corruption
        corrupt = c.enable and torch.rand((), generator=self.step_coin_rng).item() < c.step_prob
        with nvtx_range("teacher"):
            tb = self.backend.teacher_batch(
                sb.tokens,
                sb.labels,
                sb.depth,
                sb.num_iters,
                corrupt=corrupt,
                strategy=c.strategy,
                token_prob=c.token_prob,
                value_vocab_size=self.vocab.sizes[VALUE],
                generator=self.corruption_rng,
            )
        K, B, L, F = tb.inputs.shape
        mask = sb.token_mask.expand(K, B, L).reshape(K * B, L) if sb.token_mask is not None else None
        self.train_model.train()
        with nvtx_range("forward_loss"), self.autocast():
            out = self.backend.loss(
                self.train_model,
                tb.inputs.reshape(K * B, L, F),
                tb.targets.reshape(K * B, L, F),
                self.loss_weights,
                mask,
                sb.normalizer,
            )
        return {
            "total": out.total,
            "per_factor": out.per_factor,
            "correct": out.correct.view(K, B, L, F),
            "corrupted": tb.corrupted,
            "positions": K * B * L,
        }

    def _unrolled(self, sb: StepBatch) -> dict:
        """Continuous latent (docs/method.md §10.1–10.3): one unrolled forward from ``S_0``, supervised
        by the teacher states ``S_1 … S_K`` or by the solved sequence only."""
        if self.tcfg.supervision == "per_iteration":
            with nvtx_range("teacher"):
                _, targets = teacher_states(sb.tokens, sb.labels, sb.depth, sb.num_iters)
        else:
            targets = sb.labels.unsqueeze(0)  # the solved sequence: the only target
        self.train_model.train()
        with nvtx_range("forward_loss"), self.autocast():
            return unrolled_loss(
                self.train_model, self.backend, self.model, sb.tokens, targets, sb.num_iters,
                truncation=self.tcfg.bptt_truncation, weights=self.loss_weights,
                token_mask=sb.token_mask, normalizer=sb.normalizer,
            )  # fmt: skip

    def _next_token(self, sb: StepBatch) -> dict:
        """The CoT baseline (docs/method.md §10.4): next-token cross-entropy from ``<COT>`` on."""
        self.train_model.train()
        with nvtx_range("forward_loss"), self.autocast():
            return next_token_loss(self.train_model, sb.tokens, sb.token_mask, sb.normalizer)

    # --- the loop ---------------------------------------------------------------------------

    def fit(self, on_log: Optional[Callable[[dict], None]] = None) -> TrainState:
        tcfg = self.tcfg
        logger = RunLogger(self.out_dir, enabled=self.is_main)
        metrics = self._metrics()
        progress = self._progress_bar()
        start_wall, time_before = time.perf_counter(), self.state.train_time_s

        def clock() -> None:  # wall time of training so far, this run and the ones it resumes
            self.state.train_time_s = time_before + time.perf_counter() - start_wall

        interval_start, interval_positions = time.perf_counter(), 0
        batches = self.batches()
        try:
            while self.state.step < tcfg.steps:
                sb = self.prepare(next(batches))
                out = self.train_step(sb)
                self.state.step += 1
                self.state.tokens_seen += out["positions"]
                interval_positions += out["positions"]
                if self.cot:
                    metrics.update(out["loss"], out["correct"], sb.token_mask)
                else:
                    metrics.update(out["loss"], out["per_factor"], out["correct"], sb.token_mask, sb.depth, out["corrupted"])
                self.watch.update(self.state.step, out["loss"], out["per_factor"], out["grad_norm"])
                if progress is not None:
                    progress.update(1)

                step = self.state.step
                if step % tcfg.log_every == 0 or step == tcfg.steps:
                    elapsed = time.perf_counter() - interval_start
                    record = {
                        "step": step,
                        "lr": self.scheduler.get_last_lr()[0],
                        "tokens_per_s": interval_positions / max(elapsed, 1e-9),
                        **metrics.summary(),
                    }
                    if out["grad_norm"] is not None:
                        record["grad_norm"] = float(out["grad_norm"])
                    self._log(record, logger, on_log, progress)
                    self.stop_if_diverged()
                    interval_start, interval_positions = time.perf_counter(), 0
                if tcfg.eval_every and step % tcfg.eval_every == 0 and step < tcfg.steps:
                    self._log({"step": step, **self.validate()}, logger, on_log, progress)
                clock()
                if tcfg.ckpt_every and step % tcfg.ckpt_every == 0:
                    self.save_checkpoint()
                if tcfg.time_limit_s is not None and self.state.train_time_s >= tcfg.time_limit_s:
                    if progress is not None:
                        progress.write(f"time limit of {tcfg.time_limit_s:.0f}s reached at step {step}")
                    break
        except KeyboardInterrupt:
            clock()
            self.save_checkpoint(collective=False)  # the other processes may not be interrupted
            if self.is_main:
                print(f"\ninterrupted at step {self.state.step}; checkpoint saved to {self.checkpoint_path}")
            raise
        finally:
            if progress is not None:
                progress.close()
            logger.close()
        clock()
        self.save_checkpoint()
        return self.state

    def _metrics(self):
        if self.cot:
            return NextTokenMetrics(self.device)
        return TrainMetrics(self._max_iters(), self.device, final_state=self.tcfg.supervision == "final_state")

    def _max_iters(self) -> int:
        """Metrics are sized for the deepest graph the training data can hold (or the fixed count)."""
        if self.cfg.model.architecture == "feedforward":
            return 1
        return self.tcfg.iterations or training_max_depth(self.cfg.data) + 1 + self.tcfg.extra_iterations

    def stop_if_diverged(self, check_weights: bool = False, collective: bool = True) -> None:
        """Raise ``TrainingDiverged`` if a loss or gradient norm was not finite (or, with
        ``check_weights``, if a weight is not). One host sync; with several processes they agree
        first (``collective``), so all stop at the same step."""
        problem = self.watch.problem()
        if problem is None and check_weights and not weights_finite(self.model):
            problem = f"a weight is not finite after step {self.state.step} (a non-finite gradient)"
        if self.dist is not None and collective:
            (anyone,) = self.dist.all_max(int(problem is not None))
            if anyone and problem is None:
                problem = f"another process saw a non-finite loss or gradient by step {self.state.step}"
        if problem is not None:
            raise TrainingDiverged(
                f"training diverged: {problem}; the run stopped, and the last checkpoint ({self.checkpoint_path}) was left as it was"
            )

    def _progress_bar(self):
        if not self.show_progress:
            return None
        from tqdm.auto import tqdm

        return tqdm(total=self.tcfg.steps, initial=self.state.step, desc="train", unit="step", dynamic_ncols=True)

    def _log(self, record: dict, logger: RunLogger, on_log, progress) -> None:
        self.state.history.append(record)
        logger.log(record)
        if on_log is not None:
            on_log(record)
        if progress is not None:
            shown = {k: record[k] for k in ("loss", "tokens_per_s", "val/fully_solved") if k in record}
            if shown:
                progress.set_postfix(
                    {k.split("/")[-1]: (f"{v:.4f}" if k == "loss" else f"{v:,.0f}" if k == "tokens_per_s" else f"{v:.3f}") for k, v in shown.items()}
                )

    def validate(self) -> dict:
        """Closed-loop accuracy on held-out graphs (the in-training validation set)."""
        from .evaluate import make_evaluator, validation_dataset

        dataset = validation_dataset(self.cfg, self.vocab)
        if dataset is None:
            return {}
        result = make_evaluator(self.model, self.cfg, self.device, self.backend).evaluate(dataset)
        if self.cot or self.cfg.model.architecture != "recurrent":
            return {"val/fully_solved": result["fully_solved"], "val/value_acc": result["value_acc"]}
        record = {
            "val/fully_solved": result["fully_solved"],
            "val/fully_solved_nontrivial": result["fully_solved_nontrivial"],
            "val/value_acc": result["value_acc"],
        }
        # Which skill lags (docs/learning.md): teacher-forced VALUE accuracy by what each node needs.
        was_training = self.model.training
        self.model.eval()
        try:
            skills = node_skill_accuracy(lambda x: self.model(x.to(self.device))[VALUE], dataset, self.cfg.model.relpos_window)
        finally:
            self.model.train(was_training)
        record.update({f"val/tf/{k}": v for k, v in skills.items()})
        return record

    # --- checkpoints ------------------------------------------------------------------------

    @property
    def checkpoint_path(self) -> str:
        return os.path.join(self.out_dir, CHECKPOINT_NAME)

    def checkpoint(self) -> dict:
        return {
            "config": self.cfg.to_dict(),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "step": self.state.step,
            "tokens_seen": self.state.tokens_seen,
            "train_time_s": self.state.train_time_s,
            "rng": {
                **global_rng_state(),
                "step_coin": self.step_coin_rng.get_state(),
                "corruption": self.corruption_rng.get_state(),
            },
            "world_size": self.dist.world_size if self.dist is not None else 1,
        }

    def save_checkpoint(self, path: Optional[str] = None, collective: bool = True) -> None:
        """Write the checkpoint (rank 0), unless training has diverged: then nothing is written and
        ``TrainingDiverged`` is raised, so the last good checkpoint stays."""
        self.stop_if_diverged(check_weights=True, collective=collective)
        if not self.is_main:
            return
        save_checkpoint(self.checkpoint(), path or self.checkpoint_path)

    def init_weights(self, path: str) -> None:
        """Fine-tuning: the model's weights from checkpoint (or shipped model) ``path``; nothing else."""
        weights = load_checkpoint(path)["model"]
        try:
            self.model.load_state_dict(weights)
        except RuntimeError as exc:
            reason = " ".join(str(exc).split())[:400]
            raise ConfigError(f"train.init_from={path!r}: its weights do not fit this model config ({reason})") from None

    def load_checkpoint(self, path: str) -> None:
        ckpt = load_checkpoint(path)
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.state.step = ckpt["step"]
        self.state.tokens_seen = ckpt.get("tokens_seen", 0)
        self.state.train_time_s = ckpt.get("train_time_s", 0.0)
        rng = ckpt["rng"]
        self.step_coin_rng.set_state(rng["step_coin"])
        if self.rank == 0 and ckpt.get("world_size", 1) == (self.dist.world_size if self.dist else 1):
            restore_global_rng_state(rng)
            self.corruption_rng.set_state(rng["corruption"])
        else:
            # Only rank 0's generators are saved: other ranks (or a new world size) continue from
            # fresh seeds that depend on the step, so no two ranks or resumes repeat a stream.
            seed = self.tcfg.seed + 1_000_003 * self.rank + 7_919 * self.state.step
            seed_everything(seed)
            self.corruption_rng.manual_seed(seed * 7919 + 31)


class NonFiniteWatch:
    """Remembers, on the device, the first step whose loss or gradient norm was not finite.

    ``update`` only launches a few tiny device ops (no host sync); ``problem`` reads the record once.
    """

    def __init__(self, device: torch.device, factors: tuple = FACTORS):
        self.factors = tuple(factors)  # names of the per-factor losses (none for the CoT baseline)
        self.first_step = torch.zeros((), dtype=torch.int64, device=device)  # 0: nothing yet
        self.bad_losses = torch.zeros(1 + len(self.factors), dtype=torch.bool, device=device)  # total, per factor
        self.bad_grad = torch.zeros((), dtype=torch.bool, device=device)

    @torch.no_grad()
    def update(self, step: int, loss: torch.Tensor, per_factor: torch.Tensor, grad_norm: Optional[torch.Tensor]) -> None:
        bad_losses = ~torch.isfinite(torch.cat([loss.detach().float().reshape(1), per_factor.float()]))
        bad_grad = ~torch.isfinite(grad_norm) if grad_norm is not None else torch.zeros_like(self.bad_grad)
        first = (self.first_step == 0) & (bad_losses[0] | bad_grad)
        self.first_step = torch.where(first, step, self.first_step)
        self.bad_losses = torch.where(first, bad_losses, self.bad_losses)
        self.bad_grad = torch.where(first, bad_grad, self.bad_grad)

    def problem(self) -> Optional[str]:
        """None, or what was not finite at which step ("at step 12 the loss, loss/value became …")."""
        first_step, *flags = torch.cat([self.first_step.reshape(1), self.bad_losses, self.bad_grad.reshape(1)]).tolist()
        if first_step == 0:
            return None
        names = ["loss"] + [f"loss/{name.lower()}" for name in self.factors] + ["gradient norm"]
        return f"at step {first_step} the {', '.join(n for n, bad in zip(names, flags) if bad)} became NaN or infinite"


def weights_finite(model: torch.nn.Module) -> bool:
    """Whether every parameter is finite (one host sync)."""
    return bool(torch.stack([torch.isfinite(p).all() for p in model.parameters()]).all())
