"""Evaluating long graphs on the CPU: what the evaluator's memory use costs (fastrecur/host_memory.py).

    python -m pytest bench/test_cpu_sweep.py --benchmark-only --benchmark-group-by=group

Each round evaluates the shipped ``pretrained-cpu`` model on the same 32 graphs of 64 nodes (333
tokens, depth + 2 iterations) in a fresh Python process, because glibc's allocator settings are
process-wide and cannot be put back. The time is the whole process (start-up and loading included,
the same in every variant); ``extra_info`` has the evaluation's own wall, user and system seconds
and minor page faults. Run it on an idle machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

NUM_GRAPHS, SIZE = 32, 64

# (cap score tensors at MAX_SCORE_BYTES, keep freed host memory)
VARIANTS = {
    "batch 64, glibc defaults (before)": (False, False),
    "score tensors <= 32 MiB, glibc defaults": (True, False),
    "batch 64, freed memory kept": (False, True),
    "score tensors <= 32 MiB, freed memory kept (the CLI)": (True, True),
}

CHILD = """
import json, resource, sys, time
import torch
cap, keep = sys.argv[1] == "1", sys.argv[2] == "1"
if keep:
    from fastrecur.host_memory import keep_freed_host_memory
    assert keep_freed_host_memory()
import fastrecur.evaluate as evaluate_module
from fastrecur.checkpoint import model_from_checkpoint, pretrained_path
from fastrecur.sweep import sweep_dataset
if not cap:
    evaluate_module.MAX_SCORE_BYTES = 1 << 62
cpu = torch.device("cpu")
model, cfg = model_from_checkpoint(pretrained_path("pretrained-cpu"), cpu)
cfg.sweep.num_graphs = int(sys.argv[3])
dataset = sweep_dataset(cfg, int(sys.argv[4]))
evaluator = evaluate_module.make_evaluator(model, cfg, cpu)
before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
result = evaluator.evaluate(dataset)
wall, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"wall_s": wall, "user_s": after.ru_utime - before.ru_utime, "sys_s": after.ru_stime - before.ru_stime,
                  "minor_faults": after.ru_minflt - before.ru_minflt, "fully_solved": result["fully_solved"]}))
"""


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_cpu_sweep_memory(benchmark, variant):
    cap, keep = VARIANTS[variant]
    argv = [sys.executable, "-c", CHILD, str(int(cap)), str(int(keep)), str(NUM_GRAPHS), str(SIZE)]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    runs = []

    def evaluate_in_a_fresh_process():
        out = subprocess.run(argv, capture_output=True, text=True, env=env, check=True)
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))

    benchmark.group = f"cpu evaluation of {NUM_GRAPHS} graphs of {SIZE} nodes, pretrained-cpu (one process)"
    benchmark.pedantic(evaluate_in_a_fresh_process, rounds=3, iterations=1)
    runs.sort(key=lambda r: r["wall_s"])
    median = runs[len(runs) // 2]
    benchmark.extra_info.update({k: median[k] for k in ("wall_s", "user_s", "sys_s", "minor_faults")})
    assert len({r["fully_solved"] for r in runs}) == 1  # the variants only change how memory is used
