"""Run configuration: one YAML file with sections ``data``, ``model``, ``train``, ``eval``, ``sweep``.

A config is named by one of

* an embedded name: ``paper`` (the authors' defaults, docs/method.md §1.8, §2, §4.5, §5), ``tiny`` (a CPU
  demo) or ``tiny-compare`` (every arm of ``fastrecur compare`` on the CPU), shipped in ``fastrecur/configs/``;
* a path to such a YAML file (missing keys take the defaults of the dataclasses below); a file may
  start from another config with ``base: NAME_OR_PATH`` (an embedded name, or a path relative to
  the file) and change only what differs — sections are merged key by key;
* a directory holding the authors' ``model_config.yaml``, ``train_config.yaml`` and
  ``data_config.yaml`` (their layout, translated by ``fastrecur.compat.configs.from_upstream_dir``).

``overrides`` are ``section.key=value`` strings (values parsed as YAML), applied last, e.g.
``train.steps=200 model.hidden_size=64``. Every invalid value raises ``ConfigError`` naming the key,
the value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Optional

import yaml

from fastrecur_kernels.reference import CORRUPTION_STRATEGIES

from .compat.configs import from_upstream_dir
from .data.cot import COT_TYPES
from .data.schedule import training_schedule
from .errors import ConfigError
from .model import ModelConfig, is_length_scale_from
from .yaml_loading import load_yaml, read_yaml_mapping

EMBEDDED_CONFIGS = ("paper", "tiny", "demo", "tiny-compare", "pretrained-cpu", "pretrained-cpu-scaled")
PADDING_MODES = ("trim", "faithful")
EVAL_POLICIES = ("depth+2", "fixed", "fixed-point")
BACKENDS = ("auto", "reference", "triton")
PRECISIONS = ("auto", "fp32", "bf16")
SCHEDULES = ("none", "cosine")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
LATENTS = ("discrete", "continuous")
SUPERVISIONS = ("per_iteration", "final_state")


@dataclass
class DataSettings:
    """Where training and validation graphs come from."""

    source: str = "stream"  # stream: fresh seeded graphs; files: train_file (ours or the authors')
    train: dict = field(default_factory=dict)  # graph generator knobs (fastrecur.data.DagConfig)
    train_file: Optional[str] = None
    vocab_file: Optional[str] = None  # vocab.json for train_file (default: beside it)
    val: dict = field(default_factory=dict)  # in-training validation graphs (DagConfig knobs); {} = none
    val_file: Optional[str] = None
    val_samples: int = 256
    seed: Optional[int] = None  # data stream seed (default: train.seed)
    # Stream only (fastrecur/data/schedule.py): mix splits every batch among graph families,
    # [{share: 1, <overrides of train>}, …]; curriculum stages come first, [{until_step: N, <overrides>}, …].
    mix: list = field(default_factory=list)
    curriculum: list = field(default_factory=list)
    cot_type: str = "eq-val"  # model.architecture=cot: the authors' CoT serialization, eq-val or val

    def validate(self) -> None:
        _choice("data.source", self.source, ("stream", "files"))
        _choice("data.cot_type", self.cot_type, COT_TYPES)
        if self.source == "files" and not self.train_file:
            raise ConfigError("data.source='files' needs data.train_file (a .pt file, ours or the authors')")
        _positive("data.val_samples", self.val_samples)
        if self.source == "files" and (self.mix or self.curriculum):
            raise ConfigError("data.mix and data.curriculum draw fresh graphs: they need data.source='stream'")
        if self.source == "stream":
            self.schedule()  # every stage and component is checked here, not when training starts

    def schedule(self) -> list:
        """The stream's stages (``fastrecur.data.schedule.Stage``)."""
        return training_schedule(self.train, self.mix, self.curriculum)


@dataclass
class CorruptionSettings:
    """Error correction (docs/method.md §5): corrupt VALUE slots of teacher inputs on some steps."""

    enable: bool = True
    step_prob: float = 0.05  # per-step coin (authors: corruption_prob)
    token_prob: float = 0.5  # per-candidate coin (authors: tokenwise_corruption_prob)
    strategy: str = "last"  # last: depth == k (authors' code); previous: depth == k−1; random: depth ≤ k

    def validate(self) -> None:
        _probability("train.corruption.step_prob", self.step_prob)
        _probability("train.corruption.token_prob", self.token_prob)
        _choice("train.corruption.strategy", self.strategy, CORRUPTION_STRATEGIES)


