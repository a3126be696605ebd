"""Run configs: embedded defaults, the authors' YAML layout, overrides, and clear errors."""

import subprocess
import sys

import pytest

from fastrecur.cli import main
from fastrecur.config import load_config
from fastrecur.errors import ConfigError
from fastrecur.model import RecurrentTransformer

# The authors' our_method configs (model_config.yaml and train_config.yaml, verbatim keys) and the
# data_config.yaml of their model_interp example.
AUTHORS_MODEL = """attention_type: softmax
attn_pdrop: 0.1
causal_attn: true
hidden_size: 384
input_size: 256
layer_norm_eps: 1.0e-05
max_seq_len: 1024
num_heads: 16
num_layers: 4
pos_enc_type: DeBERTa
q_k_v_o_proj_enabled: [true, true, true, true]
relpos_embed_size: 256
relpos_q_k_enabled: [true, true]
relpos_shift: 0
relpos_win_size: 64
resid_pdrop: 0.1
use_bias: true
use_layer_norm: true
use_pos_layer_norm: true
use_readout_proj: true
"""
AUTHORS_TRAIN = """AdamW_optimizer_config: {betas: [0.9, 0.999], eps: 1.0e-08, lr: 0.001, weight_decay: 0.01}
batch_size: 32
compile: true
cosine_scheduler_config: {lr_decay_steps: 300000.0, min_lr: 1.0e-05, warmup_steps: 1000}
learning_rate: 0.001
lr_scheduler: none
matmul_precision: medium
max_epochs: 100
max_train_depth: 6
max_train_loop: 8
max_val_loop: 36
num_workers: 8
optimizer: AdamW
precision: 32
recorrection_args: {corruption_prob: 0.05, corruption_strategy: last, enable: true, tokenwise_corruption_prob: 0.5}
train_temperature: 1.0
use_fast_batch_forward: true
use_teacher_pred_for_next_loop: true
val_check_interval: 1.0
val_temperature: 0.0
"""
AUTHORS_DATA = """dag_config:
  data_file_name: train_32node_dag_ADD_data.pt
  fix_graph: false
  func_vocab: [ADD]
  max_comp_depth: 6
  max_depth: 6
  max_fan_in_deg: 3
  max_length: 256
  min_fan_in_deg: 1
  mod_val: 23
  num_leaf_nodes: 6
  num_nodes: 32
  num_samples: 50000
  shuffle_node_name: true
  verbose: false
data_dir: data
tokenizer_file_name: 32node_dag_ADD_tokenizer.pickle
val_dag_config:
  data_file_name: val_32node_dag_ADD_data.pt
  fix_graph: false
  func_vocab: [ADD]
  max_comp_depth: 36
  max_depth: 36
  max_fan_in_deg: 3
  max_length: 1024
  min_fan_in_deg: 1
  mod_val: 23
  num_leaf_nodes: 6
  num_nodes: 128
  num_samples: 1000
  shuffle_node_name: true
  verbose: false
"""


def test_embedded_paper_config_is_the_authors_setting():
    cfg = load_config("paper")
    assert RecurrentTransformer(cfg.model).num_parameters() == 8_033_447
    assert cfg.data.train["num_nodes"] == 32 and cfg.data.train["max_depth"] == 6 and cfg.data.train["mod_val"] == 23
    assert cfg.train.batch_size == 32 and cfg.train.lr == 1e-3 and cfg.train.weight_decay == 0.01
    c = cfg.train.corruption
    assert (c.enable, c.step_prob, c.token_prob, c.strategy) == (True, 0.05, 0.5, "last")
    assert cfg.train.loss_weights == (1, 1, 1, 1, 0, 0) and cfg.eval.policy == "depth+2"


def test_embedded_tiny_config_loads():
    cfg = load_config("tiny")
    assert cfg.model.hidden_size < 384 and cfg.train.steps > 0


