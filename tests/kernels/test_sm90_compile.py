"""Every Triton kernel compiles for an H100/H200 (sm_90) with this Triton — no GPU needed.

Runs scripts/check_sm90_compile.py (TTIR → PTX → cubin through the ptxas in the triton wheel) in a
subprocess without the interpreter, and checks the shared memory each kernel needs against sm_90's
227 KiB per block. The GPU image's Triton 3.6 is checked the same way by hand (see the script).
"""

import os
import re
import subprocess
import sys

import pytest

REPO_ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
SM90_MAX_SHARED_BYTES = 232_448

# module → how many (kernel, configuration) cases its sm90_compile_cases() lists
CASES = {
    "fastrecur_kernels.relpos_attention": 19,
    "fastrecur_kernels.bottleneck": 7,
    "fastrecur_kernels.factor_loss": 4,
    "fastrecur_kernels.corrupt": 3,
}


@pytest.mark.slow
@pytest.mark.parametrize("module", list(CASES))
def test_kernels_compile_for_sm90(module):
    result = subprocess.run(
        [sys.executable, "scripts/check_sm90_compile.py", module],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"},
        timeout=900,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    shared = [int(n) for n in re.findall(r"(\d+) B shared", result.stdout)]
    assert len(shared) == CASES[module] and max(shared) <= SM90_MAX_SHARED_BYTES, result.stdout