@dataclass
class TrainSettings:
    batch_size: int = 32  # graphs per step (× iterations = sequences)
    steps: int = 156_300  # optimizer steps (authors: 100 epochs × 1,563 steps)
    lr: float = 1e-3
    betas: tuple = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.01  # AdamW on all parameters, as the authors
    schedule: str = "none"  # none (authors) | cosine (linear warmup, then cosine to min_lr)
    warmup_steps: int = 0
    min_lr: float = 1e-5
    grad_clip: Optional[float] = None  # max global grad norm; None = off (authors)
    loss_weights: tuple = (1.0, 1.0, 1.0, 1.0, 0.0, 0.0)
    padding: str = "trim"  # trim: drop all-pad columns, mean over real tokens; faithful: authors' step
    length_multiple: int = 32  # trim to a multiple of this, so few distinct shapes occur
    corruption: CorruptionSettings = field(default_factory=CorruptionSettings)
    precision: str = "auto"  # auto: bf16 autocast on CUDA, fp32 on CPU
    compile: bool = False  # torch.compile the model (the fused kernels stay custom ops: no graph breaks)
    compile_mode: str = "default"  # reduce-overhead: also capture CUDA graphs (static shapes via length_multiple)
    backend: str = "auto"  # auto: triton on CUDA, reference elsewhere
    device: str = "auto"
    seed: int = 0
    log_every: int = 50
    eval_every: int = 0  # in-training validation interval in steps (0 = only at the end)
    ckpt_every: int = 1000
    out_dir: str = "runs/run"
    time_limit_s: Optional[float] = None  # stop (and checkpoint) after this much training time
    # Fine-tuning: start from the weights of this checkpoint or shipped model (optimizer, schedule,
    # step and data stream start fresh). Its parameters must have this model's shapes; settings that
    # hold no weights (dropout, model.length_scaling) may differ. Ignored on --resume.
    init_from: Optional[str] = None
    # The paper's comparisons (docs/method.md §10). The method: discrete, per_iteration, D+1 iterations.
    latent: str = "discrete"  # discrete: decoded tokens fed back (the bottleneck); continuous: the hidden state
    supervision: str = "per_iteration"  # per_iteration: teacher states; final_state: the solved sequence only
    iterations: Optional[int] = None  # continuous latent: a fixed count (None: D+1 of each batch)
    # Per-iteration supervision past the solved state: K = D+1+extra teacher iterations per batch, so
    # the deepest graphs are also trained to hold their solved state (a fixed point) — what the
    # evaluator's depth+2 policy asks of them, and never shown with extra = 0 (docs/learning.md §2).
    extra_iterations: int = 0
    bptt_truncation: Optional[int] = None  # continuous latent: cut the gradient every this many iterations

    def validate(self) -> None:
        for key in ("batch_size", "steps", "length_multiple", "log_every"):
            _positive(f"train.{key}", getattr(self, key))
        for key in ("eval_every", "ckpt_every", "warmup_steps", "extra_iterations"):
            if int(getattr(self, key)) < 0:
                raise ConfigError(f"train.{key}={getattr(self, key)!r} is invalid: must be >= 0")
        if not self.lr > 0:
            raise ConfigError(f"train.lr={self.lr!r} is invalid: must be > 0")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ConfigError(f"train.betas={self.betas!r} is invalid: two numbers in [0, 1)")
        if len(self.loss_weights) != 6 or any(w < 0 for w in self.loss_weights):
            raise ConfigError(f"train.loss_weights={self.loss_weights!r} is invalid: six non-negative weights")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ConfigError(f"train.grad_clip={self.grad_clip!r} is invalid: a positive number or null")
        _choice("train.schedule", self.schedule, SCHEDULES)
        _choice("train.padding", self.padding, PADDING_MODES)
        _choice("train.precision", self.precision, PRECISIONS)
        _choice("train.backend", self.backend, BACKENDS)
        _choice("train.compile_mode", self.compile_mode, COMPILE_MODES)
        _choice("train.latent", self.latent, LATENTS)
        _choice("train.supervision", self.supervision, SUPERVISIONS)
        for key in ("iterations", "bptt_truncation"):
            value = getattr(self, key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ConfigError(f"train.{key}={value!r} is invalid: a positive integer or null")
        if self.init_from is not None and (not isinstance(self.init_from, str) or not self.init_from):
            raise ConfigError(f"train.init_from={self.init_from!r} is invalid: a checkpoint path, a shipped model's name or null")
        if self.device != "auto" and not (self.device == "cpu" or self.device.startswith("cuda")):
            raise ConfigError(f"train.device={self.device!r} is invalid: auto, cpu, cuda or cuda:N")
        self.corruption.validate()


@dataclass
class EvalSettings:
    policy: str = "depth+2"  # depth+2 (authors) | fixed | fixed-point
    extra_iters: int = 2  # policy depth+2: iterations = max graph depth of the set (from the inputs) + extra_iters
    fixed_iters: int = 8  # for policy fixed
    max_iters: int = 64  # cap for fixed-point
    batch_size: int = 64
    cuda_graphs: bool = False  # replay each iteration as a CUDA graph (GPU only; shapes bucketed)
    # Log-length attention scaling from L0 tokens on (0 = the model's own model.length_scaling, off in
    # the authors' model): query i's logits × max(1, ln(i+1)/ln L0). For a model trained without it,
    # set L0 to the longest training sequence (data.train.max_length): the model is unchanged on
    # training-length inputs (fastrecur_kernels.reference, docs/learning.md §5).
    length_scaling: int = 0

    def validate(self) -> None:
        _choice("eval.policy", self.policy, EVAL_POLICIES)
        if not is_length_scale_from(self.length_scaling):
            raise ConfigError(f"eval.length_scaling={self.length_scaling!r} is invalid: 0 (off) or a sequence length >= 2")
        if self.extra_iters < 0:
            raise ConfigError(f"eval.extra_iters={self.extra_iters!r} is invalid: must be >= 0")
        for key in ("fixed_iters", "max_iters", "batch_size"):
            _positive(f"eval.{key}", getattr(self, key))


@dataclass
class SweepSettings:
    sizes: list = field(default_factory=lambda: list(range(8, 129, 8)))
    num_graphs: int = 1024
    num_leaf_nodes: int = 6
    seed: int = 1234
    data_dir: Optional[str] = None  # read testdata_N{n}.pt from here instead of generating

    def validate(self) -> None:
        if not self.sizes or any(int(n) < 2 for n in self.sizes):
            raise ConfigError(f"sweep.sizes={self.sizes!r} is invalid: a non-empty list of graph sizes >= 2")
        _positive("sweep.num_graphs", self.num_graphs)


@dataclass
class CompareSettings:
    """``fastrecur compare`` (docs/method.md §10): the arms to run and how the baselines are built."""

    arms: list = field(default_factory=lambda: ["all"])  # arm names (fastrecur.compare.ARMS) or "all"
    baseline_positions: str = "rope"  # feedforward, e2e-recurrent and CoT baselines: rope (authors) or relative
    feedforward_layers: Optional[int] = None  # None: num_layers × the training maximum of iterations
    recurrent_repeats: Optional[int] = None  # fixed iterations of the unsupervised arms; None: the training maximum
    overrides: dict = field(default_factory=dict)  # arm name → list of section.key=value, applied last

    def validate(self) -> None:
        if not isinstance(self.arms, list) or not self.arms or not all(isinstance(a, str) for a in self.arms):
            raise ConfigError(f"compare.arms={self.arms!r} is invalid: a non-empty list of arm names, or [all]")
        _choice("compare.baseline_positions", self.baseline_positions, ("rope", "relative"))
        for key in ("feedforward_layers", "recurrent_repeats"):
            value = getattr(self, key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ConfigError(f"compare.{key}={value!r} is invalid: a positive integer or null")
        if not isinstance(self.overrides, dict) or not all(isinstance(v, list) for v in self.overrides.values()):
            raise ConfigError(f"compare.overrides={self.overrides!r} is invalid: a mapping arm → list of section.key=value")


@dataclass
class RunConfig:
    data: DataSettings = field(default_factory=DataSettings)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainSettings = field(default_factory=TrainSettings)
    eval: EvalSettings = field(default_factory=EvalSettings)
    sweep: SweepSettings = field(default_factory=SweepSettings)
    compare: CompareSettings = field(default_factory=CompareSettings)
    name: str = "run"

    def validate(self) -> "RunConfig":
        for part in (self.data, self.train, self.eval, self.sweep, self.compare):
            part.validate()
        _check_arm_switches(self.model.architecture, self.train)
        return self

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "data": dataclasses.asdict(self.data),
            "model": self.model.to_dict(),
            "train": _plain(dataclasses.asdict(self.train)),
            "eval": dataclasses.asdict(self.eval),
            "sweep": dataclasses.asdict(self.sweep),
            "compare": dataclasses.asdict(self.compare),
        }

    @classmethod
    def from_dict(cls, d: dict) -> "RunConfig":
        d = dict(d or {})
        _check_keys("config", d, {"name", "data", "model", "train", "eval", "sweep", "compare"})
        train = dict(d.get("train") or {})
        corruption = _build(CorruptionSettings, train.pop("corruption", None) or {}, "train.corruption")
        model = dict(d.get("model") or {})
        try:
            model_cfg = ModelConfig.from_dict(model)
        except TypeError as exc:
            raise ConfigError(f"model: {exc}") from exc
        return cls(
            name=str(d.get("name", "run")),
            data=_build(DataSettings, d.get("data") or {}, "data"),
            model=model_cfg,
            train=_build(TrainSettings, {**train, "corruption": corruption}, "train"),
            eval=_build(EvalSettings, d.get("eval") or {}, "eval"),
            sweep=_build(SweepSettings, d.get("sweep") or {}, "sweep"),
            compare=_build(CompareSettings, d.get("compare") or {}, "compare"),
        ).validate()


def load_config(name_or_path: str, overrides: Optional[list[str]] = None) -> RunConfig:
    """Load an embedded config, a YAML file or an authors' config directory, then apply overrides."""
    raw = load_raw_config(name_or_path)
    for item in overrides or []:
        apply_override(raw, item)
    return RunConfig.from_dict(raw)


def load_raw_config(name_or_path: str, _seen: tuple = ()) -> dict:
    """The raw dict of a config (before validation), with its ``base:`` chain merged in."""
    if name_or_path in EMBEDDED_CONFIGS:
        raw = load_yaml(resources.files("fastrecur.configs").joinpath(f"{name_or_path}.yaml").read_text())
        folder = None  # an embedded config's base is embedded too
    elif os.path.isdir(name_or_path):
        return from_upstream_dir(name_or_path)
    elif os.path.isfile(name_or_path):
        raw = read_yaml_mapping(name_or_path)
        folder = os.path.dirname(os.path.abspath(name_or_path))
    else:
        raise ConfigError(
            f"config {name_or_path!r} not found: give an embedded name ({', '.join(EMBEDDED_CONFIGS)}), "
            "a YAML file, or a directory with the authors' model/train/data_config.yaml"
        )
    base = raw.pop("base", None)
    if base is None:
        return raw
    if not isinstance(base, str):
        raise ConfigError(f"{name_or_path}: base={base!r} is invalid: an embedded config name or a YAML path")
    if base not in EMBEDDED_CONFIGS and folder is not None:
        base = os.path.join(folder, base)
    if base in _seen:
        raise ConfigError(f"{name_or_path}: base {base!r} leads back to itself")
    return _merge(load_raw_config(base, (*_seen, name_or_path)), raw)


def _merge(base: dict, changes: dict) -> dict:
    """``base`` with ``changes`` laid over it, mappings merged key by key (lists and values replaced)."""
    out = dict(base)
    for key, value in changes.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def apply_override(raw: dict, item: str) -> None:
    """Apply ``section.key[.sub]=value`` to the raw config dict (value parsed as YAML, so ``1e-3`` is a number)."""
    if "=" not in item:
        raise ConfigError(f"override {item!r} is invalid: use section.key=value, e.g. train.steps=100")
    path, value = item.split("=", 1)
    keys = path.strip().split(".")
    node = raw
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {item!r}: {key!r} is not a section")
    try:
        node[keys[-1]] = load_yaml(value)
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {item!r}: value is not valid YAML") from exc


# --- helpers --------------------------------------------------------------------------------------


def _check_arm_switches(architecture: str, t: TrainSettings) -> None:
    """The combinations of the comparison switches that mean something (docs/method.md §10)."""
    continuous = t.latent == "continuous"
    if architecture == "cot":
        changed = [k for k, v in (("latent", continuous), ("supervision", t.supervision != "per_iteration"),
                                  ("iterations", t.iterations is not None), ("bptt_truncation", t.bptt_truncation is not None)) if v]  # fmt: skip
        if changed:
            raise ConfigError(f"train.{changed[0]} does not apply to model.architecture='cot' (next-token training): leave it at its default")
    if architecture == "feedforward" and not (continuous and t.supervision == "final_state"):
        raise ConfigError("model.architecture='feedforward' is supervised on its one output: set train.latent=continuous and train.supervision=final_state")
    if architecture == "feedforward" and t.iterations not in (None, 1):
        raise ConfigError(f"train.iterations={t.iterations} is invalid for model.architecture='feedforward': it runs once (1 or null)")
    if t.supervision == "final_state" and not continuous:
        raise ConfigError("train.supervision='final_state' needs train.latent=continuous: no gradient crosses the discrete bottleneck")
    for key in ("iterations", "bptt_truncation"):
        if getattr(t, key) is not None and not continuous:
            raise ConfigError(f"train.{key} needs train.latent=continuous (the discrete method runs D+1 teacher-forced iterations)")
    if t.corruption.enable and (continuous or architecture != "recurrent"):
        raise ConfigError(
            "train.corruption.enable=true corrupts teacher-forced inputs, which only the discrete recurrent method has: set train.corruption.enable=false"
        )



def _check_keys(where: str, d: dict, allowed) -> None:
    unknown = sorted(set(d) - set(allowed))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(allowed)}")


