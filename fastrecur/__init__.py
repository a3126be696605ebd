"""fastrecur: fast, faithful recursive latent-space reasoning Transformers (Altabaa et al., 2025).

The main entry points:

* ``fastrecur.model.RecurrentTransformer`` / ``ModelConfig`` — the recurrent block (docs/method.md §2);
* ``fastrecur.rollout(model, tokens, num_loops)`` — the discrete recurrence (docs/method.md §3);
* ``fastrecur.data`` — graphs, the factored tokenizer, datasets and teacher states (docs/method.md §1, §4.1);
* ``fastrecur.compat`` — the authors' dataset files, checkpoints and config files;
* ``fastrecur.train.Trainer``, ``fastrecur.evaluate.Evaluator`` — training and evaluation;
* ``fastrecur.checkpoint`` — fastrecur's checkpoints (``load_checkpoint``, ``model_from_checkpoint``);
* ``fastrecur.backends`` — the ``reference`` and ``triton`` backends (``resolve_backend``);
* ``fastrecur.compare`` — the paper's comparison: every variant and baseline (docs/method.md §10) trained
  and swept alike (``fastrecur compare``); ``fastrecur.model.CoTTransformer`` and
  ``fastrecur.generation.greedy_generate`` for the chain-of-thought baseline;
* the ``fastrecur`` command line (``python -m fastrecur --help``).
"""

from .model import ModelConfig, RecurrentTransformer
from .recurrence import decode, rollout, rollout_continuous

__version__ = "0.1.0"
__all__ = ["ModelConfig", "RecurrentTransformer", "decode", "rollout", "rollout_continuous"]
