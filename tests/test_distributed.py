"""Data-parallel training (gloo, 2 CPU processes) through the real ``torchrun -m fastrecur train``."""

import os
import subprocess
import sys

import pytest
import torch
import yaml

from fastrecur.batches import training_batches
from fastrecur.config import RunConfig
from fastrecur.data import DagConfig
from fastrecur.checkpoint import load_checkpoint
from fastrecur.train import Trainer

GRAPHS = dict(num_nodes=8, num_leaf_nodes=3, max_depth=4, func_vocab=["ADD"], mod_val=5, num_vars=8, max_length=64)


def raw_config(out_dir, **train):
    return {
        "data": {"train": dict(GRAPHS)},
        "model": {
            "vocab_sizes": list(DagConfig(**GRAPHS).vocab().sizes),
            "hidden_size": 16,
            "num_layers": 1,
            "num_heads": 2,
            "relpos_window": 8,
            "relpos_embed_size": 8,
            "attn_dropout": 0.0,
            "resid_dropout": 0.0,
        },
        "train": {"batch_size": 8, "steps": 1, "log_every": 1, "ckpt_every": 0, "device": "cpu", "out_dir": str(out_dir),
                  "corruption": {"enable": False}, **train},
    }  # fmt: skip


def torchrun(config_path, *args, nproc=2):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", "-m", "fastrecur", "train", str(config_path), "--no-progress", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def one_process(raw, resume=None) -> dict:
    trainer = Trainer(RunConfig.from_dict(raw), resume=resume, show_progress=False)
    trainer.fit()
    return trainer.checkpoint()


# q_i · b_rk is the same for every key of row i, so softmax cancels it: this bias has an exactly zero
# gradient, and Adam turns the float noise in it into a full step. It is compared only via the
# gradient moments.
SOFTMAX_INVARIANT = ("attn.relpos_k_proj.bias",)


def assert_same_training_state(a: dict, b: dict):
    """Same gradients (Adam's first moment) and the same parameters."""
    moments_a = [s["exp_avg"] for s in a["optimizer"]["state"].values()]
    moments_b = [s["exp_avg"] for s in b["optimizer"]["state"].values()]
    assert len(moments_a) == len(moments_b) > 0
    for i, (x, y) in enumerate(zip(moments_a, moments_b)):
        torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-8, msg=lambda m: f"gradient moment of parameter {i}: {m}")
    for name, x in a["model"].items():
        if not name.endswith(SOFTMAX_INVARIANT):
            torch.testing.assert_close(x, b["model"][name], rtol=1e-5, atol=1e-6, msg=lambda m: f"{name}: {m}")


def test_ranks_take_disjoint_slices_of_the_global_batch():
    data = RunConfig.from_dict(raw_config("unused")).data
    whole = next(training_batches(data, 8, seed=3, start_step=5))
    parts = [next(training_batches(data, 8, seed=3, start_step=5, rank=r, world_size=2)) for r in range(2)]
    assert torch.equal(torch.cat([p.labels for p in parts]), whole.labels)
    rows = [{tuple(x.flatten().tolist()) for x in p.labels} for p in parts]
    assert not rows[0] & rows[1]


@pytest.mark.parametrize("padding,backend", [("trim", "reference"), ("faithful", "reference"), ("trim", "triton")])
def test_two_process_step_equals_one_process_step(tmp_path, padding, backend):
    # The triton backend runs its kernels in Triton's interpreter here (TRITON_INTERPRET=1 is inherited).
    settings = dict(padding=padding, backend=backend, length_multiple=8)
    raw = raw_config(tmp_path / "ddp", **settings)
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(raw))
    torchrun(path)
    ddp = load_checkpoint(str(tmp_path / "ddp" / "checkpoint.pt"))
    assert ddp["world_size"] == 2 and ddp["step"] == 1
    single = one_process(raw_config(tmp_path / "single", **settings))
    assert_same_training_state(single, ddp)


@pytest.mark.parametrize("arm", ["continuous", "cot"])
def test_the_other_arms_train_data_parallel_as_one_process(tmp_path, arm):
    """The unrolled continuous recurrence (BPTT) and next-token CoT training under DDP."""
    from fastrecur.data.cot import CoTVocab

    def config(out_dir):
        raw = raw_config(out_dir, length_multiple=8)
        if arm == "continuous":
            raw["train"].update(latent="continuous", bptt_truncation=2)
        else:
            raw["model"].update(architecture="cot", positions="rope", vocab_sizes=[CoTVocab.of(DagConfig(**GRAPHS).vocab()).size])
        return raw

    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(config(tmp_path / "ddp")))
    torchrun(path)
    ddp = load_checkpoint(str(tmp_path / "ddp" / "checkpoint.pt"))
    assert ddp["world_size"] == 2 and ddp["step"] == 1
    assert_same_training_state(one_process(config(tmp_path / "single")), ddp)


def test_two_process_run_resumes_from_a_one_process_checkpoint(tmp_path):
    first = Trainer(RunConfig.from_dict(raw_config(tmp_path / "run", steps=2)), show_progress=False)
    first.fit()
    raw = raw_config(tmp_path / "run", steps=4)
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(raw))
    torchrun(path, "--resume", first.checkpoint_path)
    resumed = load_checkpoint(first.checkpoint_path)
    assert resumed["step"] == 4 and resumed["world_size"] == 2
    straight = one_process(raw_config(tmp_path / "straight", steps=4))
    assert_same_training_state(straight, resumed)
