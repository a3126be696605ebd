"""The paper's comparison (docs/method.md §10): every arm trained on the same data stream with the same
budget, swept over the same out-of-distribution sizes, reported in one table and one plot.

An arm is a config of ``train`` — a few switches laid over the base config — and one or more
evaluations of the model it trains (``ARMS``). ``run_compare`` works in ``out_dir``:

* ``<arm>/`` — the arm's run (checkpoint, metrics), ``done.json`` once it has finished training,
  and ``eval_<label>.json`` per evaluation. An interrupted run resumes from its checkpoint; a
  finished arm is not retrained and a finished evaluation not repeated. A folder holding a run of
  a different config is refused, not overwritten.
* ``compare.md`` (tables: arm × size of % completely solved, node-value accuracy, iterations or
  generated tokens; training time and parameters), ``compare.csv`` (one row per arm, evaluation
  and size) and ``compare_accuracy_vs_size.png`` (one line per arm, the training size marked).
"""

from __future__ import annotations

import csv
import json
import os
import resource
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import torch

from .backends import resolve_backend
from .batches import training_max_depth, training_vocab
from .checkpoint import CHECKPOINT_NAME, load_checkpoint, model_from_checkpoint
from .config import RunConfig, apply_override
from .data.cot import CoTVocab
from .errors import ConfigError
from .evaluate import percent
from .io import atomic_write_text
from .sweep import run_sweep, steps_per_graph


@dataclass(frozen=True)
class Evaluation:
    label: str  # e.g. "depth+2", "fixed 3"
    overrides: tuple[str, ...] = ()  # eval.* settings


@dataclass(frozen=True)
class Arm:
    name: str
    description: str
    switches: Callable[[RunConfig], list[str]] = lambda cfg: []  # section.key=value over the base config
    evaluations: Callable[[RunConfig], list[Evaluation]] = lambda cfg: [Evaluation(cfg.eval.policy)]
    model_of: Optional[str] = None  # evaluate this other arm's trained model instead of training


def max_iterations(cfg: RunConfig) -> int:
    """The training maximum of iterations (deepest training graph + 1), or ``compare.recurrent_repeats``."""
    return cfg.compare.recurrent_repeats or training_max_depth(cfg.data) + 1


def _fixed(cfg: RunConfig) -> Evaluation:
    T = max_iterations(cfg)
    return Evaluation(f"fixed {T}", ("eval.policy=fixed", f"eval.fixed_iters={T}"))


_NO_CORRUPTION = "train.corruption.enable=false"
_CONTINUOUS = "train.latent=continuous"


def _unsupervised(cfg: RunConfig) -> list[str]:
    """Recurrent, continuous, supervised on the solved state only, a fixed count of iterations."""
    return [_CONTINUOUS, "train.supervision=final_state", f"train.iterations={max_iterations(cfg)}", _NO_CORRUPTION]


def _baseline_positions(cfg: RunConfig) -> str:
    return f"model.positions={cfg.compare.baseline_positions}"


def _cot(cot_type: str) -> Callable[[RunConfig], list[str]]:
    def switches(cfg: RunConfig) -> list[str]:
        size = CoTVocab.of(training_vocab(cfg.data)).size
        return ["model.architecture=cot", f"model.vocab_sizes=[{size}]", f"data.cot_type={cot_type}", _baseline_positions(cfg), _NO_CORRUPTION]

    return switches


