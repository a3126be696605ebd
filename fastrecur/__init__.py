"""fastrecur: fast, faithful recursive latent-space reasoning Transformers (Altabaa et al., 2025).

The main entry points:

* ``fastrecur.model.RecurrentTransformer`` / ``ModelConfig`` — the recurrent block (SPEC §2);
* ``fastrecur.rollout(model, tokens, num_loops)`` — the discrete recurrence (SPEC §3);
* ``fastrecur.data`` — graphs, the factored tokenizer, datasets and teacher states (SPEC §1, §4.1);
* ``fastrecur.compat`` — the authors' dataset files and checkpoints;
* ``fastrecur.train.Trainer``, ``fastrecur.evaluate.Evaluator`` — training and evaluation;
* the ``fastrecur`` command line (``python -m fastrecur --help``).
"""

from .model import ModelConfig, RecurrentTransformer
from .recurrence import decode, rollout, rollout_continuous

__version__ = "0.1.0"
__all__ = ["ModelConfig", "RecurrentTransformer", "decode", "rollout", "rollout_continuous"]
