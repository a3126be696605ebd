"""Every Triton kernel compiles for an H100/H200 (sm_90) with this Triton, within sm_90's shared
memory, and without spilling a single register — no GPU needed.

Runs scripts/check_sm90_compile.py (TTIR → PTX → cubin through the ptxas in the triton wheel) in a
subprocess without the interpreter. The cases are each kernel module's ``sm90_compile_cases()``,
generated from the table its launcher reads; for the attention, every launch the trainer and
evaluator make (``relpos_attention.launched_variants``), one compile per distinct kernel. No spill
is allowed anywhere. The GPU image's Triton 3.6 is checked the same way by hand (bench/RESULTS.md
says how).
"""

import json
import os
import subprocess
import sys

import pytest

from fastrecur_kernels import bottleneck, corrupt, factor_loss, relpos_attention

REPO_ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
MODULES = {"fastrecur_kernels.relpos_attention": relpos_attention, "fastrecur_kernels.bottleneck": bottleneck,
           "fastrecur_kernels.factor_loss": factor_loss, "fastrecur_kernels.corrupt": corrupt}  # fmt: skip


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    path = tmp_path_factory.mktemp("sm90") / "report.json"
    result = subprocess.run(
        [sys.executable, "scripts/check_sm90_compile.py", *MODULES, "--allow-spills", "--json", str(path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"},
        timeout=1800,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    return json.loads(path.read_text())["rows"]


@pytest.mark.slow
def test_every_case_compiles_within_shared_memory(report):
    for name, module in MODULES.items():
        rows = [r for r in report if r["module"] == name]
        assert len(rows) == len(module.sm90_compile_cases()), name  # the cases are distinct: none skipped
        for r in rows:
            assert "error" not in r, r
            assert r["shared"] <= 227 * 1024, r


@pytest.mark.slow
def test_no_register_spills(report):
    spilling = [r for r in report if r["spill_stores"] or r["spill_loads"]]
    assert not spilling, "\n".join(f"{r['kernel']} {r['label']}: {r['spill_stores']} B spilled" for r in spilling)


def test_the_launched_attentions_cover_the_shipped_configs_and_every_table_row():
    """The paper's training step (bf16 and fp32, d = 24, W = 64, dropout) and evaluation (no dropout),
    the tiny config (d = 16, W = 8), d = 64 and 128; and every launch-table row compiled at least once."""
    launched = set(relpos_attention.launched_variants())
    assert len(launched) == len(relpos_attention.launched_variants())  # one compile per distinct kernel
    for kernel in ("fwd", "dq", "dkdv"):
        for dtype in ("bf16", "fp32"):
            for d in (24, 64, 128):
                assert {(dtype, d, 64, True, 0, dropout, False, kernel) for dropout in (True, False)} <= launched
            assert (dtype, 16, 8, True, 0, False, False, kernel) in launched
        assert ("bf16", 24, 64, True, 0, True, True, kernel) in launched  # log-length scaling, trained in
    rows = {(kernel, dtype, relpos_attention._pow2(d)) for dtype, d, _, _, _, _, _, kernel in launched}
    assert rows == set(relpos_attention.SM90_CONFIGS)
