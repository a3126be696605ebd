"""Every Triton kernel compiles for an H100/H200 (sm_90) with this Triton, within sm_90's shared
memory, and without spilling registers — no GPU needed.

Runs scripts/check_sm90_compile.py (TTIR → PTX → cubin through the ptxas in the triton wheel) in a
subprocess without the interpreter. The cases are each kernel module's ``sm90_compile_cases()``,
generated from the table its launcher reads, so every launch configuration is checked. The only
spills allowed are the rows ``fastrecur_kernels.relpos_attention.SM90_KNOWN_SPILLS`` lists (configurations
no shipped config launches on a GPU: see bench/RESULTS.md). The GPU image's Triton 3.6 is checked
the same way by hand (bench/RESULTS.md says how).
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
        assert len(rows) == len(module.sm90_compile_cases()), name
        for r in rows:
            assert "error" not in r, r
            assert r["shared"] <= 227 * 1024, r


@pytest.mark.slow
def test_no_register_spills_outside_the_known_rows(report):
    spilling = [r for r in report if r["spill_stores"] or r["spill_loads"]]
    unexpected = [r for r in spilling if relpos_attention.spill_key(r["kernel"], r["label"]) is None]
    assert not unexpected, "\n".join(f"{r['kernel']} {r['label']}: {r['spill_stores']} B spilled" for r in unexpected)


@pytest.mark.slow
def test_the_shipped_configs_are_checked_and_spill_free(report):
    """The paper's training step (bf16, d = 24, W = 64, dropout) and evaluation (fp32 forward,
    no dropout), and the tiny config (d = 16, W = 8), compile without a single spilled byte."""
    shipped = [("bf16", 24, 64, True, kernel) for kernel in ("_fwd_kernel", "_bwd_dq_kernel", "_bwd_dkdv_kernel")]
    shipped += [("fp32", 24, 64, False, "_fwd_kernel"), ("fp32", 16, 8, False, "_fwd_kernel"),
                ("bf16", 16, 8, False, "_fwd_kernel"), ("bf16", 16, 8, False, "_bwd_dq_kernel"), ("bf16", 16, 8, False, "_bwd_dkdv_kernel")]  # fmt: skip
    for dtype, d, window, dropout, kernel in shipped:
        rows = [r for r in report if r["kernel"] == kernel and r["label"].get("dtype") == dtype and r["label"].get("d") == d
                and r["label"].get("W") == window and r["label"].get("dropout") == dropout and r["label"].get("causal")]  # fmt: skip
        assert len(rows) == 1, (dtype, d, window, dropout, kernel)
        assert rows[0]["spill_stores"] == 0 and rows[0]["spill_loads"] == 0, rows[0]
