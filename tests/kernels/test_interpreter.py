"""The one place that decides whether kernels run in Triton's CPU interpreter."""

import os
import subprocess
import sys


def run(code: str, **env) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    return subprocess.run([sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True, timeout=300)


def test_switched_on_without_a_gpu_before_the_kernels_are_defined():
    out = run(
        "import os\n"
        "from fastrecur_kernels.interpreter import use_interpreter\n"
        "assert use_interpreter() and os.environ['TRITON_INTERPRET'] == '1'\n"
        "from fastrecur_kernels import relpos_attention\n"
        "assert relpos_attention.INTERPRETED\n",
        CUDA_VISIBLE_DEVICES="",  # no GPU, whatever the machine has
    )
    assert out.returncode == 0, out.stderr


def test_too_late_once_the_kernels_were_defined_compiled():
    out = run(
        "from fastrecur_kernels import ops\n"
        "from fastrecur_kernels.interpreter import use_interpreter\n"
        "try:\n"
        "    use_interpreter('cpu')\n"
        "except RuntimeError as exc:\n"
        "    print(exc)\n"
    )
    assert out.returncode == 0 and "already imported without it" in out.stdout, out.stdout + out.stderr


def test_an_explicit_setting_is_kept():
    out = run("from fastrecur_kernels.interpreter import use_interpreter\nprint(use_interpreter())", TRITON_INTERPRET="0")
    assert out.returncode == 0 and out.stdout.strip() == "False", out.stderr
