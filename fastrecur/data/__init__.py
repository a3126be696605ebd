"""Random arithmetic graphs, their factored tokenization and the tensors built from them (docs/method.md §1, §4.1).

This package knows nothing of models or training: it makes, reads and checks data.
"""

from .config import DagConfig, ood_config, required_length
from .dataset import GraphDataset, dataset_spec, input_depth, make_inputs, teacher_states
from .generate import BLOCK_SIZE, GraphStream, generate_block, generate_dataset, graph_batch
from .vocab import (
    FACTORS,
    FALSE,
    MODIFICATION,
    OPERATION,
    REGRET,
    RESET_FACTORS,
    SCORED_FACTORS,
    SYN_EQ,
    SYN_EQ_SEP,
    SYN_OPERATION,
    SYN_PAD,
    SYN_UNK,
    SYN_VALUE,
    SYN_VARIABLE,
    SYNTAX,
    VALUE,
    VARIABLE,
    Vocab,
)

__all__ = [
    "BLOCK_SIZE",
    "FACTORS",
    "FALSE",
    "MODIFICATION",
    "OPERATION",
    "REGRET",
    "RESET_FACTORS",
    "SCORED_FACTORS",
    "SYNTAX",
    "SYN_EQ",
    "SYN_EQ_SEP",
    "SYN_OPERATION",
    "SYN_PAD",
    "SYN_UNK",
    "SYN_VALUE",
    "SYN_VARIABLE",
    "VALUE",
    "VARIABLE",
    "DagConfig",
    "GraphDataset",
    "GraphStream",
    "Vocab",
    "dataset_spec",
    "generate_block",
    "generate_dataset",
    "graph_batch",
    "input_depth",
    "make_inputs",
    "ood_config",
    "required_length",
    "teacher_states",
]