ARMS = {
    arm.name: arm
    for arm in [
        Arm("full", "the method: discrete bottleneck, per-iteration supervision, error correction, input-adaptive iterations"),
        Arm("no-error-correction", "the method without error correction", lambda cfg: [_NO_CORRUPTION]),
        Arm(
            "no-bottleneck",
            "continuous latent recurrence (the hidden state fed back), per-iteration supervision, BPTT (\"nointerm\")",
            lambda cfg: [_CONTINUOUS, _NO_CORRUPTION],
        ),
        Arm(
            "no-algorithmic-supervision",
            "recurrent, continuous, supervised on the solved state only, fixed iterations in training",
            _unsupervised,
            lambda cfg: [_fixed(cfg), Evaluation(f"{cfg.eval.policy}, input-adaptive")],
        ),
        Arm("no-adaptive-recurrence", "the full method's model, evaluated at the training maximum of iterations", evaluations=lambda cfg: [_fixed(cfg)], model_of="full"),
        Arm(
            "feedforward",
            "feedforward Transformer: one pass, no weight sharing across depth, final-state loss",
            lambda cfg: [
                "model.architecture=feedforward", _CONTINUOUS, "train.supervision=final_state", _NO_CORRUPTION, _baseline_positions(cfg),
                f"model.num_layers={cfg.compare.feedforward_layers or cfg.model.num_layers * max_iterations(cfg)}",
            ],  # fmt: skip
            lambda cfg: [Evaluation("once")],
        ),
        Arm(
            "e2e-recurrent",
            "end-to-end recurrent Transformer: weight-tied, fixed repeats, final-state loss",
            lambda cfg: _unsupervised(cfg) + [_baseline_positions(cfg)],
            lambda cfg: [_fixed(cfg)],
        ),
        Arm("cot-eq-val", "chain-of-thought Transformer, CoT steps x_r = <lhs> = value", _cot("eq-val"), lambda cfg: [Evaluation("greedy")]),
        Arm("cot-val", "chain-of-thought Transformer, CoT steps x_r = value", _cot("val"), lambda cfg: [Evaluation("greedy")]),
    ]
}


def select_arms(names: list[str]) -> list[Arm]:
    """``names`` (or ``all``) → arms in the order of ``ARMS``; an arm evaluated on another's model
    brings that one along."""
    wanted = set(ARMS) if "all" in names else set(names)
    unknown = sorted(wanted - set(ARMS))
    if unknown:
        raise ConfigError(f"unknown arm(s) {unknown}: choose from all, {', '.join(ARMS)}")
    wanted |= {ARMS[n].model_of for n in wanted if ARMS[n].model_of}
    return [arm for name, arm in ARMS.items() if name in wanted]


def arm_config(base: RunConfig, arm: Arm, out_dir: str) -> RunConfig:
    """The base config with the arm's switches, then ``compare.overrides[arm]``, training into ``out_dir/arm``."""
    extra = base.compare.overrides.get(arm.name, [])
    try:
        return _with_overrides(base, [*arm.switches(base), *extra, f"train.out_dir={os.path.join(out_dir, arm.name)}"])
    except ConfigError as exc:
        raise ConfigError(f"arm {arm.name}: {exc}") from None


@dataclass
class ArmResult:
    arm: Arm
    evaluation: Evaluation
    parameters: int
    steps: int
    train_time_s: float
    train_cpu_s: Optional[float]
    sweep: list[dict] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.arm.name} ({self.evaluation.label})"


def _print(message: str) -> None:
    print(message, flush=True)


def run_compare(base: RunConfig, out_dir: str, device: torch.device, show_progress: bool = True, log=_print) -> list[ArmResult]:
    """Train (or resume, or reuse) every arm of ``base.compare.arms`` and sweep each evaluation."""
    arms = select_arms(base.compare.arms)
    configs = {arm.name: arm_config(base, arm, out_dir) for arm in arms}  # every arm's config checked first
    results = []
    for arm in arms:
        trained = arm.model_of or arm.name
        cfg = configs[trained]
        done = _train(cfg, os.path.join(out_dir, trained), device, show_progress, log)
        model = None
        for evaluation in arm.evaluations(configs[arm.name]):
            eval_cfg = _with_overrides(cfg, evaluation.overrides)
            path = os.path.join(out_dir, arm.name, f"eval_{_file_label(evaluation.label)}.json")
            sweep = _load_sweep(path, eval_cfg)
            if sweep is None:
                if model is None:
                    model, _ = model_from_checkpoint(os.path.join(out_dir, trained, CHECKPOINT_NAME), device)
                log(f"[{arm.name}] sweeping {evaluation.label} over n = {', '.join(map(str, eval_cfg.sweep.sizes))}")
                sweep = run_sweep(model, eval_cfg, device, resolve_backend(eval_cfg.train.backend, device), show_progress)
                atomic_write_text(path, json.dumps({"key": _sweep_key(eval_cfg), "results": sweep}, indent=1))
            results.append(ArmResult(arm, evaluation, done["parameters"], done["step"], done["train_time_s"], done.get("train_cpu_s"), sweep))
    return results


