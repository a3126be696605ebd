"""The authors' dataset files (docs/method.md §1.6), read and written exactly as their generator does.

A file is ``torch.save({'tokenized_dataset': labels, 'dataset_info': info[, 'spec': stats]})`` with
int64 tensors; the vocabulary comes from a ``vocab.json`` beside it. Loading checks that the file
and the vocabulary belong together, so a mismatch fails with one clear message, not deep in a model.
"""

from __future__ import annotations

import os

import torch

from ..data.dataset import SPEC_KEYS, GraphDataset
from ..data.vocab import FACTORS, SYN_VARIABLE, SYNTAX, VALUE, Vocab
from ..errors import DataFormatError, UnsafeFileError
from ..safe_loading import load_weights_only

LABELS_KEY = "tokenized_dataset"
INFO_KEY = "dataset_info"
SPEC_KEY = "spec"


def load_upstream_dataset(pt_path: str | os.PathLike, vocab_json_path: str | os.PathLike) -> GraphDataset:
    """Read one of the authors' ``.pt`` files (train, val or an evaluation set with ``spec``)."""
    vocab = Vocab.from_json(vocab_json_path)
    try:
        data = load_weights_only(pt_path)  # tensors and plain Python only: nothing in the file runs
    except UnsafeFileError:
        raise
    except Exception as exc:  # torch raises many types for a bad file; all mean the same to the user
        reason = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise DataFormatError(
            f"cannot read {pt_path} ({reason}); pass a .pt file written by the authors' generate_data.py "
            "or by `fastrecur gen-data`"
        ) from None
    if not isinstance(data, dict) or LABELS_KEY not in data or INFO_KEY not in data:
        found = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise DataFormatError(f"{pt_path}: expected a dict with '{LABELS_KEY}' and '{INFO_KEY}', found {found}")
    labels, info = data[LABELS_KEY], data[INFO_KEY]
    _check_tensors(pt_path, labels, info)
    _check_against_vocab(pt_path, labels, info, vocab, vocab_json_path)
    spec = data.get(SPEC_KEY)
    if spec is not None and (not isinstance(spec, dict) or set(spec) != set(SPEC_KEYS)):
        raise DataFormatError(f"{pt_path}: 'spec' must be a dict with keys {list(SPEC_KEYS)}")
    return GraphDataset(labels, info, vocab, spec)


def save_upstream_dataset(dataset: GraphDataset, pt_path: str | os.PathLike) -> None:
    """Write ``dataset`` as the authors do (``spec`` too when the dataset has one)."""
    payload = {LABELS_KEY: _standalone(dataset.labels), INFO_KEY: _standalone(dataset.info)}
    if dataset.spec is not None:
        payload[SPEC_KEY] = dict(dataset.spec)
    torch.save(payload, pt_path)


def _standalone(tensor: torch.Tensor) -> torch.Tensor:
    """A CPU tensor that owns exactly its own bytes: torch.save writes a view's whole storage."""
    tensor = tensor.cpu()
    whole = tensor.untyped_storage().nbytes() == tensor.numel() * tensor.element_size()
    return tensor if tensor.is_contiguous() and tensor.storage_offset() == 0 and whole else tensor.clone()


def _check_tensors(path: str | os.PathLike, labels: object, info: object) -> None:
    for key, value in ((LABELS_KEY, labels), (INFO_KEY, info)):
        if not isinstance(value, torch.Tensor) or value.dtype != torch.int64 or value.dim() != 3:
            shown = f"{value.dtype} {list(value.shape)}" if isinstance(value, torch.Tensor) else type(value).__name__
            raise DataFormatError(f"{path}: '{key}' must be an int64 tensor [N, L, C], found {shown}")
    if labels.shape[-1] != len(FACTORS):
        raise DataFormatError(f"{path}: '{LABELS_KEY}' has {labels.shape[-1]} factors, expected {len(FACTORS)}")
    if info.shape[:2] != labels.shape[:2] or info.shape[-1] < 2 or info.shape[-1] % 2:
        raise DataFormatError(
            f"{path}: '{INFO_KEY}' {list(info.shape)} must be [N, L, 2·max_fan_in] with N, L of "
            f"'{LABELS_KEY}' {list(labels.shape[:2])}"
        )


def _check_against_vocab(
    path: str | os.PathLike, labels: torch.Tensor, info: torch.Tensor, vocab: Vocab, vocab_path: str | os.PathLike
) -> None:
    if labels.numel():
        low, high = labels.amin(dim=(0, 1)), labels.amax(dim=(0, 1))
        for factor, (lo, hi, size) in enumerate(zip(low.tolist(), high.tolist(), vocab.sizes)):
            if lo < 0 or hi >= size:
                raise DataFormatError(
                    f"{path} does not match {vocab_path}: factor {FACTORS[factor]} holds indices "
                    f"{lo}…{hi} but the vocabulary has {size}; use the vocab.json written with this file"
                )
    # Exactly the RHS positions (variables holding a value) carry a depth.
    holds_value = (labels[..., SYNTAX] == SYN_VARIABLE) & (labels[..., VALUE] < vocab.mod_val)
    if not torch.equal(holds_value, info[..., 0] >= 0):
        raise DataFormatError(
            f"{path}: '{INFO_KEY}' channel 0 (depth) must be set exactly at the solved right-hand-side "
            f"variables of '{LABELS_KEY}'; the two tensors do not belong together"
        )
