"""Read and write the authors' model checkpoints.

Their checkpoints are Lightning ``.ckpt`` files: a ``torch.save``d dict whose ``state_dict`` maps
``model.<name>`` (or ``model._orig_mod.<name>`` when the model was ``torch.compile``d) to tensors,
with the parameter names of docs/method.md §7 — the same names as ``fastrecur.model``. The
vocabulary sizes come from a ``vocab.json`` (their tokenizer is a pickle of their own class).

Reading one runs nothing from it (``fastrecur.safe_loading``): besides tensors, Lightning pickles
the training run's hyper-parameters — objects of the authors' own classes (their configs, their
``DAGTeacherModel`` with bound methods of their tokenizer), which do not exist here. Those globals,
and any other outside Python's standard library, become inert placeholders, so the ``state_dict``
can be read out; a standard-library global other than a few plain data types (``os.system``,
``subprocess.*``, ``builtins.eval`` …) is refused with ``UnsafeFileError``.
"""

from __future__ import annotations

import os
from typing import Any, Optional

import torch

from ..data import FACTORS, Vocab
from ..errors import CheckpointMismatchError, DataFormatError, UnsafeFileError
from ..io import atomic_torch_save
from ..model import RecurrentTransformer
from ..safe_loading import NUMPY_ARRAYS, is_standard_library, load_weights_only, python3_name
from ..yaml_loading import read_yaml_mapping
from .configs import model_config_from_upstream, model_config_to_upstream

UPSTREAM_PREFIXES = ("model._orig_mod.", "model.")

# Standard-library globals that pickled hyper-parameters may hold as plain data; they are read as
# placeholders like the authors' own classes. ``builtins.getattr`` is how a bound method pickles.
_STDLIB_DATA_GLOBALS = frozenset(
    {
        "builtins.getattr",
        "builtins.object",
        "builtins.slice",
        "builtins.frozenset",
        "builtins.range",
        "builtins.dict",
        "builtins.list",
        "builtins.tuple",
        "builtins.str",
        "builtins.int",
        "builtins.float",
        "builtins.bool",
        "builtins.bytes",
        "copyreg._reconstructor",
        "collections.defaultdict",
        "collections.deque",
        "argparse.Namespace",
        "functools.partial",
        "pathlib.Path",
        "pathlib.PosixPath",
        "pathlib.WindowsPath",
        "pathlib.PurePosixPath",
        "pathlib.PureWindowsPath",
        "datetime.datetime",
        "datetime.date",
        "datetime.timedelta",
        "datetime.timezone",
    }
)


def placeholder_allowed(name: str) -> bool:
    """Whether the pickled global ``name`` may be read as an inert placeholder: anything outside
    Python's standard library (the authors' classes, Lightning's, numpy scalars …), plus the plain
    data types of ``_STDLIB_DATA_GLOBALS``."""
    return not is_standard_library(name) or python3_name(name) in _STDLIB_DATA_GLOBALS


def read_vocab_sizes(vocab_json_path: str) -> tuple[int, ...]:
    """The six factor vocabulary sizes from a ``vocab.json``."""
    if not os.path.isfile(vocab_json_path):
        raise DataFormatError(f"{vocab_json_path}: file not found")
    return Vocab.from_json(vocab_json_path).sizes


def load_checkpoint_file(path: str) -> dict:
    """Read an authors' (Lightning) checkpoint on the CPU without running anything from it.

    Tensors, plain Python and numpy arrays load as themselves; the other globals it names become
    placeholders (``placeholder_allowed``) or are refused (``UnsafeFileError``, naming the global).
    """
    if not os.path.isfile(path):
        raise CheckpointMismatchError(f"{path}: checkpoint file not found")
    try:
        return load_weights_only(path, allow=NUMPY_ARRAYS, stand_in=placeholder_allowed)
    except UnsafeFileError:
        raise
    except Exception as exc:
        reason = (str(exc).splitlines() or [""])[0]
        raise CheckpointMismatchError(f"{path}: not a torch checkpoint ({type(exc).__name__}: {reason})") from exc


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
    for f, name in enumerate(FACTORS[: len(model.config.vocab_sizes)]):
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
    model_config = read_yaml_mapping(model_config_yaml_path, DataFormatError)
    cfg = model_config_from_upstream(model_config, read_vocab_sizes(vocab_json_path))
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
    atomic_torch_save(payload, path)