def _with_overrides(cfg: RunConfig, overrides) -> RunConfig:
    raw = cfg.to_dict()
    for item in overrides:
        apply_override(raw, item)
    return RunConfig.from_dict(raw)


def _train(cfg: RunConfig, run_dir: str, device: torch.device, show_progress: bool, log) -> dict:
    """Train the arm whose run lives in ``run_dir`` unless it has finished; returns its ``done.json``."""
    from .train import Trainer

    done_path = os.path.join(run_dir, "done.json")
    checkpoint = os.path.join(run_dir, CHECKPOINT_NAME)
    name = os.path.basename(run_dir)
    if os.path.isfile(checkpoint):
        _check_same_config(load_checkpoint(checkpoint)["config"], cfg.to_dict(), run_dir)
        if os.path.isfile(done_path):
            log(f"[{name}] already trained: {done_path}")
            with open(done_path) as f:
                return json.load(f)
    cfg.train.device = str(device)
    resume = checkpoint if os.path.isfile(checkpoint) else None
    trainer = Trainer(cfg, resume=resume, show_progress=show_progress)
    log(f"[{name}] {'resuming at step ' + str(trainer.state.step) if resume else 'training'}: {trainer.model.num_parameters():,} parameters")
    cpu_path = os.path.join(run_dir, "train_cpu_s.json")
    cpu_before = _cpu_seconds()
    try:
        state = trainer.fit()
    finally:  # CPU time of every session, interrupted ones included
        spent = _cpu_seconds() - cpu_before + (_read_json(cpu_path) or {}).get("train_cpu_s", 0.0)
        atomic_write_text(cpu_path, json.dumps({"train_cpu_s": spent}))
    done = {"step": state.step, "train_time_s": state.train_time_s, "train_cpu_s": spent, "parameters": trainer.model.num_parameters()}
    atomic_write_text(done_path, json.dumps(done, indent=1))
    log(f"[{name}] trained {state.step} steps in {state.train_time_s:.0f}s")
    return done


def _check_same_config(saved: dict, wanted: dict, run_dir: str) -> None:
    """Refuse to continue a run of another training config (evaluation, sweep and compare settings,
    the device and the folder's path may differ)."""
    saved, wanted = _flat(saved), _flat(wanted)
    training = [k for k in set(saved) | set(wanted) if k.split(".")[0] in ("data", "model", "train") and k not in ("train.device", "train.out_dir")]
    for key in sorted(training):
        if json.dumps(saved.get(key), sort_keys=True) != json.dumps(wanted.get(key), sort_keys=True):
            raise ConfigError(
                f"{run_dir} holds a run of another config ({key}: {saved.get(key)!r} there, {wanted.get(key)!r} now): "
                "use another --out, or delete that folder"
            )


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in d.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _sweep_key(cfg: RunConfig) -> dict:
    """What a stored sweep depends on besides the trained model."""
    return {"eval": cfg.to_dict()["eval"], "sweep": cfg.to_dict()["sweep"]}


def _load_sweep(path: str, cfg: RunConfig) -> Optional[list[dict]]:
    stored = _read_json(path)
    if stored is None or json.dumps(stored.get("key"), sort_keys=True) != json.dumps(_sweep_key(cfg), sort_keys=True):
        return None
    return stored["results"]


def _read_json(path: str) -> Optional[dict]:
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def _file_label(label: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in label).strip("_")


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# --- reports ----------------------------------------------------------------------------------