def _build(cls, d: dict, where: str):
    if not isinstance(d, dict):
        raise ConfigError(f"{where} must be a mapping, got {d!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    _check_keys(where, d, fields)
    values = {}
    for key, value in d.items():
        default = fields[key].default if fields[key].default is not dataclasses.MISSING else None
        values[key] = _coerce(f"{where}.{key}", value, default)
    return cls(**values)


def _coerce(key: str, value: Any, default: Any) -> Any:
    """Check a YAML value against the type of its default (ints for floats are fine)."""
    if value is None or default is None or dataclasses.is_dataclass(value):
        return value
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{key}={value!r} is invalid: expected true or false")
    elif isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}={value!r} is invalid: expected an integer")
    elif isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}={value!r} is invalid: expected a number")
        return float(value)
    elif isinstance(default, str):
        if not isinstance(value, str):
            raise ConfigError(f"{key}={value!r} is invalid: expected a string")
    elif isinstance(default, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}={value!r} is invalid: expected a list")
        return tuple(value)
    return value


def _choice(key: str, value: Any, allowed) -> None:
    if value not in allowed:
        raise ConfigError(f"{key}={value!r} is invalid: allowed values are {', '.join(map(str, allowed))}")


def _positive(key: str, value: Any) -> None:
    if int(value) < 1:
        raise ConfigError(f"{key}={value!r} is invalid: must be a positive integer")


def _probability(key: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"{key}={value!r} is invalid: a probability in [0, 1]")


def _plain(d: Any) -> Any:
    """Tuples → lists, recursively (for YAML/JSON output)."""
    if isinstance(d, dict):
        return {k: _plain(v) for k, v in d.items()}
    if isinstance(d, (list, tuple)):
        return [_plain(v) for v in d]
    return d