def test_embedded_demo_config_keeps_the_demo_a_real_test():
    """What the demo must stay (issue 15): a task no easier than tiny's, swept to ≥ 3× its training size,
    with a name for every node of the largest test graph and the model's vocabulary sized to match."""
    tiny, demo = load_config("tiny"), load_config("demo")
    task, old = demo.data.train, tiny.data.train
    assert task["num_nodes"] >= old["num_nodes"] and task["max_depth"] >= old["max_depth"]
    assert task["mod_val"] >= old["mod_val"]
    # tiny's block (width, depth, window), with its own vocabulary and head count
    assert demo.model == tiny.model.replace(vocab_sizes=demo.model.vocab_sizes, num_heads=demo.model.num_heads)
    assert max(demo.sweep.sizes) >= 3 * task["num_nodes"] and 2 * task["num_nodes"] in demo.sweep.sizes
    assert task["num_vars"] >= max(demo.sweep.sizes) and demo.model.vocab_sizes[1] == task["num_vars"] + 1
    assert demo.data.curriculum and demo.train.extra_iterations == 1


def test_authors_config_directory(tmp_path):
    (tmp_path / "model_config.yaml").write_text(AUTHORS_MODEL)
    (tmp_path / "train_config.yaml").write_text(AUTHORS_TRAIN)
    (tmp_path / "data_config.yaml").write_text(AUTHORS_DATA)
    cfg = load_config(str(tmp_path))
    assert RecurrentTransformer(cfg.model).num_parameters() == 8_033_447
    assert cfg.train.steps == 100 * 1563  # 100 epochs of 50,000 graphs in batches of 32
    assert cfg.train.padding == "faithful" and cfg.train.corruption.step_prob == 0.05
    assert cfg.data.source == "stream"  # their data files are not there: graphs come from the stream
    assert cfg.data.train["num_vars"] == 128 and cfg.data.val["num_nodes"] == 128


def test_authors_config_with_cosine_schedule(tmp_path):
    (tmp_path / "model_config.yaml").write_text(AUTHORS_MODEL)
    (tmp_path / "train_config.yaml").write_text(AUTHORS_TRAIN.replace("lr_scheduler: none", "lr_scheduler: cosine"))
    (tmp_path / "data_config.yaml").write_text(AUTHORS_DATA)
    cfg = load_config(str(tmp_path))
    assert cfg.train.schedule == "cosine" and cfg.train.warmup_steps == 1000 and cfg.train.min_lr == 1e-5


def test_overrides_apply():
    cfg = load_config("tiny", ["train.steps=7", "model.hidden_size=32", "train.corruption.strategy=random"])
    assert cfg.train.steps == 7 and cfg.model.hidden_size == 32 and cfg.train.corruption.strategy == "random"


@pytest.mark.parametrize(
    "override,message",
    [
        ("train.padding=sideways", "train.padding='sideways' is invalid: allowed values are trim, faithful"),
        ("train.steps=0", "train.steps=0 is invalid: must be a positive integer"),
        ("train.lr=fast", "train.lr='fast' is invalid: expected a number"),
        ("train.corruption.strategy=first", "train.corruption.strategy='first' is invalid: allowed values are last, previous, random"),
        ("train.corruption.token_prob=1.5", "train.corruption.token_prob=1.5 is invalid: a probability in [0, 1]"),
        ("train.bogus=1", "train: unknown key(s) ['bogus']"),
        ("eval.policy=oracle", "eval.policy='oracle' is invalid"),
        ("eval.length_scaling=1", "eval.length_scaling=1 is invalid: 0 (off) or a sequence length >= 2"),
        ("model.num_heads=5", "model.num_heads=5 is invalid"),
        ("steps", "use section.key=value"),
    ],
)
def test_invalid_values_name_key_value_and_what_is_allowed(override, message):
    with pytest.raises(ConfigError) as err:
        load_config("tiny", [override])
    assert message in str(err.value)