def write_compare(results: list[ArmResult], base: RunConfig, out_dir: str, wall_s: float, cpu_s: float) -> dict[str, str]:
    """``compare.md``, ``compare.csv`` and the plot; returns their paths."""
    paths = {
        "md": os.path.join(out_dir, "compare.md"),
        "csv": os.path.join(out_dir, "compare.csv"),
        "plot": os.path.join(out_dir, "compare_accuracy_vs_size.png"),
    }
    train_size = base.data.train.get("num_nodes") if base.data.source == "stream" else None
    atomic_write_text(paths["md"], format_compare(results, base, train_size, wall_s, cpu_s))
    rows = [
        {
            "arm": r.arm.name,
            "evaluation": r.evaluation.label,
            "num_nodes": s["num_nodes"],
            "num_graphs": s["num_graphs"],
            "fully_solved": s["fully_solved"],
            "value_acc": s["value_acc"],
            "iterations_mean": s["iterations"]["mean"] if "iterations" in s else "",
            "generated_tokens_mean": s["generated_tokens"]["mean"] if "generated_tokens" in s else "",
            "train_steps": r.steps,
            "train_time_s": round(r.train_time_s, 1),
            "parameters": r.parameters,
        }
        for r in results
        for s in r.sweep
    ]
    with open(paths["csv"], "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    plot_compare(results, train_size, paths["plot"])
    return paths


def format_compare(results: list[ArmResult], base: RunConfig, train_size: Optional[int], wall_s: float, cpu_s: float) -> str:
    sizes = [s["num_nodes"] for s in results[0].sweep]
    head = [f"n={n}" + (" (train)" if n == train_size else "") for n in sizes]
    trained = base.data.train
    lines = [
        f"# fastrecur compare: {base.name}",
        "",
        f"Trained on {trained.get('num_nodes', '?')}-node graphs (depth ≤ {trained.get('max_depth', '?')}), "
        f"{base.train.batch_size} graphs per step, budget {base.train.steps} steps"
        + (f" or {base.train.time_limit_s:.0f} s" if base.train.time_limit_s else "")
        + f", seed {base.train.seed}, the same data stream for every arm; swept over n = {', '.join(map(str, sizes))} "
        f"({base.sweep.num_graphs} graphs per size, unbounded depth). This command: {wall_s:.0f} s wall, {cpu_s:.0f} s CPU.",
        "",
    ]

    def table(title: str, cell: Callable[[dict], str], with_training: bool) -> None:
        extra = ["parameters", "steps", "train time (wall / CPU)"] if with_training else []
        lines.extend([f"## {title}", "", "| arm | evaluation | " + " | ".join(extra + head) + " |", "|---|---|" + "---:|" * (len(extra) + len(head))])
        for r in results:
            cpu = f"{r.train_cpu_s:.0f} s" if r.train_cpu_s is not None else "–"
            training = [f"{r.parameters:,}", str(r.steps), f"{r.train_time_s:.0f} s / {cpu}"] if with_training else []
            if with_training and r.arm.model_of:
                training[1:] = [f"{r.arm.model_of}'s model", ""]
            lines.append(f"| {r.arm.name} | {r.evaluation.label} | " + " | ".join(training + [cell(s) for s in r.sweep]) + " |")
        lines.append("")

    table("% completely solved", lambda s: percent(s["fully_solved"]), True)
    table("node-value accuracy", lambda s: percent(s["value_acc"]), False)
    table("iterations (recurrent arms) or generated tokens (CoT), mean per graph", lambda s: f"{steps_per_graph(s):.1f}", False)
    lines += ["## arms", ""] + [f"* `{a.name}` — {a.description}" for a in dict.fromkeys(r.arm for r in results)] + [""]
    return "\n".join(lines)


def plot_compare(results: list[ArmResult], train_size: Optional[int], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 4.5))
    markers = "osD^vP*X<>"
    for i, r in enumerate(results):
        sizes = [s["num_nodes"] for s in r.sweep]
        ax.plot(sizes, [100 * s["fully_solved"] for s in r.sweep], marker=markers[i % len(markers)], label=r.label)
    if train_size is not None:
        ax.axvline(train_size, color="gray", ls=":", label=f"training size ({train_size})")
    ax.set(xlabel="graph size n (nodes)", ylabel="% completely solved", ylim=(-2, 102), title="OOD generalization by arm")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def timed(fn: Callable[[], list[ArmResult]]) -> tuple[list[ArmResult], float, float]:
    """``fn()`` with the wall and CPU seconds it took (this process)."""
    wall, cpu = time.perf_counter(), _cpu_seconds()
    out = fn()
    return out, time.perf_counter() - wall, _cpu_seconds() - cpu
