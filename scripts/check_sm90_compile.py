#!/usr/bin/env python
"""Compile every Triton kernel ahead of time for an H100/H200 (sm_90), without a GPU.

Triton's NVIDIA backend and ptxas ship in the triton wheel, so the whole pipeline (TTIR → TTGIR →
LLVM → PTX → cubin) runs on a CPU-only machine. This catches what the interpreter cannot: layout and
shape rules of ``tl.dot``, unsupported dtypes, register/shared-memory overflows, and API differences
between Triton versions (run it under each version you support).

Each kernel module lists its compile cases in ``sm90_compile_cases()``: a list of
``(jit_function, signature, constexprs, options)`` tuples, as taken by ``triton.compiler.ASTSource``
and ``triton.compile``.

Usage:  python scripts/check_sm90_compile.py [module ...]

The kernels checked are this checkout's (the folder kernels/, imported as ``fastrecur_kernels``),
whether or not fastrecur is installed in the Python that runs the script.
"""

import importlib
import importlib.util
import os
import re
import subprocess
import sys
import tempfile
import time

os.environ.pop("TRITON_INTERPRET", None)  # kernels must be real JIT functions, not interpreted

import triton  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.compiler import ASTSource  # noqa: E402

SM90_MAX_SHARED_BYTES = 232_448  # 227 KiB of opt-in shared memory per block on H100/H200

KERNEL_MODULES = [
    "fastrecur_kernels.relpos_attention",
    "fastrecur_kernels.bottleneck",
    "fastrecur_kernels.factor_loss",
    "fastrecur_kernels.corrupt",
]


def resource_usage(cubin: bytes) -> str:
    """Registers and spill stack per thread, from the cuobjdump that ships with Triton."""
    tool = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "cuobjdump")
    if not os.path.exists(tool):
        return "registers: (no cuobjdump)"
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cubin)
        f.flush()
        out = subprocess.run([tool, "-res-usage", f.name], capture_output=True, text=True).stdout
    match = re.search(r"REG:(\d+) STACK:(\d+)", out)
    return f"{match.group(1)} registers, {match.group(2)} B stack" if match else "registers: (unparsed)"


def import_this_checkouts_kernels() -> None:
    """Make ``fastrecur_kernels`` the kernels/ folder next to this script."""
    folder = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "kernels")
    spec = importlib.util.spec_from_file_location(
        "fastrecur_kernels", os.path.join(folder, "__init__.py"), submodule_search_locations=[folder]
    )
    package = importlib.util.module_from_spec(spec)
    sys.modules["fastrecur_kernels"] = package
    spec.loader.exec_module(package)


def main(argv: list[str]) -> int:
    import_this_checkouts_kernels()
    target = GPUTarget("cuda", 90, 32)
    modules = argv or KERNEL_MODULES
    failures, compiled = [], 0
    for name in modules:
        module = importlib.import_module(name)
        for fn, signature, constexprs, options in module.sm90_compile_cases():
            label = f"{name}.{fn.__name__} {constexprs} {options}"
            start = time.perf_counter()
            try:
                kernel = triton.compile(
                    ASTSource(fn=fn, signature=signature, constexprs=constexprs),
                    target=target,
                    options=options,
                )
            except Exception as exc:  # report every failing case, not just the first
                failures.append(label)
                print(f"FAIL {label}\n     {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
                continue
            md = kernel.metadata
            usage = f"{md.num_warps} warps, {md.shared} B shared, {resource_usage(kernel.asm['cubin'])}"
            if md.shared > SM90_MAX_SHARED_BYTES:
                failures.append(label)
                print(f"FAIL {label}\n     needs {md.shared} B of shared memory; sm_90 allows {SM90_MAX_SHARED_BYTES}")
                continue
            compiled += 1
            print(f"ok   {label}: {usage}, {time.perf_counter() - start:.1f}s")
    print(f"triton {triton.__version__}: {compiled} compiled, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
