"""fastrecur's checkpoints: old files still load, new ones need no allow-list, and nothing in a file runs."""

import json
import os
import shutil
import subprocess

import pytest
import torch

from fastrecur.checkpoint import FORMAT, load_checkpoint, model_from_checkpoint
from fastrecur.cli import main
from fastrecur.config import RunConfig
from fastrecur.errors import UnsafeFileError
from fastrecur.train import Trainer

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
V1 = os.path.join(FIXTURES, "checkpoint_v1.pt")


# --- the first format (a file written by the previous version, tests/fixtures/README.md) ----------


def test_v1_checkpoint_loads_with_the_logits_it_gave_when_written():
    expected = torch.load(os.path.join(FIXTURES, "checkpoint_v1_expected.pt"), weights_only=True)
    model, cfg = model_from_checkpoint(V1)
    assert cfg.train.steps == 3 and cfg.model.hidden_size == 16
    with torch.no_grad():
        logits = model(expected["tokens"])
    for f, got in enumerate(logits):
        torch.testing.assert_close(got, expected[f"logits_{f}"], rtol=1e-6, atol=1e-6)


def test_v1_checkpoint_needs_numpy_which_is_allowed_for_that_load_only():
    with pytest.raises(Exception, match="numpy"):  # its RNG state holds numpy arrays
        torch.load(V1, weights_only=True)
    ckpt = load_checkpoint(V1)
    assert ckpt["format"] == "fastrecur-checkpoint-v1" and ckpt["step"] == 3
    leaked = [g for g in torch.serialization.get_safe_globals() if "numpy" in repr(g)]
    assert not leaked, f"the numpy allow-list leaked out of the load: {leaked}"
    with pytest.raises(Exception, match="numpy"):
        torch.load(V1, weights_only=True)


def test_resuming_a_v1_checkpoint_continues_exactly(tmp_path):
    """Every RNG state of the old file is restored: steps 4 and 5 repeat the recorded losses."""
    shutil.copy(V1, tmp_path / "checkpoint.pt")
    recorded = json.load(open(os.path.join(FIXTURES, "checkpoint_v1_expected.json")))["resumed_losses"]
    raw = load_checkpoint(V1)["config"]
    raw["train"].update(steps=5, out_dir=str(tmp_path))
    trainer = Trainer(RunConfig.from_dict(raw), resume=str(tmp_path / "checkpoint.pt"), show_progress=False)
    state = trainer.fit()
    losses = {str(r["step"]): r["loss"] for r in state.history if "loss" in r}
    assert losses == pytest.approx(recorded, rel=1e-6)


# --- the current format ---------------------------------------------------------------------------


def tiny_run(out_dir, steps=1) -> Trainer:
    raw = load_checkpoint(V1)["config"]
    raw["train"].update(steps=steps, out_dir=str(out_dir))
    trainer = Trainer(RunConfig.from_dict(raw), show_progress=False)
    trainer.fit()
    return trainer


def test_new_checkpoints_hold_only_tensors_and_plain_python(tmp_path):
    trainer = tiny_run(tmp_path)
    ckpt = torch.load(trainer.checkpoint_path, weights_only=True)  # no allow-list at all
    assert ckpt["format"] == FORMAT == "fastrecur-checkpoint-v2"
    assert torch.serialization.get_unsafe_globals_in_checkpoint(trainer.checkpoint_path) == []
    numpy_state = ckpt["rng"]["numpy"]
    assert numpy_state["key"].dtype == torch.int64 and numpy_state["key"].shape == (624,)


# --- files that would run code --------------------------------------------------------------------


class Payload:
    """Unpickling this object runs ``call(*args)`` (what a malicious checkpoint does)."""

    def __init__(self, call, *args):
        self.call, self.args = call, args

    def __reduce__(self):
        return self.call, self.args


def payloads(marker):
    return {
        "os.system": Payload(os.system, f"touch {marker}"),
        "subprocess.call": Payload(subprocess.call, ["touch", str(marker)]),
        "builtins.exec": Payload(exec, f"open({str(marker)!r}, 'w').close()"),
    }


@pytest.fixture(params=["os.system", "subprocess.call", "builtins.exec"])
def malicious_checkpoint(request, tmp_path):
    """A real fastrecur checkpoint with a payload added, and the marker file the payload would create."""
    marker = tmp_path / "payload_ran"
    trainer = tiny_run(tmp_path / "run")
    ckpt = torch.load(trainer.checkpoint_path, weights_only=True)
    ckpt["rng"]["python"] = payloads(marker)[request.param]
    path = tmp_path / "evil.pt"
    torch.save(ckpt, path)
    # The payload is real: an unrestricted unpickler runs it.
    torch.load(path, weights_only=False)
    assert marker.exists()
    marker.unlink()
    return str(path), marker


def test_eval_refuses_a_checkpoint_that_would_run_code(malicious_checkpoint, capsys):
    path, marker = malicious_checkpoint
    assert main(["eval", path, "--num-graphs", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("fastrecur eval: error: ")
    assert path in err and "refused to load" in err
    assert any(name in err for name in ("posix.system", "subprocess.call", "builtins.exec")), err
    assert not marker.exists()


def test_resume_and_load_refuse_it_too(malicious_checkpoint, tmp_path):
    path, marker = malicious_checkpoint
    with pytest.raises(UnsafeFileError, match="refused to load"):
        load_checkpoint(path)
    raw = load_checkpoint(V1)["config"]
    raw["train"]["out_dir"] = str(tmp_path / "resumed")
    with pytest.raises(UnsafeFileError):
        Trainer(RunConfig.from_dict(raw), resume=path, show_progress=False)
    assert not marker.exists()