def test_unknown_config(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(str(tmp_path / "nope.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1, 2")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(str(bad))


def test_cli_prints_one_line_errors(capsys):
    assert main(["train", "tiny", "train.padding=sideways"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("fastrecur train: error: train.padding='sideways' is invalid")


def test_cli_help_lists_every_command():
    out = subprocess.run([sys.executable, "-m", "fastrecur", "--help"], capture_output=True, text=True).stdout
    for command in ("gen-data", "train", "eval", "sweep", "demo"):
        assert command in out


def test_scientific_notation_is_a_number_in_overrides_and_files(tmp_path):
    cfg = load_config("tiny", ["train.lr=1e-3", "train.min_lr=5E-5", "train.eps=1.0e8"])
    assert (cfg.train.lr, cfg.train.min_lr, cfg.train.eps) == (0.001, 5e-5, 1e8)
    path = tmp_path / "run.yaml"
    path.write_text("train:\n  lr: 3e-4\n  betas: [0.9, 1e-1]\n  corruption: {step_prob: 5e-2}\n")
    cfg = load_config(str(path))
    assert cfg.train.lr == 3e-4 and cfg.train.betas == (0.9, 0.1) and cfg.train.corruption.step_prob == 0.05
    # Integers stay integers, quoted numbers stay strings.
    assert load_config("tiny", ["train.steps=10"]).train.steps == 10
    with pytest.raises(ConfigError, match="expected a number"):
        load_config("tiny", ["train.lr='1e-3'"])


def test_scientific_notation_in_the_authors_config_directory(tmp_path):
    (tmp_path / "model_config.yaml").write_text(AUTHORS_MODEL.replace("layer_norm_eps: 1.0e-05", "layer_norm_eps: 1e-5"))
    (tmp_path / "train_config.yaml").write_text(AUTHORS_TRAIN.replace("lr: 0.001", "lr: 1e-3"))
    (tmp_path / "data_config.yaml").write_text(AUTHORS_DATA)
    cfg = load_config(str(tmp_path))
    assert cfg.model.layer_norm_eps == 1e-5 and cfg.train.lr == 1e-3


def test_authors_nointerm_config_trains_the_continuous_latent(tmp_path):
    """Their train_config with nointerm: true is their model without the discrete bottleneck (BPTT);
    their nointerm path never corrupts, whatever recorrection_args says."""
    (tmp_path / "model_config.yaml").write_text(AUTHORS_MODEL)
    (tmp_path / "train_config.yaml").write_text(AUTHORS_TRAIN + "nointerm: true\n")
    (tmp_path / "data_config.yaml").write_text(AUTHORS_DATA)
    cfg = load_config(str(tmp_path))
    assert cfg.train.latent == "continuous" and cfg.train.supervision == "per_iteration"
    assert not cfg.train.corruption.enable and cfg.train.iterations is None
    (tmp_path / "train_config.yaml").write_text(AUTHORS_TRAIN.replace("max_train_loop: 8", "max_train_loop: 4") + "nointerm: true\n")
    with pytest.raises(ConfigError, match="max_train_loop=4"):
        load_config(str(tmp_path))


def test_a_config_file_can_start_from_another(tmp_path):
    (tmp_path / "base.yaml").write_text("base: tiny\ntrain: {steps: 11}\n")
    (tmp_path / "run.yaml").write_text("base: base.yaml\ntrain: {lr: 0.002}\ndata: {train: {mod_val: 5}}\n")
    cfg = load_config(str(tmp_path / "run.yaml"))
    tiny = load_config("tiny")
    assert (cfg.train.steps, cfg.train.lr, cfg.data.train["mod_val"]) == (11, 0.002, 5)
    assert cfg.data.train["num_nodes"] == tiny.data.train["num_nodes"] and cfg.model == tiny.model  # merged key by key
    assert load_config("tiny-compare").model == tiny.model
    (tmp_path / "loop.yaml").write_text("base: loop.yaml\n")
    with pytest.raises(ConfigError, match="leads back to itself"):
        load_config(str(tmp_path / "loop.yaml"))
